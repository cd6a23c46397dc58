"""人证核验 on the real window: card → face check → menu with the citizen's services; and a held-up photo and
another person refused, then after K failed attempts another route — services without identity — never a dead end.

The camera is ``kiosk-sim camera`` (MJPEG over HTTP, read by the real OpenCV driver as an IP camera) playing clips
built at test time from real face photos that ship in packages (tests/data/README.md); the e2e platform serves the
holder's photo as every simulated card holder's registered photo (clips, camera and platform: tests/e2e/conftest.py)."""
from __future__ import annotations

import pytest

from drivers.sim.control import send_command
from tests.e2e.conftest import agree_to_face_check, pass_face_check, start_with_camera

pytestmark = pytest.mark.e2e

ZHANG_ID = "340302195803172018"
#: the profile's face block: both requests in a random order, steps long enough for the looping clip, the attempt long
#: enough for a busy test machine
FACE = {"challenges": ["blink", "turn_left"], "max_attempts": 3, "attempt_timeout_s": 40,
        "liveness": {"step_timeout_s": 8}}


@pytest.fixture
def camera_clip() -> str:
    """The holder blinking and turning left (conftest's ``live`` clip): answers both requests, in either order."""
    return "live"


def assert_touch_targets(ui) -> None:
    buttons = ui.ask("buttons")["buttons"]
    assert buttons and not [b for b in buttons if min(b["width"], b["height"]) < 60], buttons


def test_card_face_check_passes_then_menu(start_kiosk, camera_sim, platform_server, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim, FACE)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    agree_to_face_check(ui, wait_for)   # the consent screen first (tests/e2e/test_assistance_journey.py: refused)
    ui.wait_text("张*华，请核验本人身份", wait_for)
    assert not any("张明华" in t or ZHANG_ID in t for t in ui.texts()), "only masked data on screen"
    wait_for(lambda: ui.find("face_prompt")["text"] in ("请眨一眨眼睛", "请慢慢向左转头，再转回来"), timeout=30,
             what="a liveness request (random order)")
    assert "共 2 步" in ui.find("face_steps")["text"]
    assert_touch_targets(ui)
    ui.screenshot("13-face-check")

    pass_face_check(ui, wait_for)
    ui.wait_text("您好，张*华", wait_for)
    ui.screenshot("14-menu-face-verified")
    ui.tap("tile_my_applications", wait_for)
    ui.wait_screen("progress", wait_for)
    ui.wait_text("我的办件", wait_for)
    assert platform_server.query("SELECT verification_method, face_match FROM citizen_sessions "
                                 "WHERE id_number = ? ORDER BY id DESC LIMIT 1", ZHANG_ID) == [("card+face", 1)]


def test_spoof_and_impostor_refused_then_another_route(start_kiosk, camera_sim, face_clips, platform_server,
                                                       wait_for):
    ui = start_with_camera(start_kiosk, camera_sim, {**FACE, "liveness": {"step_timeout_s": 3}})
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    sessions_before = platform_server.query("SELECT count(*) FROM citizen_sessions WHERE id_number = ?", ZHANG_ID)
    camera_sim.control("set_source", path=str(face_clips["spoof"]))
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    agree_to_face_check(ui, wait_for)
    # attempt 1: the holder's photo held up matches, but does not blink or turn
    ui.wait_text("动作没有及时完成", wait_for, timeout=40)
    ui.wait_text("还可以再试 2 次", wait_for)
    ui.screenshot("15-face-retry")
    # attempts 2 and 3: another person in front of the camera
    camera_sim.control("set_source", path=str(face_clips["impostor"]))
    ui.tap("face_retry", wait_for)
    ui.wait_text("未能确认是本人", wait_for, timeout=40)
    ui.wait_text("还可以再试 1 次", wait_for)
    ui.tap("face_retry", wait_for)
    ui.wait_text("多次核验未通过", wait_for, timeout=40)
    assert ui.find("face_route_staff_assistance")["found"]
    assert_touch_targets(ui)
    ui.screenshot("16-face-other-route")
    assert not ui.find("face_retry")["found"], "no fourth attempt"

    ui.tap("face_route_staff_assistance", wait_for)
    ui.wait_text("请找现场工作人员协助", wait_for)
    # asking for staff is a help request (kiosk/assistance.py): no fleet link here, so the panel gives the phone
    ui.wait_text("请拨打电话", wait_for)
    ui.tap("help_close", wait_for)
    wait_for(lambda: not ui.find("help_status").get("found"), what="the help panel closed")
    ui.tap("face_route_continue_without_identity", wait_for)
    ui.wait_screen("menu", wait_for)
    ui.wait_text("您好，欢迎使用自助服务", wait_for)
    assert ui.find("tile_my_applications")["disabled"], "personal services stay closed"
    assert not ui.find("tile_guide")["disabled"], "services without identity stay open"
    assert not any("张*华" in t for t in ui.texts()), "the citizen's data was dropped"
    assert platform_server.query("SELECT count(*) FROM citizen_sessions WHERE id_number = ?", ZHANG_ID) == \
        sessions_before, "no citizen session was opened on the platform"
    ui.tap("tile_guide", wait_for)
    ui.wait_screen("guide", wait_for)
