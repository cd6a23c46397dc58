"""A serial QR scanner over pyserial: every code arrives as one line ending in CR (LF and CRLF are accepted too).

Profile example::

    qr_scanner:
      driver: serial
      settings: {port: /dev/serial/by-id/usb-…-scanner, baud: 9600}
"""
from __future__ import annotations

import time
from typing import Any

import serial

from drivers.base import DeviceState, DeviceStatus, device_call
from drivers.errors import NoDevice
from drivers.qr_scanner.base import QrScanner, scrub_card_numbers

MAX_CODE = 512

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "serial QR scanner",
    "type": "object",
    "required": ["port"],
    "properties": {
        "port": {"type": "string", "minLength": 1},
        "baud": {"type": "integer", "enum": [9600, 19200, 38400, 57600, 115200], "default": 9600},
    },
    "additionalProperties": False,
}


class SerialQrScanner(QrScanner):
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.port: str = settings["port"]
        self.baud = int(settings.get("baud", 9600))
        self.counters: dict[str, int] = {"codes": 0, "errors": 0, "too_long": 0, "card_numbers_masked": 0}
        self._ser: serial.SerialBase | None = None
        self._buf = bytearray()

    def _open(self) -> None:
        try:
            if "://" in self.port:
                self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05)
            else:
                self._ser = serial.Serial(self.port, baudrate=self.baud, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise NoDevice(f"cannot open QR scanner port {self.port}: {exc}", port=self.port) from exc

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass

    def _port(self) -> serial.SerialBase:
        if self._ser is None:
            if not self._opened:
                raise NoDevice("QR scanner driver is not open")
            self._open()
        assert self._ser is not None
        return self._ser

    def _take_line(self) -> str | None:
        for i, b in enumerate(self._buf):
            if b in (0x0D, 0x0A):
                line, self._buf[:] = bytes(self._buf[:i]), self._buf[i + 1:]
                code = line.decode("utf-8", "replace").strip()
                if code:
                    self.counters["codes"] += 1
                    scrubbed = scrub_card_numbers(code)   # no card number leaves the driver (base.py)
                    if scrubbed != code:
                        self.counters["card_numbers_masked"] += 1
                    return scrubbed
                return self._take_line()
        if len(self._buf) > MAX_CODE:   # no terminator in sight: noise, drop it
            self.counters["too_long"] += 1
            self._buf.clear()
        return None

    @device_call
    def read_code(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            code = self._take_line()
            if code is not None:
                return code
            try:
                ser = self._port()
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._close()
                raise NoDevice(f"QR scanner port {self.port} failed: {type(exc).__name__}") from exc
            self._buf += chunk
            if not chunk and time.monotonic() >= deadline:
                return None

    @device_call
    def flush(self) -> None:
        self._buf.clear()
        try:
            self._port().reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self._close()
            raise NoDevice(f"QR scanner port {self.port} failed: {type(exc).__name__}") from exc

    def status(self) -> DeviceStatus:
        # a serial scanner is passive: an open port is all there is to know
        with self._lock:
            extra = {"port": self.port}
            if not self._opened:
                return DeviceStatus(self.KIND, DeviceState.NO_DEVICE, detail="driver not open", extra=extra,
                                    counters=dict(self.counters))
            try:
                self._port()
            except NoDevice as exc:
                return DeviceStatus(self.KIND, DeviceState.NO_DEVICE, error_code=exc.code, detail=str(exc),
                                    extra=extra, counters=dict(self.counters))
            return DeviceStatus(self.KIND, DeviceState.ONLINE, extra=extra, counters=dict(self.counters))
