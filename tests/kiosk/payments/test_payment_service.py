"""The payment use case through the real pad driver on the simulator and the real platform: each scenario ends
with the platform's ledger, the kiosk's journal and the pad's ledger agreeing, and never a second charge."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from drivers.payment.errors import Declined, PinTimeout, UserCancelled
from kiosk.payments.journal import PaymentJournal, PaymentState
from kiosk.payments.service import OrderAlreadyPaid
from kiosk.platform_client import PaymentOrder, PlatformClient

# these flows need the holder confirmed (card+face): the test profiles have no camera
pytestmark = pytest.mark.usefixtures("face_verified")


def agree(platform: PlatformClient, journal: PaymentJournal, pad_sim: Any, order: PaymentOrder) -> str:
    """Assert the three ledgers agree about ``order``; return the platform status."""
    now = platform.payment_order(order.order_no)
    records = journal.for_order(order.order_no)
    pad = pad_sim.control("ledger")["ledger"].get(order.order_no)
    confirmed = [r for r in records if r.state is PaymentState.CONFIRMED]
    assert len(confirmed) <= 1
    if now.status == "paid":
        assert len(confirmed) == 1 and confirmed[0].txn_ref == now.txn_ref
        if pad is not None and confirmed[0].channel != "qr":
            assert pad["net_fen"] == order.amount_fen and pad["approvals"] == 1
    else:
        assert not confirmed
        if pad is not None:
            assert pad["net_fen"] == 0, "money taken for an order the platform does not have as paid"
    assert all(r.state.resolved for r in records), [r.state for r in records]
    return now.status


def test_approved_card_payment_is_confirmed_and_masked(platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    order = new_order()
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "paid" and outcome.confirmed
    assert outcome.record.card_masked.startswith("622848") and "*" in outcome.record.card_masked
    assert journal.steps(outcome.record.id) == ["created", "started", "approved", "confirmed"]
    assert kit.prompts[:3] == ["payment.prompt.insert_card", "payment.prompt.card_detected",
                               "payment.prompt.pin_entry_started"]
    assert agree(platform, journal, pad_sim, order) == "paid"
    with pytest.raises(OrderAlreadyPaid):
        kit.service.pay(order, "card")
    assert pad_sim.control("ledger")["ledger"][order.order_no]["approvals"] == 1


@pytest.mark.parametrize("scenario, error", [("decline", Declined), ("pin_timeout", PinTimeout),
                                             ("user_cancel", UserCancelled)])
def test_failures_at_the_pad_are_not_charged_and_the_order_can_be_paid_after(
        scenario: str, error: type, platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    order = new_order()
    pad_sim.control("scenario", name=scenario)
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "not_charged" and isinstance(outcome.error, error)
    assert agree(platform, journal, pad_sim, order) == "pending"
    assert kit.service.pay(order, "card").status == "paid"      # a second try is a fresh attempt
    assert agree(platform, journal, pad_sim, order) == "paid"


def test_the_citizen_cancels_on_the_screen(platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    pad_sim.control("set_timing", card_timeout_s=30)
    pad_sim.control("scenario", name="hold")
    order = new_order()
    cancel = threading.Event()
    kit.pad.set_listener(None)
    threading.Timer(0.3, cancel.set).start()
    outcome = kit.service.pay(order, "card", cancel)
    assert outcome.status == "not_charged" and isinstance(outcome.error, UserCancelled)
    assert agree(platform, journal, pad_sim, order) == "pending"


def test_unknown_result_is_resolved_by_query_in_the_flow(platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    pad_sim.control("scenario", name="unknown", outcome="approved")
    order = new_order()
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "paid"
    assert journal.steps(outcome.record.id) == ["created", "started", "unknown", "approved", "confirmed"]
    assert agree(platform, journal, pad_sim, order) == "paid"
    pad_sim.control("scenario", name="unknown", outcome="declined")
    other = new_order()
    assert kit.service.pay(other, "card").status == "not_charged"
    assert agree(platform, journal, pad_sim, other) == "pending"


def test_link_drop_is_in_doubt_until_the_reconciler_settles_it(platform, journal, pad_sim, make_kit,
                                                               new_order) -> None:
    kit = make_kit(pad_sim)
    pad_sim.control("scenario", name="link_drop", outcome="approved")
    order = new_order()
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "in_doubt" and outcome.record.state is PaymentState.UNKNOWN
    assert platform.payment_order(order.order_no).status == "pending"
    with pytest.raises(Exception) as refused:          # no second attempt while in doubt (pad still dead)
        kit.service.pay(order, "card")
    assert getattr(refused.value, "code", "") == "payment_in_progress"
    assert kit.service.reconcile().still_open == [order.order_no]
    pad_sim.control("restore_link")
    report = kit.service.reconcile()
    assert report.confirmed == [order.order_no] and not report.still_open
    assert agree(platform, journal, pad_sim, order) == "paid"


def test_a_confirmation_the_platform_refuses_is_reversed(platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    pad_sim.control("scenario", name="unknown", outcome="approved")
    order = new_order()
    pad_sim.control("set_timing", host_s=0.5)

    def cancel_on_platform(name: str, payload: dict) -> None:   # staff cancel the order while the pad works
        if payload.get("key") == "payment.prompt.processing":
            platform.cancel_payment(order.order_no, "cancelled by staff")
    kit.service.listener = cancel_on_platform
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "not_charged" and outcome.record.state is PaymentState.REVERSED
    assert "reversing" in journal.steps(outcome.record.id)
    assert agree(platform, journal, pad_sim, order) == "cancelled"


def test_payment_code_waits_for_the_phone_then_is_approved(platform, journal, pad_sim, scanner_sim, make_kit,
                                                           new_order) -> None:
    kit = make_kit(pad_sim, scanner_sim)
    pad_sim.control("scenario", name="user_paying", resolve_s=0.5)
    order = new_order()
    threading.Timer(0.3, lambda: scanner_sim.control("scan", code="134567890123456789")).start()
    outcome = kit.service.pay(order, "code")
    assert outcome.status == "paid" and outcome.record.method == "wechat_pay" and not outcome.record.card_masked
    assert "payment.prompt.user_paying" in kit.prompts and "payment.prompt.code_scanned" in kit.prompts
    assert agree(platform, journal, pad_sim, order) == "paid"


def test_payment_code_unresolved_is_cancelled_after_the_give_up_time(platform, journal, pad_sim, scanner_sim,
                                                                     make_kit, new_order) -> None:
    kit = make_kit(pad_sim, scanner_sim)
    pad_sim.control("scenario", name="user_paying")            # the phone never confirms
    order = new_order()
    threading.Timer(0.3, lambda: scanner_sim.control("scan", code="281234567890123456")).start()
    outcome = kit.service.pay(order, "code")
    assert outcome.status == "not_charged" and outcome.record.state is PaymentState.CANCELLED
    assert pad_sim.control("status")["counters"]["queries"] >= 2       # it asked every interval before giving up
    assert agree(platform, journal, pad_sim, order) == "pending"


def test_phone_qr_paid_by_the_citizen_is_confirmed(platform, journal, pad_sim, make_kit, new_order,
                                                   phone_pays) -> None:
    kit = make_kit(pad_sim)
    order = new_order()

    shown: list[str] = []
    wallet_answers: list[Any] = []

    def on_event(name: str, payload: dict) -> None:
        if name == "qr":   # (an assert here would be swallowed by the service's listener guard)
            shown.append(payload["url"])
            threading.Timer(0.2, lambda: wallet_answers.append(phone_pays(order, "alipay"))).start()
    kit.service.listener = on_event
    outcome = kit.service.pay(order, "qr")
    assert len(shown) == 1 and shown[0].endswith(f"/cashier/{order.order_no}")
    assert [a.status_code for a in wallet_answers] == [200], [a.text for a in wallet_answers]
    assert outcome.status == "paid" and outcome.record.method == "alipay"
    assert agree(platform, journal, pad_sim, order) == "paid"


def test_phone_qr_not_paid_closes_the_order(platform, journal, pad_sim, make_kit, new_order, phone_pays) -> None:
    kit = make_kit(pad_sim)
    order = new_order()
    outcome = kit.service.pay(order, "qr")
    assert outcome.status == "not_charged"
    assert agree(platform, journal, pad_sim, order) == "cancelled"
    late = phone_pays(order)                                # a late phone payment is refused, never lost
    assert late.status_code == 409 and late.json()["error"]["code"] == "order_cancelled"


def test_the_citizens_unpaid_orders(platform, journal, pad_sim, make_kit, new_order) -> None:
    kit = make_kit(pad_sim)
    order = new_order()
    token = platform.open_citizen_session("230202197511053015", "王建国", "resident_id", face_match=True).token
    assert order.order_no in [o.order_no for o in kit.service.unpaid_orders(token)]
    kit.service.pay(order, "card")
    assert order.order_no not in [o.order_no for o in kit.service.unpaid_orders(token)]


def test_a_busy_pad_never_takes_the_sale(platform, journal, pad_sim, make_kit, new_order) -> None:
    from drivers.payment.errors import TerminalBusy

    kit = make_kit(pad_sim)
    pad_sim.control("set_timing", card_timeout_s=30)
    pad_sim.control("scenario", name="hold")
    kit.pad.start("OTHER-SALE", 100)               # something else holds the pad (e.g. a technician's test)
    order = new_order()
    outcome = kit.service.pay(order, "card")
    assert outcome.status == "not_charged" and isinstance(outcome.error, TerminalBusy)
    assert outcome.record.state is PaymentState.CANCELLED
    assert kit.pad.cancel("OTHER-SALE").status.value == "cancelled"
    assert agree(platform, journal, pad_sim, order) == "pending"
