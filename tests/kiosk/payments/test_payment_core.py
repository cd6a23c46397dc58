"""Payments through the kiosk core, without Kivy: the device manager starts the pad and scanner simulators from the
profile, the reconciler runs in ``start()`` before anyone is served, a paid order prints its voucher."""
from __future__ import annotations

import queue
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore
from kiosk.payments.journal import PaymentJournal, PaymentState
from tests.kiosk.conftest import call_back as call
from tests.kiosk.payments.conftest import FAST_CONFIG as FAST


@pytest.fixture
def profile_path(payment_profile: Path) -> Path:
    return payment_profile


def start_core(profile_path: Path, clock: Any) -> KioskCore:
    core = KioskCore(load_profile(profile_path, environ={}), clock=clock)
    core.payments.service.config = FAST
    core.events = queue.Queue()  # type: ignore[attr-defined]
    core.subscribe(lambda name, payload: core.events.put((name, payload)))  # type: ignore[attr-defined]
    core.start()
    return core


def test_start_reconciles_before_serving(profile_path: Path, tmp_path: Path, clock: Any, platform, new_order,
                                         phone_pays) -> None:
    data_dir = Path(load_profile(profile_path, environ={}).kiosk.data_dir)
    qr_order, card_order = new_order(), new_order()
    journal = PaymentJournal(data_dir / "payments.sqlite3")       # what a crashed kiosk left behind
    qr = journal.create(order_no=qr_order.order_no, amount_fen=qr_order.amount_fen, channel="qr")
    journal.transition(qr.id, PaymentState.STARTED)
    card = journal.create(order_no=card_order.order_no, amount_fen=card_order.amount_fen, channel="card",
                          method="unionpay_card")
    journal.transition(card.id, PaymentState.STARTED)
    journal.close()
    assert phone_pays(qr_order).status_code == 200               # the phone paid while the kiosk was down
    core = start_core(profile_path, clock)
    try:
        assert core.payments.ready.is_set()
        report = core.payments.last_report
        assert report is not None and report.confirmed == [qr_order.order_no]
        assert report.not_charged == [card_order.order_no] and not report.still_open
        core.flush_audit()
        audit = (data_dir / "audit.jsonl").read_text("utf-8")
        assert '"payment_reconciled"' in audit
    finally:
        core.stop()


def test_pay_by_card_prints_the_voucher(profile_path: Path, clock: Any, platform, new_order,
                                        wait_for: Callable[..., Any]) -> None:
    core = start_core(profile_path, clock)
    try:
        pad_sim = core.devices.simulators["payment_pad"]
        printer_sim = core.devices.simulators["receipt_printer"]
        pad_sim.control("set_timing", card_s=0.05, pin_s=0.05, host_s=0.05)
        assert core.payments.channels() == ["card", "code", "qr"]
        order = call(core.payments.find, new_order().order_no.lower())
        texts = core.payments.texts(order)
        assert "10.00" in texts["amount"] and order.payee in texts["payee"] and order.purpose in texts["speak"]
        core.start_anonymous()
        done = call(core.payments.pay, order, "card")
        assert done.outcome.status == "paid" and done.print_error is None and done.print_result.bytes_sent > 0
        assert platform.payment_order(order.order_no).status == "paid"
        prompts = []
        while not core.events.empty():  # type: ignore[attr-defined]
            name, payload = core.events.get()  # type: ignore[attr-defined]
            if name == "payment_prompt":
                prompts.append(payload["key"])
        assert "payment.prompt.pin_entry_started" in prompts
        receipts = wait_for(lambda: printer_sim.control("receipts")["receipts"], what="the voucher")
        text = receipts[-1]["text"]
        assert "缴费凭证" in text and order.order_no in text and "10.00" in text
        assert "622848*********0018" in text and "6228480402564890018" not in text
        [qr] = receipts[-1]["qr"]                                    # the printed QR: the voucher's public page
        page = httpx.get(qr, timeout=10)
        assert qr.endswith(f"/verify/p/{order.order_no}") and 'data-status="paid"' in page.text, page.status_code
        core.flush_audit()
        audit = (Path(core.profile.kiosk.data_dir) / "audit.jsonl").read_text("utf-8")
        assert '"payment"' in audit and "6228480402564890018" not in audit and "622848" not in audit
    finally:
        core.stop()


def test_an_in_doubt_payment_is_settled_in_the_background(profile_path: Path, clock: Any, platform, new_order,
                                                          wait_for: Callable[..., Any]) -> None:
    core = start_core(profile_path, clock)
    try:
        core.payments.retry_s = 0.2
        pad_sim = core.devices.simulators["payment_pad"]
        pad_sim.control("set_timing", card_s=0.05, pin_s=0.05, host_s=0.05)
        pad_sim.control("scenario", name="link_drop", outcome="approved")
        core.devices.get("payment_pad").keepalive = 0.3   # notice the dead line quickly
        order = new_order()
        core.start_anonymous()
        done = call(core.payments.pay, order, "card")
        assert done.outcome.status == "in_doubt" and done.print_result is None
        assert platform.payment_order(order.order_no).status == "pending"
        pad_sim.control("restore_link")
        wait_for(lambda: core.payments.last_report is not None
                 and order.order_no in core.payments.last_report.confirmed, 15, what="the background reconciliation")
        assert platform.payment_order(order.order_no).status == "paid"
        (record,) = core.payments.journal.for_order(order.order_no)
        assert record.state is PaymentState.CONFIRMED
    finally:
        core.stop()


def test_paid_without_paper_still_tells_the_citizen_and_keeps_the_reference(profile_path: Path, clock: Any,
                                                                             platform, new_order) -> None:
    core = start_core(profile_path, clock)
    try:
        core.devices.simulators["payment_pad"].control("set_timing", card_s=0.05, pin_s=0.05, host_s=0.05)
        core.devices.simulators["receipt_printer"].control("set_paper", state="out")
        order = new_order()
        core.start_anonymous()
        done = call(core.payments.pay, order, "card")
        assert done.outcome.status == "paid" and done.outcome.confirmed     # the money is booked, whatever the paper
        assert getattr(done.print_error, "code", "") == "paper_out" and done.print_result is None
        assert done.outcome.reference.startswith(order.order_no)
        assert platform.payment_order(order.order_no).status == "paid"
    finally:
        core.stop()
