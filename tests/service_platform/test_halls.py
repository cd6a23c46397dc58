"""Halls, appointment slots and queue tickets against the real server (the clock-dependent rules are in
test_clocked.py)."""
from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

ZHANG = "340302195803172018"


def test_halls_are_public_with_their_queues(public: httpx.Client) -> None:
    halls = {h["code"]: h for h in public.get("/api/v1/halls").json()["items"]}
    assert {"city-hall", "lzh-hall", "dongfeng-street", "police-hukou", "dmv"} <= set(halls)
    city = halls["city-hall"]
    assert city["name"] == "蚌埠市政务服务中心" and city["address"] and city["slot_minutes"] == 30
    assert [q["prefix"] for q in city["queues"]] == ["A", "B", "C", "D"] and city["queues"][0]["windows"]


def test_slots_of_the_booking_window(public: httpx.Client) -> None:
    data = public.get("/api/v1/halls/dongfeng-street/slots", params={"service_code": "senior-card"}).json()
    assert data["hall_code"] == "dongfeng-street" and len(data["days"]) == 8  # today + 7 days
    open_days = [d for d in data["days"] if d["slots"]]
    assert open_days
    for day in data["days"]:
        starts = [s["start"] for s in day["slots"]]
        assert starts == sorted(starts)
        for s in day["slots"]:
            assert 0 <= s["available"] <= s["capacity"] == 2 and s["starts_at"].startswith(day["date"])
    one = public.get("/api/v1/halls/dongfeng-street/slots", params={"date": open_days[-1]["date"]}).json()
    assert [d["date"] for d in one["days"]] == [open_days[-1]["date"]]
    r = public.get("/api/v1/halls/dongfeng-street/slots", params={"date": "2020-01-01"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "date_out_of_range"
    r = public.get("/api/v1/halls/dmv/slots", params={"service_code": "senior-card"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "service_not_at_hall"
    assert public.get("/api/v1/halls/nowhere/slots").status_code == 404


def free_slot(public: httpx.Client, hall: str, service: str) -> tuple[str, str, int]:
    """The last completely free slot of the window (date, start, capacity)."""
    days = public.get(f"/api/v1/halls/{hall}/slots", params={"service_code": service}).json()["days"]
    for day in reversed(days):
        for slot in reversed(day["slots"]):
            if slot["available"] == slot["capacity"]:
                return day["date"], slot["start"], slot["capacity"]
    raise AssertionError("no free slot left in the window")


def test_concurrent_bookings_never_overfill_a_slot(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                                  open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                                                  idem: Callable[[], dict[str, str]]) -> None:
    date, start, capacity = free_slot(public, "dongfeng-street", "senior-card")
    sessions = [open_synthetic(910 + i)[1] for i in range(6)]
    body = {"hall_code": "dongfeng-street", "service_code": "senior-card", "date": date, "start": start}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda auth: kiosk.post("/api/v1/me/appointments", headers={**auth, **idem()},
                                                        json=body), sessions))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * capacity + [409] * (6 - capacity), [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"slot_full"}
    assert platform.query("SELECT booked, capacity FROM appointment_slots WHERE place_code = 'dongfeng-street' "
                          "AND day = :d AND start = :s", d=date, s=start) == [(capacity, capacity)]
    day = public.get("/api/v1/halls/dongfeng-street/slots", params={"date": date}).json()["days"][0]
    assert next(s for s in day["slots"] if s["start"] == start)["available"] == 0


def test_book_list_cancel_and_others_cannot(kiosk: httpx.Client, public: httpx.Client,
                                            open_session: Callable[[str], dict[str, str]],
                                            open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                                            idem: Callable[[], dict[str, str]]) -> None:
    date, start, _cap = free_slot(public, "city-hall", "hpf-withdrawal")
    auth = open_session(ZHANG)
    body = {"hall_code": "city-hall", "service_code": "hpf-withdrawal", "date": date, "start": start}
    key = idem()
    r = kiosk.post("/api/v1/me/appointments", headers={**auth, **key}, json=body)
    assert r.status_code == 201, r.text
    booked = r.json()
    assert booked["appointment_no"].startswith("AP") and booked["status"] == "booked"
    assert (booked["date"], booked["start"], booked["hall_name"]) == (date, start, "蚌埠市政务服务中心")
    assert kiosk.post("/api/v1/me/appointments", headers={**auth, **key}, json=body).json() == booked
    again = kiosk.post("/api/v1/me/appointments", headers={**auth, **idem()}, json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "appointment_exists"
    assert booked["appointment_no"] in [a["appointment_no"] for a in
                                        kiosk.get("/api/v1/me/appointments", headers=auth).json()["items"]]
    _id, stranger = open_synthetic(920)
    no = booked["appointment_no"]
    assert kiosk.post(f"/api/v1/me/appointments/{no}/cancel", headers=stranger).status_code == 404
    assert no not in json.dumps(kiosk.get("/api/v1/me/appointments", headers=stranger).json())
    r = kiosk.post(f"/api/v1/me/appointments/{no}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert kiosk.post(f"/api/v1/me/appointments/{no}/cancel", headers=auth).json() == r.json()
    day = public.get("/api/v1/halls/city-hall/slots", params={"date": date}).json()["days"][0]
    assert next(s for s in day["slots"] if s["start"] == start)["available"] == 4
    r = kiosk.post("/api/v1/me/appointments", headers={**auth, **idem()}, json={**body, "start": "03:00"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "slot_unavailable"


def test_queue_tickets_count_up_per_queue(kiosk: httpx.Client, public: httpx.Client,
                                          open_session: Callable[[str], dict[str, str]],
                                          idem: Callable[[], dict[str, str]]) -> None:
    body = {"hall_code": "city-hall", "service_code": "hpf-withdrawal"}
    first = kiosk.post("/api/v1/queue-tickets", headers=idem(), json=body)
    assert first.status_code == 201, first.text
    second = kiosk.post("/api/v1/queue-tickets", headers={**idem(), **open_session(ZHANG)}, json=body)
    a, b = first.json(), second.json()
    assert a["queue_name"] == "公积金业务" and a["ticket_no"].startswith("B") and a["windows"] == ["B01", "B02"]
    if a["service_date"] == b["service_date"]:
        assert int(b["ticket_no"][1:]) == int(a["ticket_no"][1:]) + 1
        assert b["waiting_before"] == a["waiting_before"] + 1
    assert a["hall_open_now"] == (a["next_open_at"] is None)
    general = kiosk.post("/api/v1/queue-tickets", headers=idem(),
                         json={"hall_code": "city-hall", "service_code": "social-security-card-apply"}).json()
    assert general["ticket_no"].startswith("A") and general["queue_name"] == "综合受理"
    shown = public.get(f"/api/v1/queue-tickets/{b['id']}")
    assert shown.status_code == 200 and shown.json()["ticket_no"] == b["ticket_no"]
    assert "张" not in shown.text and ZHANG not in shown.text
    assert public.get("/api/v1/queue-tickets/qt_nope").status_code == 404
    r = kiosk.post("/api/v1/queue-tickets", headers=idem(), json={"hall_code": "dmv", "service_code": "senior-card"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "service_not_at_hall"
    assert public.post("/api/v1/queue-tickets", headers=idem(), json=body).status_code == 401
