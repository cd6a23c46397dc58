"""Appointments on the real window: card → book a slot → the slip printed with the number the platform holds
→ rating → a queue ticket with its number, window and people ahead. And EMS delivery of a result to an address, which
needs the holder confirmed (card+face, kiosk/identity_levels.py): that kiosk has a camera (``kiosk-sim camera``
showing the holder, tests/e2e/conftest.py) and the citizen passes the face check after the card."""
from __future__ import annotations

import shutil

import httpx
import pytest

from drivers.sim.control import send_command
from tests.e2e.conftest import pass_face_check, start_with_camera

pytestmark = pytest.mark.e2e

ZHANG_ID = "340302195803172018"


def simulators(ui, wait_for, *kinds: str) -> dict:
    """The endpoints of the simulators the kiosk started, once those of ``kinds`` are up."""
    return wait_for(lambda: (lambda s: s if all(k in s for k in kinds) else None)(
        {k: v for k, v in ui.ask("simulators").items() if k != "ok"}), timeout=30, what=f"simulators {kinds}")


def settled(ui, wait_for, aid: str) -> None:
    """Wait until ``aid`` is shown, enabled and no longer moving (a list laid out after its data arrived), so the
    real click that follows lands on it."""
    seen: list[tuple[int, int]] = []

    def still() -> bool:
        found = ui.find(aid)
        if not found["found"] or found["disabled"]:
            seen.clear()
            return False
        seen.append((found["x"], found["y"]))
        return len(seen) >= 3 and len(set(seen[-3:])) == 1

    wait_for(still, interval=0.1, what=f"{aid} shown and settled")


def tap(ui, wait_for, aid: str) -> None:
    settled(ui, wait_for, aid)
    ui.tap(aid, wait_for)


def assert_touch_targets(ui) -> None:
    """Every button on screen (lists, pickers, the bottom bar) is at least 60 px both ways."""
    buttons = ui.ask("buttons")["buttons"]
    assert buttons and not [b for b in buttons if min(b["width"], b["height"]) < 60], buttons


def receipts(sims) -> list[dict]:
    return send_command(sims["receipt_printer"]["control"], "receipts")["receipts"]


def test_card_book_slot_slip_and_queue_ticket(start_kiosk, platform_server, wait_for):
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = simulators(ui, wait_for, "idcard", "receipt_printer")
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    ui.wait_screen("menu", wait_for)
    ui.wait_text("您好，张*华", wait_for)

    tap(ui, wait_for, "tile_appointment")
    ui.wait_screen("appointment", wait_for)
    ui.screenshot("20-appointment-home")
    tap(ui, wait_for, "booking_book")
    ui.wait_text("请选择办事大厅", wait_for)
    tap(ui, wait_for, "hall_city-hall")
    ui.wait_text("请选择办理事项", wait_for)
    ui.screenshot("21-appointment-services")
    tap(ui, wait_for, "service_driving-licence-renewal")
    ui.wait_text("请选择日期", wait_for)
    settled(ui, wait_for, "day_0")
    assert_touch_targets(ui)
    ui.screenshot("22-appointment-days")
    tap(ui, wait_for, "day_0")
    tap(ui, wait_for, "slot_0")
    ui.wait_text("请确认预约信息", wait_for)
    summary = ui.find("booking_summary")["text"]
    assert "驾驶证" in summary
    ui.screenshot("23-appointment-confirm")
    printed_before = len(receipts(sims))
    tap(ui, wait_for, "booking_confirm")
    number = ui.wait_text("预约号：", wait_for).split("：", 1)[1]
    ui.wait_text("预约成功，预约凭条已打印", wait_for)
    ui.screenshot("24-appointment-booked")

    assert platform_server.query("SELECT citizen_id_number, service_code, status FROM appointments "
                                 "WHERE appointment_no = ?", number) == [(ZHANG_ID, "driving-licence-renewal",
                                                                          "booked")]
    slip = wait_for(lambda: receipts(sims)[printed_before:] or None, what="the appointment slip")[-1]
    assert "预约凭条" in slip["text"] and number in slip["text"].split("\n")
    [qr] = slip["qr"]   # the appointment's public verify page; the number is its last segment (hall scanner)
    assert qr.endswith(f"/verify/m/{number}") and "?" not in slip["text"]
    assert httpx.get(qr, timeout=10).status_code == 200
    assert ZHANG_ID not in slip["text"] and "张明华" not in slip["text"]
    shutil.copy(slip["png"], ui.shots / "receipt-appointment.png")

    tap(ui, wait_for, "booking_done")
    ui.wait_screen("rating", wait_for)
    tap(ui, wait_for, "rating_skip")
    ui.wait_screen("menu", wait_for)

    # a queue number now, at the same hall
    tap(ui, wait_for, "tile_appointment")
    tap(ui, wait_for, "booking_ticket")
    tap(ui, wait_for, "hall_city-hall")
    ui.wait_text("请选择要取号的事项", wait_for)
    printed_before = len(receipts(sims))
    tap(ui, wait_for, "service_driving-licence-renewal")
    ticket_no = ui.wait_text("您的号码：", wait_for).split("：", 1)[1]
    ahead = ui.find("ticket_ahead")["text"]
    assert "前面还有" in ahead and "D01" in ui.find("ticket_window")["text"]
    ui.screenshot("26-queue-ticket")
    ticket = wait_for(lambda: receipts(sims)[printed_before:] or None, what="the queue ticket")[-1]
    lines = ticket["text"].split("\n")
    assert "排队取号凭条" in lines and ticket_no in lines and ahead.replace(" ", "") in \
        [line.replace(" ", "") for line in lines]
    (issued,) = platform_server.query("SELECT count(*) FROM queue_tickets WHERE ticket_no = ? AND place_code = "
                                      "'city-hall' AND service_code = 'driving-licence-renewal'", ticket_no)
    assert issued[0] >= 1
    shutil.copy(ticket["png"], ui.shots / "receipt-queue-ticket.png")
    tap(ui, wait_for, "booking_done")
    ui.wait_screen("rating", wait_for)


def test_card_ems_delivery_with_consent(start_kiosk, camera_sim, platform_server, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = simulators(ui, wait_for, "idcard", "receipt_printer")
    send_command(sims["idcard"]["control"], "place_card", identity="yang")
    pass_face_check(ui, wait_for)
    tap(ui, wait_for, "tile_delivery")
    ui.wait_screen("delivery", wait_for)
    ui.wait_text("SP20261026000501", wait_for)
    tap(ui, wait_for, "mail_0")
    ui.wait_text("EMS", wait_for)
    ui.screenshot("30-delivery-consent")
    tap(ui, wait_for, "delivery_agree")
    ui.wait_text("请填写收件地址", wait_for)
    tap(ui, wait_for, "delivery_district")
    settled(ui, wait_for, "region_蚌山区")
    assert_touch_targets(ui)                          # the picker's list too
    tap(ui, wait_for, "region_蚌山区")
    wait_for(lambda: ui.find("delivery_district")["text"] == "蚌山区", what="the district chosen")
    # the street in pinyin on the on-screen keyboard (candidates to tap), the house number in digits
    tap(ui, wait_for, "delivery_street")
    for letter in "donghai":
        tap(ui, wait_for, f"kb_key_{letter}")
    tap(ui, wait_for, "kb_cand_0")
    words = wait_for(lambda: ui.find("kb_text").get("text"), what="the chosen words")
    tap(ui, wait_for, "kb_mode")
    tap(ui, wait_for, "kb_mode")
    for digit in "88":
        tap(ui, wait_for, f"kb_key_{digit}")
    tap(ui, wait_for, "kb_ok")
    words = words.replace("\u258f", "")   # the keyboard's text shows a cursor
    assert words and all("\u4e00" <= ch <= "\u9fff" for ch in words), words
    street = words + "88"
    wait_for(lambda: ui.find("delivery_street").get("text") == street, what=f"the street {street!r} typed")
    tap(ui, wait_for, "delivery_phone")
    for digit in "13905520088":
        tap(ui, wait_for, f"kb_key_{digit}")
    tap(ui, wait_for, "kb_ok")
    wait_for(lambda: ui.find("delivery_phone").get("text") == "13905520088", what="the phone typed")
    ui.screenshot("31-delivery-address")
    tap(ui, wait_for, "delivery_next")
    ui.wait_text("请确认寄送信息", wait_for)
    assert "139****0088" in ui.find("delivery_summary")["text"]
    printed_before = len(receipts(sims))
    tap(ui, wait_for, "delivery_order")
    number = ui.wait_text("寄送订单号：", wait_for).split("：", 1)[1]
    ui.screenshot("32-delivery-ordered")
    assert platform_server.query("SELECT d.district, d.detail, d.phone FROM deliveries d WHERE d.delivery_no = ?",
                                 number) == [("蚌山区", street, "13905520088")]
    receipt = wait_for(lambda: receipts(sims)[printed_before:] or None, what="the delivery receipt")[-1]
    assert number in receipt["text"].split("\n") and "13905520088" not in receipt["text"]
    tap(ui, wait_for, "delivery_done")
    ui.wait_screen("rating", wait_for)
