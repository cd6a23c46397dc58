"""What the two serial payment pad drivers share (``ecr_pad.py``, ``nexo_pad.py``): the port settings, opening the
port, and the ``read(timeout) -> bytes`` callable their framed links poll."""
from __future__ import annotations

import time
from typing import Any, Callable

import serial

from drivers.errors import NoDevice
from drivers.payment import ecr

PORT_ERRORS = (serial.SerialException, OSError)
POLL_S = 0.02

#: JSON-schema properties of a serial pad's link settings
SERIAL_SETTINGS: dict[str, Any] = {
    "port": {"type": "string", "minLength": 1, "description": "serial device path or pyserial URL"},
    "baud": {"type": "integer", "enum": [9600, 19200, 38400, 57600, 115200], "default": 115200},
    "ack_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "default": ecr.ACK_TIMEOUT_S},
    "retries": {"type": "integer", "minimum": 0, "maximum": 5, "default": ecr.RETRIES},
}


def open_port(port: str, baud: int) -> serial.SerialBase:
    """The pad's port, opened exclusively (a pyserial URL when it contains ``://``), input flushed; NoDevice when
    it cannot be opened."""
    try:
        if "://" in port:
            ser = serial.serial_for_url(port, baudrate=baud, timeout=POLL_S)
        else:
            ser = serial.Serial(port, baudrate=baud, timeout=POLL_S, exclusive=True)
        ser.reset_input_buffer()
    except (*PORT_ERRORS, ValueError) as exc:
        raise NoDevice(f"cannot open payment pad port {port}: {exc}", port=port) from exc
    return ser


def reader(ser: serial.SerialBase) -> Callable[[float], bytes]:
    """``read(timeout)``: what the port has, waiting up to ``timeout`` s for a first byte."""
    def read(timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            data = ser.read(max(1, ser.in_waiting))
            if data or time.monotonic() >= deadline:
                return data

    return read
