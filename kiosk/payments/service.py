"""The payment use case and the reconciler. Blocking: run on a worker, never on the UI thread.

A payment of a platform order goes through three channels: ``card`` (the bank-card pad), ``code`` (the citizen's
payment code, read by the QR scanner, acquired through the pad) and ``qr`` (the kiosk shows the platform cashier's
QR, the citizen's phone pays, the kiosk polls the order). Whatever happens, the outcome is one of:

* ``paid`` — the money was taken (and, when ``confirmed``, booked by the platform): print the voucher;
* ``not_charged`` — nothing was taken (or it was given back): say so, with the reference;
* ``in_doubt`` — the terminal could not tell; the record stays open and the reconciler settles it (the citizen gets
  the reference; they are never asked to pay that order again until it is settled).

Order of safety: the journal records ``started`` before the sale leaves the kiosk; an approval is journaled before
it is confirmed to the platform; a confirmation the platform refuses (order cancelled, paid elsewhere) is reversed on
the terminal. The terminal's idempotency key is the order number (a repeated start never charges twice); the
platform's is derived from the journal record id.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from drivers.payment.base import PaymentMethod, PaymentResult, PaymentTerminal, TxnStatus
from drivers.payment.errors import (
    Declined, LinkDown, PaymentError, PaymentTimeout, PinTimeout, ResultUnknown, UserCancelled)
from drivers.errors import DeviceError
from kiosk.errors import DeviceUnavailable, KioskError, PlatformRejected, PlatformUnavailable
from kiosk.payments import failpoints
from kiosk.payments.journal import PaymentJournal, PaymentRecord, PaymentState
from kiosk.platform_client import PaymentOrder, PlatformClient

log = logging.getLogger(__name__)
Channel = Literal["card", "code", "qr"]
Listener = Callable[[str, dict[str, Any]], None]
#: platform answers to a confirmation that mean "this money must go back"
REFUSED_CODES = frozenset({"order_cancelled", "already_paid", "fee_already_paid", "amount_mismatch", "not_found"})


class OrderNotPayable(KioskError):
    code = "order_not_payable"
    translation_key = "payment.order_not_payable"


class OrderAlreadyPaid(KioskError):
    code = "order_already_paid"
    translation_key = "payment.already_paid"


@dataclass(frozen=True)
class PaymentConfig:
    """Timings. Defaults for a real kiosk; tests shorten them."""

    wait_slice_s: float = 0.25       # how often the flow looks at the citizen's cancel button
    sale_timeout_s: float = 180.0    # backstop for a card sale (the pad has its own card and PIN timeouts)
    query_interval_s: float = 5.0    # in doubt / user paying: ask the terminal this often …
    give_up_s: float = 30.0          # … and cancel (or leave it to the reconciler) after this long
    qr_poll_s: float = 2.0           # phone QR: poll the platform order this often …
    qr_timeout_s: float = 180.0      # … for this long, then close the order


@dataclass(frozen=True)
class PaymentOutcome:
    status: Literal["paid", "not_charged", "in_doubt"]
    record: PaymentRecord
    order: PaymentOrder
    error: BaseException | None = None

    @property
    def confirmed(self) -> bool:
        return self.record.state is PaymentState.CONFIRMED

    @property
    def reference(self) -> str:
        return self.record.reference


@dataclass
class ReconcileReport:
    checked: int = 0
    confirmed: list[str] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)
    not_charged: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    seconds: float = 0.0


_FAILURES: dict[str, type[PaymentError]] = {
    "pin_timeout": PinTimeout, "card_timeout": PaymentTimeout, "user_cancel": UserCancelled,
    "ecr_cancel": UserCancelled, "no_code": UserCancelled,
}


def failure_for(result: PaymentResult) -> PaymentError:
    if result.status is TxnStatus.DECLINED:
        return Declined(f"declined ({result.reason})", reason=result.reason)
    cls = _FAILURES.get(result.reason, UserCancelled if result.status is TxnStatus.CANCELLED else PaymentError)
    return cls(result.reason or result.status.value)


class PaymentService:
    def __init__(self, journal: PaymentJournal, platform: PlatformClient,
                 terminals: Callable[[str], PaymentTerminal | None], config: PaymentConfig = PaymentConfig(),
                 listener: Listener | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal, self.platform, self.terminals = journal, platform, terminals
        self.config, self.listener, self._clock = config, listener, clock

    def _emit(self, name: str, **payload: Any) -> None:
        if self.listener is not None:
            try:
                self.listener(name, payload)
            except Exception:
                log.exception("payment listener failed on %s", name)

    # orders -----------------------------------------------------------------------------------------------------------
    def find_order(self, order_no: str) -> PaymentOrder:
        return self.platform.payment_order(order_no.strip().upper())

    def unpaid_orders(self, token: str) -> list[PaymentOrder]:
        return [o for o in self.platform.my_payment_orders(token) if o.status == "pending"]

    def open_record(self, order_no: str) -> PaymentRecord | None:
        """The unresolved journal record of this order, if any."""
        return next((r for r in self.journal.for_order(order_no) if not r.state.resolved), None)

    # paying ----------------------------------------------------------------------------------------------------------
    def pay(self, order: PaymentOrder, channel: Channel, cancel: threading.Event | None = None) -> PaymentOutcome:
        """Take the payment of ``order`` through ``channel``. ``cancel`` is the citizen's cancel button."""
        cancel = cancel or threading.Event()
        order = self.find_order(order.order_no)           # the platform's view now, never a stale screen
        if order.status == "paid":
            raise OrderAlreadyPaid(f"order {order.order_no} is paid")
        if order.status != "pending":
            raise OrderNotPayable(f"order {order.order_no} is {order.status}", status=order.status)
        open_record = self.open_record(order.order_no)
        if open_record is not None:                          # settle a leftover first (never a second charge)
            self.settle(open_record)
        terminal: PaymentTerminal | None = None
        if channel != "qr":
            terminal = self.terminals(channel)
            if terminal is None:
                raise DeviceUnavailable(f"no terminal for {channel}")
        method = PaymentMethod.CARD.value if channel == "card" else ""
        record = self.journal.create(order_no=order.order_no, amount_fen=order.amount_fen, channel=channel,
                                     method=method, purpose=order.purpose, payee=order.payee,
                                     application_number=order.application_number)
        failpoints.hit("after:created")
        try:
            if channel == "qr":
                return self._pay_qr(order, record, cancel)
            assert terminal is not None
            return self._pay_terminal(order, record, terminal, channel, cancel)
        except Exception as exc:   # never "failed" once money may have moved: the journal says where it stopped
            now = self.journal.get(record.id) or record
            log.error("payment %s stopped in %s: %s", now.reference, now.state.value, type(exc).__name__)
            if now.state is PaymentState.CREATED:
                now = self.journal.transition(now.id, PaymentState.CANCELLED, reason="internal_error")
                return PaymentOutcome("not_charged", now, order, exc)
            if now.state.resolved:
                return PaymentOutcome("paid" if now.state is PaymentState.CONFIRMED else "not_charged", now, order,
                                      exc)
            return PaymentOutcome("paid" if now.state is PaymentState.APPROVED else "in_doubt", now, order, exc)

    def _pay_terminal(self, order: PaymentOrder, record: PaymentRecord, terminal: PaymentTerminal, channel: str,
                      cancel: threading.Event) -> PaymentOutcome:
        terminal.set_listener(lambda ev: self._emit("prompt", key=f"payment.prompt.{ev.type}"))
        record = self.journal.transition(record.id, PaymentState.STARTED)
        failpoints.hit("after:started")
        self._emit("prompt", key="payment.prompt.insert_card" if channel == "card" else "payment.prompt.show_code")
        try:
            txn = terminal.start(order.order_no, order.amount_fen, PaymentMethod.CARD if channel == "card"
                                 else PaymentMethod.WECHAT)
        except LinkDown as exc:   # the sale frame was never acknowledged: the pad may still have it
            return self._in_doubt(order, record, terminal, exc)
        except DeviceError as exc:
            record = self.journal.transition(record.id, PaymentState.CANCELLED, reason=exc.code)
            return PaymentOutcome("not_charged", record, order, exc)
        failpoints.hit("after:sale_sent")
        started = self._clock()
        phone_since: float | None = None    # the wallet asked the citizen to confirm on the phone
        last_query = started
        cancel_asked: float | None = None
        while True:
            try:
                result = terminal.wait(txn, self.config.wait_slice_s)
            except PaymentError as exc:
                if exc.in_doubt:
                    return self._in_doubt(order, record, terminal, exc)
                record = self.journal.transition(record.id, PaymentState.CANCELLED, reason=exc.code)
                return PaymentOutcome("not_charged", record, order, exc)   # e.g. the pad was busy: never took it
            except DeviceError as exc:      # the port failed mid-sale: the pad may have gone on
                return self._in_doubt(order, record, terminal, ResultUnknown(exc.code))
            if result.status is not TxnStatus.PENDING:
                break
            self._emit("waiting")                 # the payment (bounded by its own timeouts) is the activity
            now = self._clock()
            if result.reason == "user_paying" and phone_since is None:
                phone_since = last_query = now
                self._emit("prompt", key="payment.prompt.user_paying")
            if phone_since is not None and now - last_query >= self.config.query_interval_s:
                last_query = now
                try:
                    queried: PaymentResult | None = terminal.query(order.order_no)
                except DeviceError:
                    queried = None
                if queried is not None and queried.status not in (TxnStatus.PENDING, TxnStatus.UNKNOWN):
                    result = queried
                    break
            limit = phone_since + self.config.give_up_s if phone_since is not None \
                else started + self.config.sale_timeout_s
            if cancel_asked is None and (cancel.is_set() or now >= limit):
                cancel_asked = now
                result = terminal.cancel(txn)
                if result.status is not TxnStatus.PENDING:
                    break
            elif cancel_asked is not None and now - cancel_asked >= self.config.give_up_s:
                result = PaymentResult(order_id=order.order_no, status=TxnStatus.UNKNOWN, reason="no_answer")
                break
        return self._conclude(order, record, terminal, result)

    def _conclude(self, order: PaymentOrder, record: PaymentRecord, terminal: PaymentTerminal,
                  result: PaymentResult) -> PaymentOutcome:
        if result.status is TxnStatus.APPROVED:
            return self._approved(order, record, terminal, result)
        if result.status in (TxnStatus.DECLINED, TxnStatus.CANCELLED, TxnStatus.NOT_FOUND):
            record = self.journal.transition(record.id, PaymentState.DECLINED if result.status is TxnStatus.DECLINED
                                             else PaymentState.CANCELLED, reason=result.reason or result.status.value)
            failpoints.hit(f"after:{record.state.value}")
            self._emit("finished", status="not_charged")
            return PaymentOutcome("not_charged", record, order, failure_for(result))
        if result.status is TxnStatus.REVERSED:
            record = self.journal.transition(record.id, PaymentState.CANCELLED, reason="reversed")
            return PaymentOutcome("not_charged", record, order, UserCancelled("reversed"))
        return self._in_doubt(order, record, terminal, ResultUnknown(result.reason or "unknown"))

    def _in_doubt(self, order: PaymentOrder, record: PaymentRecord, terminal: PaymentTerminal,
                  error: PaymentError) -> PaymentOutcome:
        """Unknown: journal it, then query every ``query_interval_s`` for up to ``give_up_s``."""
        if record.state is not PaymentState.UNKNOWN:
            record = self.journal.transition(record.id, PaymentState.UNKNOWN, reason=error.code)
        failpoints.hit("after:unknown")
        self._emit("prompt", key="payment.prompt.checking")
        deadline = self._clock() + self.config.give_up_s
        while True:
            try:
                result = terminal.query(order.order_no)
            except DeviceError:
                result = None
            if result is not None and result.status not in (TxnStatus.PENDING, TxnStatus.UNKNOWN):
                if result.status is TxnStatus.NOT_FOUND:
                    record = self.journal.transition(record.id, PaymentState.CANCELLED, reason="not_found")
                    return PaymentOutcome("not_charged", record, order, error)
                return self._conclude(order, record, terminal, result)
            if self._clock() >= deadline:
                self._emit("finished", status="in_doubt")
                return PaymentOutcome("in_doubt", record, order, error)
            # not interruptible on purpose: money may have moved, so the citizen's cancel does not stop the queries;
            # after give_up_s the record stays in doubt and the reconciler settles it
            time.sleep(min(self.config.query_interval_s, max(0.0, deadline - self._clock())))

    def _approved(self, order: PaymentOrder, record: PaymentRecord, terminal: PaymentTerminal | None,
                  result: PaymentResult) -> PaymentOutcome:
        method = result.method or record.method or PaymentMethod.CARD.value
        record = self.journal.transition(record.id, PaymentState.APPROVED, txn_ref=result.ref or result.txn_id,
                                         card_masked=result.card_masked, method=method, paid_at=time.time())
        failpoints.hit("after:approved")
        record = self._confirm(record, terminal)
        if record.state is PaymentState.REVERSED:
            self._emit("finished", status="not_charged")
            return PaymentOutcome("not_charged", record, order, OrderNotPayable("refused by the platform",
                                                                                status="refused"))
        self._emit("finished", status="paid")
        return PaymentOutcome("paid", record, order)

    def _confirm(self, record: PaymentRecord, terminal: PaymentTerminal | None) -> PaymentRecord:
        """approved → confirmed; a refusal → reversing → reversed. Platform down: stays approved (retried)."""
        failpoints.hit("before:confirm")
        try:
            self.platform.confirm_payment(record.order_no, record.method, record.txn_ref, record.amount_fen,
                                          card_masked=record.card_masked or None,
                                          idempotency_key=f"confirm-{record.id}")
        except PlatformUnavailable:
            log.warning("payment %s approved; platform unavailable, confirmation deferred", record.reference)
            return record
        except PlatformRejected as exc:
            if exc.platform_code not in REFUSED_CODES and exc.status < 500:
                log.error("payment %s: platform refused the confirmation (%s)", record.reference, exc.platform_code)
            record = self.journal.transition(record.id, PaymentState.REVERSING, reason=exc.platform_code or exc.code)
            failpoints.hit("after:reversing")
            return self._reverse(record, terminal)
        record = self.journal.transition(record.id, PaymentState.CONFIRMED)
        failpoints.hit("after:confirmed")
        return record

    def _reverse(self, record: PaymentRecord, terminal: PaymentTerminal | None) -> PaymentRecord:
        if terminal is None:
            return record
        try:
            result = terminal.reverse(record.order_no)
        except DeviceError:
            return record      # stays reversing: the reconciler tries again
        if result.status in (TxnStatus.REVERSED, TxnStatus.NOT_FOUND, TxnStatus.CANCELLED, TxnStatus.DECLINED):
            return self.journal.transition(record.id, PaymentState.REVERSED, reason=result.status.value)
        return record

    # phone QR ---------------------------------------------------------------------------------------------------------
    def _pay_qr(self, order: PaymentOrder, record: PaymentRecord, cancel: threading.Event) -> PaymentOutcome:
        record = self.journal.transition(record.id, PaymentState.STARTED)
        failpoints.hit("after:started")
        self._emit("qr", url=self.platform.order_qr_url(order.order_no))
        self._emit("prompt", key="payment.prompt.scan_qr")
        deadline = self._clock() + self.config.qr_timeout_s
        while True:
            try:
                now_order = self.platform.payment_order(order.order_no)
            except PlatformUnavailable:
                now_order = None
            if now_order is not None and now_order.status != "pending":
                return self._qr_settled(order, record, now_order)
            self._emit("waiting")
            if cancel.wait(self.config.qr_poll_s) or self._clock() >= deadline:
                break
        return self._qr_close(order, record)

    def _qr_close(self, order: PaymentOrder, record: PaymentRecord) -> PaymentOutcome:
        """Stop waiting for the phone: close the order on the platform, so a late payment cannot arrive unseen."""
        try:
            closed = self.platform.cancel_payment(order.order_no, "QR payment not completed at the kiosk")
        except PlatformRejected as exc:
            if exc.platform_code == "already_paid":     # the phone paid just now
                return self._qr_settled(order, record, self.platform.payment_order(order.order_no))
            raise
        except PlatformUnavailable as exc:
            record = self.journal.transition(record.id, PaymentState.UNKNOWN, reason="platform_unavailable")
            return PaymentOutcome("in_doubt", record, order, exc)
        return self._qr_settled(order, record, closed)

    def _qr_settled(self, order: PaymentOrder, record: PaymentRecord, now_order: PaymentOrder) -> PaymentOutcome:
        if now_order.status == "paid":
            record = self.journal.transition(record.id, PaymentState.APPROVED, txn_ref=now_order.txn_ref or "",
                                             method=now_order.method or "", paid_at=time.time())
            record = self.journal.transition(record.id, PaymentState.CONFIRMED)   # the platform took it itself
            self._emit("finished", status="paid")
            return PaymentOutcome("paid", record, now_order)
        record = self.journal.transition(record.id, PaymentState.CANCELLED, reason=now_order.status)
        self._emit("finished", status="not_charged")
        return PaymentOutcome("not_charged", record, now_order, PaymentTimeout(now_order.status))

    # reconciliation --------------------------------------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        """Settle every unresolved record (at start, before anyone is served). The terminal is asked at most until
        it first fails to answer; the platform likewise; what cannot be settled now stays open for the next run."""
        started = time.monotonic()
        report = ReconcileReport()
        reachable = {"terminal": True, "platform": True}
        for record in self.journal.unresolved():
            report.checked += 1
            try:
                settled = self.settle(record, reachable)
            except Exception as exc:  # one bad record must not stop the others
                log.error("reconciling %s failed: %s", record.reference, type(exc).__name__)
                settled = record
            {PaymentState.CONFIRMED: report.confirmed, PaymentState.REVERSED: report.reversed,
             PaymentState.CANCELLED: report.not_charged, PaymentState.DECLINED: report.not_charged}.get(
                settled.state, report.still_open).append(settled.order_no)
        report.seconds = time.monotonic() - started
        return report

    def settle(self, record: PaymentRecord, reachable: dict[str, bool] | None = None) -> PaymentRecord:
        """Resolve one record as far as possible now (idempotent; safe to run again)."""
        reachable = reachable if reachable is not None else {"terminal": True, "platform": True}
        if record.channel == "qr":
            return self._settle_qr(record, reachable)
        terminal = self.terminals(record.channel) if reachable["terminal"] else None
        state = record.state
        if state is PaymentState.CREATED:           # the sale never left the kiosk
            return self.journal.transition(record.id, PaymentState.CANCELLED, reason="never_started")
        if state in (PaymentState.STARTED, PaymentState.UNKNOWN):
            if terminal is None:
                return record
            try:
                result = terminal.query(record.order_no)
                if result.status is TxnStatus.PENDING:   # still running on the pad (kiosk restarted mid-sale)
                    result = terminal.cancel(record.order_no)
                    if result.status is TxnStatus.PENDING:
                        result = terminal.query(record.order_no)
            except DeviceError:
                reachable["terminal"] = False
                return record
            if result.status is TxnStatus.APPROVED:
                record = self.journal.transition(record.id, PaymentState.APPROVED,
                                                 txn_ref=result.ref or result.txn_id, card_masked=result.card_masked,
                                                 method=result.method or record.method or "unionpay_card",
                                                 paid_at=time.time())
                state = record.state
            elif result.status in (TxnStatus.DECLINED, TxnStatus.CANCELLED, TxnStatus.NOT_FOUND,
                                   TxnStatus.REVERSED):
                return self.journal.transition(record.id, PaymentState.DECLINED if result.status is
                                               TxnStatus.DECLINED else PaymentState.CANCELLED,
                                               reason=f"reconciled:{result.status.value}")
            else:
                return record if record.state is PaymentState.UNKNOWN else \
                    self.journal.transition(record.id, PaymentState.UNKNOWN, reason="reconciled:unknown")
        if state is PaymentState.APPROVED:
            if not reachable["platform"]:
                return record
            confirmed = self._confirm(record, terminal)
            if confirmed.state is PaymentState.APPROVED:
                reachable["platform"] = False
            return confirmed
        if state is PaymentState.REVERSING:
            return self._reverse(record, terminal)
        return record

    def _settle_qr(self, record: PaymentRecord, reachable: dict[str, bool]) -> PaymentRecord:
        if record.state is PaymentState.CREATED:
            return self.journal.transition(record.id, PaymentState.CANCELLED, reason="never_started")
        if not reachable["platform"]:
            return record
        try:
            order = self.platform.payment_order(record.order_no)
            if order.status == "pending":
                try:
                    order = self.platform.cancel_payment(record.order_no, "QR payment not completed (reconciled)")
                except PlatformRejected as exc:
                    if exc.platform_code != "already_paid":
                        raise
                    order = self.platform.payment_order(record.order_no)
        except PlatformUnavailable:
            reachable["platform"] = False
            return record
        if order.status == "paid":
            if record.state is not PaymentState.APPROVED:
                record = self.journal.transition(record.id, PaymentState.APPROVED, txn_ref=order.txn_ref or "",
                                                 method=order.method or "", paid_at=time.time())
            return self.journal.transition(record.id, PaymentState.CONFIRMED)
        return self.journal.transition(record.id, PaymentState.CANCELLED, reason=f"reconciled:{order.status}")
