"""The journey that must work, on the real window: card → name → my applications → print → receipt in the
emulator (Chinese text decoded, QR with the application number) → rating saved on the platform → idle timeout wipes
the session. And without a card: guide search → detail → print the one-time notice."""
from __future__ import annotations

import shutil

import pytest

from drivers.sim.control import send_command
from tests.qr_reading import read_qr

pytestmark = pytest.mark.e2e

IDLE_S, WARNING_S = 16, 6


def last_receipt(sims, wait_for) -> dict:
    control = sims["receipt_printer"]["control"]
    return wait_for(lambda: (send_command(control, "receipts")["receipts"] or [None])[-1], what="a printed receipt")


#: menu tiles that need the holder confirmed (card+face or card+pin, kiosk/identity_levels.py CONFIRMED_ONLY)
CONFIRMED_ONLY_TILES = ("tile_apply", "tile_pay", "tile_certificates", "tile_proofs", "tile_delivery")
#: kiosk/locales/zh_CN/identity.yaml needs_face_no_camera: the reason on a locked tile when the kiosk has no camera
NEEDS_FACE_NO_CAMERA = "需要人脸核验：本机无法核验人脸，请到服务窗口办理"


def assert_card_only_locks(ui, wait_for) -> None:
    """A card-only session on a kiosk without a camera: the services that need the holder confirmed show
    "needs face verification" on their tiles (greyed, still tappable: a tap says why, with no "verify now" since there
    is no camera); the rest stay open."""
    hints = [t for t in ui.texts() if t == NEEDS_FACE_NO_CAMERA]
    assert len(hints) == len(CONFIRMED_ONLY_TILES), hints
    ui.screenshot("02a-menu-card-only-needs-face")
    for aid in ("tile_my_applications", "tile_appointment", "tile_guide", "tile_progress"):
        assert not ui.find(aid)["disabled"], f"{aid} is open to a card-only session"
    for aid in CONFIRMED_ONLY_TILES:
        ui.tap(aid, wait_for)
        reason = wait_for(lambda: ui.find("locked_reason").get("text"), what=f"why {aid} is locked")
        assert reason == NEEDS_FACE_NO_CAMERA, (aid, reason)
        assert ui.state()["screen"] == "menu", f"{aid} did not open its screen"
        assert not ui.find("locked_verify")["found"], "no face check offered without a camera"
        if aid == "tile_apply":
            ui.screenshot("02b-menu-needs-face-verification")
        ui.tap("locked_back", wait_for)
        wait_for(lambda: not ui.find("locked_reason")["found"], what="the notice closed")


def test_card_progress_print_rate_timeout(start_kiosk, platform_server, wait_for):
    ui = start_kiosk(session__idle_timeout_s=IDLE_S, session__warning_s=WARNING_S)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    ui.wait_text("请将身份证放在感应区", wait_for)
    ui.screenshot("01-attract")

    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    ui.wait_screen("menu", wait_for)
    ui.wait_text("您好，张*华", wait_for)
    assert not any("张明华" in t or "340302195803172018" in t for t in ui.texts()), "only masked data on screen"
    ui.screenshot("02-menu-identified")
    assert_card_only_locks(ui, wait_for)

    ui.tap("tile_my_applications", wait_for)
    ui.wait_screen("progress", wait_for)
    ui.wait_text("我的办件", wait_for)
    expected = {n for (n,) in platform_server.query(
        "SELECT number FROM applications WHERE applicant_id_number = '340302195803172018'")}
    shown = ui.texts()
    assert all(any(n in t for t in shown) for n in expected), (expected, shown)
    ui.screenshot("03-my-applications")

    ui.tap("application_0", wait_for)
    number = ui.wait_text("办件编号：", wait_for).split("：", 1)[1]
    assert number in expected
    ui.screenshot("04-progress-detail")

    ui.tap("print_progress", wait_for)
    ui.wait_screen("print_confirm", wait_for)
    ui.screenshot("05-print-confirm")
    ui.tap("print_confirm", wait_for)
    ui.wait_screen("rating", wait_for)
    ui.wait_text("打印完成，请取走凭条", wait_for)

    receipt = last_receipt(sims, wait_for)
    assert "办件进度回执" in receipt["text"] and number in receipt["text"]
    assert "?" not in receipt["text"], "every Chinese character and full-width mark printed"
    [qr] = receipt["qr"]
    assert qr.endswith(f"/verify/a/{number}"), "the QR opens the application's public verify page"
    assert read_qr(receipt["png"]) == qr
    shutil.copy(receipt["png"], ui.shots / "receipt-progress.png")

    before = platform_server.query("SELECT max(id) FROM ratings")[0][0] or 0
    ui.tap("star_5", wait_for)
    ui.tap("tag_0", wait_for)
    wait_for(lambda: ui.find("tag_0")["primary"], what="the tag shown as chosen")
    ui.screenshot("06-rating")
    ui.tap("rating_submit", wait_for)
    ui.wait_text("感谢您的评价", wait_for)
    assert platform_server.query("SELECT stars, target_type, target_id, tags FROM ratings WHERE id > ?", before) == \
        [(5, "application", number, '["fast"]')], "the tag tapped (办事快捷) goes to the platform as its code"

    # the citizen walks away: warning with a countdown, then back to attract with nothing of them left
    wait_for(lambda: ui.state()["modal"], timeout=IDLE_S + 5, what="the timeout warning")
    ui.wait_text("您还在吗", wait_for)
    body = ui.wait_text("秒后将自动退出", wait_for)
    assert 1 <= int(body.split("，")[1].split(" ")[0]) <= WARNING_S, body
    ui.screenshot("07-timeout-warning")
    ui.wait_screen("attract", wait_for, timeout=WARNING_S + 5)
    wait_for(lambda: not ui.state()["modal"], what="the warning closed")
    assert ui.state()["session"] == "idle"
    assert not any("张*华" in t or number in t for t in ui.texts())


def test_guide_without_card_prints_notice(start_kiosk, wait_for):
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)
    ui.tap("tile_guide", wait_for)
    ui.wait_screen("guide", wait_for)
    ui.tap("hot_公积金", wait_for)
    ui.wait_text("共", wait_for)
    ui.screenshot("08-guide-search")
    ui.tap("service_0", wait_for)
    ui.wait_screen("guide_detail", wait_for)
    ui.wait_text("所需材料（一次性告知）", wait_for)
    name = ui.find("service_name")["text"]
    assert "公积金" in name
    ui.screenshot("09-guide-detail")
    ui.tap("print_notice", wait_for)
    ui.wait_screen("print_confirm", wait_for)
    ui.tap("print_confirm", wait_for)
    ui.wait_screen("rating", wait_for)
    receipt = last_receipt(sims, wait_for)
    assert "一次性告知单" in receipt["text"] and name in receipt["text"]
    assert "所需材料" in receipt["text"] and "?" not in receipt["text"]


def assert_touch_targets(ui) -> None:
    """Every button on screen is at least 60 px in both directions (elderly users, gloves, tremor)."""
    buttons = ui.ask("buttons")["buttons"]
    assert buttons
    small = [b for b in buttons if min(b["width"], b["height"]) < 60]
    assert not small, small


def test_english_and_portrait(start_kiosk, wait_for):
    ui = start_kiosk(kiosk__orientation="portrait")
    ui.wait_screen("attract", wait_for, timeout=30)
    window = ui.state()["window"]
    assert window["height"] > window["width"]
    assert_touch_targets(ui)
    ui.screenshot("10-attract-portrait")
    ui.tap("lang", wait_for)
    ui.wait_text("Place your ID card on the reader", wait_for)
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)
    ui.wait_text("Service guide", wait_for)
    assert_touch_targets(ui)
    ui.screenshot("11-menu-portrait-en")
    ui.tap("tile_progress", wait_for)
    ui.wait_screen("progress", wait_for)
    assert_touch_targets(ui)
    ui.tap("back", wait_for)
    ui.tap("tile_guide", wait_for)
    ui.wait_text("Housing fund", wait_for)
    ui.tap("hot_公积金", wait_for)
    ui.wait_text("services", wait_for)  # "N services": the Chinese catalogue searched from the English label


def test_progress_by_number_without_card(start_kiosk, platform_server, wait_for):
    (number, name, id_number), = platform_server.query(
        "SELECT number, applicant_name, applicant_id_number FROM applications WHERE number = 'SP20261030000202'")
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    ui.tap("start_without_card", wait_for)
    ui.tap("tile_progress", wait_for)
    ui.wait_screen("progress", wait_for)
    # a wrong number first: a clear message, nothing else shown
    for key in ("SP", "1", "2", "3"):
        ui.tap(f"key_{key}", wait_for)
    ui.tap("query", wait_for)
    ui.wait_text("未找到", wait_for)
    ui.tap("clear", wait_for)
    ui.tap("key_SP", wait_for)
    for digit in number[2:]:
        ui.tap(f"key_{digit}", wait_for)
    wait_for(lambda: ui.find("number")["text"] == number, what="every key press shown")
    ui.tap("query", wait_for)
    ui.wait_text(f"办件编号：{number}", wait_for)       # by number alone: the state only
    ui.wait_text("仅显示当前状态", wait_for)
    texts = ui.texts()
    assert not any("高龄津贴" in t or name[0] + "*" in t for t in texts), "no service, no name without the last 4"
    ui.tap("last4", wait_for)                           # the last 4 of the ID number (…102X) on the same keypad
    for key in id_number[-4:]:
        ui.tap(f"key_{key}", wait_for)
    ui.tap("query", wait_for)
    ui.wait_text("高龄津贴", wait_for)
    texts = ui.texts()
    assert not any(name in t for t in texts), "without a card, the applicant's name is shown masked only"
    assert any(name[0] + "*" in t for t in texts)
    assert_touch_targets(ui)
    ui.screenshot("12-progress-by-number")
