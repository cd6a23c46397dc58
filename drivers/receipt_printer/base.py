"""The receipt-printer interface every receipt driver implements.

Contract of :meth:`ReceiptPrinter.print_receipt`:

1. The printer's status is read **before the first byte** of the job. Paper out, cover open, offline or a printer
   error raise :class:`~drivers.errors.PaperOut`, :class:`~drivers.errors.CoverOpen`,
   :class:`~drivers.errors.PrinterOffline` or :class:`~drivers.errors.HardwareError` and nothing is sent, so nothing
   is half-printed. No printer → :class:`~drivers.errors.NoDevice`; no status answer → :class:`~drivers.errors.DeviceTimeout`.
2. The whole job is built before sending; a receipt that cannot be rendered (e.g. barcode data the symbology does
   not allow) raises ``ValueError`` before anything is sent.
3. After the job the driver checks again. If the job did not complete — paper ran out, cover opened, printer went
   offline or away mid-job — the same errors are raised, carrying ``bytes_sent`` (and ``job_id``) both as an
   attribute and in ``placeholders``, so the print journal records the job as failed and may reprint.
4. Paper near-end is not an error: the job succeeds and :attr:`PrintResult.paper` is :attr:`PaperState.LOW`.
5. ``before_send()`` (optional) is called after the status check passed and before the first byte of the job, so
   the print journal records the job as sent first; if it raises, nothing is sent and the error propagates.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

from drivers.base import Device, DeviceState, DeviceStatus, PaperState
from drivers.errors import (CoverOpen, DeviceError, DeviceTimeout, HardwareError, NoDevice, PaperOut,
                            PrinterOffline, ProtocolError)
from drivers.receipt_printer.document import Receipt


@dataclass(frozen=True)
class PrintResult:
    """A job the printer confirmed. ``paper`` is the paper state after the job (``LOW`` at near-end)."""

    job_id: str
    bytes_sent: int
    paper: PaperState
    duration_s: float


#: DeviceStatus.error_code → the error print_receipt raises for it
STATUS_ERRORS: dict[str, type[DeviceError]] = {
    "no_device": NoDevice,
    "timeout": DeviceTimeout,
    "invalid_data": ProtocolError,
    "paper_out": PaperOut,
    "cover_open": CoverOpen,
    "printer_offline": PrinterOffline,
    "autocutter_error": HardwareError,
    "unrecoverable_error": HardwareError,
    "recoverable_error": HardwareError,
    "hardware_error": HardwareError,
}


def job_error(cls: type[DeviceError], message: str, *, bytes_sent: int = 0, job_id: str = "") -> DeviceError:
    """An error for a print job; ``bytes_sent`` > 0 means the printer received part (or all) of the job."""
    exc = cls(message, bytes_sent=bytes_sent, job_id=job_id)
    exc.bytes_sent = bytes_sent  # type: ignore[attr-defined]
    exc.job_id = job_id  # type: ignore[attr-defined]
    return exc


def error_for_status(status: DeviceStatus, *, bytes_sent: int = 0, job_id: str = "") -> DeviceError | None:
    """The error a job must fail with in this status, or None if the printer can print (paper low is fine)."""
    if status.device is DeviceState.ONLINE and status.paper not in (PaperState.OUT, PaperState.JAMMED) \
            and status.error_code is None:
        return None
    code = status.error_code or ("paper_out" if status.paper is PaperState.OUT else "printer_offline")
    cls = STATUS_ERRORS.get(code, HardwareError)
    return job_error(cls, f"printer not ready: {code}" + (f" ({status.detail})" if status.detail else ""),
                     bytes_sent=bytes_sent, job_id=job_id)


class ReceiptPrinter(Device):
    """A printer of :class:`~drivers.receipt_printer.document.Receipt` documents. See the module doc for the contract."""

    KIND = "receipt_printer"

    @abc.abstractmethod
    def print_receipt(self, receipt: Receipt, *, before_send: Callable[[], None] | None = None) -> PrintResult:
        """Print one receipt and cut it; raise a :class:`~drivers.errors.DeviceError` unless it printed.
        ``before_send`` runs once the printer is known ready, just before the first byte."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus:
        """device online/offline/no_device/hardware_error, paper full/low/out/unknown, error_code (cover_open,
        paper_out, printer_offline, timeout, ...). Never raises for a device fault."""
