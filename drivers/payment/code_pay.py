"""Payment-code (付款码) payments: the citizen shows the wallet's payment code to the kiosk's QR scanner; the code
goes to the acquirer through the payment pad's ECR link (MIS-POS terminals offer this "scan to pay" sale with a
code handed over by the ECR), so the pad's host is the acquirer and its ledger the truth, exactly as for cards.

The wallet may answer "user paying" (the citizen must confirm on the phone): the result is ``pending`` with reason
``user_paying`` and the caller queries by order every few seconds and cancels when it takes too long
(kiosk/payments does: ~5 s / ~30 s, configurable).
"""
from __future__ import annotations

import time

from drivers.payment.base import (
    PaymentMethod, PaymentPad, PaymentResult, PaymentTerminal, TxnStatus, code_wallet)
from drivers.payment.errors import InvalidPaymentCode
from drivers.qr_scanner.base import QrScanner


class CodePaymentTerminal(PaymentTerminal):
    """:class:`PaymentTerminal` over a QR scanner (reads the code) and a pad (the acquirer link)."""

    def __init__(self, scanner: QrScanner, pad: PaymentPad) -> None:
        self.scanner, self.pad = scanner, pad
        self._waiting: dict[str, int] = {}   # order → amount, until a code was scanned

    def set_listener(self, listener) -> None:  # type: ignore[no-untyped-def]
        super().set_listener(listener)
        self.pad.set_listener(listener)

    def start(self, order_id: str, amount_fen: int, method: PaymentMethod | str = PaymentMethod.WECHAT, *,
              payment_code: str | None = None) -> str:
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        if payment_code:
            return self._send(order_id, amount_fen, payment_code)
        self.scanner.flush()   # a code shown before the kiosk asked is never used
        self._waiting[order_id] = amount_fen
        return order_id

    def _send(self, order_id: str, amount_fen: int, code: str) -> str:
        wallet = code_wallet(code)
        if wallet is None:
            raise InvalidPaymentCode("not a payment code of a known wallet")
        return self.pad.start(order_id, amount_fen, wallet, payment_code=code)

    def wait(self, txn_id: str, timeout: float) -> PaymentResult:
        deadline = time.monotonic() + timeout
        if txn_id in self._waiting:
            code = self.scanner.read_code(timeout)
            if code is None:
                return PaymentResult(order_id=txn_id, status=TxnStatus.PENDING, reason="waiting_for_code")
            self._event("code_scanned", txn_id)
            if code_wallet(code) is None:
                return PaymentResult(order_id=txn_id, status=TxnStatus.PENDING, reason="invalid_code")
            amount = self._waiting.pop(txn_id)
            self._send(txn_id, amount, code)
        return self.pad.wait(txn_id, max(0.05, deadline - time.monotonic()))

    def cancel(self, txn_id: str) -> PaymentResult:
        if self._waiting.pop(txn_id, None) is not None:
            return PaymentResult(order_id=txn_id, status=TxnStatus.CANCELLED, reason="no_code")
        return self.pad.cancel(txn_id)

    def query(self, order_id: str) -> PaymentResult:
        return self.pad.query(order_id)

    def reverse(self, order_id: str) -> PaymentResult:
        return self.pad.reverse(order_id)

    def refund(self, order_id: str, amount_fen: int) -> PaymentResult:
        return self.pad.refund(order_id, amount_fen)
