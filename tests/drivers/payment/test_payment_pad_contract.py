"""The payment pad contract, run over every pad driver on its simulator always — nexo Sale-to-POI over HTTP
(``nexo_tcp``) and over serial (``nexo_serial``), and the legacy ECR layer (``ecr_serial``) — and on a real pad with
``--hardware``::

    KIOSK_PAYMENT_URL=http://10.0.0.42:8080/nexo KIOSK_PAYMENT_POIID=P400-1234 \
        pytest tests/drivers/payment/test_payment_pad_contract.py --hardware -s          # an IP nexo terminal
    KIOSK_PAYMENT_PORT=/dev/ttyUSB1 [KIOSK_PAYMENT_POIID=…] pytest … --hardware -s       # serial (nexo when POIID)

On hardware the technician is asked (on the terminal, hence ``-s``) to present a test card and enter its PIN, or to
press cancel on the pad; amounts are 1 fen and every approved test payment is reversed at once. The simulator-only
scenarios (decline, PIN timeout, link drop, unknown) follow at the end of the module.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from drivers.base import DeviceState
from drivers.payment.base import PaymentEvent, PaymentResult, TxnStatus
from drivers.payment.base import PaymentPad
from drivers.payment.errors import LinkDown

from .conftest import PAD_DRIVERS

EcrPaymentPad = PaymentPad   # the tests below run over any pad driver

HUMAN_TIMEOUT_S = 90.0


class Target:
    name = ""

    def __init__(self, pad: EcrPaymentPad) -> None:
        self.pad = pad

    def will_approve(self) -> None: ...

    def will_cancel_on_pad(self) -> None: ...

    def ledger(self, order: str) -> dict[str, Any] | None:
        return None


class SimulatorTarget(Target):
    name = "simulator"

    def __init__(self, pad: EcrPaymentPad, sim: Any) -> None:
        super().__init__(pad)
        self.sim = sim

    def will_approve(self) -> None:
        self.sim.control("scenario", name="approve")

    def will_cancel_on_pad(self) -> None:
        self.sim.control("scenario", name="user_cancel")

    def ledger(self, order: str) -> dict[str, Any] | None:
        return self.sim.control("ledger")["ledger"].get(order)


class HardwareTarget(Target):
    name = "hardware"

    def will_approve(self) -> None:
        print(f"\n>>> present a test card on the pad and enter its PIN (within {HUMAN_TIMEOUT_S:.0f} s)", flush=True)

    def will_cancel_on_pad(self) -> None:
        print("\n>>> press the CANCEL key on the pad", flush=True)


@pytest.fixture(params=[*(f"simulator-{d}" for d in PAD_DRIVERS),
                        *(pytest.param(f"hardware-{d}", marks=pytest.mark.hardware) for d in PAD_DRIVERS)])
def target(request: pytest.FixtureRequest, make_driver: Callable[..., EcrPaymentPad]) -> Iterator[Target]:
    where, _, driver = request.param.partition("-")
    if where == "hardware":
        url, port, poiid = (os.environ.get(k) for k in ("KIOSK_PAYMENT_URL", "KIOSK_PAYMENT_PORT",
                                                        "KIOSK_PAYMENT_POIID"))
        needed = {"nexo_tcp": url and poiid, "nexo_serial": port and poiid, "ecr_serial": port and not poiid}[driver]
        if not request.config.getoption("--hardware") or not needed:
            pytest.skip("real pad: run with --hardware and KIOSK_PAYMENT_URL + KIOSK_PAYMENT_POIID (nexo over HTTP), "
                        "KIOSK_PAYMENT_PORT + KIOSK_PAYMENT_POIID (nexo over serial) or KIOSK_PAYMENT_PORT (ECR)")
        slow = {"response_timeout_s": 10.0, "keepalive_s": 2.0}
        if driver != "nexo_tcp":
            slow["ack_timeout_s"] = 1.0
        yield HardwareTarget(make_driver(driver, {"url": url, "pty": port, "poiid": poiid}, **slow))
    else:
        sim = request.getfixturevalue("ecr_sim" if driver == "ecr_serial" else "nexo_sim")
        yield SimulatorTarget(make_driver(driver, sim.endpoints), sim)


def order_id() -> str:
    return "T" + uuid.uuid4().hex[:15].upper()


def wait_final(pad: EcrPaymentPad, txn: str, timeout: float = HUMAN_TIMEOUT_S) -> PaymentResult:
    deadline = time.monotonic() + timeout
    while True:
        result = pad.wait(txn, 0.5)
        if result.status is not TxnStatus.PENDING or time.monotonic() > deadline:
            return result


def test_contract_pad_is_online(target: Target) -> None:
    status = target.pad.status()
    assert status.kind == "payment_pad" and status.device is DeviceState.ONLINE and status.usable
    assert status.extra["state"] in ("idle", "busy")


def test_contract_an_approved_sale_is_masked_queryable_idempotent_and_reversible(target: Target) -> None:
    events: list[PaymentEvent] = []
    target.pad.set_listener(events.append)
    order = order_id()
    target.will_approve()
    txn = target.pad.start(order, 1, "unionpay_card")
    result = wait_final(target.pad, txn)
    assert result.status is TxnStatus.APPROVED and result.amount_fen == 1 and result.ref
    assert re.fullmatch(r"\d{6}\*+\d{4}", result.card_masked), "only a masked card number leaves the pad"
    assert [e.type for e in events][:2] == ["card_detected", "pin_entry_started"]
    assert all(e.order_id == order for e in events)
    # the order id is the idempotency key: asking again never charges again
    assert target.pad.query(order) == target.pad.query(order)
    assert target.pad.query(order).status is TxnStatus.APPROVED and target.pad.query(order).ref == result.ref
    again = target.pad.start(order, 1, "unionpay_card")
    assert wait_final(target.pad, again, 5).ref == result.ref
    reversed_ = target.pad.reverse(order)
    assert reversed_.status is TxnStatus.REVERSED
    assert target.pad.reverse(order).status is TxnStatus.REVERSED        # reversing twice is harmless
    assert target.pad.query(order).status is TxnStatus.REVERSED
    ledger = target.ledger(order)
    if ledger is not None:
        assert ledger["approvals"] == 1 and ledger["net_fen"] == 0


def test_contract_cancel_on_the_pad_is_not_charged(target: Target) -> None:
    order = order_id()
    target.will_cancel_on_pad()
    result = wait_final(target.pad, target.pad.start(order, 1))
    assert result.status is TxnStatus.CANCELLED
    assert target.pad.query(order).status is TxnStatus.CANCELLED


def test_contract_unknown_order_is_not_found(target: Target) -> None:
    assert target.pad.query(order_id()).status is TxnStatus.NOT_FOUND


# --- simulator scenarios -------------------------------------------------------------------------------------------

@pytest.fixture
def pad_sim(driver_and_sim: Any) -> Any:   # the simulator of the driver under test (ECR pty or nexo POI)
    return driver_and_sim[1]


@pytest.fixture
def pad(driver_and_sim: Any, make_driver: Callable[..., EcrPaymentPad]) -> EcrPaymentPad:
    driver, sim = driver_and_sim
    return make_driver(driver, sim.endpoints)


def test_decline_carries_the_response_code(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("scenario", name="decline")
    order = order_id()
    result = wait_final(pad, pad.start(order, 2500), 5)
    assert result.status is TxnStatus.DECLINED and result.reason == "51"
    assert pad_sim.control("ledger")["ledger"][order]["net_fen"] == 0


def test_pin_timeout_and_card_timeout_cancel(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("scenario", name="pin_timeout")
    assert wait_final(pad, pad.start(order_id(), 100), 5).reason == "pin_timeout"
    pad_sim.control("scenario", name="card_timeout")
    result = wait_final(pad, pad.start(order_id(), 100), 5)
    assert (result.status, result.reason) == (TxnStatus.CANCELLED, "card_timeout")


def test_the_kiosk_cancels_while_the_pad_waits_for_a_card(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("set_timing", card_timeout_s=30)
    pad_sim.control("scenario", name="hold")
    order = order_id()
    txn = pad.start(order, 100)
    assert pad.wait(txn, 0.2).status is TxnStatus.PENDING
    assert pad.cancel(txn).status is TxnStatus.CANCELLED
    assert pad.query(order).status is TxnStatus.CANCELLED


def test_a_link_drop_mid_sale_is_unknown_and_a_later_query_resolves_it(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("scenario", name="link_drop", outcome="approved")
    order = order_id()
    txn = pad.start(order, 1000)
    result = wait_final(pad, txn, 10)
    assert result.status is TxnStatus.UNKNOWN and result.reason == "link_down"
    with pytest.raises(LinkDown):
        pad.query(order)
    assert pad.status().device is DeviceState.OFFLINE
    pad_sim.control("restore_link")
    resolved = pad.query(order)
    assert resolved.status is TxnStatus.APPROVED and resolved.amount_fen == 1000   # the money did move


def test_unknown_result_only_a_query_resolves(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("scenario", name="unknown", outcome="declined")
    order = order_id()
    result = wait_final(pad, pad.start(order, 1000), 5)
    assert (result.status, result.reason) == (TxnStatus.UNKNOWN, "host_timeout")
    assert pad.query(order).status is TxnStatus.DECLINED


def test_lost_acks_and_corrupt_frames_are_retransmitted(pad_sim: Any, pad: EcrPaymentPad) -> None:
    if getattr(pad, "_link", None) is None and not hasattr(pad, "port"):
        pytest.skip("no serial framing on HTTP (TCP retransmits for us)")
    order = order_id()
    pad_sim.control("inject_fault", kind="drop_ack", n=1)
    assert pad.query(order).status is TxnStatus.NOT_FOUND
    assert pad._link is not None and pad._link.counters["retransmitted"] == 1
    pad_sim.control("inject_fault", kind="corrupt_next", n=1)
    assert pad.query(order).status is TxnStatus.NOT_FOUND
    assert pad._link.counters["naks_sent"] == 1


def test_payment_code_that_waits_for_the_phone_resolves_later(pad_sim: Any, pad: EcrPaymentPad) -> None:
    pad_sim.control("scenario", name="user_paying", resolve_s=0.3)
    order = order_id()
    first = pad.wait(pad.start(order, 800, "wechat_pay", payment_code="134567890123456789"), 5)
    assert (first.status, first.reason) == (TxnStatus.PENDING, "user_paying")
    deadline = time.monotonic() + 5
    while pad.query(order).status is TxnStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pad.query(order).status is TxnStatus.APPROVED
    bad = wait_final(pad, pad.start(order_id(), 800, "alipay", payment_code="99"), 5)
    assert (bad.status, bad.reason) == (TxnStatus.DECLINED, "invalid_code")


def test_refund_gives_back_at_most_what_was_taken(pad_sim: Any, pad: EcrPaymentPad) -> None:
    order = order_id()
    assert wait_final(pad, pad.start(order, 1000), 5).status is TxnStatus.APPROVED
    assert pad.refund(order, 400).status is TxnStatus.REFUNDED            # part refunded, the rest stays taken
    assert pad_sim.control("ledger")["ledger"][order]["net_fen"] == 600
    assert pad.query(order).status is TxnStatus.APPROVED
    assert pad.refund(order, 700).status is TxnStatus.DECLINED            # more than is left: refused
    assert pad.refund(order, 600).status is TxnStatus.REFUNDED
    assert pad_sim.control("ledger")["ledger"][order]["net_fen"] == 0
    assert pad.query(order).status is TxnStatus.REFUNDED


def test_a_result_lost_on_the_line_is_fetched_when_the_pad_says_it_is_idle(pad_sim: Any,
                                                                            pad: EcrPaymentPad) -> None:
    pad_sim.control("inject_fault", kind="lose_result", n=1)
    order = order_id()
    result = wait_final(pad, pad.start(order, 1000), 5)
    assert result.status is TxnStatus.APPROVED and result.ref      # by query, after one keepalive
    assert pad_sim.control("ledger")["ledger"][order]["approvals"] == 1
