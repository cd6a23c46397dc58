"""Online application on the real window: card → 在线申报 → a life event → 生育登记 → one-time notice → form
pre-filled from the marriage e-certificate → the platform's pre-review names every missing item → the citizen
corrects a name with the pinyin keyboard and types the phone on the digit keyboard → attaches the e-certificate with
one tap → pre-review accepts → submit → the number on screen is the platform's new row and the receipt's QR.

Filing needs the holder confirmed (card+face, kiosk/identity_levels.py): every kiosk here has a camera (``kiosk-sim
camera`` showing the holder, tests/e2e/conftest.py) and the citizen passes the face check after the card."""
from __future__ import annotations

import os
import shutil

import pytest

from drivers.sim.control import send_command
from tests.e2e.conftest import pass_face_check, start_with_camera, write_photo_map
from tests.qr_reading import read_qr

pytestmark = pytest.mark.e2e

CHEN_ID = "520302199002144027"


def assert_touch_targets(ui) -> None:
    """Every button on screen (keyboard keys, candidates, fields) is at least 60 px both ways."""
    buttons = ui.ask("buttons")["buttons"]
    assert buttons
    small = [b for b in buttons if min(b["width"], b["height"]) < 60]
    assert not small, small


def type_keys(ui, wait_for, keys: str) -> None:
    for key in keys:
        ui.tap(f"kb_key_{key.lower()}", wait_for)


def test_apply_for_birth_registration(start_kiosk, camera_sim, platform_server, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    send_command(sims["idcard"]["control"], "place_card", identity="chen")
    pass_face_check(ui, wait_for)
    ui.wait_text("您好，陈*怡", wait_for)

    ui.tap("tile_apply", wait_for)
    ui.wait_screen("apply", wait_for)
    ui.tap("event_birth", wait_for)
    ui.wait_text("项可在线申报", wait_for)
    service = wait_for(lambda: next((f"service_{i}" for i in range(12)
                                     if "生育登记" in ui.find(f"service_{i}").get("text", "")), None),
                       what="生育登记 listed")
    ui.screenshot("21-apply-pick")
    ui.tap(service, wait_for)

    ui.wait_screen("apply_notice", wait_for)
    ui.wait_text("所需材料（一次性告知）", wait_for)
    ui.wait_text("可一键使用您的电子证照（结婚证）", wait_for)
    ui.screenshot("22-apply-notice")
    ui.tap("notice_accept", wait_for)

    ui.wait_screen("apply_form", wait_for)
    assert "罗建明" in ui.wait_text("罗建明", wait_for), "pre-filled from the marriage e-certificate"
    # the platform's pre-review: every missing item at once, next to its field
    ui.tap("form_prereview", wait_for)
    ui.wait_text("请填写“联系电话”", wait_for)
    ui.wait_text("请填写“本次登记为第几个子女”", wait_for)
    ui.screenshot("23-apply-form-problems")

    # correct the spouse's given name with the pinyin keyboard: 罗建明 → 罗建华
    ui.tap("field_spouse_name", wait_for)
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("罗建明"), what="the keyboard shows the value")
    ui.tap("kb_del", wait_for)
    type_keys(ui, wait_for, "hua")
    cand = wait_for(lambda: next((f"kb_cand_{i}" for i in range(8) if ui.find(f"kb_cand_{i}").get("text") == "华"),
                                 None), what="华 among the candidates")
    assert_touch_targets(ui)
    ui.screenshot("24-keyboard-pinyin")
    ui.tap(cand, wait_for)
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("罗建华"), what="罗建华 typed")
    ui.tap("kb_ok", wait_for)
    ui.wait_text("罗建华", wait_for)

    ui.tap("field_phone", wait_for)
    type_keys(ui, wait_for, "13905520003")
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("13905520003"), what="every digit shown")
    ui.tap("kb_ok", wait_for)
    ui.tap("field_child_order", wait_for)
    type_keys(ui, wait_for, "2")
    ui.tap("kb_ok", wait_for)
    ui.wait_text("13905520003", wait_for)
    assert_touch_targets(ui)
    ui.screenshot("25-apply-form-filled")
    ui.tap("form_next", wait_for)

    ui.wait_screen("apply_attach", wait_for)
    ui.tap("attach_all", wait_for)
    ui.wait_text("已使用电子证照", wait_for)
    ui.screenshot("26-apply-attach")
    ui.tap("attach_next", wait_for)

    ui.wait_screen("apply_review", wait_for)
    ui.wait_text("预审通过，可以提交", wait_for)
    ui.screenshot("27-apply-review")
    before = platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]
    ui.tap("submit", wait_for)

    ui.wait_screen("apply_result", wait_for)
    shown = ui.wait_text("办件编号：", wait_for).split("：", 1)[1]
    rows = platform_server.query("SELECT number, service_code FROM applications WHERE id > ? AND "
                                 "applicant_id_number = ?", before, CHEN_ID)
    assert rows == [(shown, "birth-registration")], "the number on screen is the platform's one new row"
    assert not any(CHEN_ID in t or "陈静怡" in t for t in ui.texts())
    ui.screenshot("28-apply-result")

    ui.tap("print_receipt", wait_for)
    ui.wait_screen("rating", wait_for)
    control = sims["receipt_printer"]["control"]
    receipt = wait_for(lambda: next((r for r in reversed(send_command(control, "receipts")["receipts"])
                                     if "业务受理回执" in r["text"]), None), what="the receipt")
    [qr] = receipt["qr"]
    assert shown in receipt["text"] and qr.endswith(f"/verify/a/{shown}"), "the QR opens the public verify page"
    assert read_qr(receipt["png"]) == qr
    assert "?" not in receipt["text"] and "陈静怡" not in receipt["text"]
    shutil.copy(receipt["png"], ui.shots / "receipt-apply.png")


def test_apply_with_camera_pages_and_deferral(start_kiosk, camera_sim, platform_server, wait_for, tmp_path):
    """居住证申领 for a citizen from Zunyi living in Bengbu: the address typed in pinyin, the date and phone on the
    digit keyboard, the proof of residence photographed with the kiosk camera (document capture screen), the photo
    promised for later (容缺受理). One camera does both: the citizen's face first, then the page held up to it."""
    from PIL import Image, ImageDraw

    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(2):
        img = Image.new("RGB", (1280, 960), "white")
        draw = ImageDraw.Draw(img)
        for y in range(80 + 10 * i, 880, 40):
            draw.rectangle((80, y, 1100, y + 12), fill="black")
        img.save(pages / f"page{i}.png")
    ui = start_with_camera(start_kiosk, camera_sim)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    send_command(sims["idcard"]["control"], "place_card", identity="chen")
    pass_face_check(ui, wait_for)
    camera_sim.control("set_source", path=str(pages))   # the face has gone; the paper is in front of the camera
    ui.tap("tile_apply", wait_for)
    ui.wait_screen("apply", wait_for)
    ui.tap("apply_query", wait_for)
    ui.tap("kb_mode", wait_for)  # pinyin → ABC: initials go in as letters
    type_keys(ui, wait_for, "JZZ")
    ui.tap("kb_ok", wait_for)
    service = wait_for(lambda: next((f"service_{i}" for i in range(12)
                                     if "居住证申领" in ui.find(f"service_{i}").get("text", "")), None),
                       what="居住证申领 found by its pinyin initials")
    ui.tap(service, wait_for)
    ui.tap("notice_accept", wait_for)
    ui.wait_screen("apply_form", wait_for)

    ui.tap("field_basis", wait_for)
    ui.tap("choice_1", wait_for)  # 合法稳定住所
    ui.tap("field_residence_address", wait_for)
    type_keys(ui, wait_for, "huaihelu")
    cand = wait_for(lambda: next((f"kb_cand_{i}" for i in range(8) if ui.find(f"kb_cand_{i}").get("text") == "淮河路"),
                                 None), what="淮河路 among the candidates")
    ui.tap(cand, wait_for)
    ui.tap("kb_mode", wait_for)
    ui.tap("kb_mode", wait_for)  # → 123
    type_keys(ui, wait_for, "168")
    ui.tap("kb_mode", wait_for)  # → pinyin
    type_keys(ui, wait_for, "hao")
    cand = wait_for(lambda: next((f"kb_cand_{i}" for i in range(8) if ui.find(f"kb_cand_{i}").get("text") == "号"),
                                 None), what="号 among the candidates")
    ui.tap(cand, wait_for)
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("淮河路168号"), what="the address typed")
    ui.tap("kb_ok", wait_for)
    ui.tap("field_registered_on", wait_for)
    type_keys(ui, wait_for, "2026-03-10")
    ui.tap("kb_ok", wait_for)
    ui.tap("field_phone", wait_for)
    type_keys(ui, wait_for, "13905520003")
    ui.tap("kb_ok", wait_for)
    ui.wait_text("淮河路168号", wait_for)
    ui.tap("form_next", wait_for)

    ui.wait_screen("apply_attach", wait_for)
    ui.tap("defer_3", wait_for)
    ui.wait_text("承诺后补（容缺受理）", wait_for)
    ui.tap("attach_next", wait_for)
    ui.wait_screen("apply_capture", wait_for)
    ui.tap("shoot_1", wait_for)
    ui.wait_text("已拍照 1 页", wait_for, timeout=20)
    ui.screenshot("31-apply-capture")
    ui.tap("capture_next", wait_for)
    ui.wait_screen("apply_review", wait_for)
    ui.wait_text("预审通过，可以提交", wait_for)
    before = platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]
    ui.tap("submit", wait_for)
    ui.wait_screen("apply_result", wait_for)
    shown = ui.wait_text("办件编号：", wait_for).split("：", 1)[1]
    ui.wait_text("还有 1 项材料请在", wait_for)
    rows = platform_server.query("SELECT number, service_code FROM applications WHERE id > ? AND "
                                 "applicant_id_number = ?", before, CHEN_ID)
    assert rows == [(shown, "residence-permit-apply")]
    ui.screenshot("32-apply-result-deferred")


def test_platform_down_at_submit_tells_the_citizen_honestly(start_kiosk, camera_sim, wait_for, tmp_path):
    """The platform stops between pre-review and submit: the screen says the application is kept and will be
    submitted, with its reference; once the platform is back the kiosk submits it by itself, exactly once."""
    import sqlite3
    import sys

    from drivers.sim.process import ManagedProcess

    db = tmp_path / "own-platform.db"

    def serve(port: int = 0) -> ManagedProcess:
        return ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", f"sqlite:///{db}",
                               "--host", "127.0.0.1", "--port", str(port), "--demo", "--demo-kiosk-public-key",
                               os.path.join(os.path.dirname(os.environ["KIOSK_TEST_SIGNING_KEY"]),
                                            "KSK-340302-0001.pub")], "service-platform", start_timeout=30,
                              env={"PLATFORM_PHOTOS": str(photos)})

    photos = write_photo_map(tmp_path / "own-platform")   # registered photos: the camera's face

    platform = serve()
    url = platform.endpoints["url"]
    try:
        ui = start_with_camera(start_kiosk, camera_sim, platform__url=url)
        ui.wait_screen("attract", wait_for, timeout=30)
        sims = ui.simulators(wait_for)
        send_command(sims["idcard"]["control"], "place_card", identity="zhang")
        pass_face_check(ui, wait_for)
        ui.tap("tile_apply", wait_for)
        ui.tap("event_certificates", wait_for)
        service = wait_for(lambda: next((f"service_{i}" for i in range(12)
                                         if "户籍证明" in ui.find(f"service_{i}").get("text", "")), None),
                           what="户籍证明 listed")
        ui.tap(service, wait_for)
        ui.tap("notice_accept", wait_for)
        ui.wait_text("安徽省蚌埠市龙子湖区东海大道1号", wait_for)  # read-only, from the household register
        ui.tap("field_purpose", wait_for)
        ui.tap("choice_0", wait_for)
        ui.tap("form_next", wait_for)
        ui.tap("attach_next", wait_for)
        ui.wait_screen("apply_capture", wait_for)   # a kiosk with a camera offers to photograph optional papers
        ui.tap("capture_next", wait_for)
        ui.wait_text("预审通过，可以提交", wait_for)

        platform.stop()
        ui.tap("submit", wait_for)
        ui.wait_screen("apply_result", wait_for, timeout=30)
        ui.wait_text("您的申请已安全保存，将在恢复后自动提交", wait_for)
        reference = ui.wait_text("受理参考号：", wait_for).split("：", 1)[1]
        assert reference.startswith("KQ")
        assert not any("办件编号：" in t for t in ui.texts()), "no number is claimed before the platform has one"
        ui.screenshot("41-apply-queued")
        ui.tap("result_done", wait_for)
        ui.wait_screen("rating", wait_for)

        platform = serve(int(url.rsplit(":", 1)[1]))

        def filed() -> list[tuple]:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT number FROM applications WHERE applicant_id_number = "
                                    "'340302195803172018' AND service_code = 'hukou-certificate'").fetchall()
        rows = wait_for(filed, timeout=60, interval=0.5, what="the queued application submitted by the kiosk")
        assert len(rows) == 1
    finally:
        platform.stop()
