"""The kiosk's platform client against the real platform server: payment orders as the payment pad work will use
them (query, confirm, cancel), and the day's reconciliation."""
from __future__ import annotations

import os
import datetime as dt
from collections.abc import Iterator

import pytest

from kiosk.errors import PlatformRejected
from kiosk.platform_client import FiledApplication, MaterialRef, PlatformClient
from kiosk.request_signing import KioskRequestSigner

WANG = ("230202197511053015", "王建国")
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def client(platform_server) -> Iterator[PlatformClient]:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    c = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        yield c
    finally:
        c.close()


def renewal(client: PlatformClient) -> tuple[str, FiledApplication]:
    token = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
    certs = {c.type_code: c.id for c in client.my_e_certificates(token)}
    filed = client.file_application(
        token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                           "phone": "13905520004"},
        [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
         MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
    return token, filed


def test_pay_the_fee_of_a_filing(client: PlatformClient) -> None:
    token, filed = renewal(client)
    (order,) = filed.payment_orders
    assert order.amount_fen == 1000 and order.status == "pending" and order.payer_masked == "王*国"
    assert client.payment_order(order.order_no) == order
    paid = client.confirm_payment(order.order_no, "unionpay_card", "POS-0001", 1000, card_masked="6222 **** 1234")
    assert paid.status == "paid" and paid.txn_ref == "POS-0001"
    assert client.confirm_payment(order.order_no, "unionpay_card", "POS-0001", 1000).paid_at == paid.paid_at
    with pytest.raises(PlatformRejected) as refused:
        client.confirm_payment(order.order_no, "unionpay_card", "POS-0002", 1000)
    assert refused.value.platform_code == "already_paid" and refused.value.status == 409
    assert order.order_no in [o.order_no for o in client.my_payment_orders(token)]
    day = dt.datetime.fromisoformat(paid.paid_at).astimezone(CST).date()
    rec = client.reconciliation(day)
    assert order.order_no in [o.order_no for o in rec.items if o.status == "paid"]
    assert rec.paid_fen == sum(o.amount_fen for o in rec.items if o.status == "paid" and o.paid_at
                               and dt.datetime.fromisoformat(o.paid_at).astimezone(CST).date() == day)


def test_cancel_and_order_again(client: PlatformClient) -> None:
    token, filed = renewal(client)
    (order,) = filed.payment_orders
    with pytest.raises(PlatformRejected) as refused:
        client.confirm_payment(order.order_no, "wechat_pay", "WX-1", 999)
    assert refused.value.platform_code == "amount_mismatch"
    cancelled = client.cancel_payment(order.order_no, "citizen left the payment screen")
    assert cancelled.status == "cancelled" and client.cancel_payment(order.order_no) == cancelled
    again = client.create_payment_order(token, filed.number)
    assert again.order_no != order.order_no and again.status == "pending"
    with pytest.raises(PlatformRejected) as pending:
        client.create_payment_order(token, filed.number)
    assert pending.value.platform_code == "order_pending"
    assert pending.value.details == {"order_no": again.order_no}  # type: ignore[attr-defined]
