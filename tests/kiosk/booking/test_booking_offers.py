"""Booking in three taps (kiosk/usecases/booking_offers.py): the kiosk's own hall, its services most used first, the
earliest free times as offers — through the kiosk core against the real platform server, and the pure parts."""
from __future__ import annotations

import json

from kiosk.i18n import Translator
from kiosk.platform_client import Hall, ServiceSummary, Slot
from kiosk.usecases.booking_offers import (OFFER_DAYS, OFFERS_PER_DAY, ServiceUsage, SlotOffer, earliest_offers,
                                           home_hall, offer_text)

HALL = Hall(code="lzh-hall", name="蚌埠市龙子湖区政务服务中心", address="解放路", hours="", phone="", slot_minutes=30,
            booking_days=7, queues=[])


def slot(date: str, start: str, available: int = 1) -> Slot:
    return Slot(date, start, start[:3] + "30", "", 3, available)


def service(code: str) -> ServiceSummary:
    return ServiceSummary(code, code, code, "", "", 0, None)


def test_earliest_offers_are_the_first_free_slots_of_the_next_days():
    slots = [slot("2026-12-07", "09:00", 0), slot("2026-12-07", "10:00"), slot("2026-12-07", "11:00"),
             slot("2026-12-07", "14:00"), slot("2026-12-08", "09:00", 0), slot("2026-12-09", "09:00"),
             slot("2026-12-09", "10:00"), slot("2026-12-10", "09:00")]
    offers = earliest_offers(slots, HALL, days=2, per_day=2)
    assert [(o.slot.date, o.slot.start) for o in offers] == [("2026-12-07", "10:00"), ("2026-12-07", "11:00"),
                                                             ("2026-12-09", "09:00"), ("2026-12-09", "10:00")]
    assert all(o.hall is HALL for o in offers)
    assert [o.slot.start for o in earliest_offers(slots, HALL, days=3, per_day=1)] == ["10:00", "09:00", "09:00"]
    assert earliest_offers([slot("2026-12-07", "09:00", 0)], HALL) == []


def test_offer_text_says_day_time_and_hall_in_both_languages():
    offer = SlotOffer(HALL, Slot("2026-12-08", "09:30", "10:00", "", 3, 2))   # a Tuesday
    assert offer_text(Translator("zh_CN").t, offer) == "12月8日（周二）09:30–10:00\n蚌埠市龙子湖区政务服务中心"
    assert offer_text(Translator("en").t, offer) == "Tue 8 Dec  09:30–10:00\n蚌埠市龙子湖区政务服务中心"


def test_home_hall_is_the_profiles_hall_when_the_platform_knows_it():
    other = Hall("city-hall", "市政务服务中心", "", "", "", 30, 7, [])
    assert home_hall([other, HALL], "lzh-hall") is HALL
    assert home_hall([other, HALL], "") is None and home_hall([other], "lzh-hall") is None


def test_service_usage_orders_most_used_first_and_survives_a_restart(tmp_path):
    path = tmp_path / "booking-usage.json"
    services = [service("a"), service("b"), service("c")]
    usage = ServiceUsage(path)
    assert [s.code for s in usage.ordered("lzh-hall", services)] == ["a", "b", "c"]   # nothing counted: catalogue
    usage.record("lzh-hall", "c")
    usage.record("lzh-hall", "c")
    usage.record("lzh-hall", "b")
    usage.record("city-hall", "a")
    assert [s.code for s in usage.ordered("lzh-hall", services)] == ["c", "b", "a"]
    assert [s.code for s in usage.ordered("city-hall", services)] == ["a", "b", "c"]
    again = ServiceUsage(path)   # after a restart
    assert again.counts("lzh-hall") == {"c": 2, "b": 1}
    assert json.loads(path.read_text("utf-8")) == {"city-hall": {"a": 1}, "lzh-hall": {"b": 1, "c": 2}}
    path.write_text("{not json", "utf-8")
    assert ServiceUsage(path).counts("lzh-hall") == {}   # unreadable: start from nothing, never fail


def test_start_on_the_kiosks_hall_then_an_offer_books_in_one_step(kiosk, call, platform_server, wait_for):
    flow = kiosk.core.booking
    kiosk.identify("zhang")
    start = call(flow.start)
    assert start.hall is not None and start.hall.code == kiosk.core.profile.kiosk.hall == "lzh-hall"
    assert {h.code for h in start.halls} >= {"lzh-hall", "city-hall"}     # "other hall" has them all
    assert start.services and [s.code for s in start.services] == [s.code for s in call(flow.services_at, start.hall)]
    every = {s.code for s in call(flow.services_at, start.hall)}

    chosen = start.services[-1]          # the last listed, to see it move up once booked
    offers = call(flow.offers, start.hall, chosen)
    days = call(flow.days, start.hall, chosen)
    expected = [(d.date, s.start) for d in days[:OFFER_DAYS] for s in d.slots[:OFFERS_PER_DAY]]
    assert offers and [(o.slot.date, o.slot.start) for o in offers] == expected
    assert all(o.hall.code == "lzh-hall" for o in offers)

    booked = call(flow.book, offers[0].hall, chosen, offers[0].slot)
    assert (booked.appointment.date, booked.appointment.start) == (offers[0].slot.date, offers[0].slot.start)
    assert platform_server.query("SELECT place_code, service_code, status FROM appointments WHERE appointment_no = ?",
                                 booked.appointment.appointment_no) == [("lzh-hall", chosen.code, "booked")]
    assert booked.print_error is None
    receipt = wait_for(lambda: (kiosk.receipts() or [None])[-1], what="the slip")
    assert booked.appointment.appointment_no in receipt["text"].split("\n") and receipt["qr"]

    # most used first: the service just booked now heads the hall's list; the counts hold no personal data
    reordered = call(flow.services_at, start.hall)
    assert reordered[0].code == chosen.code and {s.code for s in reordered} == every
    saved = (flow.usage.path).read_text("utf-8")
    assert json.loads(saved) == {"lzh-hall": {chosen.code: 1}} and "340302" not in saved

    # reversible: the booking page's "cancel this booking"
    assert call(flow.cancel, booked.appointment).status == "cancelled"


def test_no_home_hall_leaves_the_choice_to_the_citizen(make_harness, call):
    kiosk = make_harness(kiosk__hall="")
    kiosk.core.start_anonymous()
    start = kiosk.core.booking.start_now()
    assert start.hall is None and start.services == [] and start.halls
