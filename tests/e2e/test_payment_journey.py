"""Paying a fee on the real window: menu → 缴费 → order number on the keypad → amount, purpose
and payee shown and spoken → bank card on the pad simulator → "缴费成功" and the voucher in the printer emulator
(its QR decodes) → the platform has the order paid. And a declined card: "本次未扣款" with a reference, then the
same order paid with the phone (the QR on screen decodes to the platform cashier). Real X clicks under Xvfb, real
simulators started by the kiosk from the profile, the real platform."""
from __future__ import annotations

import os
from typing import Any, Callable

import pytest

from drivers.sim.control import send_command
from kiosk.platform_client import MaterialRef, PaymentOrder, PlatformClient
from kiosk.request_signing import KioskRequestSigner
from tests.qr_reading import read_qr

pytestmark = pytest.mark.e2e

WANG = ("230202197511053015", "王建国")
FAST_PAD = {"card_s": 0.3, "pin_s": 0.5, "host_s": 0.3}


def new_order(url: str) -> PaymentOrder:
    """A driving-licence renewal filed at this kiosk (fee 10 yuan): its pending payment order."""
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        token = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
        certs = {c.type_code: c.id for c in client.my_e_certificates(token)}
        filed = client.file_application(
            token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                               "phone": "13905520004"},
            [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
             MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
        return filed.payment_orders[0]
    finally:
        client.close()


def order_status(url: str, order_no: str) -> PaymentOrder:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        return client.payment_order(order_no)
    finally:
        client.close()


def payment_sims(ui: Any, wait_for: Callable[..., Any]) -> dict[str, Any]:
    return wait_for(lambda: (lambda s: s if {"payment_pad", "receipt_printer"} <= set(s) else None)(
        {k: v for k, v in ui.ask("simulators").items() if k != "ok"}), timeout=30, what="payment simulators")


def tap(ui: Any, aid: str, wait_for: Callable[..., Any]) -> None:
    """Tap once the widget is laid out on screen (a step's panel moves in one frame before its buttons do)."""
    wait_for(lambda: (lambda f: f["found"] and f["x"] >= 0 and f["y"] >= 0)(ui.find(aid)), what=f"{aid} on screen")
    ui.tap(aid, wait_for)


def type_order(ui: Any, order_no: str, wait_for: Callable[..., Any]) -> None:
    assert order_no.startswith("PO")
    tap(ui, "pay_key_PO", wait_for)
    for digit in order_no[2:]:
        tap(ui, f"pay_key_{digit}", wait_for)
    wait_for(lambda: ui.find("pay_number")["text"] == order_no,
             what=f"the order number typed ({order_no}; shown: {ui.find('pay_number')['text']})")
    tap(ui, "pay_find", wait_for)


def test_pay_by_card_prints_the_voucher(start_kiosk, platform_server, wait_for):
    order = new_order(platform_server.url)
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = payment_sims(ui, wait_for)
    send_command(sims["payment_pad"]["control"], "set_timing", **FAST_PAD)
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)
    ui.tap("tile_pay", wait_for)
    ui.wait_screen("payment", wait_for)
    ui.screenshot("20-payment-find")
    type_order(ui, order.order_no, wait_for)

    ui.wait_text("请核对缴费信息", wait_for)
    assert ui.find("pay_amount")["text"] == "金额：￥10.00 元"
    assert order.payee in ui.find("pay_payee")["text"] and order.purpose in ui.find("pay_purpose")["text"]
    spoken = ui.find("payment_speak")["text"]
    assert "10.00" in spoken and order.payee in spoken and order.purpose in spoken
    ui.screenshot("21-payment-confirm")

    tap(ui, "pay_card", wait_for)
    ui.wait_text("密码键盘", wait_for)            # what to do at the pad, in words
    ui.wait_text("缴费成功", wait_for, timeout=30)
    result = ui.find("pay_result")["text"]
    assert "请取走缴费凭证" in result and "622848*********0018" in result and "6228480402564890018" not in result
    ui.screenshot("22-payment-paid")

    paid = order_status(platform_server.url, order.order_no)
    assert paid.status == "paid" and paid.txn_ref and paid.txn_ref in result
    receipt = wait_for(lambda: (send_command(sims["receipt_printer"]["control"], "receipts")["receipts"]
                                or [None])[-1], what="the voucher")
    assert "缴费凭证" in receipt["text"] and order.order_no in receipt["text"] and "10.00" in receipt["text"]
    qr_text = next(q for q in receipt["qr"] if q.endswith(f"/verify/p/{order.order_no}"))   # the public page
    assert read_qr(receipt["png"]) == qr_text, "the printed QR decodes to the verify URL"
    ledger = send_command(sims["payment_pad"]["control"], "ledger")["ledger"]
    assert ledger[order.order_no]["approvals"] == 1 and ledger[order.order_no]["net_fen"] == 1000

    tap(ui, "pay_done", wait_for)
    ui.wait_screen("rating", wait_for)


def test_declined_card_is_not_charged_and_can_be_paid_by_phone(start_kiosk, platform_server, wait_for, wallet):
    order = new_order(platform_server.url)
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = payment_sims(ui, wait_for)
    send_command(sims["payment_pad"]["control"], "set_timing", **FAST_PAD)
    send_command(sims["payment_pad"]["control"], "scenario", name="decline")
    ui.tap("start_without_card", wait_for)
    ui.tap("tile_pay", wait_for)
    ui.wait_screen("payment", wait_for)
    type_order(ui, order.order_no, wait_for)
    tap(ui, "pay_card", wait_for)
    ui.wait_text("本次未扣款", wait_for, timeout=30)
    result = ui.find("pay_result")["text"]
    assert "参考号：" + order.order_no in result and "支付被拒绝" in result
    ui.screenshot("23-payment-not-charged")
    assert order_status(platform_server.url, order.order_no).status == "pending"

    tap(ui, "pay_retry", wait_for)                   # the same order, by phone this time
    tap(ui, "pay_qr", wait_for)
    ui.wait_text("请用手机扫描二维码付款", wait_for)
    shot = ui.screenshot("24-payment-phone-qr")
    decoded = read_qr(shot)
    assert decoded.endswith(f"/cashier/{order.order_no}"), decoded
    # what the citizen's wallet does: its payment provider notifies the platform, signed (tests/conftest.py)
    paid = wallet.pay(platform_server.url, order.order_no, order.amount_fen, "wechat_pay")
    assert paid.status_code == 200, paid.text
    ui.wait_text("缴费成功", wait_for, timeout=30)
    assert order_status(platform_server.url, order.order_no).status == "paid"
