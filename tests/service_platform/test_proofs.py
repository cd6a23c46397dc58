"""Proofs and sealed documents against the real server (SQLite and PostgreSQL): the list, issuing (idempotent), the
PDF signed by the department's seal — valid for pyHanko (trusting the platform's CA root) and for poppler's pdfsig,
invalid for both after one changed byte —, its public verify page, revocation (operator CLI and the issuing
department's staff), sealed e-certificate PDFs, and who may call what."""
from __future__ import annotations

import io
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

ZHANG, WANG, CHEN = "340302195803172018", "230202197511053015", "520302199002144027"
PROOFS = "/api/v1/me/proofs"


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


# --- the two validators --------------------------------------------------------------------------------------------

def pyhanko_verdict(pdf: bytes, ca_pem: bytes) -> tuple[bool, bool, str]:
    """(intact, trusted, signer) of the document's one signature, as pyHanko's validation sees it."""
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
        fh.write(ca_pem)
        fh.flush()
        root = load_cert_from_pemder(fh.name)
    reader = PdfFileReader(io.BytesIO(pdf))
    [sig] = reader.embedded_signatures
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[root]))
    signer = status.signing_cert.subject.native["common_name"]
    return status.intact and status.valid, status.trusted and status.coverage.name == "ENTIRE_FILE", signer


def pdfsig_verdict(pdf: bytes, tmp_path: Path, ca_pem: bytes) -> str:
    """pdfsig's report; with certutil (libnss3-tools) the CA root is trusted in a private NSS database."""
    path = tmp_path / f"doc-{uuid.uuid4().hex[:6]}.pdf"
    path.write_bytes(pdf)
    nss = tmp_path / "nss"
    args = []
    if subprocess.run(["which", "certutil"], capture_output=True).returncode == 0:
        if not nss.exists():
            nss.mkdir()
            (tmp_path / "ca.pem").write_bytes(ca_pem)
            subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True,
                           capture_output=True)
            subprocess.run(["certutil", "-A", "-n", "platform-seal-ca", "-t", "CT,C,C", "-i", str(tmp_path / "ca.pem"),
                            "-d", f"sql:{nss}"], check=True, capture_output=True)
        args = ["-nssdir", f"sql:{nss}"]
    return subprocess.run(["pdfsig", *args, str(path)], capture_output=True, text=True).stdout


def tampered(pdf: bytes) -> bytes:
    """One byte changed inside the signed range (a digit of the page content's text is not visible in the
    compressed stream, so change a byte of the document's Info/metadata area before the signature)."""
    at = pdf.index(b"/Producer")
    data = bytearray(pdf)
    data[at + 12] = ord("X") if data[at + 12] != ord("X") else ord("Y")
    return bytes(data)


@pytest.fixture(scope="module")
def ca_pem(public: httpx.Client) -> bytes:
    r = public.get("/verify/ca.pem")
    assert r.status_code == 200 and b"BEGIN CERTIFICATE" in r.content
    return r.content


# --- tests ---------------------------------------------------------------------------------------------------------

def test_the_list_of_proofs(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    items = {p["type"]: p for p in kiosk.get(PROOFS, headers=open_session(CHEN)).json()["items"]}
    assert set(items) == {"social_insurance_payment", "medical_insurance", "housing_fund_deposit",
                          "real_estate_record", "household_record"}
    si = items["social_insurance_payment"]
    assert si["periodic"] and si["earliest_month"] == "2012-07" and si["has_records"] and si["max_months"] == 180
    assert si["default_to"] == si["latest_month"] and re.fullmatch(r"\d{4}-\d{2}", si["default_from"])
    assert items["real_estate_record"]["has_records"] is False and items["real_estate_record"]["periodic"] is False


def test_a_proof_is_sealed_verifiable_and_revocable(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                                    open_session: Callable[[str], dict[str, str]], ca_pem: bytes,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    auth = open_session(WANG)
    key = idem()
    body = {"type": "social_insurance_payment", "period_from": "2019-01", "period_to": "2020-06"}
    r = kiosk.post(PROOFS, headers={**auth, **key}, json=body)
    assert r.status_code == 201, r.text
    proof = r.json()
    again = kiosk.post(PROOFS, headers={**auth, **key}, json=body)              # a lost answer, retried
    assert again.status_code == 201 and again.json() == proof and again.headers["Idempotent-Replayed"] == "true"
    conflict = kiosk.post(PROOFS, headers={**auth, **key}, json={**body, "period_to": "2020-07"})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    code = proof["code"]
    assert proof["verify_url"] == f"{platform.url}/verify/d/{code}"                # no --public-url: where it listens
    assert (proof["period_from"], proof["period_to"], proof["holder_name_masked"]) == ("2019-01", "2020-06", "王*国")
    pdf = kiosk.get(proof["pdf_url"], headers=auth)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    import hashlib

    assert hashlib.sha256(pdf.content).hexdigest() == proof["sha256"] == pdf.headers["X-Document-SHA256"]
    assert kiosk.get(proof["pdf_url"], headers=auth).content == pdf.content       # a reprint: the same bytes
    # two validators: intact and trusted; after one changed byte: not intact
    intact, trusted, signer = pyhanko_verdict(pdf.content, ca_pem)
    assert intact and trusted and signer == "蚌埠市人力资源和社会保障局"
    report = pdfsig_verdict(pdf.content, tmp_path, ca_pem)
    assert "Signature Validation: Signature is Valid." in report and "蚌埠市人力资源和社会保障局" in report
    assert "Total document signed" in report
    if (tmp_path / "nss").exists():   # certutil (libnss3-tools, scripts/setup.sh) let pdfsig trust the root
        assert "Certificate Validation: Certificate is Trusted." in report
    bad = tampered(pdf.content)
    assert pyhanko_verdict(bad, ca_pem)[0] is False
    assert "Signature Validation: Digest Mismatch." in pdfsig_verdict(bad, tmp_path, ca_pem)
    # the public verify page and its JSON twin
    v = public.get(f"/api/v1/verify/documents/{code}", params={"sha256": proof["sha256"]}).json()
    assert v["status"] == "valid" and v["sha256_matches"] is True and v["holder_name_masked"] == "王*国"
    assert public.get(f"/api/v1/verify/documents/{code}",
                      params={"sha256": hashlib.sha256(bad).hexdigest()}).json()["sha256_matches"] is False
    page = public.get(f"/verify/d/{code.lower().replace('-', '')}")               # typed casually
    assert page.status_code == 200 and 'data-status="valid"' in page.text and proof["sha256"] in page.text
    assert "王建国" not in page.text and WANG not in page.text                      # masked holder only
    # revoked by the operator: the page says so
    from service_platform.cli import main as cli

    assert cli(["document", "revoke", "--db", platform.db_url, "--code", code, "--reason", "issued in error"]) == 0
    assert json.loads(capsys.readouterr().out)["code"] == code
    page = public.get(f"/verify/d/{code}")
    assert 'data-status="revoked"' in page.text and "已撤销" in page.text
    assert kiosk.get(f"{PROOFS}/{code}", headers=auth).json()["status"] == "revoked"
    issued = kiosk.get(f"{PROOFS}/issued", headers=auth).json()["items"]
    assert code in {p["code"] for p in issued}
    preview = kiosk.get(proof["preview_url"], headers=auth)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert kiosk.get(f"{PROOFS}/{code}/preview", params={"page": proof["pages"] + 1}, headers=auth).status_code == 404


def test_proof_rules(kiosk: httpx.Client, public: httpx.Client, kiosk_auth: Any, platform: Any,
                     open_session: Callable[[str], dict[str, str]],
                     make_session_body: Callable[..., dict[str, Any]]) -> None:
    zhang = open_session(ZHANG)
    r = kiosk.post(PROOFS, headers={**zhang, **idem()}, json={"type": "real_estate_record"})
    assert r.status_code == 201 and r.json()["has_records"] is True and r.json()["period_from"] is None
    code = r.json()["code"]
    # someone else's proof is not found, on every route
    wang = open_session(WANG)
    for path in (f"{PROOFS}/{code}", f"{PROOFS}/{code}/pdf", f"{PROOFS}/{code}/preview"):
        other = kiosk.get(path, headers=wang)
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found", path
        assert kiosk.get(path).json()["error"]["code"] == "session_required"       # kiosk, no citizen
        assert public.get(path, headers=zhang).status_code == 401                 # a citizen token, no kiosk
    assert code not in {p["code"] for p in kiosk.get(f"{PROOFS}/issued", headers=wang).json()["items"]}
    # a card-only session (face not checked) may not
    card = kiosk.post("/api/v1/citizen-sessions", json=make_session_body(ZHANG, "张明华", method="card",
                                                                        face_match=None))
    card_auth = {"Authorization": f"Bearer {card.json()['token']}"}
    for method, path in (("GET", PROOFS), ("POST", PROOFS), ("GET", f"{PROOFS}/{code}/pdf")):
        r = kiosk.request(method, path, headers={**card_auth, **idem()}, json={"type": "household_record"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "verification_level_insufficient", path
    # bad periods and types
    for body, code_ in (({"type": "social_insurance_payment", "period_from": "2026-05", "period_to": "2025-01"},
                         "invalid_period"),
                        ({"type": "social_insurance_payment", "period_from": "1990-01", "period_to": "1990-12"},
                         "invalid_period"),
                        ({"type": "household_record", "period_from": "2020-01"}, "invalid_period"),
                        ({"type": "birth_certificate"}, "validation_failed"),
                        ({"type": "social_insurance_payment", "period_from": "2020-13"}, "validation_failed")):
        r = kiosk.post(PROOFS, headers={**wang, **idem()}, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == code_, (body, r.text)
    assert kiosk.post(PROOFS, headers=wang, json={"type": "household_record"}).status_code == 422  # no key
    # revocation by staff: only the issuing department's (蚌埠市不动产登记中心), others see "not found"
    url = f"/api/v1/staff/documents/{code}/revoke"
    other = public.post(url, headers=staff_token(platform, "蚌埠市医疗保障局"), json={"reason": "x"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert public.post(url, json={"reason": "x"}).status_code == 401                        # no staff token
    assert public.post(url, headers=zhang, json={"reason": "x"}).status_code == 401          # a citizen token
    assert kiosk.post(url, headers=zhang, json={"reason": "x"}).status_code == 401           # a signed kiosk
    assert public.get(f"/api/v1/verify/documents/{code}").json()["status"] == "valid"
    own = public.post(url, headers=staff_token(platform, "蚌埠市不动产登记中心"), json={"reason": "corrected"})
    assert own.status_code == 200 and own.json()["status"] == "revoked"
    assert public.get(f"/api/v1/verify/documents/{code}").json()["status"] == "revoked"


def staff_token(platform: Any, department: str) -> dict[str, str]:
    """A staff member of ``department`` written straight into the server's database (what `staff add` does)."""
    import datetime as dt

    from service_platform.auth import hash_token

    token = f"stf_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    platform.execute("INSERT INTO staff_members (name, department, token_hash, active, created_at) "
                     "VALUES (:n, :d, :h, :a, :t)", n=f"s-{uuid.uuid4().hex[:8]}", d=department,
                     h=hash_token(token), a=True, t=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    return {"Authorization": f"Bearer {token}"}


def test_e_certificate_pdfs_are_sealed_with_a_code(kiosk: httpx.Client, public: httpx.Client,
                                                   open_session: Callable[[str], dict[str, str]], ca_pem: bytes,
                                                   tmp_path: Path) -> None:
    auth = open_session(ZHANG)
    cert = next(c for c in kiosk.get("/api/v1/me/e-certificates", headers=auth).json()["items"]
                if c["type_code"] == "marriage_cert")
    first = kiosk.get(cert["pdf_url"], headers=auth)
    assert first.status_code == 200
    code = first.headers["X-Verification-Code"]
    assert kiosk.get(cert["pdf_url"], headers=auth).content == first.content      # sealed once, same bytes
    intact, trusted, signer = pyhanko_verdict(first.content, ca_pem)
    assert intact and trusted and signer == "蚌埠市民政局"
    assert "Signature is Valid." in pdfsig_verdict(first.content, tmp_path, ca_pem)
    v = public.get(f"/api/v1/verify/documents/{code}").json()
    assert v["kind"] == "e_certificate" and v["type"] == "marriage_cert" and v["status"] == "valid"
    assert v["sha256"] == first.headers["X-Document-SHA256"]


def test_kiosk_config_and_public_pages(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                      renewal: Callable[..., dict[str, Any]],
                                      open_session: Callable[[str], dict[str, str]]) -> None:
    assert public.get("/api/v1/kiosk/config").status_code == 401                   # kiosks only
    config = kiosk.get("/api/v1/kiosk/config").json()
    assert config["public_base_url"] == platform.url
    assert config["verify_urls"]["application"] == platform.url + "/verify/a/{number}"
    page = public.get("/verify/a/SP20261027000102")
    assert page.status_code == 200 and 'data-status="in_review"' in page.text and "张" not in page.text
    assert public.get("/api/v1/verify/applications/SP20261027000102").json()["status"] == "in_review"
    guide = public.get(config["verify_urls"]["guide"].replace("{service_code}", "senior-card").removeprefix(
        platform.url))
    assert guide.status_code == 200 and "老年人优待证" in guide.text
    order = renewal(kiosk, open_session(WANG))["payment_orders"][0]
    voucher = public.get(f"/api/v1/verify/payments/{order['order_no']}").json()
    assert (voucher["paid"], voucher["amount_fen"], voucher["paid_at"]) == (False, order["amount_fen"], None)
    page = public.get(f"/verify/p/{order['order_no']}")
    assert page.status_code == 200 and 'data-status="pending"' in page.text and "王建国" not in page.text
    cashier = public.get(config["verify_urls"]["cashier"].replace("{order_no}", order["order_no"]).removeprefix(
        platform.url))
    assert cashier.status_code == 200 and f"¥{order['amount_fen'] / 100:.2f}" in cashier.text
    missing = public.get("/verify/d/AAAA-AAAA-AAAA-AAAA")
    assert missing.status_code == 404 and 'data-status="not_found"' in missing.text
