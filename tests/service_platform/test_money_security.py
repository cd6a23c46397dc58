"""Money and guessable numbers, from a hostile caller's side, against the real ``service-platform serve``:

* the cashier (``PUT /api/v1/cashier/{no}/payment``) accepts only notifications signed by the payment provider's
  Ed25519 key (tests/conftest.py ``wallet``): unsigned, signed by another key, tampered, stale, replayed (also to a
  fresh server process on the same database) — all refused, the order stays as it was;
* order and application numbers carry a random part and a check digit: the next one is not the last one + 1;
* progress by number alone shows the state only; the timeline needs the applicant's ID number's last 4, and wrong
  guesses are 404 like unknown numbers, then 429 for the address.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.payment.wallet_sim import WalletSim
from drivers.payment.wallet_sim import canonical_string as wallet_canonical
from service_platform.numbering import is_valid_number, luhn_check_digit
from service_platform.payment_provider import canonical_string as platform_canonical

WANG = "230202197511053015"
CASHIER = "/api/v1/cashier/{}/payment"


@pytest.fixture
def filed(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
          renewal: Callable[..., dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """filed() → a new driving-licence renewal of 王建国 with its pending 10-yuan order."""
    return lambda: renewal(kiosk, open_session(WANG))


def order_status(kiosk: httpx.Client, order_no: str) -> str:
    r = kiosk.get(f"/api/v1/payment-orders/{order_no}")
    assert r.status_code == 200, r.text
    return r.json()["status"]


def code(r: httpx.Response) -> str:
    return r.json()["error"]["code"]


def test_both_sides_sign_the_same_string() -> None:
    args = ("PO202611024718263", 1000, "CNY", "wechat_pay", "WX0123456789abcdef", 1793500000, "n" * 16)
    assert wallet_canonical(*args) == platform_canonical(*args)
    assert wallet_canonical(*args).split("\n")[0] == "cashier-payment-v1"


def test_unsigned_and_badly_signed_notifications_are_refused(public: httpx.Client, kiosk: httpx.Client,
                                                             filed: Callable[[], dict[str, Any]],
                                                             wallet: WalletSim) -> None:
    (order,) = filed()["payment_orders"]
    no, amount = order["order_no"], order["amount_fen"]
    url = CASHIER.format(no)
    body, headers = wallet.notification(no, amount)
    # the old way: just say which wallet paid
    r = public.put(url, json={"method": "wechat_pay"})
    assert r.status_code == 422, r.text
    # a complete notification without a signature, and with a malformed one
    assert code(r := public.put(url, json=body)) == "signature_required" and r.status_code == 401
    for bad in ("", "v1=", "v1=not-base64!!", "v2=" + headers["X-Provider-Signature"][3:], "v1=AAAA"):
        r = public.put(url, json=body, headers={"X-Provider-Signature": bad})
        assert r.status_code == 401 and code(r) == "signature_required", (bad, r.text)
    # signed by a key the platform does not trust (an attacker's own "provider")
    forged_body, forged = WalletSim().notification(no, amount)
    r = public.put(url, json=forged_body, headers=forged)
    assert r.status_code == 401 and code(r) == "signature_invalid"
    # the kiosk's credentials are no provider signature either
    r = kiosk.put(url, json=body)
    assert r.status_code == 401 and code(r) == "signature_required"
    # tampered after signing: a smaller amount, another method, another order, a later time
    for field, value in (("amount_fen", 1), ("method", "alipay"), ("provider_txn_id", "WXforged00000"),
                         ("timestamp", body["timestamp"] + 1), ("nonce", "x" * 20)):
        r = public.put(url, json={**body, field: value}, headers=headers)
        assert r.status_code == 401 and code(r) == "signature_invalid", field
    assert order_status(kiosk, no) == "pending"
    # the genuine notification still works (nothing above used it up)
    r = public.put(url, json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid" and r.json()["txn_ref"] == body["provider_txn_id"]


def test_amount_order_and_time_must_match(public: httpx.Client, kiosk: httpx.Client,
                                         filed: Callable[[], dict[str, Any]], wallet: WalletSim) -> None:
    (order,) = filed()["payment_orders"]
    (other,) = filed()["payment_orders"]
    no, amount = order["order_no"], order["amount_fen"]
    # signed by the provider, but for less than the order
    body, headers = wallet.notification(no, amount - 1)
    r = public.put(CASHIER.format(no), json=body, headers=headers)
    assert r.status_code == 422 and code(r) == "amount_mismatch"
    # a genuine notification for one order sent to another order's cashier
    body, headers = wallet.notification(other["order_no"], amount)
    r = public.put(CASHIER.format(no), json=body, headers=headers)
    assert r.status_code == 422 and code(r) == "order_mismatch"
    # signed too long ago / too far in the future (±300 s)
    for skew in (-301, 301, -3600):
        body, headers = wallet.notification(no, amount, timestamp=int(time.time()) + skew)
        r = public.put(CASHIER.format(no), json=body, headers=headers)
        assert r.status_code == 422 and code(r) == "timestamp_out_of_range", skew
    assert order_status(kiosk, no) == "pending" and order_status(kiosk, other["order_no"]) == "pending"
    body, headers = wallet.notification(no, amount, timestamp=int(time.time()) - 200)   # within the window
    assert public.put(CASHIER.format(no), json=body, headers=headers).status_code == 200
    assert order_status(kiosk, no) == "paid"


def test_a_replayed_notification_is_refused(public: httpx.Client, kiosk: httpx.Client, platform: Any,
                                            filed: Callable[[], dict[str, Any]], wallet: WalletSim,
                                            start_server: Callable[..., Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (order,) = filed()["payment_orders"]
    no, amount = order["order_no"], order["amount_fen"]
    body, headers = wallet.notification(no, amount)
    first = public.put(CASHIER.format(no), json=body, headers=headers)
    assert first.status_code == 200, first.text
    # byte for byte the same request again
    again = public.put(CASHIER.format(no), json=body, headers=headers)
    assert again.status_code == 409 and code(again) == "notification_replayed"
    assert again.json()["error"]["details"] == {"order_no": no, "outcome": "paid"}
    # the same transaction id re-signed with a new nonce, the same nonce with a new transaction id
    (second,) = filed()["payment_orders"]
    for reuse in ({"provider_txn_id": body["provider_txn_id"]}, {"nonce": body["nonce"]}):
        b, h = wallet.notification(second["order_no"], amount, **reuse)
        r = public.put(CASHIER.format(second["order_no"]), json=b, headers=h)
        assert r.status_code == 409 and code(r) == "notification_replayed", reuse
    assert order_status(kiosk, second["order_no"]) == "pending"
    # a refused notification uses up its transaction id too
    b, h = wallet.notification(second["order_no"], amount + 5)
    assert code(public.put(CASHIER.format(second["order_no"]), json=b, headers=h)) == "amount_mismatch"
    b2, h2 = wallet.notification(second["order_no"], amount, provider_txn_id=b["provider_txn_id"])
    assert code(public.put(CASHIER.format(second["order_no"]), json=b2, headers=h2)) == "notification_replayed"
    # the used ids are in the database: a fresh server process on the same database (as after a restart) refuses
    # the replay too; it trusts the provider's key from a file this time (--payment-provider-key)
    pub = tmp_path / "provider.pub"
    pub.write_text(wallet.public_pem, "ascii")
    monkeypatch.delenv("PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY")
    db = platform.db_url or f"sqlite:///{platform.db_path}"
    fresh = start_server(db, "--payment-provider-key", str(pub), stderr_path=tmp_path / "fresh.log")
    try:
        r = httpx.put(fresh.url + CASHIER.format(no), json=body, headers=headers, timeout=10)
        assert r.status_code == 409 and code(r) == "notification_replayed", r.text
        b, h = wallet.notification(second["order_no"], amount)        # and it does accept a new notification
        r = httpx.put(fresh.url + CASHIER.format(second["order_no"]), json=b, headers=h, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    finally:
        fresh.stop()


def test_new_numbers_are_not_predictable(kiosk: httpx.Client, filed: Callable[[], dict[str, Any]]) -> None:
    first, second = filed(), filed()
    for kind, a, b in (("application", first["number"], second["number"]),
                       ("order", first["payment_orders"][0]["order_no"], second["payment_orders"][0]["order_no"])):
        assert is_valid_number(a, kind) and is_valid_number(b, kind), (a, b)
        assert len(a) == 17 and a[2:10] == b[2:10]                  # readable: prefix + day …
        serial_a, serial_b = int(a[10:16]), int(b[10:16])          # … but the rest is random
        assert serial_b != serial_a + 1 and serial_a != serial_b, (a, b)
        assert luhn_check_digit(a[2:16]) == a[16]
        for pos in range(2, 16):                                    # any one mistyped digit is caught
            typo = a[:pos] + str((int(a[pos]) + 7) % 10) + a[pos + 1:]
            assert not is_valid_number(typo, kind), typo
    assert first["number"][:2] == "SP" and first["payment_orders"][0]["order_no"][:2] == "PO"


def test_progress_by_number_alone_shows_the_state_only(public: httpx.Client,
                                                       seeded_application: tuple[str, str, str]) -> None:
    id_number, name, number = seeded_application
    r = public.get(f"/api/v1/applications/{number}")
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) == {"number", "status", "status_text_zh", "status_text_en", "updated_at"}
    assert name[0] + "*" not in r.text and name not in r.text and id_number[-4:] not in r.text
    full = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": id_number[-4:].lower()})
    assert full.status_code == 200, full.text
    detail = full.json()
    assert detail["applicant_masked"] == name[0] + "*" + name[-1] and name not in full.text
    assert detail["service_name"] and detail["timeline"] and detail["timeline"][-1]["status"] == data["status"]
    assert detail["timeline"][-1]["at"] == data["updated_at"]


def test_a_new_application_by_number(public: httpx.Client, filed: Callable[[], dict[str, Any]]) -> None:
    number = filed()["number"]
    assert set(public.get(f"/api/v1/applications/{number}").json()) == {
        "number", "status", "status_text_zh", "status_text_en", "updated_at"}
    r = public.post(f"/api/v1/applications/{number}/lookup", json={"id_last4": WANG[-4:]})
    assert r.status_code == 200 and r.json()["service_code"] == "driving-licence-renewal"
    assert [e["status"] for e in r.json()["timeline"]] == ["received", "accepted"]


def test_bad_last4_is_a_validation_error(public: httpx.Client) -> None:
    for bad in ("12", "12345", "X123", "abcd", ""):
        r = public.post("/api/v1/applications/SP20261027000102/lookup", json={"id_last4": bad})
        assert r.status_code == 422, bad


@pytest.fixture
def keyless_server(start_server: Callable[..., Any], new_db_url: Callable[[str], str], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Its own platform (the throttle counts per address: the shared one must not be locked out), started
    without any payment provider key."""
    monkeypatch.delenv("PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY")
    server = start_server(new_db_url("sqlite"), stderr_path=tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


def test_wrong_last4_is_not_found_then_throttled(keyless_server: Any, citizens: dict[str, Any],
                                                 wallet: WalletSim) -> None:
    numbers = {n: id_number for id_number, (_name, apps) in citizens.items() for n in apps}
    (number, id_number), (other, other_id) = list(numbers.items())[:2]
    wrong = "0000" if id_number[-4:] != "0000" else "1111"
    with httpx.Client(base_url=keyless_server.url, timeout=10) as client:
        def lookup(n: str, last4: str) -> httpx.Response:
            return client.post(f"/api/v1/applications/{n}/lookup", json={"id_last4": last4})

        unknown = lookup("SP20990101999999", id_number[-4:])
        wrong_answer = lookup(number, wrong)
        assert unknown.status_code == wrong_answer.status_code == 404
        assert code(unknown) == code(wrong_answer) == "not_found"
        assert lookup(number, id_number[-4:]).status_code == 200          # right answers do not count
        assert lookup(other, id_number[-4:] if id_number[-4:] != other_id[-4:] else wrong).status_code == 404
        for _ in range(7):
            assert lookup(number, wrong).status_code == 404
        # 10 failures within 10 minutes: everything from this address is refused now, right answers included
        limited = lookup(number, wrong)
        assert limited.status_code == 429 and code(limited) == "too_many_attempts"
        assert 0 < int(limited.headers["Retry-After"]) <= 600
        assert lookup(number, id_number[-4:]).status_code == 429
        # the state-only view is not a lookup: it stays available
        assert client.get(f"/api/v1/applications/{number}").status_code == 200
        # no payment provider key configured: the cashier refuses everything, signed or not
        body, headers = wallet.notification("PO20261102000001", 1000)
        for h in (headers, {}):
            r = client.put(CASHIER.format("PO20261102000001"), json=body, headers=h)
            assert r.status_code == 503 and code(r) == "payment_provider_not_configured"
