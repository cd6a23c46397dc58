"""One interface for every payment device (shared/protocols.md §5): a bank-card pad, a payment-code (付款码) flow
through the pad's acquirer, and any later terminal.

    start(order_id, amount_fen, method) -> txn_id      (the order id is the idempotency key)
    wait(txn_id, timeout) -> PaymentResult              (pending while the citizen is still acting)
    cancel(txn_id) · query(order_id) · reverse(order_id) · refund(order_id, amount_fen) · status()

Events (card detected, PIN entry started, code scanned, processing) go to ``listener`` from the driver's thread.
Card numbers appear only masked; the PIN never leaves the pad.
"""
from __future__ import annotations

import abc
import enum
import re
from dataclasses import dataclass
from typing import Callable, Literal

from drivers.base import Device, DeviceStatus, mask_card_number, mask_pan


class PaymentMethod(str, enum.Enum):
    """The platform's method names (service_platform payments)."""

    CARD = "unionpay_card"
    WECHAT = "wechat_pay"
    ALIPAY = "alipay"
    ECNY = "ecny"


class TxnStatus(str, enum.Enum):
    PENDING = "pending"        # still running (waiting for card, PIN, or the citizen's phone)
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"    # by the citizen, a timeout, or the kiosk — not charged
    UNKNOWN = "unknown"        # in doubt: query by order
    REVERSED = "reversed"
    REFUNDED = "refunded"
    NOT_FOUND = "not_found"    # query: the terminal never saw this order

    @property
    def final(self) -> bool:
        return self not in (TxnStatus.PENDING, TxnStatus.UNKNOWN)

    @property
    def charged(self) -> bool:
        return self is TxnStatus.APPROVED


@dataclass(frozen=True)
class PaymentResult:
    """What the terminal says about one order. Safe for logs: the card number is masked, no PIN, no code."""

    order_id: str
    status: TxnStatus
    amount_fen: int = 0
    method: str = ""
    txn_id: str = ""
    ref: str = ""              # host reference (the platform's txn_ref)
    card_masked: str = ""
    reason: str = ""           # response code / reason (declined: "51", cancelled: "pin_timeout", …)

    def __post_init__(self) -> None:
        # the last line of defence for every terminal: whatever a driver put here, only first 6 / last 4 stay
        object.__setattr__(self, "card_masked", mask_card_number(self.card_masked))


EventType = Literal["card_detected", "pin_entry_started", "code_scanned", "processing"]


@dataclass(frozen=True)
class PaymentEvent:
    type: EventType
    order_id: str


PaymentListener = Callable[[PaymentEvent], None]


class PaymentTerminal(abc.ABC):
    """What the payment use case drives. Implementations: :class:`PaymentPad` drivers, the payment-code flow."""

    listener: PaymentListener | None = None

    def set_listener(self, listener: PaymentListener | None) -> None:
        self.listener = listener

    def _event(self, type_: EventType, order_id: str) -> None:
        listener = self.listener
        if listener is not None:
            try:
                listener(PaymentEvent(type_, order_id))
            except Exception:  # a faulty listener must never break a payment
                pass

    @abc.abstractmethod
    def start(self, order_id: str, amount_fen: int, method: PaymentMethod | str, *,
              payment_code: str | None = None) -> str:
        """Begin a payment; returns the transaction id. Starting an order the terminal already knows returns that
        transaction (never a second charge). Raises LinkDown, TerminalBusy, PaymentError."""

    @abc.abstractmethod
    def wait(self, txn_id: str, timeout: float) -> PaymentResult:
        """The result, or status ``pending`` when none came within ``timeout``. A lost link during the wait is
        ``unknown`` (in doubt), never an exception: the caller must query."""

    @abc.abstractmethod
    def cancel(self, txn_id: str) -> PaymentResult:
        """Ask the terminal to stop a pending payment; returns what it then says (it may have been approved)."""

    @abc.abstractmethod
    def query(self, order_id: str) -> PaymentResult:
        """The terminal's (host's) view of the order; idempotent. Raises LinkDown when it cannot be asked."""

    @abc.abstractmethod
    def reverse(self, order_id: str) -> PaymentResult:
        """Undo an approved (or in-doubt) payment of this order; idempotent (``reversed``/``not_found``)."""

    @abc.abstractmethod
    def refund(self, order_id: str, amount_fen: int) -> PaymentResult:
        """Refund (part of) a settled payment."""


class PaymentPad(Device, PaymentTerminal):
    """A payment pad device (kind ``payment_pad``)."""

    KIND = "payment_pad"

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...


_WECHAT_CODE = re.compile(r"^1[0-5]\d{16}$")
_ALIPAY_CODE = re.compile(r"^(2[5-9]|30)\d{14,22}$")


def code_wallet(code: str) -> str | None:
    """Which wallet a payment code (付款码) belongs to: WeChat 18 digits from 10–15, Alipay 16–24 from 25–30
    (the wallets' published code formats); None for anything else."""
    if _WECHAT_CODE.match(code):
        return PaymentMethod.WECHAT.value
    if _ALIPAY_CODE.match(code):
        return PaymentMethod.ALIPAY.value
    return None


__all__ = ["PaymentMethod", "TxnStatus", "PaymentResult", "PaymentEvent", "PaymentListener", "PaymentTerminal",
           "PaymentPad", "mask_pan", "mask_card_number", "code_wallet"]
