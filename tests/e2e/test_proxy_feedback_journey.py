"""Complaints (投诉) and acting for another person (代办) on the real window, one kiosk process for both journeys
(a camera: the agent's face is checked):

* 投诉: card + face → 投诉咨询 → a complaint typed with the pinyin keyboard → the platform answers "received" with a
  reference → the receipt from the printer emulator has the reference, and its QR (decoded from the printed PNG)
  holds it;
* 代办: 代办业务 → the principal's ID card on the same reader → only services that allow an agent → 老年人优待证 with
  the form pre-filled for the principal, the emergency contact typed in pinyin → submitted: the platform's row has
  the principal as applicant and the agent beside it; the receipt shows both masked names."""
from __future__ import annotations

import shutil

import pytest

from drivers.sim.control import send_command
from tests.e2e.conftest import pass_face_check, start_with_camera
from tests.qr_reading import read_qr

pytestmark = pytest.mark.e2e

ZHANG_ID, LI_ID = "340302195803172018", "35010219490822102X"


def type_pinyin(ui, wait_for, letters: str, hanzi: str) -> None:
    for key in letters:
        ui.tap(f"kb_key_{key}", wait_for)
    cand = wait_for(lambda: next((f"kb_cand_{i}" for i in range(8) if ui.find(f"kb_cand_{i}").get("text") == hanzi),
                                 None), what=f"{hanzi} among the candidates")
    ui.tap(cand, wait_for)


def type_digits(ui, wait_for, digits: str) -> None:
    for key in digits:
        ui.tap(f"kb_key_{key}", wait_for)
    wait_for(lambda: ui.find("kb_text").get("text", "").rstrip("▏").endswith(digits), what="every digit shown")


def receipt_with(sims, wait_for, fragment: str) -> dict:
    control = sims["receipt_printer"]["control"]
    return wait_for(lambda: next((r for r in reversed(send_command(control, "receipts")["receipts"])
                                  if fragment in r["text"]), None), timeout=20, what=f"a receipt with {fragment}")


def test_complaint_and_proxy_application(start_kiosk, camera_sim, platform_server, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    pass_face_check(ui, wait_for)
    ui.wait_text("您好，张*华", wait_for)

    # --- a complaint, typed in pinyin, answered "received" with a reference; the receipt's QR holds it ------------
    ui.tap("tile_feedback", wait_for)
    ui.wait_screen("feedback", wait_for)
    ui.tap("feedback_complaint", wait_for)
    ui.tap("feedback_text", wait_for)
    type_pinyin(ui, wait_for, "man", "慢")
    wait_for(lambda: ui.find("kb_text").get("text", "").startswith("慢"), what="慢 typed")
    ui.tap("kb_ok", wait_for)
    ui.wait_text("慢", wait_for)
    ui.screenshot("41-feedback-typed")
    ui.tap("feedback_send", wait_for)
    shown = ui.wait_text("已收到！编号", wait_for, timeout=30).split("编号", 1)[1].strip()
    rows = platform_server.query("SELECT kind, text, citizen_session_id IS NOT NULL FROM feedback WHERE reference = ?",
                                 shown)
    assert rows == [("complaint", "慢", 1)], "the reference on screen is the platform's row, linked to the session"
    ui.screenshot("42-feedback-received")
    receipt = receipt_with(sims, wait_for, shown)
    decoded = read_qr(receipt["png"])
    assert decoded == receipt["qr"][0] and decoded.rstrip("/").rsplit("/", 1)[-1] == shown, decoded
    assert "慢" not in receipt["text"] and "张明华" not in receipt["text"]
    shutil.copy(receipt["png"], ui.shots / "receipt-feedback.png")
    ui.tap("feedback_done", wait_for)
    ui.wait_screen("menu", wait_for)

    # --- 代办: the principal's card, services that allow an agent, both persons on record -----------------------------
    ui.tap("tile_proxy", wait_for)
    ui.wait_screen("proxy", wait_for)
    ui.wait_text("请将被代办人", wait_for, timeout=30)
    ui.screenshot("43-proxy-place-card")
    send_command(sims["idcard"]["control"], "place_card", identity="li")
    ui.wait_text("被代办人：李*英", wait_for, timeout=30)
    ui.tap("proxy_service_senior-card", wait_for)
    assert not ui.find("proxy_service_id-card-renewal")["found"]
    ui.wait_text("1949-08-22", wait_for)   # pre-filled for the principal
    ui.tap("proxy_field_phone", wait_for)
    type_digits(ui, wait_for, "13905520011")
    ui.tap("kb_ok", wait_for)
    ui.tap("proxy_field_emergency_contact__name", wait_for)
    type_pinyin(ui, wait_for, "zhang", "张")
    type_pinyin(ui, wait_for, "ming", "明")
    ui.tap("kb_ok", wait_for)
    ui.tap("proxy_field_emergency_contact__phone", wait_for)
    type_digits(ui, wait_for, "13905520012")
    ui.tap("kb_ok", wait_for)
    ui.tap("proxy_field_pickup", wait_for)
    ui.tap("choice_0", wait_for)
    ui.wait_text("13905520012", wait_for)
    ui.screenshot("44-proxy-form")
    ui.tap("proxy_submit", wait_for)
    number = ui.wait_text("办件编号：", wait_for, timeout=30).split("：", 1)[1].strip()
    ui.wait_text("申请人：李*英", wait_for)
    ui.screenshot("45-proxy-result")
    rows = platform_server.query(
        "SELECT a.applicant_id_number, a.service_code, g.agent_id_number FROM applications a "
        "JOIN application_agents g ON g.application_id = a.id WHERE a.number = ?", number)
    assert rows == [(LI_ID, "senior-card", ZHANG_ID)], "both persons recorded"
    receipt = receipt_with(sims, wait_for, number)
    assert "申请人（委托人）：李*英" in receipt["text"] and "代办人：张*华（子女）" in receipt["text"]
    for secret in (ZHANG_ID, LI_ID, "李秀英", "张明华"):
        assert secret not in receipt["text"] and not any(secret in t for t in ui.texts())
    shutil.copy(receipt["png"], ui.shots / "receipt-proxy.png")

    # --- the rating of it: ★1 with a reason typed in pinyin; the comment reaches the department's follow-up queue --
    ui.tap("proxy_done", wait_for)
    ui.wait_screen("rating", wait_for)
    ui.tap("star_1", wait_for)
    ui.tap("rating_comment", wait_for)
    type_pinyin(ui, wait_for, "man", "慢")
    ui.tap("kb_ok", wait_for)
    ui.wait_text("您的意见：慢", wait_for)
    ui.screenshot("46-rating-comment")
    ui.tap("rating_submit", wait_for)
    ui.wait_text("感谢您的评价", wait_for, timeout=30)
    wait_for(lambda: not ui.find("rating_complain")["disabled"], what="a complaint offered after the bad rating")
    rows = platform_server.query(
        "SELECT r.stars, r.comment, f.status, f.department FROM ratings r JOIN rating_followups f "
        "ON f.rating_id = r.id WHERE r.target_type = 'application' AND r.target_id = ?", number)
    assert rows == [(1, "慢", "open", "蚌埠市卫生健康委员会")]
