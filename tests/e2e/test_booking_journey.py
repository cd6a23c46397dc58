"""Appointments on the real window: card → three taps from the menu (the kiosk's hall, a service, the earliest
time) → the slip printed with the number the platform holds → cancelled from the result page → another hall, day
and time → rating → a queue ticket with its number, window and people ahead. And EMS delivery of a result to an
address, which needs the holder confirmed (card+face, kiosk/identity_levels.py): that kiosk has a camera
(``kiosk-sim camera`` showing the holder, tests/e2e/conftest.py) and the citizen passes the face check after the
card."""
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


def assert_touch_targets(ui) -> None:
    """Every button on screen (lists, pickers, the bottom bar) is at least 60 px both ways."""
    buttons = ui.ask("buttons")["buttons"]
    assert buttons and not [b for b in buttons if min(b["width"], b["height"]) < 60], buttons


def receipts(sims) -> list[dict]:
    return send_command(sims["receipt_printer"]["control"], "receipts")["receipts"]


def assert_fits(ui) -> None:
    """Nothing on the current screen is clipped, cut or off the window (the automation's ``layout`` report)."""
    report = ui.ask("layout")
    assert report["problems"] == [], report["problems"]


def test_card_book_slot_slip_and_queue_ticket(start_kiosk, platform_server, wait_for):
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = simulators(ui, wait_for, "idcard", "receipt_printer")
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    ui.wait_screen("menu", wait_for)
    ui.wait_text("您好，张*华", wait_for)

    # three taps from the menu: the kiosk's own hall opens with its services → a service → the earliest time
    ui.tap("tile_appointment", wait_for)
    ui.wait_screen("appointment", wait_for)
    ui.wait_text("请选择要预约的事项", wait_for)
    assert ui.find("booking_heading")["text"] == "蚌埠市龙子湖区政务服务中心"   # the profile's kiosk.hall (lzh-hall)
    service_aid = ui.top_most("service_", wait_for)
    ui.settled(service_aid, wait_for)
    for aid in ("booking_other_hall", "booking_mine", "booking_ticket"):   # every other choice one tap away
        assert ui.find(aid)["found"], aid
    assert_touch_targets(ui)
    assert_fits(ui)
    ui.screenshot("20-appointment-services")
    ui.tap(service_aid, wait_for)
    ui.wait_text("点选时间即可预约", wait_for)
    ui.settled("offer_0", wait_for)
    offer = ui.find("offer_0")["text"]
    assert "蚌埠市龙子湖区政务服务中心" in offer and "周" in offer and "–" in offer   # day + time + hall
    assert ui.find("booking_more_times")["found"]
    assert_touch_targets(ui)
    assert_fits(ui)
    ui.screenshot("21-appointment-offers")
    printed_before = len(receipts(sims))
    ui.tap("offer_0", wait_for)
    number = ui.wait_text("预约号：", wait_for).split("：", 1)[1]
    ui.wait_text("预约成功，预约凭条已打印", wait_for)
    ui.settled("booking_cancel", wait_for)
    assert_fits(ui)
    ui.screenshot("22-appointment-booked")

    code = service_aid.removeprefix("service_")
    assert platform_server.query("SELECT citizen_id_number, place_code, service_code, status FROM appointments "
                                 "WHERE appointment_no = ?", number) == [(ZHANG_ID, "lzh-hall", code, "booked")]
    slip = wait_for(lambda: receipts(sims)[printed_before:] or None, what="the appointment slip")[-1]
    assert "预约凭条" in slip["text"] and number in slip["text"].split("\n")
    [qr] = slip["qr"]   # the appointment's public verify page; the number is its last segment (hall scanner)
    assert qr.endswith(f"/verify/m/{number}") and "?" not in slip["text"]
    assert httpx.get(qr, timeout=10).status_code == 200
    assert ZHANG_ID not in slip["text"] and "张明华" not in slip["text"]
    shutil.copy(slip["png"], ui.shots / "receipt-appointment.png")

    # reversible: "cancel this booking" on the result page
    ui.tap("booking_cancel", wait_for)
    ui.wait_text("预约已取消", wait_for)
    assert platform_server.query("SELECT status FROM appointments WHERE appointment_no = ?", number) == \
        [("cancelled",)]

    # no choice lost: another hall, another day and time (a tap on the time books it)
    ui.tap("booking_back", wait_for)
    ui.tap("booking_other_hall", wait_for)
    ui.wait_text("请选择办事大厅", wait_for)
    ui.tap("hall_city-hall", wait_for)
    wait_for(lambda: ui.find("booking_heading").get("text") == "蚌埠市政务服务中心", what="the city hall's services")
    ui.tap("service_driving-licence-renewal", wait_for)
    ui.tap("booking_more_times", wait_for)
    ui.wait_text("请选择日期", wait_for)
    ui.tap("day_0", wait_for)
    ui.wait_text("点选即预约", wait_for)
    ui.settled("slot_0", wait_for)
    assert_fits(ui)
    ui.tap("slot_0", wait_for)
    other = ui.wait_text("预约号：", wait_for).split("：", 1)[1]
    ui.wait_text("预约成功", wait_for)
    assert platform_server.query("SELECT place_code, service_code, status FROM appointments WHERE appointment_no = ?",
                                 other) == [("city-hall", "driving-licence-renewal", "booked")]

    ui.tap("booking_done", wait_for)
    ui.wait_screen("rating", wait_for)
    ui.tap("rating_skip", wait_for)
    ui.wait_screen("menu", wait_for)

    # a queue number now, at the same hall
    ui.tap("tile_appointment", wait_for)
    ui.tap("booking_ticket", wait_for)
    ui.tap("hall_city-hall", wait_for)
    ui.wait_text("请选择要取号的事项", wait_for)
    printed_before = len(receipts(sims))
    ui.tap("service_driving-licence-renewal", wait_for)
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
    ui.tap("booking_done", wait_for)
    ui.wait_screen("rating", wait_for)


def test_card_ems_delivery_with_consent(start_kiosk, camera_sim, platform_server, wait_for):
    ui = start_with_camera(start_kiosk, camera_sim)
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = simulators(ui, wait_for, "idcard", "receipt_printer")
    send_command(sims["idcard"]["control"], "place_card", identity="yang")
    pass_face_check(ui, wait_for)
    ui.tap("tile_delivery", wait_for)
    ui.wait_screen("delivery", wait_for)
    ui.wait_text("SP20261026000501", wait_for)
    ui.tap("mail_0", wait_for)
    ui.wait_text("EMS", wait_for)
    ui.screenshot("30-delivery-consent")
    ui.tap("delivery_agree", wait_for)
    ui.wait_text("请填写收件地址", wait_for)
    ui.tap("delivery_district", wait_for)
    ui.settled("region_蚌山区", wait_for)
    assert_touch_targets(ui)                          # the picker's list too
    ui.tap("region_蚌山区", wait_for)
    wait_for(lambda: ui.find("delivery_district")["text"] == "蚌山区", what="the district chosen")
    # the street in pinyin on the on-screen keyboard (candidates to tap), the house number in digits
    ui.tap("delivery_street", wait_for)
    for letter in "donghai":
        ui.tap(f"kb_key_{letter}", wait_for)
    ui.tap("kb_cand_0", wait_for)
    words = wait_for(lambda: ui.find("kb_text").get("text"), what="the chosen words")
    ui.tap("kb_mode", wait_for)
    ui.tap("kb_mode", wait_for)
    for digit in "88":
        ui.tap(f"kb_key_{digit}", wait_for)
    ui.tap("kb_ok", wait_for)
    words = words.replace("\u258f", "")   # the keyboard's text shows a cursor
    assert words and all("\u4e00" <= ch <= "\u9fff" for ch in words), words
    street = words + "88"
    wait_for(lambda: ui.find("delivery_street").get("text") == street, what=f"the street {street!r} typed")
    ui.tap("delivery_phone", wait_for)
    for digit in "13905520088":
        ui.tap(f"kb_key_{digit}", wait_for)
    ui.tap("kb_ok", wait_for)
    wait_for(lambda: ui.find("delivery_phone").get("text") == "13905520088", what="the phone typed")
    ui.screenshot("31-delivery-address")
    ui.tap("delivery_next", wait_for)
    ui.wait_text("请确认寄送信息", wait_for)
    assert "139****0088" in ui.find("delivery_summary")["text"]
    printed_before = len(receipts(sims))
    ui.tap("delivery_order", wait_for)
    number = ui.wait_text("寄送订单号：", wait_for).split("：", 1)[1]
    ui.screenshot("32-delivery-ordered")
    assert platform_server.query("SELECT d.district, d.detail, d.phone FROM deliveries d WHERE d.delivery_no = ?",
                                 number) == [("蚌山区", street, "13905520088")]
    receipt = wait_for(lambda: receipts(sims)[printed_before:] or None, what="the delivery receipt")[-1]
    assert number in receipt["text"].split("\n") and "13905520088" not in receipt["text"]
    ui.tap("delivery_done", wait_for)
    ui.wait_screen("rating", wait_for)
