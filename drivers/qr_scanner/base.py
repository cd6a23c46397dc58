"""A QR / barcode scanner (kind ``qr_scanner``): the citizen shows a code (e.g. a payment code 付款码) and the
scanner sends it as one line ending in CR (shared/protocols.md §5; serial or keyboard-HID scanners alike)."""
from __future__ import annotations

import abc

from drivers.base import Device, DeviceStatus


class QrScanner(Device):
    KIND = "qr_scanner"

    @abc.abstractmethod
    def read_code(self, timeout: float) -> str | None:
        """The next scanned code (without its terminator), or None when none came within ``timeout``."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Forget codes scanned before now (a code shown before the kiosk asked for one is never used)."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...
