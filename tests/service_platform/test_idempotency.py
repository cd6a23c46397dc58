"""Every creating call, repeated concurrently with the same Idempotency-Key: one answer, one row (on SQLite and
PostgreSQL). Each case uses a made-up citizen of its own so the rows can be counted."""
from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

REPEATS = 5


def page() -> bytes:
    img = Image.new("RGB", (1200, 900), "white")
    ImageDraw.Draw(img).rectangle((100, 100, 1000, 500), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def race(kiosk: httpx.Client, path: str, headers: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    """POST the same request REPEATS times at once; all answers must be the same; return it."""
    with ThreadPoolExecutor(max_workers=REPEATS) as pool:
        answers = list(pool.map(lambda _: kiosk.post(path, headers=headers, **kwargs), range(REPEATS)))
    assert len({a.status_code for a in answers}) == 1 and answers[0].status_code in (200, 201), \
        [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == REPEATS - 1
    return answers[0].json()


class Citizen:
    def __init__(self, kiosk: httpx.Client, opener: Callable[..., tuple[str, dict[str, str]]], n: int,
                 idem: Callable[[], dict[str, str]]) -> None:
        self.kiosk, self.idem = kiosk, idem
        self.id_number, self.auth = opener(n)

    def upload(self) -> str:
        r = self.kiosk.post("/api/v1/me/uploads", content=page(),
                            headers={**self.auth, **self.idem(), "Content-Type": "image/jpeg"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def file(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.kiosk.post("/api/v1/me/applications", headers={**self.auth, **self.idem()}, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def file_renewal(self) -> dict[str, Any]:
        return self.file({"service_code": "id-card-renewal", "commitment": True,
                          "form": {"reason": "expiring", "phone": "13905520005", "pickup": "window"},
                          "materials": [{"index": 2, "defer": True}]})


def uploads(c: Citizen, platform: Any) -> None:
    race(c.kiosk, "/api/v1/me/uploads", {**c.auth, **c.idem(), "Content-Type": "image/jpeg"}, content=page())
    assert platform.query("SELECT COUNT(*) FROM uploads WHERE owner_id_number = :i", i=c.id_number) == [(1,)]


def applications(c: Citizen, platform: Any) -> None:
    race(c.kiosk, "/api/v1/me/applications", {**c.auth, **c.idem()},
         json={"service_code": "hukou-certificate", "form": {"purpose": "school", "copies": 1}})
    assert platform.query("SELECT COUNT(*) FROM applications WHERE applicant_id_number = :i",
                          i=c.id_number) == [(1,)]


def supplements(c: Citizen, platform: Any) -> None:
    number = c.file_renewal()["number"]
    filed = race(c.kiosk, f"/api/v1/me/applications/{number}/supplements", {**c.auth, **c.idem()},
                 json={"materials": [{"index": 2, "upload_ids": [c.upload()]}]})
    assert filed["outstanding"] == [] and filed["progress"]["status"] == "in_review"
    assert platform.query("SELECT COUNT(*) FROM application_events e JOIN applications a ON a.id = e.application_id "
                          "WHERE a.number = :n", n=number) == [(3,)]


def payment_orders(c: Citizen, platform: Any) -> None:
    filed = c.file_renewal()
    assert c.kiosk.post(f"/api/v1/payment-orders/{filed['payment_orders'][0]['order_no']}/cancel",
                        json={}).status_code == 200
    race(c.kiosk, "/api/v1/me/payment-orders", {**c.auth, **c.idem()}, json={"application_number": filed["number"]})
    assert platform.query("SELECT o.status FROM payment_orders o JOIN applications a ON a.id = o.application_id "
                          "WHERE a.number = :n ORDER BY o.id", n=filed["number"]) == [("cancelled",), ("pending",)]


def payment_confirmations(c: Citizen, platform: Any) -> None:
    order = c.file_renewal()["payment_orders"][0]
    paid = race(c.kiosk, f"/api/v1/payment-orders/{order['order_no']}/confirm", c.idem(),
                json={"method": "alipay", "txn_ref": f"ALI-{c.id_number[-6:]}", "amount_fen": order["amount_fen"]})
    assert paid["status"] == "paid"
    assert platform.query("SELECT COUNT(*) FROM application_events e JOIN applications a ON a.id = e.application_id "
                          "WHERE a.number = :n AND e.note LIKE :p", n=order["application_number"], p="已缴纳%") == [(1,)]


def appointments(c: Citizen, platform: Any) -> None:
    days = c.kiosk.get("/api/v1/halls/realestate-hall/slots").json()["days"]
    date, slot = next((d["date"], s) for d in reversed(days) for s in reversed(d["slots"]) if s["available"] >= 2)
    race(c.kiosk, "/api/v1/me/appointments", {**c.auth, **c.idem()},
         json={"hall_code": "realestate-hall", "service_code": "real-estate-transfer", "date": date,
               "start": slot["start"]})
    assert platform.query("SELECT COUNT(*) FROM appointments WHERE citizen_id_number = :i", i=c.id_number) == [(1,)]
    day = c.kiosk.get("/api/v1/halls/realestate-hall/slots", params={"date": date}).json()["days"][0]
    assert next(s for s in day["slots"] if s["start"] == slot["start"])["available"] == slot["available"] - 1


def queue_tickets(c: Citizen, platform: Any) -> None:
    race(c.kiosk, "/api/v1/queue-tickets", {**c.auth, **c.idem()},
         json={"hall_code": "marriage-office", "service_code": "marriage-record-query"})
    assert platform.query("SELECT COUNT(*) FROM queue_tickets WHERE citizen_id_number = :i", i=c.id_number) == [(1,)]


def deliveries(c: Citizen, platform: Any) -> None:
    number = c.file_renewal()["number"]
    version = c.kiosk.get("/api/v1/delivery-consent").json()["version"]
    race(c.kiosk, "/api/v1/me/deliveries", {**c.auth, **c.idem()}, json={
        "application_number": number, "consent": {"agreed": True, "version": version},
        "address": {"recipient_name": "测试员", "phone": "13905520006", "province": "安徽省", "city": "蚌埠市",
                    "district": "龙子湖区", "detail": "东海大道100号"}})
    assert platform.query("SELECT COUNT(*) FROM deliveries WHERE owner_id_number = :i", i=c.id_number) == [(1,)]


CASES = [uploads, applications, supplements, payment_orders, payment_confirmations, appointments, queue_tickets,
         deliveries]


@pytest.mark.parametrize("case", CASES, ids=[f.__name__ for f in CASES])
def test_concurrent_repeats(case: Callable[[Citizen, Any], None], kiosk: httpx.Client, platform: Any,
                            open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                            idem: Callable[[], dict[str, str]]) -> None:
    citizen = Citizen(kiosk, open_synthetic, 500 + CASES.index(case), idem)
    case(citizen, platform)
