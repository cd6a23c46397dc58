"""Typed device errors.

Every failure a driver can report is a subclass of :class:`DeviceError` carrying a stable ``code`` (what operators
and the fleet see) and a ``translation_key`` (what the kiosk shows citizens, looked up in the zh/en tables), plus a
recommended ``action`` (after CEN/XFS: retry, reset, call_staff, maintenance). Drivers never import the kiosk, so the
translation tables live in ``kiosk/locales``; a key here must exist there (a test checks it).
"""
from __future__ import annotations

from typing import Any, ClassVar


class DeviceError(Exception):
    """Base of every device failure."""

    code: ClassVar[str] = "hardware_error"
    translation_key: ClassVar[str] = "error.device.hardware_error"
    action: ClassVar[str] = "call_staff"

    def __init__(self, message: str = "", **placeholders: Any) -> None:
        super().__init__(message or self.code)
        self.placeholders = placeholders

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={str(self)!r})"


class NoDevice(DeviceError):
    """The device is not there (port missing, USB unplugged, connection refused)."""

    code = "no_device"
    translation_key = "error.device.no_device"
    action = "call_staff"


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""

    code = "timeout"
    translation_key = "error.device.timeout"
    action = "retry"


class ProtocolError(DeviceError):
    """The device answered with bytes that do not form a valid reply (bad checksum, bad length, garbage)."""

    code = "invalid_data"
    translation_key = "error.device.invalid_data"
    action = "retry"


class HardwareError(DeviceError):
    """The device reported an internal failure."""

    code = "hardware_error"
    translation_key = "error.device.hardware_error"
    action = "maintenance"


class DeviceBusy(DeviceError):
    code = "busy"
    translation_key = "error.device.busy"
    action = "retry"


class Unsupported(DeviceError):
    code = "unsupported"
    translation_key = "error.device.unsupported"
    action = "maintenance"


# --- card readers -------------------------------------------------------------------------------------------------

class NoCard(DeviceError):
    """No card in the field."""

    code = "no_media"
    translation_key = "error.card.no_card"
    action = "retry"


class CardRemoved(DeviceError):
    """The card left the field during a read: nothing of it is returned."""

    code = "card_removed"
    translation_key = "error.card.removed"
    action = "retry"


class CardReadFailed(DeviceError):
    """The card is there but could not be read (authentication or read failure reported by the SAM)."""

    code = "card_read_failed"
    translation_key = "error.card.read_failed"
    action = "retry"


class InvalidCardData(DeviceError):
    """The card was read but its data is not a valid identity (bad check digit, unknown card type)."""

    code = "invalid_card_data"
    translation_key = "error.card.invalid_data"
    action = "call_staff"


class CardExpired(DeviceError):
    """The document's validity has ended."""

    code = "card_expired"
    translation_key = "error.card.expired"
    action = "call_staff"


# --- printers -----------------------------------------------------------------------------------------------------

class PaperOut(DeviceError):
    code = "paper_out"
    translation_key = "error.printer.paper_out"
    action = "call_staff"


class CoverOpen(DeviceError):
    code = "cover_open"
    translation_key = "error.printer.cover_open"
    action = "call_staff"


class PrinterOffline(DeviceError):
    code = "printer_offline"
    translation_key = "error.printer.offline"
    action = "call_staff"


ALL_DEVICE_ERRORS: tuple[type[DeviceError], ...] = (
    DeviceError, NoDevice, DeviceTimeout, ProtocolError, HardwareError, DeviceBusy, Unsupported,
    NoCard, CardRemoved, CardReadFailed, InvalidCardData, CardExpired,
    PaperOut, CoverOpen, PrinterOffline,
)
