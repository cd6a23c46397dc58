"""Appointments and queue tickets through the kiosk core: the real platform server, the receipt printer emulator."""
from __future__ import annotations

import json

import httpx

import pytest

from kiosk.errors import PlatformRejected
from kiosk.session import State
from kiosk.usecases.booking import NotIdentified, group_days, ticket_view
from kiosk.platform_client import QueueTicket, Slot

ZHANG_ID, ZHANG_NAME = "340302195803172018", "张明华"


def pick(items, **attrs):
    return next(i for i in items if all(getattr(i, k) == v for k, v in attrs.items()))


def test_book_a_slot_prints_the_slip_then_cancel(kiosk, call, platform_server, wait_for):
    flow = kiosk.core.booking
    kiosk.identify("zhang")
    hall = pick(call(flow.halls), code="dongfeng-street")
    services = call(flow.services_at, hall)
    assert services, "the hall handles some services"
    service = pick(services, code="senior-card")
    days = call(flow.days, hall, service)
    assert days and all(s.available > 0 for d in days for s in d.slots)
    slot = days[-1].slots[-1]

    booked = call(flow.book, hall, service, slot)
    appointment = booked.appointment
    assert (appointment.date, appointment.start, appointment.status) == (slot.date, slot.start, "booked")
    assert platform_server.query("SELECT citizen_id_number, status FROM appointments WHERE appointment_no = ?",
                                 appointment.appointment_no) == [(ZHANG_ID, "booked")]
    assert booked.print_error is None and booked.print_result.bytes_sent > 0

    receipt = wait_for(lambda: (kiosk.receipts() or [None])[-1], what="the slip")
    lines = receipt["text"].split("\n")
    assert "预约凭条" in receipt["text"] and appointment.appointment_no in lines
    assert f"预约时间：{slot.date} {slot.start}–{slot.end}" in lines and "预约人：张*华" in lines
    [qr] = receipt["qr"]   # the appointment's public verify page; the number is its last segment (hall scanner)
    assert qr == kiosk.core.public_urls.appointment(appointment.appointment_no) and qr.endswith(
        "/verify/m/" + appointment.appointment_no)
    assert httpx.get(qr, timeout=10).status_code == 200
    assert ZHANG_ID not in receipt["text"] and ZHANG_NAME not in receipt["text"]
    assert kiosk.core.print_journal.get(booked.print_result.job_id).state == "done"

    # a repeat of the same choice (a retry after a lost answer, a double tap) books nothing more
    again = call(flow.book, hall, service, slot)
    assert again.appointment.appointment_no == appointment.appointment_no
    assert platform_server.query("SELECT count(*) FROM appointments WHERE citizen_id_number = ? AND day = ? AND "
                                 "start_time = ?", ZHANG_ID, slot.date, slot.start) == [(1,)]

    mine = call(flow.my_appointments)
    assert appointment.appointment_no in [a.appointment_no for a in mine]
    cancelled = call(flow.cancel, pick(mine, appointment_no=appointment.appointment_no))
    assert cancelled.status == "cancelled"
    flow.done(service.code, "book_appointment")
    assert kiosk.core.session.state is State.RATING

    kiosk.core.flush_audit()
    audit = kiosk.core.audit.path.read_text("utf-8")
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    assert {"appointment_booked", "appointment_cancelled", "printed"} <= set(events)
    assert ZHANG_ID not in audit and ZHANG_NAME not in audit


def test_queue_ticket_without_a_card_shows_number_window_and_people_ahead(kiosk, call, platform_server, wait_for):
    flow = kiosk.core.booking
    kiosk.core.start_anonymous()
    hall = pick(call(flow.halls), code="hpf-hall")
    service = pick(call(flow.services_at, hall), code="hpf-withdrawal")
    first = call(flow.take_ticket, hall, service).ticket
    assert first.ticket_no.startswith("A") and first.windows
    receipt = wait_for(lambda: (kiosk.receipts() or [None])[-1], what="the ticket")
    lines = receipt["text"].split("\n")
    assert "排队取号凭条" in receipt["text"] and first.ticket_no in lines
    assert f"前面还有 {first.waiting_before} 人等候" in lines
    assert f"办理区域：{first.queue_name}（窗口 {'、'.join(first.windows)}）" in receipt["text"].replace("\n", "")
    assert receipt["qr"] == [kiosk.core.public_urls.queue_ticket(first.id)]   # the public verify page
    assert receipt["qr"][0].endswith(f"/verify/t/{first.id}")

    # the same tap again in this session (the answer was lost) returns the same ticket, not a second number
    assert call(flow.take_ticket, hall, service).ticket.id == first.id
    assert platform_server.query("SELECT count(*) FROM queue_tickets WHERE id = ?", first.id) == [(1,)]


def test_booking_needs_the_card_and_explains_refusals(kiosk, call):
    flow = kiosk.core.booking
    kiosk.core.start_anonymous()
    hall = pick(call(flow.halls), code="dongfeng-street")
    service = pick(call(flow.services_at, hall), code="senior-card")
    slot = call(flow.days, hall, service)[0].slots[0]
    with pytest.raises(NotIdentified) as refused:
        call(flow.book, hall, service, slot)
    assert flow.error_text(refused.value) == "此项业务需要先读取身份证，请将身份证放在感应区"
    full = PlatformRejected("full", status=409, platform_code="slot_full")
    assert flow.error_text(full) == "该时段已约满，请选择其他时段"
    other = PlatformRejected("x", status=409, platform_code="something_new")
    assert flow.error_text(other) == kiosk.core.translator.error_text(other)


def test_session_end_forgets_the_keys(kiosk, call):
    flow = kiosk.core.booking
    kiosk.core.start_anonymous()
    key = flow.key("ticket", "hpf-hall", "hpf-withdrawal")
    assert flow.key("ticket", "hpf-hall", "hpf-withdrawal") == key
    kiosk.core.end_session("finished")
    kiosk.core.start_anonymous()
    assert flow.key("ticket", "hpf-hall", "hpf-withdrawal") != key


def test_days_keep_only_free_slots_and_ticket_view():
    slots = [Slot("2026-11-02", "09:00", "09:30", "", 2, 0), Slot("2026-11-02", "09:30", "10:00", "", 2, 1),
             Slot("2026-11-03", "09:00", "09:30", "", 2, 0)]
    days = group_days(slots)
    assert [(d.date, [s.start for s in d.slots], d.available) for d in days] == [("2026-11-02", ["09:30"], 1)]
    ticket = QueueTicket(id="qt_1", ticket_no="B007", hall_code="h", hall_name="市政务服务中心", queue_name="公积金业务",
                         windows=["B01", "B02"], service_code="s", service_name="公积金提取", service_date="2026-11-02",
                         waiting_before=3, issued_at="2026-11-02T09:15:00+08:00", hall_open_now=True)
    view = ticket_view(ticket, "u")
    assert view == {"number": "B007", "service_name": "公积金提取", "area": "公积金业务（窗口 B01、B02）",
                    "waiting": 3, "issued_at": "2026-11-02 09:15", "query_url": "u"}
