"""The real GA 467 ID card reader driver over pyserial (a serial device path or any pyserial URL).

Wire format and timeouts: shared/protocols.md §1 (see ``protocol.py``). Profile example::

    idcard:
      driver: ga467_serial
      settings: {port: /dev/serial/by-id/usb-…-if00-port0, baud: 115200, baud_fallbacks: [57600, 9600]}

Failure model:

* the port cannot be opened, or it fails mid-use (USB pulled, simulator gone, socket closed) → :class:`NoDevice`;
  the port is dropped and the next call tries to open it again by itself, so the driver recovers when the reader
  comes back (no restart, no re-``open()`` needed).
* no reply header within ``timeout_s`` (or the reply not complete within ``timeout_s``, ``read_timeout_s`` for the
  card read) → :class:`DeviceTimeout`. Once a reply has started, a gap of ``inter_byte_timeout_s`` without a byte
  ends it at once (a reader streams its reply back to back): a card pulled mid-read is reported as
  :class:`CardRemoved` within that gap and one "find" round trip, not after ``read_timeout_s``.
* baud negotiation: on every (re)open the reader is probed with "SAM status" at ``baud``, then at each of
  ``baud_fallbacks`` (default: the other standard speeds of shared/protocols.md §1), ``probe_timeout_s`` each; with
  ``switch_baud`` a reader found at another speed is told to move to ``baud`` ("set baud", 60 i) and checked there.
* garbage before a reply is skipped; a reply with a bad checksum or length → :class:`ProtocolError` (reason in
  ``exc.reason``), never retried silently.
* a card read that stops mid-reply or fails: the driver asks the reader whether the card is still there; when it is
  not → :class:`CardRemoved`. Nothing of a half-read card is ever returned.

One transaction at a time (``self._lock``); ``read_card`` holds the lock across select + read.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import serial

from drivers.base import DeviceState, DeviceStatus, MediaState, device_call
from drivers.errors import (
    CardReadFailed, CardRemoved, DeviceError, DeviceTimeout, NoCard, NoDevice, ProtocolError,
)
from drivers.idcard import protocol as p
from drivers.idcard.base import IdCardReader
from drivers.idcard.identity import IdentityDocument, decode_extra_address, decode_text_block
from drivers.idcard.wlt import WLT_DECODER_SCHEMA, WltDecoder, load_wlt_decoder

log = logging.getLogger(__name__)

#: per speed while negotiating: "SAM status" is 10 bytes out and 11 back (≈ 23 ms at 9600 baud) plus the SAM's time
PROBE_TIMEOUT_S = 0.3
#: a reply that has started and pauses this long has stopped; readers stream replies back to back (a USB serial
#: adapter delivers every few ms), so 0.3 s is far above any real pause and far below the 5 s long-read limit
INTER_BYTE_TIMEOUT_S = 0.3

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "GA 467 serial ID card reader",
    "type": "object",
    "properties": {
        "port": {
            "type": "string", "minLength": 1,
            "description": "serial device path (/dev/ttyUSB0, /dev/serial/by-id/…) or a pyserial URL "
                           "(socket://127.0.0.1:5000, rfc2217://…)",
        },
        "baud": {"type": "integer", "enum": list(p.BAUD_RATES), "default": p.DEFAULT_BAUD},
        "timeout_s": {
            "type": "number", "exclusiveMinimum": 0, "maximum": 30, "default": p.HEADER_TIMEOUT_S,
            "description": "how long to wait for a reply header (and for a short reply to complete)",
        },
        "read_timeout_s": {
            "type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": p.LONG_READ_TIMEOUT_S,
            "description": "total time allowed for the card read reply (text + photo)",
        },
        "baud_fallbacks": {
            "type": "array", "items": {"type": "integer", "enum": list(p.BAUD_RATES)}, "uniqueItems": True,
            "description": "speeds to try, in order, when the reader does not answer at `baud` on open/reopen "
                           "(default: the other standard speeds; [] turns negotiation off)",
        },
        "probe_timeout_s": {
            "type": "number", "exclusiveMinimum": 0, "maximum": 5, "default": PROBE_TIMEOUT_S,
            "description": "how long to wait for the reader at each speed while negotiating",
        },
        "switch_baud": {
            "type": "boolean", "default": False,
            "description": "when the reader answers at another speed than `baud`, command it to `baud` (set baud)",
        },
        "inter_byte_timeout_s": {
            "type": "number", "exclusiveMinimum": 0, "maximum": 5, "default": INTER_BYTE_TIMEOUT_S,
            "description": "a started reply that pauses this long has stopped (card pulled): report at once",
        },
        "read_extra_address": {
            "type": "boolean", "default": True,
            "description": "also read the extra address (追加住址) after text and photo",
        },
        "read_fingerprint": {
            "type": "boolean", "default": False,
            "description": "read text + photo + fingerprint (the fingerprint templates go to the document)",
        },
        "wlt_decoder": {**WLT_DECODER_SCHEMA,
                        "description": "vendor library that turns the WLT photo into an image (optional)"},
    },
    "required": ["port"],
    "additionalProperties": False,
}

try:  # pyserial's posix backend lets termios.error (not an OSError) escape from tcflush & co. on a dead pty
    import termios
    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # Windows
    _PORT_ERRORS = (serial.SerialException, OSError)

#: how long one pyserial read blocks at most while we wait for a reply (deadlines are checked between reads)
_POLL_S = 0.05





class Ga467SerialReader(IdCardReader):
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)  # validates against SETTINGS_SCHEMA (InvalidSettings, a ValueError)
        self.port: str = settings["port"]
        self.baud: int = settings.get("baud", p.DEFAULT_BAUD)
        self.timeout_s: float = float(settings.get("timeout_s", p.HEADER_TIMEOUT_S))
        self.read_timeout_s: float = float(settings.get("read_timeout_s", p.LONG_READ_TIMEOUT_S))
        fallbacks = settings.get("baud_fallbacks")
        self.baud_fallbacks: list[int] = (
            [b for b in p.BAUD_RATES if b != self.baud] if fallbacks is None else list(fallbacks))
        self.probe_timeout_s: float = float(settings.get("probe_timeout_s", PROBE_TIMEOUT_S))
        self.switch_baud: bool = bool(settings.get("switch_baud", False))
        self.inter_byte_timeout_s: float = float(settings.get("inter_byte_timeout_s", INTER_BYTE_TIMEOUT_S))
        self.read_extra_address: bool = bool(settings.get("read_extra_address", True))
        self.read_fingerprint: bool = bool(settings.get("read_fingerprint", False))
        #: the WLT photo decoder the profile configured (None: the photo must come from the platform)
        self.wlt_decoder: WltDecoder | None = load_wlt_decoder(settings.get("wlt_decoder"))
        self.active_baud = self.baud
        self._fingerprint_supported = True
        self.counters: dict[str, int] = {"cards_read": 0, "errors": 0, "reconnects": 0}
        self._ser: serial.SerialBase | None = None
        self._card_halted = False   # a card was read and has not been seen by find since (see status())
        self._sam_id: str | None = None

    # port handling --------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        self._drop_port()

    def _connect(self) -> serial.SerialBase:
        try:
            if "://" in self.port:
                ser = serial.serial_for_url(self.port, baudrate=self.active_baud, timeout=_POLL_S,
                                            write_timeout=self.timeout_s)
            else:
                ser = serial.Serial(self.port, baudrate=self.active_baud, timeout=_POLL_S,
                                    write_timeout=self.timeout_s, exclusive=True)
        except (*_PORT_ERRORS, ValueError) as exc:
            raise NoDevice(f"cannot open ID card reader port {self.port}: {exc}", port=self.port) from exc
        self._ser = ser
        self._card_halted = False
        try:
            ser.reset_input_buffer()
        except _PORT_ERRORS as exc:
            self._drop_port()
            raise NoDevice(f"ID card reader port {self.port} failed: {exc}", port=self.port) from exc
        if self.baud_fallbacks:
            self._detect_baud()  # raises only NoDevice (the port failed again)
        return ser

    def _probe(self, baud: int) -> bool:
        """Whether the reader answers "SAM status" at ``baud`` (the line is left at that speed)."""
        assert self._ser is not None
        self._ser.baudrate = baud
        try:
            self._transact(p.SAM_STATUS, header_timeout=self.probe_timeout_s)
        except (DeviceTimeout, ProtocolError):
            return False
        return True

    def _detect_baud(self) -> None:
        """Find the speed the reader answers at: ``baud`` first, then each of ``baud_fallbacks``; with
        ``switch_baud``, move a reader found elsewhere to ``baud``."""
        assert self._ser is not None
        for baud in [self.baud, *(b for b in self.baud_fallbacks if b != self.baud)]:
            if not self._probe(baud):
                continue
            if baud != self.active_baud:
                log.info("ID card reader on %s answers at %d baud", self.port, baud)
            self.active_baud = baud
            if baud != self.baud and self.switch_baud:
                self._switch_to(self.baud)
            return
        self._ser.baudrate = self.active_baud = self.baud
        log.warning("ID card reader on %s answered at none of the configured speeds", self.port)

    def _switch_to(self, baud: int) -> None:
        """Tell the reader to use ``baud`` ("set baud"), follow it, and check it answers there; if it does not, find
        it again (the index → speed mapping of "set baud" is unverified, shared/protocols.md §1)."""
        assert self._ser is not None
        reply = self._transact(p.set_baud(baud), header_timeout=self.probe_timeout_s)
        if reply.sw3 != p.Sw3.OK:
            raise p.error_for_sw3(reply.sw3, "set baud")
        if self._probe(baud):
            self.active_baud = baud
            log.info("ID card reader on %s switched to %d baud", self.port, baud)
            return
        for other in p.BAUD_RATES:
            if other != baud and self._probe(other):
                self.active_baud = other
                log.warning("ID card reader on %s did not come up at %d baud; it answers at %d", self.port, baud,
                            other)
                return
        self._ser.baudrate = self.active_baud = self.baud
        raise DeviceTimeout(f"ID card reader on {self.port} stopped answering after set baud")

    @device_call
    def set_baud(self, baud: int) -> None:
        """Move the reader (and the line) to ``baud``, one of the standard speeds; :attr:`active_baud` tells where
        it answers afterwards. Raises DeviceTimeout when it answers at no speed any more."""
        p.set_baud(baud)  # ValueError for a speed the reader cannot take
        self._ensure_port()
        if baud != self.active_baud:
            self._switch_to(baud)

    def _drop_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # the port may already be gone
                pass

    def _ensure_port(self) -> serial.SerialBase:
        if self._ser is not None:
            return self._ser
        if not self._opened:
            raise NoDevice("ID card reader driver is not open")
        ser = self._connect()
        self.counters["reconnects"] += 1
        log.info("ID card reader port %s reopened", self.port)
        return ser

    # transactions ---------------------------------------------------------------------------------------------------
    def _transact(self, command: p.Command, data: bytes = b"", total_timeout: float | None = None,
                  header_timeout: float | None = None) -> p.Response:
        """Send one request and return its reply. NoDevice / DeviceTimeout / ProtocolError on failure."""
        with self._lock:
            ser = self._ensure_port()
            try:
                ser.reset_input_buffer()
                ser.write(p.build_request(command, data=data))
                frame = self._read_frame(ser, total_timeout or self.timeout_s, header_timeout or self.timeout_s)
            except serial.SerialTimeoutException as exc:
                raise DeviceTimeout(f"ID card reader did not accept a request within {self.timeout_s} s") from exc
            except _PORT_ERRORS as exc:
                self._drop_port()
                log.warning("ID card reader port %s failed: %s", self.port, type(exc).__name__)
                raise NoDevice(f"ID card reader port {self.port} failed: {exc}", port=self.port) from exc
            return frame.response()

    def _read_frame(self, ser: serial.SerialBase, total_timeout: float, header_timeout: float) -> p.Frame:
        decoder = p.FrameDecoder()
        start = last_byte = time.monotonic()
        header_deadline = start + header_timeout
        deadline = start + max(total_timeout, header_timeout)
        while True:
            now = time.monotonic()
            if decoder.in_frame:
                stalled = now - last_byte >= self.inter_byte_timeout_s
                if stalled or now >= deadline:
                    # a corrupted length may be hiding a complete reply behind it: look past it once
                    while decoder.in_frame:
                        for frame in decoder.skip_stalled():
                            return frame
                if now >= deadline:
                    raise DeviceTimeout(f"ID card reader reply incomplete after {now - start:.1f} s",
                                        partial=True)
                if stalled:
                    raise DeviceTimeout(f"ID card reader reply stopped after {decoder.pending} bytes",
                                        partial=True, gap=True)
            elif now >= min(header_deadline, deadline):
                raise DeviceTimeout(f"ID card reader did not answer within {header_timeout} s")
            chunk = ser.read(max(1, ser.in_waiting))
            if chunk:
                arrived = time.monotonic()
                if decoder.in_frame and arrived - last_byte >= self.inter_byte_timeout_s:
                    # the pause happened while pyserial waited: the reply had stopped (what comes now is late)
                    while decoder.in_frame:
                        for frame in decoder.skip_stalled():
                            return frame
                    raise DeviceTimeout(f"ID card reader reply paused for {arrived - last_byte:.2f} s",
                                        partial=True, gap=True)
                last_byte = arrived
                for frame in decoder.feed(chunk):
                    return frame

    # IdCardReader -------------------------------------------------------------------------------------------------
    @device_call
    def find_card(self) -> bool:
        reply = self._transact(p.FIND_CARD)
        if reply.sw3 == p.Sw3.CARD_FOUND:
            self._card_halted = False
            return True
        if reply.sw3 == p.Sw3.NO_CARD:
            return False
        raise p.error_for_sw3(reply.sw3, "find card")

    @device_call
    def read_card(self) -> IdentityDocument:
        document = self._read_card()
        self.counters["cards_read"] += 1
        return document

    def _select(self) -> None:
        reply = self._transact(p.SELECT_CARD)
        if reply.sw3 == p.Sw3.OK:
            return
        if reply.sw3 not in (p.Sw3.NO_CARD, p.Sw3.SELECT_FAILED):
            raise p.error_for_sw3(reply.sw3, "select card")
        # not found yet (read_card called without find_card first): find, then select once more
        if not self.find_card():
            raise NoCard("no ID card in the reader's field")
        reply = self._transact(p.SELECT_CARD)
        if reply.sw3 != p.Sw3.OK:
            raise p.error_for_sw3(reply.sw3, "select card")

    def _read_card(self) -> IdentityDocument:
        self._select()
        with_fp = self.read_fingerprint and self._fingerprint_supported
        reply = self._read_command(p.READ_TEXT_PHOTO_FP if with_fp else p.READ_TEXT_PHOTO)
        if with_fp and reply.sw3 == p.Sw3.BAD_COMMAND:
            # a reader without fingerprint support: read text and photo, and stop asking
            log.info("ID card reader on %s cannot read fingerprints; reading text and photo", self.port)
            self._fingerprint_supported = with_fp = False
            reply = self._read_command(p.READ_TEXT_PHOTO)
        if reply.sw3 != p.Sw3.OK:
            error = p.error_for_sw3(reply.sw3, "read card")
            if reply.sw3 in (p.Sw3.NO_CARD, p.Sw3.READ_FAILED):
                raise self._after_failed_read(error, p.describe_sw3(reply.sw3))
            raise error
        self._card_halted = True  # the reader will not see this card again until it leaves the field
        text, photo, fingerprint = p.split_card_data(reply.data, with_fingerprint=with_fp)
        document = decode_text_block(text, photo)
        extra_address = self._read_extra_address() if self.read_extra_address else None
        if fingerprint or extra_address:
            extra = {**document.extra, **({"extra_address": extra_address} if extra_address else {})}
            document = dataclasses.replace(document, fingerprint=bytes(fingerprint), extra=extra)
        return document

    def _read_command(self, command: p.Command) -> p.Response:
        try:
            return self._transact(command, total_timeout=self.read_timeout_s)
        except DeviceTimeout as exc:
            raise self._after_failed_read(exc, "the reply stopped") from exc

    def _read_extra_address(self) -> str | None:
        """The card's latest extra address (追加住址), or None when it has none (SW3 91)."""
        try:
            reply = self._transact(p.READ_EXTRA_ADDRESS)
        except DeviceTimeout as exc:
            # the card is halted after the main read, so "find" cannot tell whether it is still there
            raise CardReadFailed("the extra address reply stopped") from exc
        if reply.sw3 == p.Sw3.FIELD_NOT_ON_CARD:
            return None
        if reply.sw3 != p.Sw3.OK:
            raise p.error_for_sw3(reply.sw3, "read extra address")
        return decode_extra_address(reply.data)

    def _after_failed_read(self, error: DeviceError, what: str) -> DeviceError:
        """A read failed: ask the reader whether the card is still in the field."""
        try:
            reply = self._transact(p.FIND_CARD)
        except DeviceError:
            return error  # the reader itself is not answering: report the original failure
        if reply.sw3 == p.Sw3.NO_CARD:
            return CardRemoved(f"the card left the field during the read ({what})")
        if isinstance(error, DeviceTimeout):
            return CardReadFailed(f"card read incomplete ({what})")
        return error

    @device_call
    def sam_id(self) -> str:
        reply = self._transact(p.SAM_ID)
        if reply.sw3 != p.Sw3.OK:
            raise p.error_for_sw3(reply.sw3, "SAM ID")
        self._sam_id = p.format_sam_id(reply.data)
        return self._sam_id

    def status(self) -> DeviceStatus:
        with self._lock:
            def snapshot(device: DeviceState, media: MediaState = MediaState.UNKNOWN,
                         error: DeviceError | None = None, detail: str = "") -> DeviceStatus:
                extra = {"port": self.port, "baud": self.active_baud}
                if self._sam_id:
                    extra["sam_id"] = self._sam_id
                return DeviceStatus(kind=self.KIND, device=device, media=media,
                                    error_code=error.code if error else None,
                                    detail=detail or (str(error) if error else ""),
                                    counters=dict(self.counters), extra=extra)

            if not self._opened:
                return snapshot(DeviceState.NO_DEVICE, detail="driver not open")
            try:
                try:
                    reply = self._transact(p.SAM_STATUS)
                except ProtocolError:
                    reply = self._transact(p.SAM_STATUS)  # one garbled reply is line noise; two is a fault
                if reply.sw3 != p.Sw3.OK:
                    return snapshot(DeviceState.HARDWARE_ERROR, error=p.error_for_sw3(reply.sw3, "SAM status"))
                reply = self._transact(p.FIND_CARD)
            except NoDevice as exc:
                return snapshot(DeviceState.NO_DEVICE, error=exc)
            except DeviceTimeout as exc:
                return snapshot(DeviceState.OFFLINE, error=exc)
            except DeviceError as exc:
                return snapshot(DeviceState.HARDWARE_ERROR, error=exc)
            if reply.sw3 == p.Sw3.CARD_FOUND:
                self._card_halted = False
                return snapshot(DeviceState.ONLINE, MediaState.PRESENT)
            if reply.sw3 == p.Sw3.NO_CARD:
                # right after a read the card may still lie on the reader, invisible to "find": unknown
                return snapshot(DeviceState.ONLINE,
                                MediaState.UNKNOWN if self._card_halted else MediaState.NOT_PRESENT)
            return snapshot(DeviceState.ONLINE, error=p.error_for_sw3(reply.sw3, "find card"))
