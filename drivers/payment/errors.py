"""Typed payment errors. Each has a stable ``code`` (operators, audit, fleet) and a ``translation_key`` (citizens'
text in kiosk/locales/*/payment.yaml), as every :class:`drivers.errors.DeviceError`.

Whether money may have moved is part of the type: :class:`ResultUnknown` and :class:`LinkDown` during a transaction
mean "in doubt — query by order before anything else"; the others mean "not charged".
"""
from __future__ import annotations

from typing import ClassVar

from drivers.errors import DeviceError


class PaymentError(DeviceError):
    """Base of every payment failure."""

    code = "payment_failed"
    translation_key = "payment.error.failed"
    action = "retry"
    #: True when the citizen may have been charged (the order must be queried before anything else)
    in_doubt: ClassVar[bool] = False


class Declined(PaymentError):
    """The card issuer or wallet refused (insufficient funds, wrong PIN, …). Not charged."""

    code = "declined"
    translation_key = "payment.error.declined"


class PaymentTimeout(PaymentError):
    """The citizen did not present a card, enter the PIN or confirm on the phone in time. Not charged."""

    code = "payment_timeout"
    translation_key = "payment.error.timeout"


class PinTimeout(PaymentTimeout):
    code = "pin_timeout"
    translation_key = "payment.error.pin_timeout"


class UserCancelled(PaymentError):
    """The citizen pressed cancel (on the pad or on the screen). Not charged."""

    code = "user_cancelled"
    translation_key = "payment.error.user_cancelled"


class LinkDown(PaymentError):
    """The pad stopped answering (cable, power, simulator gone). In doubt when it happened during a sale."""

    code = "link_down"
    translation_key = "payment.error.link_down"
    action = "call_staff"
    in_doubt = True


class ResultUnknown(PaymentError):
    """The pad could not learn the host's answer. In doubt: only a later query by order resolves it."""

    code = "result_unknown"
    translation_key = "payment.error.unknown"
    action = "call_staff"
    in_doubt = True


class TransactionNotFound(PaymentError):
    """The pad has no transaction for this order (it never started: not charged)."""

    code = "txn_not_found"
    translation_key = "payment.error.failed"


class TerminalBusy(PaymentError):
    """Another transaction is in progress on the pad."""

    code = "terminal_busy"
    translation_key = "payment.error.busy"


class InvalidPaymentCode(PaymentError):
    """A scanned code is not a payment code of a known wallet."""

    code = "invalid_payment_code"
    translation_key = "payment.error.invalid_code"


class ReversalFailed(PaymentError):
    code = "reversal_failed"
    translation_key = "payment.error.unknown"
    action = "call_staff"
    in_doubt = True


ALL_PAYMENT_ERRORS: tuple[type[PaymentError], ...] = (
    PaymentError, Declined, PaymentTimeout, PinTimeout, UserCancelled, LinkDown, ResultUnknown,
    TransactionNotFound, TerminalBusy, InvalidPaymentCode, ReversalFailed,
)
