"""Payment orders against the real server: one order per fee, confirm/cancel/query by the kiosk whose terminal
took the money, reconciliation, idempotency, and other kiosks and citizens kept out."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

WANG = "230202197511053015"
OTHER_KIOSK_ID = "KSK-340302-0009"
ORDERS = "/api/v1/payment-orders"
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="session")
def other_kiosk_keys(new_kiosk_key_pair: Callable[[str], Any]) -> Any:
    return new_kiosk_key_pair(OTHER_KIOSK_ID)


@pytest.fixture
def other_kiosk(platform: Any, other_kiosk_keys: Any) -> Iterator[httpx.Client]:
    """Another enrolled kiosk (its own key pair), signing its requests."""
    if not platform.query("SELECT id FROM kiosks WHERE id = :i", i=OTHER_KIOSK_ID):
        platform.execute("INSERT INTO kiosks (id, name, location, key_hash, active, created_at) "
                         "VALUES (:i, '9号机', '', '', :a, :c)", i=OTHER_KIOSK_ID, a=True,
                         c=dt.datetime(2026, 11, 1))
        platform.execute("INSERT INTO kiosk_keys (kiosk_id, key_id, public_key, created_at) VALUES (:i, :k, :p, :c)",
                         i=OTHER_KIOSK_ID, k=other_kiosk_keys.key_id, p=other_kiosk_keys.public_key_b64,
                         c=dt.datetime(2026, 11, 1))
    with httpx.Client(base_url=platform.url, timeout=10, auth=other_kiosk_keys.signer()) as client:
        yield client


@pytest.fixture
def filed(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
          renewal: Callable[..., dict[str, Any]]) -> Callable[[], tuple[dict[str, str], dict[str, Any]]]:
    """filed() → (王建国's session, a new driving-licence renewal with its pending 10-yuan order)."""

    def make() -> tuple[dict[str, str], dict[str, Any]]:
        auth = open_session(WANG)
        return auth, renewal(kiosk, auth, pickup="ems")

    return make


def confirm_body(order: dict[str, Any], txn: str = "T0001", **overrides: Any) -> dict[str, Any]:
    return {"method": "unionpay_card", "txn_ref": txn, "amount_fen": order["amount_fen"],
            "card_masked": "6222 **** **** 1234", **overrides}


def test_pay_an_order(kiosk: httpx.Client, public: httpx.Client, filed: Callable[..., Any],
                      idem: Callable[[], dict[str, str]]) -> None:
    auth, app = filed()
    (order,) = app["payment_orders"]
    no = order["order_no"]
    assert no.startswith("PO") and len(no) == 17 and order["status"] == "pending"
    assert dt.datetime.fromisoformat(order["expires_at"]) - dt.datetime.fromisoformat(order["created_at"]) == \
        dt.timedelta(minutes=30)
    assert kiosk.get(f"{ORDERS}/{no}").json() == order
    assert no in [o["order_no"] for o in kiosk.get("/api/v1/me/payment-orders", headers=auth).json()["items"]]
    r = kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(order, amount_fen=999))
    assert r.status_code == 422 and r.json()["error"]["code"] == "amount_mismatch"
    r = kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(order, txn="T100"))
    assert r.status_code == 200, r.text
    paid = r.json()
    assert paid["status"] == "paid" and paid["txn_ref"] == "T100" and paid["method"] == "unionpay_card"
    assert paid["paid_at"].endswith("+08:00")
    # the terminal's retry with a new key but the same transaction: the same paid order
    assert kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(order, txn="T100")).json() == paid
    r = kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(order, txn="T101"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_paid"
    r = kiosk.post(f"{ORDERS}/{no}/cancel", json={"reason": "citizen changed their mind"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_paid"
    note = public.post(f"/api/v1/applications/{app['number']}/lookup",
                       json={"id_last4": WANG[-4:]}).json()["timeline"][-1]["note"]
    assert "已缴纳机动车驾驶证工本费 10.00元（银联卡）" == note
    r = kiosk.post("/api/v1/me/payment-orders", headers={**auth, **idem()}, json={"application_number": app["number"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "fee_already_paid"


def test_cancel_then_a_new_order(kiosk: httpx.Client, filed: Callable[..., Any],
                                 idem: Callable[[], dict[str, str]]) -> None:
    auth, app = filed()
    (order,) = app["payment_orders"]
    no = order["order_no"]
    r = kiosk.post("/api/v1/me/payment-orders", headers={**auth, **idem()}, json={"application_number": app["number"]})
    assert r.status_code == 409 and r.json()["error"] == {
        "code": "order_pending", "message": "an order for this fee is still pending", "details": {"order_no": no}}
    cancelled = kiosk.post(f"{ORDERS}/{no}/cancel", json={"reason": "timeout at the terminal"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert kiosk.post(f"{ORDERS}/{no}/cancel", json={}).json() == cancelled.json()  # safe to repeat
    r = kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(order))
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_cancelled"
    new = kiosk.post("/api/v1/me/payment-orders", headers={**auth, **idem()},
                     json={"application_number": app["number"]})
    assert new.status_code == 201 and new.json()["order_no"] != no and new.json()["amount_fen"] == 1000
    mine = kiosk.get("/api/v1/me/payment-orders", headers=auth).json()["items"]
    statuses = {o["order_no"]: o["status"] for o in mine}
    assert statuses[no] == "cancelled" and statuses[new.json()["order_no"]] == "pending"


def test_concurrent_confirmations_pay_once(kiosk: httpx.Client, platform: Any, filed: Callable[..., Any],
                                           idem: Callable[[], dict[str, str]]) -> None:
    _auth, app = filed()
    (order,) = app["payment_orders"]
    headers = idem()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: kiosk.post(f"{ORDERS}/{order['order_no']}/confirm", headers=headers,
                                                     json=confirm_body(order, txn="T300")), range(6)))
    assert {a.status_code for a in answers} == {200} and len({a.json()["paid_at"] for a in answers}) == 1
    notes = platform.query("SELECT COUNT(*) FROM application_events e JOIN applications a ON a.id = e.application_id "
                           "WHERE a.number = :n AND e.note LIKE :p", n=app["number"], p="已缴纳%")
    assert notes == [(1,)]


def test_free_services_have_no_order(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                     idem: Callable[[], dict[str, str]]) -> None:
    r = kiosk.post("/api/v1/me/payment-orders", headers={**open_session("340302195803172018"), **idem()},
                   json={"application_number": "SP20261027000102"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_fee"


def test_other_kiosks_and_citizens_are_kept_out(kiosk: httpx.Client, other_kiosk: httpx.Client,
                                                filed: Callable[..., Any],
                                                open_synthetic: Callable[..., tuple[str, dict[str, str]]],
                                                idem: Callable[[], dict[str, str]]) -> None:
    _auth, app = filed()
    no = app["payment_orders"][0]["order_no"]
    for r in (other_kiosk.get(f"{ORDERS}/{no}"),
              other_kiosk.post(f"{ORDERS}/{no}/confirm", headers=idem(), json=confirm_body(app["payment_orders"][0])),
              other_kiosk.post(f"{ORDERS}/{no}/cancel", json={})):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    _id, stranger = open_synthetic(903)
    assert no not in [o["order_no"] for o in kiosk.get("/api/v1/me/payment-orders", headers=stranger).json()["items"]]
    r = kiosk.post("/api/v1/me/payment-orders", headers={**stranger, **idem()},
                   json={"application_number": app["number"]})
    assert r.status_code == 404
    assert kiosk.get(f"{ORDERS}/{no}").status_code == 200


def test_reconciliation_of_the_day(kiosk: httpx.Client, other_kiosk: httpx.Client, filed: Callable[..., Any],
                                   idem: Callable[[], dict[str, str]]) -> None:
    _a, paid_app = filed()
    _b, cancelled_app = filed()
    paid_order, cancelled_order = paid_app["payment_orders"][0], cancelled_app["payment_orders"][0]
    assert kiosk.post(f"{ORDERS}/{paid_order['order_no']}/confirm", headers=idem(),
                      json=confirm_body(paid_order, txn="T400")).status_code == 200
    assert kiosk.post(f"{ORDERS}/{cancelled_order['order_no']}/cancel", json={}).status_code == 200
    day = dt.datetime.fromisoformat(paid_order["created_at"]).astimezone(CST).date()
    r = kiosk.get("/api/v1/payment-reconciliation", params={"date": day.isoformat()})
    assert r.status_code == 200, r.text
    data = r.json()
    by_no = {o["order_no"]: o for o in data["items"]}
    assert by_no[paid_order["order_no"]]["status"] == "paid"
    assert by_no[cancelled_order["order_no"]]["status"] == "cancelled"
    paid = [o for o in data["items"] if o["status"] == "paid"]
    assert data["totals"]["paid_count"] == len(paid) and data["totals"]["paid_fen"] == sum(
        o["amount_fen"] for o in paid)
    assert data["totals"]["cancelled_count"] == sum(o["status"] == "cancelled" for o in data["items"])
    assert data["kiosk_id"] == "KSK-340302-0001" and data["date"] == day.isoformat()
    assert other_kiosk.get("/api/v1/payment-reconciliation", params={"date": day.isoformat()}).json()["items"] == []
    empty = kiosk.get("/api/v1/payment-reconciliation", params={"date": "2020-01-01"}).json()
    assert empty["items"] == [] and empty["totals"]["paid_fen"] == 0
    assert kiosk.get("/api/v1/payment-reconciliation").json()["error"]["code"] == "validation_failed"
