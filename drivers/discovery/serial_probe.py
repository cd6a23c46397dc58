"""What answers on a serial port: a GA 467 ID reader, an ESC/POS printer, a payment pad (ECR or nexo framing) or a
QR scanner, each asked in its own protocol at the speeds such devices use.

Order matters, because a wrong question to some devices is not harmless: a receipt printer prints most bytes it
does not understand. So the first question everywhere is ESC/POS's real-time status request (DLE EOT 1), which a
printer answers in any state and every other device here ignores; only a port that did not answer it is asked the
GA 467 "SAM id" and the pads' status requests. A QR scanner answers nothing (it only sends what it scans): a port
silent to every question is listened to for ``listen_s`` (the technician scans any code meanwhile).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

import serial

from drivers.discovery.model import Confidence, Finding
from drivers.idcard import protocol as ga467
from drivers.payment import ecr, nexo

log = logging.getLogger(__name__)

#: GA 467 readers: 115200 by default, also 57600, 38400, 19200, 9600 (shared/protocols.md §1)
IDCARD_BAUDS = (115200, 57600, 38400, 19200, 9600)
#: ESC/POS serial printers: 9600 or 19200 from the factory, 38400/115200 when set up so
PRINTER_BAUDS = (9600, 19200, 38400, 115200)
#: payment pads (drivers/payment/serial_port.py: 115200 default)
PAD_BAUDS = (115200, 9600)
#: QR scanners' serial mode: 9600 from the factory
SCANNER_BAUD = 9600

DLE_EOT_PRINTER = b"\x10\x04\x01"
DLE_EOT_PAPER = b"\x10\x04\x04"
#: a sale system id for the nexo Diagnosis question (never used for a sale)
PROBE_SALE_ID = "DISCOVER"


def escpos_status_byte(b: int) -> bool:
    """A DLE EOT reply has the shape 0xx1xx10 (Epson ESC/POS reference; shared/protocols.md §3)."""
    return b & 0x93 == 0x12


class PortProbe:
    """One serial port, opened exclusively; ``ask(bytes, baud, until, timeout)`` writes and collects the answer."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.ser = serial.serial_for_url(port, baudrate=9600, timeout=0.02, exclusive=True) if "://" in port \
            else serial.Serial(port, baudrate=9600, timeout=0.02, exclusive=True)

    def close(self) -> None:
        self.ser.close()

    def set_baud(self, baud: int) -> None:
        if self.ser.baudrate != baud:
            self.ser.baudrate = baud

    def ask(self, data: bytes, baud: int, done: Callable[[bytes], bool], timeout: float, fresh: bool = True) -> bytes:
        """Write ``data`` (input flushed first unless ``fresh`` is False) and read until ``done(answer)`` or
        ``timeout``."""
        self.set_baud(baud)
        if fresh:
            self.ser.reset_input_buffer()
        if data:
            self.ser.write(data)
            self.ser.flush()
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.ser.read(max(1, self.ser.in_waiting))
            if chunk:
                got += chunk
                if done(got):
                    break
        return got


def _escpos(probe: PortProbe, timeout: float) -> Finding | None:
    for baud in PRINTER_BAUDS:
        reply = probe.ask(DLE_EOT_PRINTER, baud, lambda b: len(b) >= 1, timeout)
        if len(reply) == 1 and escpos_status_byte(reply[0]):
            paper = probe.ask(DLE_EOT_PAPER, baud, lambda b: len(b) >= 1, timeout)
            paper_note = f", paper status 0x{paper[0]:02X}" if paper and escpos_status_byte(paper[0]) else ""
            return Finding("receipt_printer", "escpos", probe.port,
                           {"connection": "serial", "device": probe.port, "baudrate": baud}, Confidence.HIGH,
                           f"ESC/POS status (DLE EOT 1) answered 0x{reply[0]:02X} at {baud} baud{paper_note}")
    return None


def _ga467(probe: PortProbe, timeout: float) -> Finding | None:
    request = ga467.build_request(ga467.SAM_ID)
    for baud in IDCARD_BAUDS:
        reply = probe.ask(request, baud, lambda b: first_ga467_frame(b) is not None, timeout)
        frame = first_ga467_frame(reply)
        if frame is None:
            continue
        try:
            response = frame.response()
        except ga467.FrameError:
            continue
        if response.sw3 == ga467.Sw3.OK and len(response.data) >= ga467.SAM_ID_LEN:
            sam = ga467.format_sam_id(response.data)
            return Finding("idcard", "ga467_serial", probe.port, {"port": probe.port, "baud": baud}, Confidence.HIGH,
                           f"GA 467 SAM id {sam} at {baud} baud", {"sam_id": sam})
        return Finding("idcard", "ga467_serial", probe.port, {"port": probe.port, "baud": baud}, Confidence.MEDIUM,
                       f"GA 467 frame with status {ga467.describe_sw3(response.sw3)} at {baud} baud")
    return None


def first_ga467_frame(data: bytes) -> "ga467.Frame | None":
    """The first complete, checksum-verified GA 467 frame in ``data`` (garbage before it skipped), else None."""
    try:
        frames = ga467.FrameDecoder().decode_all(data)
    except ga467.FrameError:
        return None
    return frames[0] if frames else None


def _pad_frames(data: bytes) -> tuple[bool, list[bytes]]:
    """(ACK seen, data of every well-formed frame) in what a pad sent."""
    acked, frames = False, []
    for event, payload in ecr.FrameDecoder().feed(data):
        if event == "ack":
            acked = True
        elif event == "frame":
            frames.append(bytes(payload))  # type: ignore[arg-type]
    return acked, frames


def _pad_exchange(probe: PortProbe, frame: bytes, baud: int, timeout: float) -> tuple[bool, list[bytes]]:
    """Send one framed request: a pad ACKs within ``timeout`` (silence: not a pad at this speed), then answers
    within a few times that."""
    reply = probe.ask(frame, baud, lambda b: any(_pad_frames(b)), timeout)
    acked, frames = _pad_frames(reply)
    if acked and not frames:
        reply += probe.ask(b"", baud, lambda b: bool(_pad_frames(reply + b)[1]), timeout * 4, fresh=False)
        acked, frames = _pad_frames(reply)
    return acked, frames


def _pad(probe: PortProbe, timeout: float) -> Finding | None:
    status = ecr.encode_frame(ecr.Message("ST", {"SEQ": "1"}).encode())
    diagnosis = ecr.encode_frame(nexo.encode(nexo.diagnosis_request(PROBE_SALE_ID, "")))
    for baud in PAD_BAUDS:
        acked, frames = _pad_exchange(probe, status, baud, timeout)
        for data in frames:
            probe.ser.write(bytes([ecr.ACK]))
            try:
                message = ecr.Message.decode(data)
            except ecr.FrameError:
                continue
            if message.type == "ST":
                model = " ".join(x for x in (message.get("MODEL"), message.get("SN")) if x)
                return Finding("payment_pad", "ecr_serial", probe.port, {"port": probe.port, "baud": baud},
                               Confidence.HIGH, f"ECR status answered ({message.get('STATE') or 'no state'}"
                               f"{', ' + model if model else ''}) at {baud} baud")
        acked2, frames = _pad_exchange(probe, diagnosis, baud, timeout)
        for data in frames:
            probe.ser.write(bytes([ecr.ACK]))
            try:
                message = json.loads(data.decode("utf-8"))
                head = message["SaleToPOIResponse"]["MessageHeader"]
            except (ValueError, KeyError, TypeError):
                continue
            poi = str(head.get("POIID") or "")
            settings = {"port": probe.port, "baud": baud, "poi_id": poi or "SET-POIID-FROM-LABEL"}
            return Finding("payment_pad", "nexo_serial", probe.port, settings, Confidence.HIGH,
                           f"nexo Diagnosis answered{' by POI ' + poi if poi else ''} at {baud} baud")
        if acked or acked2:
            return Finding("payment_pad", "ecr_serial", probe.port, {"port": probe.port, "baud": baud},
                           Confidence.MEDIUM, f"frames ACKed (STX…ETX LRC framing) at {baud} baud, no answer read")
    return None


def _scanner(probe: PortProbe, listen_s: float) -> Finding | None:
    if listen_s <= 0:
        return None
    reply = probe.ask(b"", SCANNER_BAUD, lambda b: b"\r" in b or b"\n" in b, listen_s)
    line = reply.split(b"\r")[0].split(b"\n")[0]
    if (b"\r" in reply or b"\n" in reply) and line and all(32 <= c < 127 or c >= 0x80 for c in line):
        return Finding("qr_scanner", "serial", probe.port, {"port": probe.port, "baud": SCANNER_BAUD},
                       Confidence.HIGH, f"a scanned code arrived ({len(line)} characters + CR) at {SCANNER_BAUD} "
                       "baud")  # never the code itself: it may be a citizen's payment code
    return None


def probe_serial_port(port: str, timeout: float = 0.3, listen_s: float = 0.0) -> Finding:
    """Ask ``port`` what it is. Always returns a finding: a device, or ``kind="unknown"`` saying why not."""
    try:
        probe = PortProbe(port)
    except (serial.SerialException, OSError, ValueError) as exc:
        busy = "busy" in str(exc).lower() or "lock" in str(exc).lower()
        return Finding("unknown", "", port, {}, Confidence.LOW,
                       "port in use by another program (the kiosk?)" if busy else f"cannot open: {exc}")
    try:
        for step in (lambda: _escpos(probe, timeout), lambda: _ga467(probe, timeout), lambda: _pad(probe, timeout),
                     lambda: _scanner(probe, listen_s)):
            try:
                found = step()
            except (serial.SerialException, OSError) as exc:
                return Finding("unknown", "", port, {}, Confidence.LOW, f"port failed while asked: {exc}")
            if found is not None:
                return found
    finally:
        probe.close()
    hint = "" if listen_s > 0 else " (a QR scanner only sends what it scans: run with --listen N and scan a code)"
    return Finding("qr_scanner" if listen_s <= 0 else "unknown", "serial" if listen_s <= 0 else "", port,
                   {"port": port, "baud": SCANNER_BAUD} if listen_s <= 0 else {}, Confidence.LOW,
                   "opened, answered nothing" + hint)
