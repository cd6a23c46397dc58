"""E-certificates (电子证照) and registered photos against the real server: only the citizen's own, PDF with CJK text,
photos for face verification."""
from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

ZHANG, WANG, YANG, ZHAO = "340302195803172018", "230202197511053015", "530102198306301518", "340302194501013033"
SEEDED_COUNTS = {ZHANG: 5, "35010219490822102X": 4, WANG: 4, "520302199002144027": 3, YANG: 3,
                 "810000199205082049": 1, ZHAO: 3}
PHOTO_QUERY = "/api/v1/registered-photos/query"


def certs(kiosk: httpx.Client, auth: dict[str, str], **params: str) -> list[dict]:
    r = kiosk.get("/api/v1/me/e-certificates", headers=auth, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_types_are_public_and_cover_every_material(public: httpx.Client) -> None:
    types = public.get("/api/v1/e-certificate-types").json()["items"]
    names = {t["name"] for t in types}
    assert {"居民身份证", "居民户口簿", "结婚证", "不动产权证书", "机动车驾驶证"} <= names
    assert all(t["fields"] and t["issuer"] and t["name_en"] for t in types)
    services = public.get("/api/v1/services", params={"limit": 100}).json()["items"]
    for s in services:
        for m in public.get(f"/api/v1/services/{s['code']}").json()["materials"]:
            assert m["e_cert_type"] is None or m["e_cert_type"] in names, (s["code"], m)


def test_each_citizen_sees_exactly_their_certificates(kiosk: httpx.Client, citizen_id: str,
                                                      citizens: dict[str, tuple[str, list[str]]],
                                                      open_session: Callable[[str], dict[str, str]]) -> None:
    name = citizens[citizen_id][0]
    items = certs(kiosk, open_session(citizen_id))
    assert len(items) == SEEDED_COUNTS[citizen_id]
    assert {c["holder_name_masked"] for c in items} == {name[0] + "*" + name[-1]}
    for c in items:
        assert c["id"].startswith("ec_") and c["trust_level"] in "ABCD" and c["number"] and c["issuer"]
        assert c["pdf_url"] == f"/api/v1/me/e-certificates/{c['id']}/pdf"


def test_status_trust_and_data(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    wang = {c["type_code"]: c for c in certs(kiosk, open_session(WANG))}
    assert wang["resident_id"]["status"] == "expired" and wang["resident_id"]["valid_until"] == "2025-01-01"
    assert wang["driving_licence"]["status"] == "valid"
    assert wang["driving_licence"]["data"] == {"file_no": "230200123456", "vehicle_class": "C1",
                                               "first_issued": "1998-07-15"}
    yang = {c["type_code"]: c for c in certs(kiosk, open_session(YANG))}
    assert yang["residence_permit"]["status"] == "expired" and yang["property_cert"]["trust_level"] == "D"
    zhang = {c["type_code"]: c for c in certs(kiosk, open_session(ZHANG))}
    assert zhang["hukou_book"]["valid_until"] is None and zhang["marriage_cert"]["trust_level"] == "B"


def test_filter_by_type_code_or_name(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    by_code = certs(kiosk, auth, type="marriage_cert")
    by_name = certs(kiosk, auth, type="结婚证")
    assert by_code == by_name and [c["type_name"] for c in by_code] == ["结婚证"]
    assert certs(kiosk, auth, type="营业执照") == []


def test_someone_elses_certificate_is_not_found(kiosk: httpx.Client,
                                                open_session: Callable[[str], dict[str, str]]) -> None:
    zhang_cert = certs(kiosk, open_session(ZHANG))[0]["id"]
    other = open_session(WANG)
    assert zhang_cert not in {c["id"] for c in certs(kiosk, other)}
    for path in (f"/api/v1/me/e-certificates/{zhang_cert}", f"/api/v1/me/e-certificates/{zhang_cert}/pdf"):
        r = kiosk.get(path, headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert "张" not in r.text
        assert kiosk.get(path).status_code == 401  # no session at all


def test_pdf_is_small_valid_and_has_the_chinese_text(kiosk: httpx.Client, tmp_path: Path,
                                                     open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    cert = certs(kiosk, auth, type="marriage_cert")[0]
    r = kiosk.get(cert["pdf_url"], headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
    assert len(r.content) < 60_000
    pdf = tmp_path / "cert.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, check=True,
                          timeout=30).stdout.decode("utf-8")
    for expected in ("结婚证（电子证照）", "张明华", "J340302-1984-001023", "蚌埠市民政局", "刘桂芳", "B级", "长期"):
        assert expected in text, expected
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, check=True, timeout=30).stdout.decode()
    assert "CJK" in fonts and " yes yes " in fonts  # embedded and subsetted
    again = kiosk.get(cert["pdf_url"], headers=auth)
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]


def photo_body(id_number: str, name: str, kind: str = "resident_id") -> dict[str, str]:
    return {"id_number": id_number, "name": name, "document_kind": kind}


def test_registered_photo_for_face_verification(kiosk: httpx.Client) -> None:
    r = kiosk.post(PHOTO_QUERY, json=photo_body(ZHANG, "张明华"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-photo-source"] == "placeholder" and r.headers["cache-control"] == "no-store"
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.format == "JPEG" and img.size == (358, 441)
    again = kiosk.post(PHOTO_QUERY, json=photo_body(ZHANG, "张明华"))
    other = kiosk.post(PHOTO_QUERY, json=photo_body(ZHAO, "赵德顺"))
    assert again.content == r.content and other.status_code == 200 and other.content != r.content
    hmt = kiosk.post(PHOTO_QUERY, json=photo_body("810000199205082049", "黄嘉欣", "hmt_residence_permit"))
    assert hmt.status_code == 200


@pytest.mark.parametrize("body, status, code", [
    (photo_body(ZHANG, "张明"), 404, "not_found"),                   # name does not match the registry
    (photo_body("340302198001010010", "测试员"), 404, "not_found"),    # valid number, not registered
    (photo_body("340302195803172019", "张明华"), 422, "invalid_id_number"),
])
def test_registered_photo_refusals(kiosk: httpx.Client, body: dict, status: int, code: str) -> None:
    r = kiosk.post(PHOTO_QUERY, json=body)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_registered_photo_needs_a_kiosk(public: httpx.Client) -> None:
    r = public.post(PHOTO_QUERY, json=photo_body(ZHANG, "张明华"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_my_photo_is_the_registered_photo(kiosk: httpx.Client,
                                          open_session: Callable[[str], dict[str, str]],
                                          open_synthetic: Callable[..., tuple[str, dict[str, str]]]) -> None:
    r = kiosk.get("/api/v1/me/photo", headers=open_session(ZHAO))
    assert r.status_code == 200 and r.content == kiosk.post(PHOTO_QUERY, json=photo_body(ZHAO, "赵德顺")).content
    _id, auth = open_synthetic(901)   # a session needs a registered person: they have their own photo
    r = kiosk.get("/api/v1/me/photo", headers=auth)
    assert r.status_code == 200 and r.content != kiosk.post(PHOTO_QUERY, json=photo_body(ZHAO, "赵德顺")).content
