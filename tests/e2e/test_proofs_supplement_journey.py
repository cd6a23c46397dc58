"""Proofs, seals, verification and 补正 on the real window, one kiosk for one citizen (杨志强, card + face):

1. 补正: my applications → the application waiting for the lease agreement (seeded 待补正材料) → the one-time list →
   a page photographed by the document camera (高拍仪: ``kiosk-sim document-camera`` plays a rendered form laid on a
   desk in perspective, with a shadow) → one more photo from the citizen's phone (the one-time QR read off the
   screen, an HTTP client playing the phone posts a JPEG to it; "已收到 1 张照片") → submitted → the platform moved it
   to 审核中 (in_review), the timeline on screen says so, and the material holds both pages; the page the kiosk
   uploaded came out flat and upright (the form's registration squares where the PDF put them, the content that of
   the rendered page) → the 补正回执 printed, its QR is the public verify page of the application;
   then 补正 of form fields: the department (``request_supplement``, what ``service-platform application
   request-supplement`` runs) asks him to correct his 居住证申领 (filed online a few days before): the basis, chosen
   in the apply flow's choice dialog, and the phone, corrected on the on-screen digit keyboard → submitted → 审核中
   on the platform and on screen, the filed form holds the new values;
2. 打印证明: the social-insurance payment record → a period → the first page on screen → 2 copies → printed on the
   licence printer (a private cupsd with cups-pdf): the document the print server received is the sealed PDF (pyHanko
   and poppler's pdfsig: intact, signed by the seal) and the page that came out carries a QR that opens the proof's
   verify page, which says valid for the document's hash;
3. every QR this kiosk printed (receipts and proofs) opens a page that exists on the platform;
4. one changed byte of the received PDF: both validators say invalid; the proof revoked: its QR's page says so.

The module has its own platform (the seeded application is supplemented here; other modules see it untouched)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from drivers.document_camera import scenes
from drivers.sim.control import send_command
from drivers.sim.process import SimulatorProcess
from service_platform.db import utcnow
from service_platform.models import Application, ApplicationEvent, ApplicationFiling, Service
from service_platform.supplement_fields import request_supplement
from tests.drivers.document_camera.test_document_camera_contract import _marks as registration_marks
from tests.e2e.conftest import pass_face_check, registered_photos, start_with_camera
from tests.kiosk.proofs.sealcheck import pdfsig_verdict, pyhanko_verdict, seal_root
from tests.qr_reading import pdf_qr_codes, read_qr
from tests.kiosk.supplement.test_phone_upload import photo_jpeg

pytestmark = pytest.mark.e2e

SEEDED = "SP20261026000501"
#: 杨志强's 居住证申领, filed online a few days before; the department questions its basis and phone
FIELDS_CASE = "SP20261027000502"
FIELDS_FILED = {"basis": "study", "residence_address": "安徽省蚌埠市龙子湖区胜利路66号", "registered_on": "2024-08-20",
                "phone": "13987150000"}
FIELDS_NOTE = "申领条件与居住登记信息不符；联系电话无法接通，请更正"
LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}


@pytest.fixture(scope="module")
def platform_server(make_platform_server):
    return make_platform_server(photos=registered_photos())


@pytest.fixture(scope="module")
def document_camera_sim():
    """``kiosk-sim document-camera``: page 1 of its sample form photographed on a desk (scenes cached after the
    first build), served as MJPEG for the kiosk's real OpenCV document camera driver."""
    sim = SimulatorProcess("document-camera", "--tcp", "127.0.0.1:0", start_timeout=90)
    try:
        yield sim
    finally:
        sim.stop()


def assert_flat_and_upright(jpeg: bytes, truth: dict) -> None:
    """The page the kiosk uploaded is the photographed form flattened: its four registration squares within a few
    pixels of where the PDF put them (the large one top-left: upright) and its content that of the rendered page
    (and not of the page turned upside down) — as tests/drivers/document_camera checks the driver alone."""
    page = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    h, w = page.shape[:2]
    assert h > w and abs(h / w - 2 ** 0.5) < 0.02, f"an A4 page standing up, got {w}×{h}"
    marks = registration_marks(page)
    expected = scenes.mark_centres((w, h))
    assert len(marks) == 4, marks
    for x, y, _ in marks:
        assert float(np.min(np.linalg.norm(expected - np.array([x, y]), axis=1))) < 6.0, (x, y, expected)
    assert float(np.linalg.norm(expected[0] - np.array(marks[0][:2]))) < 6.0, "the large square top-left: upright"
    ref = cv2.cvtColor(cv2.imread(truth["reference"]), cv2.COLOR_BGR2GRAY)
    got = cv2.resize(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY), (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_AREA)
    blur = lambda img: cv2.GaussianBlur(img, (5, 5), 0)   # noqa: E731
    same = cv2.matchTemplate(blur(got), blur(ref), cv2.TM_CCOEFF_NORMED)[0][0]
    flipped = cv2.matchTemplate(blur(cv2.rotate(got, cv2.ROTATE_180)), blur(ref), cv2.TM_CCOEFF_NORMED)[0][0]
    assert same > 0.8 and same > flipped + 0.3, (same, flipped)


def ask_to_correct_fields(db_path: Path) -> None:
    """杨志强's 居住证申领 as an online filing leaves it (accepted, the form kept), then the department's request to
    correct two of its fields (in-process: what ``service-platform application request-supplement`` runs)."""
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with Session(engine) as db:
            service = db.query(Service).filter_by(code="residence-permit-apply").one()
            at = dt.datetime(2026, 10, 27, 2, 0, tzinfo=dt.timezone.utc)     # 10:00 in China, SP20261027…
            app = Application(number=FIELDS_CASE, service_code=service.code, applicant_id_number="530102198306301518",
                              applicant_name="杨志强", status="accepted", submitted_at=at,
                              department=service.department, channel="online", events=[
                                  ApplicationEvent(status="received", at=at, department=service.department,
                                                   note="网上提交居住证申领"),
                                  ApplicationEvent(status="accepted", at=at, department=service.department,
                                                   note="网上预审通过，材料齐全，予以受理")])
            db.add(app)
            db.flush()
            db.add(ApplicationFiling(application_id=app.id, form=dict(FIELDS_FILED)))
            request_supplement(db, FIELDS_CASE, fields=["basis", "phone"], note=FIELDS_NOTE, now=utcnow())
            db.commit()
    finally:
        engine.dispose()


def test_supplement_then_proof_and_every_printed_qr_opens(start_kiosk, camera_sim, document_camera_sim,
                                                         platform_server, wait_for, tmp_path):
    document_camera_sim.control("show", page=1)       # the citizen lays the form under the document camera
    ui = start_with_camera(start_kiosk, camera_sim, devices__licence_printer=LICENCE_PRINTER,
                           devices__document_camera={"driver": "opencv", "required": False, "settings": {
                               "source": document_camera_sim.endpoints["url"], "stable_frames": 2}})
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = wait_for(lambda: (lambda s: s if all(k in s for k in ("idcard", "licence_printer", "receipt_printer"))
                             else None)({k: v for k, v in ui.ask("simulators").items() if k != "ok"}),
                    timeout=30, what="the simulators")
    out = Path(sims["licence_printer"]["out"])
    send_command(sims["idcard"]["control"], "place_card", identity="yang")
    pass_face_check(ui, wait_for)

    # --- 1. 补正 from "my applications"
    ui.tap("tile_my_applications", wait_for)
    ui.wait_screen("progress", wait_for)
    ui.wait_text("补正材料", wait_for, timeout=30)
    ui.screenshot("59-my-applications-waiting")
    ui.tap("supplement_0", wait_for)
    ui.wait_screen("supplement", wait_for)
    ui.wait_text("产权人签字", wait_for, timeout=30)           # the department's note: what is wrong, at once
    ui.wait_text("经营场所使用证明", wait_for)
    ui.screenshot("60-supplement-missing")
    ui.tap("supplement_capture_2", wait_for)            # the document camera's live picture, the page outlined
    ui.settled("supplement_preview", wait_for, timeout=30)
    ui.screenshot("60a-supplement-document-camera")
    ui.tap("supplement_shoot_2", wait_for)
    ui.wait_text("已拍照上传第 1 页", wait_for, timeout=45)
    # the second page from the citizen's phone: the one-time QR on screen → a photo posted to its upload page
    ui.tap("supplement_phone_2", wait_for)
    ui.settled("supplement_phone_qr", wait_for, timeout=30)
    upload_url = wait_for(lambda: read_qr(ui.screenshot("60b-supplement-phone-qr")), timeout=20, what="the QR read off the screen")
    assert upload_url.startswith(platform_server.url) and "/upload/" in upload_url, upload_url
    with httpx.Client(timeout=15) as phone:          # no kiosk key, no citizen token: only the QR
        sent = phone.post(upload_url, files=[("photos", ("lease-p2.jpg", photo_jpeg(), "image/jpeg"))])
    assert sent.status_code == 200, sent.text[:300]
    ui.wait_text("已收到 1 张照片", wait_for, timeout=20)
    ui.screenshot("60c-supplement-phone-received")
    ui.tap("supplement_phone_done", wait_for)
    ui.tap("supplement_submit", wait_for)
    ui.wait_text("材料已补齐，已转入审查", wait_for, timeout=30)
    last = ui.find("supplement_timeline_last")["text"]
    assert "审核中" in last and "材料已补齐" in last, last
    assert platform_server.query("SELECT status FROM applications WHERE number = ?", SEEDED) == [("in_review",)]
    [(upload_ids,)] = platform_server.query(
        "SELECT m.upload_ids FROM application_materials m JOIN applications a ON a.id = m.application_id "
        "WHERE a.number = ? AND m.material_index = 2 AND m.status = 'provided'", SEEDED)
    pages = {(w, h): data for w, h, data in (platform_server.query(
        "SELECT width, height, data FROM uploads WHERE id = ?", upload)[0] for upload in json.loads(upload_ids))}
    assert len(pages) == 2 and (1600, 1200) in pages, f"the kiosk's page and the phone's photo: {sorted(pages)}"
    [kiosk_page] = [data for size, data in pages.items() if size != (1600, 1200)]
    (ui.shots / "supplement-document-camera-page.jpg").write_bytes(kiosk_page)
    truth = json.loads(Path(document_camera_sim.endpoints["truth"]).read_text("utf-8"))["pages"][0]
    assert_flat_and_upright(kiosk_page, truth)
    ui.screenshot("61-supplement-done")
    ui.tap("supplement_print", wait_for)
    receipt = wait_for(lambda: next((r for r in send_command(sims["receipt_printer"]["control"], "receipts")
                                     ["receipts"] if "补正材料回执" in r["text"]), None), what="the supplement receipt")
    assert SEEDED in receipt["text"] and "杨志强" not in receipt["text"]
    [qr] = receipt["qr"]
    assert qr.endswith(f"/verify/a/{SEEDED}")
    assert read_qr(receipt["png"]) == qr, "the printed QR scans to the verify page"
    shutil.copy(receipt["png"], ui.shots / "receipt-supplement.png")
    ui.tap("supplement_done", wait_for)
    ui.wait_screen("rating", wait_for)
    ui.tap("rating_skip", wait_for)
    ui.wait_screen("menu", wait_for)

    # --- 1b. 补正 of form fields: the department asks him to correct his 居住证申领 (basis and phone)
    ask_to_correct_fields(platform_server.db_path)
    ui.tap("tile_my_applications", wait_for)
    ui.wait_screen("progress", wait_for)
    waiting = wait_for(lambda: next((f"supplement_{i}" for i in range(4)
                                     if FIELDS_CASE in ui.find(f"supplement_{i}").get("text", "")), None),
                       timeout=30, what="the 居住证申领 waiting for a supplement")
    assert "待补正 2 项" in ui.find(waiting)["text"], "the two fields counted as what is to supply"
    ui.tap(waiting, wait_for)
    ui.wait_screen("supplement", wait_for)
    ui.wait_text("联系电话无法接通", wait_for, timeout=30)     # the department's note
    assert "连续就读" in ui.settled("supplement_field_basis", wait_for)["text"], "what was filed, to correct"
    assert "13987150000" in ui.find("supplement_field_phone")["text"]
    ui.tap("supplement_field_basis", wait_for)          # the apply flow's choice dialog
    ui.tap("choice_1", wait_for)                        # 合法稳定住所
    wait_for(lambda: "合法稳定住所" in ui.find("supplement_field_basis").get("text", ""), what="the basis chosen")
    phone, row = ui.settled("supplement_field_phone", wait_for), ui.find("supplement_back")
    assert phone["y"] + phone["height"] / 2 < row["y"] - row["height"] / 2, "above the list's edge, no scrolling"
    ui.tap("supplement_field_phone", wait_for)          # the on-screen digit keyboard with the filed number
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("13987150000"), what="the keyboard shows it")
    for _ in range(4):
        ui.tap("kb_del", wait_for)
    for key in "1518":
        ui.tap(f"kb_key_{key}", wait_for)
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("13987151518"), what="the number corrected")
    ui.tap("kb_ok", wait_for)
    wait_for(lambda: "13987151518" in ui.find("supplement_field_phone").get("text", ""), what="the phone shown")
    ui.settled("supplement_submit", wait_for)
    ui.screenshot("60d-supplement-fields")
    ui.tap("supplement_submit", wait_for)
    last = wait_for(lambda: ui.find("supplement_timeline_last").get("text"), timeout=30, what="the new timeline")
    assert "审核中" in last and "补正已完成" in last and "申领条件" in last, last
    assert "13987151518" not in last, "values never on the timeline"
    assert "补正已完成，已转入审查" in ui.find("supplement_result")["text"]   # not "材料已补齐": no material was asked
    assert platform_server.query("SELECT status FROM applications WHERE number = ?", FIELDS_CASE) == [("in_review",)]
    [(form,)] = platform_server.query("SELECT f.form FROM application_filings f JOIN applications a "
                                      "ON a.id = f.application_id WHERE a.number = ?", FIELDS_CASE)
    assert json.loads(form) == {**FIELDS_FILED, "basis": "residence", "phone": "13987151518"}
    ui.tap("supplement_done", wait_for)
    ui.wait_screen("rating", wait_for)
    ui.tap("rating_skip", wait_for)
    ui.wait_screen("menu", wait_for)

    # --- 2. 打印证明
    ui.tap("tile_proofs", wait_for)
    ui.wait_screen("proofs", wait_for)
    proof = wait_for(lambda: next((f"proof_{i}" for i in range(8)
                                   if "社会保险" in ui.find(f"proof_{i}").get("text", "")), None),
                     timeout=30, what="the social insurance proof listed")
    ui.screenshot("62-proofs")
    ui.tap(proof, wait_for)
    ui.tap("proof_period_0", wait_for)
    wait_for(lambda: ui.find("proofs_preview")["found"], timeout=60, what="the first page on screen")
    ui.screenshot("63-proof-preview")
    ui.tap("proofs_copies_more", wait_for)
    wait_for(lambda: "2" in ui.find("proofs_copies").get("text", ""), what="2 copies")
    before = set(out.glob("*.pdf"))
    ui.tap("proofs_print", wait_for)
    ui.wait_text("打印完成", wait_for, timeout=60)
    ui.screenshot("64-proof-printed")
    [printed] = wait_for(lambda: sorted(set(out.glob("*.pdf")) - before), timeout=30, what="the cups-pdf output")
    shutil.copy(printed, ui.shots / "proof-printed.pdf")
    code = ui.find("proofs_verify_hint")["text"].split("验证码 ")[1].split(" ")[0]

    received = max((out.parent / "spool").glob("d*-001"), key=lambda p: p.stat().st_mtime).read_bytes()
    root = seal_root(platform_server.url)
    assert pyhanko_verdict(received, root) == (True, True), "the sealed PDF as the print server received it"
    (tmp_path / "received.pdf").write_bytes(received)
    assert "Signature is Valid." in pdfsig_verdict(tmp_path / "received.pdf")
    verify_urls = [u for u in pdf_qr_codes(printed, first_page_only=True) if "/verify/" in u]
    assert verify_urls and verify_urls[0].endswith(code), verify_urls
    answer = httpx.get(verify_urls[0].replace("/verify/d/", "/api/v1/verify/documents/"),
                       params={"sha256": hashlib.sha256(received).hexdigest()}, timeout=10).json()
    assert answer["status"] == "valid" and answer["sha256_matches"] is True, answer
    # one byte changed inside a signed content stream: both validators say invalid
    tampered = bytearray(received)
    tampered[received.index(b"stream", len(received) // 4) + 10] ^= 0x01
    (tmp_path / "tampered.pdf").write_bytes(bytes(tampered))
    assert pyhanko_verdict(bytes(tampered), root)[0] is False
    assert "Signature is Valid." not in pdfsig_verdict(tmp_path / "tampered.pdf")
    ui.tap("proofs_done", wait_for)
    ui.wait_screen("rating", wait_for)

    # --- 3. every QR this kiosk printed opens a page that exists
    codes = [q for r in send_command(sims["receipt_printer"]["control"], "receipts")["receipts"] for q in r["qr"]]
    codes += pdf_qr_codes(printed, first_page_only=True)
    links = [q for q in codes if q.startswith(("http://", "https://"))]
    assert links and len(links) == len(codes), f"a QR that is no link: {codes}"
    dead = {q: httpx.get(q, timeout=10).status_code for q in links}
    assert all(status == 200 for status in dead.values()), dead

    # --- 4. the printed proof revoked on the platform (operator CLI): its QR's page now says revoked
    revoke = subprocess.run([sys.executable, "-m", "service_platform.cli", "document", "revoke", "--db",
                             f"sqlite:///{platform_server.db_path}", "--code", code, "--reason", "issued in error"],
                            capture_output=True, text=True, timeout=60)
    assert revoke.returncode == 0, revoke.stderr
    page = httpx.get(verify_urls[0], timeout=10)
    assert page.status_code == 200 and 'data-status="revoked"' in page.text and "已撤销" in page.text
