"""Typed errors specific to PC/SC smart cards (social-security and bank cards).

Each subclasses a class of :mod:`drivers.errors`, so code that handles the generic card errors (``CardReadFailed``,
``InvalidCardData``, ``ProtocolError``) handles these too. Each has its own stable ``code`` and, where citizens need
different words, its own ``translation_key`` (TlvError shows its parent's). Messages never quote card data, PINs or
PANs.
"""
from __future__ import annotations

from drivers.errors import CardReadFailed, DeviceError, InvalidCardData, ProtocolError


class UnsupportedCard(InvalidCardData):
    """The card in the reader is neither a social-security card nor a bank card we can identify."""

    code = "unsupported_card"
    translation_key = "error.card.unsupported"
    action = "retry"


class PinRequired(CardReadFailed):
    """The card wants its PIN verified before it gives the cardholder records (SW 6982)."""

    code = "pin_required"
    translation_key = "error.card.pin_required"
    action = "retry"


class PinIncorrect(CardReadFailed):
    """VERIFY failed (SW 63Cx); ``placeholders["tries_left"]`` says how many tries remain."""

    code = "pin_incorrect"
    translation_key = "error.card.pin_incorrect"
    action = "retry"


class PinBlocked(CardReadFailed):
    """The PIN is blocked (SW 6983/6984): only the issuer can unblock it."""

    code = "pin_blocked"
    translation_key = "error.card.pin_blocked"
    action = "call_staff"


class TlvError(ProtocolError):
    """Card data that is not valid TLV (truncated, bad length, nested too deep). ``reason`` is stable."""

    REASON_TRUNCATED = "tlv_truncated"
    REASON_BAD_LENGTH = "tlv_bad_length"
    REASON_TOO_DEEP = "tlv_too_deep"
    REASON_MISSING_TAG = "tlv_missing_tag"

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason, reason=reason)
        self.reason = reason


#: every smart-card specific error (for the kiosk's translation-table test once it carries their keys)
SMARTCARD_ERRORS: tuple[type[DeviceError], ...] = (UnsupportedCard, PinRequired, PinIncorrect, PinBlocked, TlvError)

