"""What the payment screen calls (``core.payments``): find an order (by number, or the citizen's unpaid ones), show
and say amount, purpose and payee, pay through the card pad, a payment code or the phone QR, print the voucher.

Every method takes ``on_result``/``on_error`` callbacks, runs its blocking work on the core's workers and answers
through the core's dispatcher. Prompts during a payment reach screens as core events: ``payment_prompt`` (``key``:
a translation key) and ``payment_qr`` (``url``: what the QR for the citizen's phone encodes).

The reconciler runs in ``core.start()`` before anyone is served (:meth:`reconcile_now`); until it has run, payments
are refused with :class:`PaymentsNotReady`. At session end a running payment is asked to stop (it still ends in a
journaled, settled state) and nothing of the citizen's orders is kept.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from drivers.payment.base import PaymentTerminal
from drivers.payment.code_pay import CodePaymentTerminal
from kiosk.errors import InvalidSessionState, KioskError
from kiosk.payments.journal import PaymentJournal
from kiosk.payments.service import Channel, PaymentConfig, PaymentOutcome, PaymentService, ReconcileReport
from kiosk.platform_client import PaymentOrder

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)
Callback = Callable[[Any], None] | None


class PaymentsNotReady(KioskError):
    """The reconciler has not finished: earlier payments are still being checked."""

    code = "payments_not_ready"
    translation_key = "payment.unfinished"


@dataclass(frozen=True)
class PaymentDone:
    """The outcome, and for a paid order the voucher print (``print_error`` set when it did not print)."""

    outcome: PaymentOutcome
    print_result: Any = None
    print_error: BaseException | None = None


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


#: how often records left open (pad or platform unreachable at start) are tried again
RETRY_S = 60.0


class PaymentFlow:
    def __init__(self, ctx: "UseCaseContext", config: PaymentConfig | None = None, retry_s: float = RETRY_S) -> None:
        self.ctx = ctx
        self.journal = PaymentJournal(Path(ctx.profile.kiosk.data_dir) / "payments.sqlite3")
        self.service = PaymentService(self.journal, ctx.platform, self.terminal, config or PaymentConfig(),
                                      listener=self._on_service_event)
        self.ready = threading.Event()
        self.last_report: ReconcileReport | None = None
        self._cancel = threading.Event()
        self._code_terminal: CodePaymentTerminal | None = None
        self._busy = threading.Lock()         # one payment or reconciliation at a time
        self._closed = threading.Event()
        self.retry_s = retry_s
        self._retry_thread: threading.Thread | None = None
        ctx.session.subscribe(self._on_session_event)

    # devices ----------------------------------------------------------------------------------------------------------
    def terminal(self, channel: str) -> PaymentTerminal | None:
        pad = self.ctx.devices.get("payment_pad")
        if channel == "card":
            return pad  # type: ignore[return-value]
        scanner = self.ctx.devices.get("qr_scanner")
        if channel == "code" and pad is not None and scanner is not None:
            if self._code_terminal is None or self._code_terminal.pad is not pad:
                self._code_terminal = CodePaymentTerminal(scanner, pad)  # type: ignore[arg-type]
            return self._code_terminal
        return None

    def channels(self) -> list[str]:
        """The ways to pay this kiosk offers now (the phone QR needs only the platform)."""
        usable = self.ctx.availability.devices
        out = []
        if self.terminal("card") is not None and usable.get("payment_pad", True):
            out.append("card")
        if self.terminal("code") is not None and usable.get("payment_pad", True):
            out.append("code")
        return out + ["qr"]

    # start-up ---------------------------------------------------------------------------------------------------------
    def reconcile_now(self) -> ReconcileReport:
        """Settle every unresolved payment (blocking; the core runs it in ``start()`` before serving). What stays
        open (terminal or platform unreachable) is tried again every ``retry_s`` in the background."""
        try:
            with self._busy:
                report = self.service.reconcile()
        finally:
            self.ready.set()
        self.last_report = report
        if report.checked:
            self.ctx.audit("payment_reconciled", checked=report.checked, confirmed=len(report.confirmed),
                             reversed=len(report.reversed), not_charged=len(report.not_charged),
                             still_open=report.still_open, seconds=round(report.seconds, 3))
        if report.still_open:
            log.warning("%d payment(s) still in doubt after reconciliation", len(report.still_open))
            self._start_retries()
        return report

    def _start_retries(self) -> None:
        if self._retry_thread is not None and self._retry_thread.is_alive():
            return

        def loop() -> None:
            while not self._closed.wait(self.retry_s):
                if not self._busy.acquire(blocking=False):
                    continue           # a citizen is paying: try at the next tick
                try:
                    report = self.service.reconcile()
                except Exception as exc:
                    log.error("payment reconciliation failed: %s", type(exc).__name__)
                    continue
                finally:
                    self._busy.release()
                self.last_report = report
                if report.checked:
                    self.ctx.audit("payment_reconciled", checked=report.checked, confirmed=len(report.confirmed),
                                     reversed=len(report.reversed), not_charged=len(report.not_charged),
                                     still_open=report.still_open, seconds=round(report.seconds, 3))
                if not report.still_open:
                    return

        self._retry_thread = threading.Thread(target=loop, name="payment-reconcile", daemon=True)
        self._retry_thread.start()

    # events -----------------------------------------------------------------------------------------------------------
    def _on_service_event(self, name: str, payload: dict[str, Any]) -> None:
        # a citizen at the pad or on the phone is not idle: the payment's own timeouts bound the wait
        self.ctx.session.touch()
        if name in ("prompt", "qr"):
            self.ctx.emit("payment_" + name, **payload)

    def _on_session_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "ended":
            self._cancel.set()          # a payment still waiting stops (and settles in the journal)

    # screens ----------------------------------------------------------------------------------------------------------
    def find(self, order_no: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.ctx.session.begin_service()
        self.ctx.run("payment_find", self.service.find_order, order_no, on_result=on_result, on_error=on_error)

    def my_unpaid(self, on_result: Callback = None, on_error: Callback = None) -> None:
        """The identified citizen's unpaid orders (refused before the face check confirms the card holder)."""
        if self.ctx.session.citizen is None or not self.ctx.face_check.identity_confirmed():
            if on_error:
                self.ctx.dispatch(lambda: on_error(InvalidSessionState("no identified citizen")))
            return
        self.ctx.session.begin_service()
        self.ctx.run("payment_list", lambda: self.service.unpaid_orders(self.ctx.citizen_token()),
                       on_result=on_result, on_error=on_error)

    def texts(self, order: PaymentOrder) -> dict[str, str]:
        """What the confirmation shows, each line translated (amount in yuan from fen)."""
        t = self.ctx.translator.t
        return {"order_no": t("payment.order_no", order_no=order.order_no),
                "purpose": t("payment.purpose", purpose=order.purpose),
                "amount": t("payment.amount", amount=yuan(order.amount_fen)),
                "payee": t("payment.payee", payee=order.payee),
                "speak": t("payment.speak.confirm", purpose=order.purpose, amount=yuan(order.amount_fen),
                           payee=order.payee)}

    def announce(self, order: PaymentOrder) -> str:
        """Say amount, purpose and payee aloud (the voice, where the kiosk has one); returns the spoken text, which
        the screen also shows."""
        text = self.texts(order)["speak"]
        speak = getattr(self.ctx, "speak", None)
        if callable(speak):
            try:
                speak("payment.speak.confirm", purpose=order.purpose, amount=yuan(order.amount_fen),
                      payee=order.payee)
            except Exception:
                log.warning("speaking the payment confirmation failed")
        return text

    def pay(self, order: PaymentOrder, channel: Channel, on_result: Callback = None,
            on_error: Callback = None) -> None:
        self.ctx.session.begin_service()
        self._cancel = cancel = threading.Event()
        session_id = self.ctx.session.data.id

        def work() -> PaymentDone:
            if not self.ready.is_set():
                raise PaymentsNotReady("reconciliation still running")
            # the payment journal records every step before the pad is asked: refused while the disk is full
            self.ctx.require_storage("payment")
            with self._busy, self.ctx.storage.writing("payment journal"):
                outcome = self.service.pay(order, channel, cancel)
            self.ctx.audit("payment", session_id, order=outcome.record.order_no, channel=channel,
                             status=outcome.status, state=outcome.record.state.value,
                             amount_fen=outcome.record.amount_fen, ref=outcome.reference)
            if not outcome.record.state.resolved:
                self._start_retries()       # in doubt / confirmation pending: settled in the background
            if outcome.status != "paid":
                return PaymentDone(outcome)
            try:
                result = self.print_voucher(outcome)
            except Exception as exc:   # paid but no paper: the screen shows the reference for a copy
                self.ctx.audit("payment_voucher_failed", session_id, ref=outcome.reference,
                                 code=getattr(exc, "code", "internal_error"))
                return PaymentDone(outcome, print_error=exc)
            return PaymentDone(outcome, print_result=result)

        self.ctx.run("payment", work, on_result=on_result, on_error=on_error)

    def cancel(self) -> None:
        """The citizen pressed cancel: the running payment stops at the terminal if it still can."""
        self._cancel.set()

    def print_voucher(self, outcome: PaymentOutcome) -> Any:
        record, order = outcome.record, outcome.order
        method = self.ctx.translator.t(f"payment.method.{record.method}") if record.method else ""
        paid_at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.paid_at or time.time()))
        return self.ctx.print_service.print_receipt(
            "payment_voucher", summary=f"缴费凭证 {record.order_no}",
            payment={"order_id": record.order_no, "item": record.purpose,
                     "application_number": record.application_number, "payer_masked": order.payer_masked,
                     "amount_fen": record.amount_fen, "method": method + (f" {record.card_masked}"
                                                                           if record.card_masked else ""),
                     "txn_ref": record.txn_ref, "paid_at": paid_at, "payee": record.payee,
                     "verify_url": self.ctx.public_urls.payment(record.order_no)})

    def close(self) -> None:
        self._cancel.set()
        self._closed.set()
        if self._retry_thread is not None:
            self._retry_thread.join(30)
        self.journal.close()
