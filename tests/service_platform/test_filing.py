"""Online filing against the real server: form schemas, pre-review answering every problem at once (一次性告知),
filing with a number, 容缺受理 and supplements, uploads, idempotency, and that citizens only reach their own data."""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from PIL import Image, ImageDraw

from service_platform.numbering import is_valid_number

ZHANG, CHEN, YANG, WANG = "340302195803172018", "520302199002144027", "530102198306301518", "230202197511053015"
APPS, PRE_REVIEW, UPLOADS = "/api/v1/me/applications", "/api/v1/me/applications/pre-review", "/api/v1/me/uploads"
ONLINE = ["id-card-renewal", "driving-licence-renewal", "hukou-certificate", "no-criminal-record",
          "residence-permit-apply", "senior-card", "hpf-withdrawal", "birth-registration",
          "sole-proprietor-registration"]
NUMBER = re.compile(r"^SP\d{8}\d{6}\d$")  # yyyymmdd + 6 random digits + Luhn check digit


def page(width: int = 1240, height: int = 1754, blank: bool = False, fmt: str = "JPEG") -> bytes:
    """A photographed page: white with lines of 'text' (or blank)."""
    img = Image.new("RGB", (width, height), "white")
    if not blank:
        draw = ImageDraw.Draw(img)
        for y in range(80, height - 80, 40):
            draw.rectangle((80, y, width - 80 - (y * 7) % 300, y + 14), fill=(30, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=80)
    return buf.getvalue()


def upload(kiosk: httpx.Client, auth: dict[str, str], idem: Callable[[], dict[str, str]], data: bytes,
           content_type: str = "image/jpeg") -> httpx.Response:
    return kiosk.post(UPLOADS, content=data, headers={**auth, **idem(), "Content-Type": content_type})


def codes(response: httpx.Response) -> list[tuple[str, Any]]:
    body = response.json()
    problems = body["problems"] if "problems" in body else body["error"]["details"]["problems"]
    return [(p["code"], p["field"] if p["field"] is not None else p["material_index"]) for p in problems]


HPF_FORM = {"reason": "purchase", "bank_card_no": "6222021234567890123", "bank_name": "中国工商银行",
            "phone": "13905520001"}


# --- the catalogue side ----------------------------------------------------------------------------------------------

def test_online_services_publish_a_valid_form_schema(public: httpx.Client) -> None:
    with_form = []
    for s in public.get("/api/v1/services", params={"limit": 100}).json()["items"]:
        detail = public.get(f"/api/v1/services/{s['code']}").json()
        assert [m["index"] for m in detail["materials"]] == list(range(len(detail["materials"])))
        if detail["form_schema"] is not None:
            Draft202012Validator.check_schema(detail["form_schema"])
            assert detail["form_schema"]["type"] == "object" and detail["supplement_days"] >= 1
            for prop in detail["form_schema"]["properties"].values():
                assert prop.get("title") and prop.get("x-title-en"), prop
            with_form.append(s["code"])
        else:
            assert not any(m["deferrable"] or m["satisfied_by"] for m in detail["materials"])
    assert set(ONLINE) <= set(with_form) and len(with_form) >= 6
    renewal = public.get("/api/v1/services/id-card-renewal").json()
    assert [(m["satisfied_by"], m["deferrable"]) for m in renewal["materials"]] == [
        ("identity", False), (None, False), (None, True)]


def test_not_every_service_can_be_filed(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                        idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    r = kiosk.post(APPS, json={"service_code": "hukou-move-out"}, headers={**auth, **idem()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_applicable_online"
    r = kiosk.post(APPS, json={"service_code": "no-such-service"}, headers={**auth, **idem()})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_prefill_from_identity_and_e_certificates(kiosk: httpx.Client,
                                                  open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    data = kiosk.get("/api/v1/me/services/id-card-renewal/prefill", headers=auth).json()
    assert data["form"] == {"name": "张明华", "address": "安徽省蚌埠市龙子湖区东海大道1号"}
    assert data["sources"]["/name"] == "identity" and data["sources"]["/address"].startswith("e_certificate:ec_")
    assert [m["status"] for m in data["materials"]] == ["provided", "provided", "missing"]
    wang = kiosk.get("/api/v1/me/services/driving-licence-renewal/prefill", headers=open_session(WANG)).json()
    assert wang["form"] == {"licence_file_no": "230200123456", "vehicle_class": "C1"}
    assert [m["source"] for m in wang["materials"]] == ["identity", "e_certificate", "e_certificate", None]
    # an expired or level-D certificate is never suggested
    yang = kiosk.get("/api/v1/me/services/sole-proprietor-registration/prefill", headers=open_session(YANG)).json()
    assert "business_address" not in yang["form"] and yang["materials"][2]["status"] == "missing"


# --- pre-review: every problem at once -----------------------------------------------------------------------------

def test_pre_review_lists_every_problem_at_once(kiosk: httpx.Client, platform: Any,
                                                open_session: Callable[[str], dict[str, str]]) -> None:
    before = platform.query("SELECT COUNT(*) FROM applications")
    auth = open_session(ZHANG)
    r = kiosk.post(PRE_REVIEW, headers=auth, json={"service_code": "id-card-renewal", "form": {
        "reason": "lost", "phone": "1390552", "extra": 1}})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["acceptable"] is False
    assert codes(r) == [("form_invalid", "/reason"), ("form_invalid", "/phone"), ("form_invalid", "/pickup"),
                        ("form_invalid", "/extra"), ("material_missing", 2)]
    by_field = {p["field"]: p for p in data["problems"]}
    assert by_field["/phone"]["message"] == "请填写11位手机号码"
    assert by_field["/pickup"]["message"] == "请填写“领取方式”" and by_field["/pickup"]["message_en"]
    assert [m["status"] for m in data["materials"]] == ["provided", "not_provided", "missing"]
    assert platform.query("SELECT COUNT(*) FROM applications") == before  # a pre-review files nothing


def test_pre_review_finds_wrong_materials(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                          idem: Callable[[], dict[str, str]]) -> None:
    yang = open_session(YANG)
    mine = {c["type_code"]: c["id"] for c in kiosk.get("/api/v1/me/e-certificates", headers=yang).json()["items"]}
    zhang_cert = kiosk.get("/api/v1/me/e-certificates", headers=open_session(ZHANG),
                           params={"type": "property_cert"}).json()["items"][0]["id"]
    small = upload(kiosk, yang, idem, page(640, 480)).json()["id"]
    blank = upload(kiosk, yang, idem, page(blank=True)).json()["id"]
    r = kiosk.post(PRE_REVIEW, headers=yang, json={
        "service_code": "residence-permit-apply",
        "form": {"basis": "employment", "residence_address": "蚌埠市龙子湖区胜利路66号", "registered_on": "2024-13-01",
                 "phone": "13905520002"},
        "materials": [{"index": 1, "e_certificate_id": mine["residence_permit"]},   # wrong type (and expired)
                      {"index": 2, "upload_ids": [small, blank]},
                      {"index": 3, "defer": True},
                      {"index": 9, "defer": True}]})
    assert codes(r) == [("form_invalid", "/registered_on"), ("form_invalid", "/employer"),
                        ("unknown_material", 9), ("e_certificate_wrong_type", 1), ("upload_low_resolution", 2),
                        ("upload_blank", 2), ("commitment_required", None)]
    r = kiosk.post(PRE_REVIEW, headers=yang, json={
        "service_code": "sole-proprietor-registration",
        "form": {"business_name": "志强早餐店", "business_address": "蚌埠市龙子湖区胜利路66号商铺",
                 "business_scope": "餐饮服务", "capital_fen": 5000000, "phone": "13905520002"},
        "materials": [{"index": 2, "e_certificate_id": mine["property_cert"]}, {"index": 1, "defer": True},
                      {"index": 1, "defer": True}]})
    assert codes(r) == [("duplicate_material", 1), ("material_not_deferrable", 1),
                        ("e_certificate_trust_too_low", 2)]
    r = kiosk.post(PRE_REVIEW, headers=yang, json={
        "service_code": "sole-proprietor-registration", "form": {"business_name": "x"},
        "materials": [{"index": 2, "e_certificate_id": zhang_cert}]})  # someone else's certificate
    assert ("e_certificate_not_found", 2) in codes(r)


def test_form_formats_and_conditions(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    r = kiosk.post(PRE_REVIEW, headers=auth, json={"service_code": "birth-registration", "form": {
        "spouse_name": "罗建明", "spouse_id_number": "520302198806113011", "child_order": 0, "phone": "13905520003"}})
    assert codes(r) == [("form_invalid", "/spouse_id_number"), ("form_invalid", "/child_order")]
    assert r.json()["problems"][0]["message"] == "请填写正确的18位身份证号码"
    r = kiosk.post(PRE_REVIEW, headers=auth, json={"service_code": "hukou-certificate",
                                                   "form": {"purpose": "other", "copies": 1}})
    assert codes(r) == [("form_invalid", "/purpose_note")]
    r = kiosk.post(PRE_REVIEW, headers=auth, json={"service_code": "hukou-certificate",
                                                   "form": {"purpose": "other", "purpose_note": "办理签证", "copies": 2}})
    assert r.json() == {**r.json(), "acceptable": True, "problems": []}


def test_material_refs_must_name_exactly_one_source(kiosk: httpx.Client,
                                                    open_session: Callable[[str], dict[str, str]]) -> None:
    r = kiosk.post(PRE_REVIEW, headers=open_session(ZHANG), json={
        "service_code": "hpf-withdrawal", "form": HPF_FORM,
        "materials": [{"index": 1, "defer": True, "e_certificate_id": "ec_x"}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


# --- filing --------------------------------------------------------------------------------------------------------

def hpf_draft(kiosk: httpx.Client, auth: dict[str, str], idem: Callable[[], dict[str, str]],
              defer_reason: bool = True) -> dict[str, Any]:
    card = upload(kiosk, auth, idem, page()).json()["id"]
    materials: list[dict[str, Any]] = [{"index": 1, "upload_ids": [card]}]
    if defer_reason:
        materials.append({"index": 2, "defer": True})
    return {"service_code": "hpf-withdrawal", "form": HPF_FORM, "materials": materials, "commitment": defer_reason}


def test_filing_with_a_deferred_material_then_supplementing_it(
        kiosk: httpx.Client, public: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]],
        idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    draft = hpf_draft(kiosk, auth, idem)
    review = kiosk.post(PRE_REVIEW, headers=auth, json=draft).json()
    assert review["acceptable"] is True and review["supplement_due"]
    r = kiosk.post(APPS, headers={**auth, **idem()}, json=draft)
    assert r.status_code == 201, r.text
    filed = r.json()
    number = filed["number"]
    assert NUMBER.match(number) and filed["progress"]["status"] == "accepted"
    assert number[2:10] == filed["progress"]["submitted_at"][:10].replace("-", "")
    assert [e["status"] for e in filed["progress"]["timeline"]] == ["received", "accepted"]
    assert "容缺受理" in filed["progress"]["timeline"][-1]["note"]
    assert filed["outstanding"] == [2] and filed["supplement_due"] == review["supplement_due"]
    assert filed["form"] == HPF_FORM and filed["payment_orders"] == []  # a free service
    assert [m["status"] for m in filed["materials"]] == ["provided", "provided", "outstanding", "not_provided"]
    # progress by number and the ID number's last 4, masked; and in the citizen's list
    progress = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": ZHANG[-4:]}).json()
    assert progress["applicant_masked"] == "张*华" and "张明华" not in json.dumps(progress, ensure_ascii=False)
    assert number in [a["number"] for a in kiosk.get(APPS, headers=auth).json()["items"]]
    # supplementing: only outstanding materials, all problems at once
    property_cert = kiosk.get("/api/v1/me/e-certificates", headers=auth,
                              params={"type": "property_cert"}).json()["items"][0]["id"]
    bad = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()}, json={"materials": [
        {"index": 1, "e_certificate_id": property_cert}, {"index": 2, "defer": True}]})
    assert bad.status_code == 422 and codes(bad) == [("material_not_outstanding", 1), ("material_not_deferrable", 2)]
    ok = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()},
                    json={"materials": [{"index": 2, "e_certificate_id": property_cert}]})
    assert ok.status_code == 201, ok.text
    assert ok.json()["outstanding"] == [] and ok.json()["supplement_due"] is None
    assert ok.json()["progress"]["status"] == "in_review"
    assert ok.json()["materials"][2]["source"] == "e_certificate"
    again = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()},
                       json={"materials": [{"index": 2, "e_certificate_id": property_cert}]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_outstanding"
    rows = platform.query("SELECT m.material_index, m.status, m.source FROM application_materials m "
                          "JOIN applications a ON a.id = m.application_id WHERE a.number = :n "
                          "ORDER BY m.material_index", n=number)
    assert rows == [(0, "provided", "identity"), (1, "provided", "upload"), (2, "provided", "e_certificate")]


def test_filing_refused_with_every_problem_and_nothing_filed(kiosk: httpx.Client, platform: Any,
                                                             open_session: Callable[[str], dict[str, str]],
                                                             idem: Callable[[], dict[str, str]]) -> None:
    before = platform.query("SELECT COUNT(*) FROM applications")
    r = kiosk.post(APPS, headers={**open_session(ZHANG), **idem()},
                   json={"service_code": "hpf-withdrawal", "form": {"reason": "purchase"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "pre_review_failed"
    assert codes(r) == [("form_invalid", "/bank_card_no"), ("form_invalid", "/bank_name"),
                        ("form_invalid", "/phone"), ("material_missing", 1), ("material_missing", 2)]
    assert platform.query("SELECT COUNT(*) FROM applications") == before


def test_the_seeded_correction_request_is_answered(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                                   idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(YANG)
    number = "SP20261026000501"
    detail = kiosk.get(f"{APPS}/{number}", headers=auth).json()
    assert detail["progress"]["status"] in ("supplement_required", "in_review")
    if detail["progress"]["status"] == "in_review":
        return  # answered by an earlier run on this database
    assert detail["outstanding"] == [2]
    lease = upload(kiosk, auth, idem, page()).json()["id"]
    r = kiosk.post(f"{APPS}/{number}/supplements", headers={**auth, **idem()},
                   json={"materials": [{"index": 2, "upload_ids": [lease]}]})
    assert r.status_code == 201, r.text
    timeline = r.json()["progress"]["timeline"]
    assert timeline[-1]["status"] == "in_review" and "材料已补齐" in timeline[-1]["note"]


def test_filing_a_service_with_a_fee_creates_its_order(kiosk: httpx.Client,
                                                       open_session: Callable[[str], dict[str, str]],
                                                       idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(WANG)
    mine = {c["type_code"]: c["id"] for c in kiosk.get("/api/v1/me/e-certificates", headers=auth).json()["items"]}
    r = kiosk.post(APPS, headers={**auth, **idem()}, json={
        "service_code": "driving-licence-renewal",
        "form": {"licence_file_no": "230200123456", "pickup": "window", "phone": "13905520004"},
        "materials": [{"index": 1, "e_certificate_id": mine["driving_licence"]},
                      {"index": 2, "e_certificate_id": mine["health_exam"]}, {"index": 3, "defer": True}],
        "commitment": True})
    assert r.status_code == 201, r.text
    (order,) = r.json()["payment_orders"]
    assert order["amount_fen"] == 1000 and order["status"] == "pending" and order["purpose"] == "机动车驾驶证工本费"
    assert order["application_number"] == r.json()["number"] and order["payer_masked"] == "王*国"


# --- idempotency ---------------------------------------------------------------------------------------------------

def test_repeated_filing_returns_the_first_and_concurrent_repeats_file_once(
        kiosk: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]],
        idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    body = {"service_code": "hukou-certificate", "form": {"purpose": "employment", "copies": 1}}
    headers = {**auth, **idem()}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: kiosk.post(APPS, headers=headers, json=body), range(6)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["number"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
    number = answers[0].json()["number"]
    assert platform.query("SELECT COUNT(*) FROM applications WHERE number = :n", n=number) == [(1,)]
    later = kiosk.post(APPS, headers=headers, json=body)
    assert later.json() == answers[0].json() and later.headers["Idempotent-Replayed"] == "true"
    other = kiosk.post(APPS, headers=headers, json={**body, "form": {"purpose": "school", "copies": 1}})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_concurrent_filings_get_distinct_unguessable_numbers(kiosk: httpx.Client,
                                                             open_session: Callable[[str], dict[str, str]],
                                                             idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    body = {"service_code": "hukou-certificate", "form": {"purpose": "school", "copies": 1}}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: kiosk.post(APPS, headers={**auth, **idem()}, json=body), range(8)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    numbers = sorted(a.json()["number"] for a in answers)
    assert len(set(numbers)) == 8 and all(is_valid_number(n, "application") for n in numbers)
    same_day = [n for n in numbers if n[:10] == numbers[-1][:10]]
    seqs = [int(n[10:16]) for n in same_day]
    assert seqs != list(range(seqs[0], seqs[0] + len(seqs)))   # random, not a sequence


def test_uploads(kiosk: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]],
                 idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    png = page(1400, 1000, fmt="PNG")
    r = upload(kiosk, auth, idem, png, "image/png")
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["id"].startswith("up_") and (data["width"], data["height"], data["size"]) == (1400, 1000, len(png))
    headers = {**auth, **idem(), "Content-Type": "image/jpeg"}
    first = kiosk.post(UPLOADS, content=page(), headers=headers)
    second = kiosk.post(UPLOADS, content=page(), headers=headers)
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert platform.query("SELECT COUNT(*) FROM uploads WHERE id = :i", i=first.json()["id"]) == [(1,)]
    assert kiosk.post(UPLOADS, content=b"%PDF-1.4", headers={**auth, **idem(), "Content-Type": "application/pdf"}
                      ).json()["error"]["code"] == "unsupported_media_type"
    r = upload(kiosk, auth, idem, b"not an image at all", "image/png")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
    r = upload(kiosk, auth, idem, png, "image/jpeg")  # declared type must match
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
    r = upload(kiosk, auth, idem, b"\xff\xd8\xff" + bytes(8 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = kiosk.post(UPLOADS, content=png, headers={**idem(), "Content-Type": "image/png"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_required"


def test_an_upload_serves_one_application(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                          idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    draft = hpf_draft(kiosk, auth, idem)
    assert kiosk.post(APPS, headers={**auth, **idem()}, json=draft).status_code == 201
    r = kiosk.post(PRE_REVIEW, headers=auth, json=draft)
    assert codes(r) == [("upload_already_used", 1)]


def test_concurrent_filings_cannot_share_a_page(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                                idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(ZHANG)
    draft = hpf_draft(kiosk, auth, idem)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: kiosk.post(APPS, headers={**auth, **idem()}, json=draft), range(4)))
    assert sorted(a.status_code for a in answers) == [201, 422, 422, 422], [a.text for a in answers]
    assert all(codes(a) == [("upload_already_used", 1)] for a in answers if a.status_code == 422)


# --- only the citizen's own ----------------------------------------------------------------------------------------

def test_citizens_never_reach_each_others_filings(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                                  open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                                                  idem: Callable[[], dict[str, str]]) -> None:
    zhang = open_session(ZHANG)
    draft = hpf_draft(kiosk, zhang, idem)
    filed = kiosk.post(APPS, headers={**zhang, **idem()}, json=draft).json()
    number, card = filed["number"], draft["materials"][0]["upload_ids"][0]
    _id, other = open_synthetic(902)
    r = kiosk.get(f"{APPS}/{number}", headers=other)
    assert r.status_code == 404 and "张" not in r.text
    r = kiosk.post(f"{APPS}/{number}/supplements", headers={**other, **idem()},
                   json={"materials": [{"index": 2, "defer": True}]})
    assert r.status_code == 404
    assert number not in [a["number"] for a in kiosk.get(APPS, headers=other).json()["items"]]
    r = kiosk.post(PRE_REVIEW, headers=other, json={**draft, "materials": [{"index": 1, "upload_ids": [card]}]})
    assert ("upload_not_found", 1) in codes(r)
    assert kiosk.get(f"{APPS}/{number}", headers=zhang).status_code == 200


def test_filing_needs_a_live_session(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                     idem: Callable[[], dict[str, str]]) -> None:
    auth = open_session(CHEN)
    body = {"service_code": "hukou-certificate", "form": {"purpose": "housing", "copies": 1}}
    key = idem()
    first = kiosk.post(APPS, headers={**auth, **key}, json=body)
    assert kiosk.delete("/api/v1/citizen-sessions/current", headers=auth).status_code == 204
    replay = kiosk.post(APPS, headers={**auth, **key}, json=body)  # the kiosk's retry after the citizen left
    assert replay.status_code == 201 and replay.json()["number"] == first.json()["number"]
    fresh = kiosk.post(APPS, headers={**auth, **idem()}, json=body)
    assert fresh.status_code == 401 and fresh.json()["error"]["code"] == "session_expired"
    assert kiosk.post(APPS, headers=idem(), json=body).json()["error"]["code"] == "session_required"
    today = dt.date.today()
    assert first.json()["progress"]["promised_date"] >= today.isoformat()
