"""Rules that depend on the time, in-process with a settable clock, on SQLite and PostgreSQL: appointment and
check-in windows, ticket numbers per day and closed halls, order expiry, delivery tracking, requests sent later
from a kiosk's outbox (X-Captured-At), and upgrading a database created before these features."""
from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx in its test client
    from fastapi.testclient import TestClient

from sqlalchemy import func, select

from service_platform.app import create_app
from service_platform.db import Base
from service_platform.models import Application, ApplicationEvent, QueueTicket
from service_platform.numbering import is_valid_number
from service_platform.seed.loader import seed_if_empty

CST = dt.timezone(dt.timedelta(hours=8))
WANG, CHEN, LI = "230202197511053015", "520302199002144027", "35010219490822102X"
NAMES = {WANG: "王建国", CHEN: "陈静怡", LI: "李秀英"}


def cst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST).astimezone(dt.timezone.utc)


@pytest.fixture(scope="module")
def clock(clock_factory: Any) -> Any:
    return clock_factory()


@pytest.fixture(scope="module")
def client(backend: str, new_db_url: Callable[[str], str], clock: Any, kiosk_key_pair: Any,
           kiosk_auth: Any) -> Iterator[TestClient]:
    app = create_app(new_db_url(backend), clock=clock, demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes())
    with TestClient(app) as c:
        c.auth = kiosk_auth
        yield c


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def login(client: TestClient, id_number: str) -> dict[str, str]:
    r = client.post("/api/v1/citizen-sessions", json={"id_number": id_number, "name": NAMES[id_number],
                                                      "document_kind": "resident_id",
                                                      "verification": {"method": "card+face", "face_match": True}})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_appointment_and_check_in_windows(client: TestClient, clock: Any) -> None:
    clock.now = cst(2026, 11, 2, 7, 30)  # Monday, before the hall opens
    auth = login(client, LI)
    book = {"hall_code": "dongfeng-street", "service_code": "senior-card", "date": "2026-11-02", "start": "09:00"}
    r = client.post("/api/v1/me/appointments", headers={**auth, **idem()}, json=book)
    assert r.status_code == 201, r.text
    no = r.json()["appointment_no"]
    assert is_valid_number(no, "appointment") and no.startswith("AP20261102")  # random part + check digit
    assert r.json()["starts_at"] == "2026-11-02T09:00:00+08:00"
    for date, start in (("2026-11-01", "09:00"), ("2026-11-08", "09:00"), ("2026-11-10", "09:00"),
                        ("2026-11-02", "12:00")):  # closed Sunday, closed Sunday, beyond 7 days, lunch break
        r = client.post("/api/v1/me/appointments", headers={**auth, **idem()},
                        json={**book, "date": date, "start": start})
        assert r.status_code == 422 and r.json()["error"]["code"] in ("slot_unavailable",), (date, r.text)
    check_in = f"/api/v1/me/appointments/{no}/check-in"
    r = client.post(check_in, headers={**auth, **idem()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_check_in_time"
    clock.now = cst(2026, 11, 2, 8, 30)
    auth = login(client, LI)
    key = idem()
    with ThreadPoolExecutor(max_workers=4) as pool:  # concurrent repeats of the check-in: one ticket
        answers = list(pool.map(lambda _: client.post(check_in, headers={**auth, **key}), range(4)))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    r = answers[0]
    ticket = r.json()
    assert ticket["ticket_no"] == "A001" and ticket["appointment_no"] == no and ticket["service_date"] == "2026-11-02"
    assert ticket["hall_open_now"] is True and ticket["next_open_at"] is None
    assert client.post(check_in, headers={**auth, **key}).json() == ticket
    r = client.post(check_in, headers={**auth, **idem()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_checked_in"
    with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        assert db.scalar(select(func.count()).select_from(QueueTicket).where(QueueTicket.appointment_no == no)) == 1
    listed = client.get("/api/v1/me/appointments", headers=auth).json()["items"][0]
    assert listed["status"] == "checked_in" and listed["ticket_id"] == ticket["id"]
    later = client.post("/api/v1/me/appointments", headers={**auth, **idem()}, json={**book, "start": "10:00"})
    assert later.status_code == 201
    clock.now = cst(2026, 11, 2, 10, 5)
    r = client.post(f"/api/v1/me/appointments/{later.json()['appointment_no']}/cancel", headers=login(client, LI))
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_late"
    r = client.get("/api/v1/halls/dongfeng-street/slots", params={"date": "2026-11-02"}).json()
    assert r["days"][0]["slots"][0]["start"] == "10:30"  # started slots are not offered


def test_ticket_numbers_per_day_and_closed_halls(client: TestClient, clock: Any) -> None:
    body = {"hall_code": "lzh-hall", "service_code": "social-security-card-apply"}
    clock.now = cst(2026, 11, 3, 10, 0)  # Tuesday, open
    a = client.post("/api/v1/queue-tickets", headers=idem(), json=body).json()
    b = client.post("/api/v1/queue-tickets", headers=idem(), json=body).json()
    assert (a["ticket_no"], b["ticket_no"]) == ("A001", "A002")
    assert (a["waiting_before"], b["waiting_before"]) == (0, 1) and a["service_date"] == "2026-11-03"
    clock.now = cst(2026, 11, 3, 18, 30)  # closed for the day: the ticket is for tomorrow
    c = client.post("/api/v1/queue-tickets", headers=idem(), json=body).json()
    assert (c["ticket_no"], c["service_date"], c["hall_open_now"]) == ("A001", "2026-11-04", False)
    assert c["next_open_at"] == "2026-11-04T09:00:00+08:00"
    clock.now = cst(2026, 11, 6, 17, 30)  # Friday evening: lzh-hall opens again on Monday
    d = client.post("/api/v1/queue-tickets", headers=idem(), json=body).json()
    assert (d["service_date"], d["next_open_at"]) == ("2026-11-09", "2026-11-09T09:00:00+08:00")
    assert client.get(f"/api/v1/queue-tickets/{a['id']}").json()["waiting_before"] == 0


def test_orders_expire_and_a_late_payment_still_counts(client: TestClient, clock: Any,
                                                       renewal: Callable[..., dict[str, Any]]) -> None:
    clock.now = cst(2026, 11, 4, 10, 0)
    auth = login(client, WANG)
    app = renewal(client, auth)
    old = app["payment_orders"][0]
    assert old["expires_at"] == "2026-11-04T10:30:00+08:00"
    clock.now = cst(2026, 11, 4, 10, 30)
    assert client.get(f"/api/v1/payment-orders/{old['order_no']}").json()["status"] == "expired"
    auth = login(client, WANG)
    new = client.post("/api/v1/me/payment-orders", headers={**auth, **idem()},
                      json={"application_number": app["number"]})
    assert new.status_code == 201 and new.json()["status"] == "pending"
    # the terminal did take the money for the expired order: it counts, and the new order can no longer be paid
    pay = {"method": "wechat_pay", "txn_ref": "W1", "amount_fen": 1000}
    r = client.post(f"/api/v1/payment-orders/{old['order_no']}/confirm", headers=idem(), json=pay)
    assert r.status_code == 200 and r.json()["status"] == "paid" and r.json()["paid_at"] == "2026-11-04T10:30:00+08:00"
    r = client.post(f"/api/v1/payment-orders/{new.json()['order_no']}/confirm", headers=idem(),
                    json={**pay, "txn_ref": "W2"})
    assert r.status_code == 409 and r.json()["error"] == {
        "code": "fee_already_paid", "message": "this fee was paid through another order; reverse the payment",
        "details": {"order_no": old["order_no"]}}
    rec = client.get("/api/v1/payment-reconciliation", params={"date": "2026-11-04"}).json()
    assert [(o["order_no"], o["status"]) for o in rec["items"]] == [(old["order_no"], "paid"),
                                                                    (new.json()["order_no"], "pending")]
    assert rec["totals"] == {"paid_count": 1, "paid_fen": 1000, "cancelled_count": 0, "pending_count": 1,
                             "expired_count": 0}


def test_delivery_tracking_follows_the_application(client: TestClient, clock: Any) -> None:
    start = cst(2026, 11, 5, 9, 0)
    clock.now = start
    auth = login(client, CHEN)
    r = client.post("/api/v1/me/applications", headers={**auth, **idem()},
                    json={"service_code": "hukou-certificate", "form": {"purpose": "housing", "copies": 1}})
    number = r.json()["number"]
    address = {"recipient_name": "陈静怡", "phone": "13905520003", "province": "安徽省", "city": "蚌埠市",
               "district": "龙子湖区", "detail": "淮河路168号2栋301室"}
    r = client.post("/api/v1/me/deliveries", headers={**auth, **idem()}, json={
        "application_number": number, "address": address,
        "consent": {"agreed": True, "version": client.get("/api/v1/delivery-consent").json()["version"]}})
    assert r.status_code == 201, r.text
    delivery_no = r.json()["delivery_no"]
    assert r.json()["tracking"][0]["note"] == "已登记寄送信息，办结后交寄"
    with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]  # the department decides (back office)
        app = db.scalar(select(Application).where(Application.number == number))
        app.status = "decided"
        db.add(ApplicationEvent(application_id=app.id, status="decided", at=start + dt.timedelta(hours=1),
                                department=app.department, note="证明已出具"))
        db.commit()
    expected = [(dt.timedelta(hours=2, minutes=59), "awaiting_item"), (dt.timedelta(hours=3), "posted"),
                (dt.timedelta(hours=7), "in_transit"), (dt.timedelta(hours=25), "out_for_delivery"),
                (dt.timedelta(hours=31), "delivered")]
    for offset, status in expected:
        clock.now = start + offset
        data = client.get(f"/api/v1/me/deliveries/{delivery_no}", headers=login(client, CHEN)).json()
        assert data["status"] == status, offset
    assert [t["status"] for t in data["tracking"]] == ["awaiting_item", "posted", "in_transit", "out_for_delivery",
                                                       "delivered"]


def test_requests_from_the_outbox_carry_their_capture_time(client: TestClient, clock: Any) -> None:
    opened = cst(2026, 11, 5, 14, 0)
    clock.now = opened
    auth = login(client, CHEN)
    clock.now = opened + dt.timedelta(minutes=5)
    assert client.delete("/api/v1/citizen-sessions/current", headers=auth).status_code == 204
    body = {"service_code": "hukou-certificate", "form": {"purpose": "school", "copies": 1}}

    def send(captured: dt.datetime | str) -> Any:
        value = captured if isinstance(captured, str) else captured.astimezone(CST).isoformat()
        return client.post("/api/v1/me/applications", headers={**auth, **idem(), "X-Captured-At": value}, json=body)

    clock.now = opened + dt.timedelta(hours=2)  # the platform was unreachable; the kiosk's outbox sends it now
    r = send(opened + dt.timedelta(minutes=3))
    assert r.status_code == 201, r.text
    assert r.json()["progress"]["submitted_at"] == "2026-11-05T14:03:00+08:00"
    assert r.json()["number"].startswith("SP20261105")
    for captured, status, code in ((opened - dt.timedelta(minutes=1), 401, "session_expired"),
                                   (opened + dt.timedelta(minutes=6), 401, "session_expired"),  # after it ended
                                   (opened + dt.timedelta(hours=3), 422, "captured_at_out_of_range"),  # future
                                   ("yesterday", 422, "validation_failed"),
                                   ("2026-11-05T14:03:00", 422, "validation_failed")):  # no offset
        r = send(captured)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), captured
    clock.now = opened + dt.timedelta(hours=73)
    r = send(opened + dt.timedelta(minutes=3))
    assert r.status_code == 422 and r.json()["error"]["code"] == "captured_at_out_of_range"
    r = client.post("/api/v1/me/applications", headers={**auth, **idem()}, json=body)  # no capture time: now counts
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"


NEW_PARTS = ("deliveries", "application_materials", "application_filings", "uploads", "payment_orders",
             "queue_tickets", "appointments", "appointment_slots", "hall_queues", "halls", "e_certificates",
             "e_certificate_types", "registered_citizens", "service_filing_rules", "counters")


def test_a_database_from_before_gets_the_new_parts(backend: str, new_db_url: Callable[[str], str],
                                                   kiosk_key_pair: Any, kiosk_auth: Any) -> None:
    url = new_db_url(backend)
    key = kiosk_key_pair.public_key_file.read_bytes()
    app = create_app(url, demo=True, demo_kiosk_public_key=key)
    engine = app.state.engine
    Base.metadata.drop_all(engine, tables=[Base.metadata.tables[t] for t in NEW_PARTS])  # as the first release left it
    engine.dispose()
    upgraded = create_app(url, demo=True, demo_kiosk_public_key=key)
    with upgraded.state.sessionmaker() as db:
        assert seed_if_empty(db, demo=True, demo_kiosk_public_key=key).seeded is False  # everything is there now
    with TestClient(upgraded) as c:
        c.auth = kiosk_auth
        assert c.get("/api/v1/services/id-card-renewal").json()["form_schema"]["type"] == "object"
        assert len(c.get("/api/v1/halls").json()["items"]) == 9
        assert len(c.get("/api/v1/me/e-certificates", headers=login(c, WANG)).json()["items"]) == 4
        assert c.get("/api/v1/services", params={"limit": 100}).json()["total"] == 39  # nothing seeded twice
    upgraded.state.engine.dispose()
