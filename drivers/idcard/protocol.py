"""The GA 467 ("SAM" module) serial frame codec — the one place that knows the wire format.

Source of every constant here: shared/protocols.md §1 (second-generation resident ID card reader, GA 467 SAM,
serial). Both directions use the same framing::

    AA AA AA 96 69 | LEN_H LEN_L | body | CHK

* LEN (big-endian) counts body + CHK; CHK = XOR of LEN_H, LEN_L and every body byte.
* request body:  CMD PARA [DATA]
* response body: SW1 SW2 SW3 [DATA] with SW1 = SW2 = 00; SW3 is the status (:class:`Sw3`).

The driver (``serial_reader.py``) and the simulator (``simulator.py``) both use this module, so they cannot drift
apart. Nothing here touches a port.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from drivers.errors import (
    CardReadFailed, DeviceError, HardwareError, InvalidCardData, NoCard, ProtocolError, Unsupported,
)

#: frame preamble, both directions (shared/protocols.md §1)
PREAMBLE = b"\xAA\xAA\xAA\x96\x69"
#: smallest LEN: a request body is CMD PARA (2 bytes) + CHK
MIN_LEN = 3
#: largest LEN we accept. The biggest documented reply is "text + photo + fingerprint":
#: 3 SW + 3×2 lengths + 256 + 1024 + 1024 (two fingerprint templates of 512) + CHK = 2314; leave head-room.
MAX_LEN = 4096

#: serial speeds readers use; 115200 is the default (shared/protocols.md §1). The order is the index the
#: "set baud" command (60 i) takes — the order is as listed in §1, the mapping index→speed is unverified.
BAUD_RATES: tuple[int, ...] = (115200, 57600, 38400, 19200, 9600)
DEFAULT_BAUD = 115200

#: timeouts seen in vendor code (shared/protocols.md §1): ~2 s with no header, ~5 s in total for the long read
HEADER_TIMEOUT_S = 2.0
LONG_READ_TIMEOUT_S = 5.0

#: sizes of the "read text + photo" reply (shared/protocols.md §1): textLen 0x0100, photoLen 0x0400
TEXT_LEN = 256
PHOTO_LEN = 1024
#: SAM ID reply: 16 bytes, little-endian u16,u16,u32,u32,u32
SAM_ID_LEN = 16


class Command(NamedTuple):
    """A request's CMD and PARA bytes."""

    cmd: int
    para: int


# Commands, shared/protocols.md §1 table ------------------------------------------------------------------------
RESET_SAM = Command(0x10, 0xFF)            # AA AA AA 96 69 00 03 10 FF EC → SW
SAM_STATUS = Command(0x11, 0xFF)           # AA AA AA 96 69 00 03 11 FF ED → SW (90 = OK)
SAM_ID = Command(0x12, 0xFF)               # AA AA AA 96 69 00 03 12 FF EE → SW + 16 bytes
FIND_CARD = Command(0x20, 0x01)            # AA AA AA 96 69 00 03 20 01 22 → SW (9F found / 80 none) + 4 bytes
SELECT_CARD = Command(0x20, 0x02)          # AA AA AA 96 69 00 03 20 02 21 → SW + 8-byte serial
READ_TEXT_PHOTO = Command(0x30, 0x01)      # AA AA AA 96 69 00 03 30 01 32 → SW + 2+2 lengths + 256 + 1024
READ_TEXT_PHOTO_FP = Command(0x30, 0x10)   # AA AA AA 96 69 00 03 30 10 23 → SW + 3 lengths + data
READ_EXTRA_ADDRESS = Command(0x30, 0x03)   # AA AA AA 96 69 00 03 30 03 30 → SW + up to 280 bytes
SET_BAUD_CMD = 0x60                        # AA AA AA 96 69 00 03 60 i chk, i indexes BAUD_RATES


def set_baud(baud: int) -> Command:
    """The "set baud" command for ``baud`` (one of :data:`BAUD_RATES`)."""
    try:
        return Command(SET_BAUD_CMD, BAUD_RATES.index(baud))
    except ValueError:
        raise ValueError(f"baud must be one of {BAUD_RATES}, not {baud}") from None


class Sw3(enum.IntEnum):
    """Every SW3 status code listed in shared/protocols.md §1."""

    OK = 0x90
    CARD_FOUND = 0x9F
    NO_CARD = 0x80                  # no card / find failed
    SELECT_FAILED = 0x81
    FIELD_NOT_ON_CARD = 0x91
    CHECKSUM_ERROR = 0x10           # the reader got a frame with a bad checksum from us
    LENGTH_ERROR = 0x11             # … or with a bad length
    BAD_COMMAND = 0x21
    NOT_AUTHORISED = 0x23
    UNKNOWN_ERROR = 0x24
    CARD_AUTH_SAM_FAILED = 0x31     # card failed to authenticate the SAM
    SAM_AUTH_CARD_FAILED = 0x32     # SAM failed to authenticate the card
    VERIFY_FAILED = 0x33
    FINGERPRINT_ERROR = 0x37
    INFO_LENGTH_ERROR = 0x3F
    UNKNOWN_CARD_TYPE = 0x40
    READ_FAILED = 0x41
    RANDOM_FAILED = 0x47            # random-number failure
    SAM_SELF_TEST_FAILED = 0x60
    SAM_NOT_AUTHORISED = 0x66


#: the codes that mean success for some command (never an error by themselves)
SUCCESS_CODES = frozenset({Sw3.OK, Sw3.CARD_FOUND})

#: SW3 → the typed error a driver raises for it
SW3_ERRORS: dict[Sw3, type[DeviceError]] = {
    Sw3.NO_CARD: NoCard,
    Sw3.SELECT_FAILED: CardReadFailed,
    Sw3.FIELD_NOT_ON_CARD: Unsupported,          # the card does not carry the field asked for
    Sw3.CHECKSUM_ERROR: ProtocolError,
    Sw3.LENGTH_ERROR: ProtocolError,
    Sw3.BAD_COMMAND: Unsupported,                # this reader does not know the command
    Sw3.NOT_AUTHORISED: HardwareError,
    Sw3.UNKNOWN_ERROR: HardwareError,
    Sw3.CARD_AUTH_SAM_FAILED: CardReadFailed,
    Sw3.SAM_AUTH_CARD_FAILED: CardReadFailed,
    Sw3.VERIFY_FAILED: CardReadFailed,
    Sw3.FINGERPRINT_ERROR: CardReadFailed,
    Sw3.INFO_LENGTH_ERROR: InvalidCardData,
    Sw3.UNKNOWN_CARD_TYPE: InvalidCardData,
    Sw3.READ_FAILED: CardReadFailed,
    Sw3.RANDOM_FAILED: CardReadFailed,
    Sw3.SAM_SELF_TEST_FAILED: HardwareError,
    Sw3.SAM_NOT_AUTHORISED: HardwareError,
}

_SW3_TEXT = {
    Sw3.OK: "OK", Sw3.CARD_FOUND: "card found", Sw3.NO_CARD: "no card", Sw3.SELECT_FAILED: "select failed",
    Sw3.FIELD_NOT_ON_CARD: "field not on card", Sw3.CHECKSUM_ERROR: "checksum error",
    Sw3.LENGTH_ERROR: "length error", Sw3.BAD_COMMAND: "bad command", Sw3.NOT_AUTHORISED: "not authorised",
    Sw3.UNKNOWN_ERROR: "unknown error", Sw3.CARD_AUTH_SAM_FAILED: "card failed to authenticate SAM",
    Sw3.SAM_AUTH_CARD_FAILED: "SAM failed to authenticate card", Sw3.VERIFY_FAILED: "verification failed",
    Sw3.FINGERPRINT_ERROR: "fingerprint error", Sw3.INFO_LENGTH_ERROR: "info length error",
    Sw3.UNKNOWN_CARD_TYPE: "unknown card type", Sw3.READ_FAILED: "read failed",
    Sw3.RANDOM_FAILED: "random-number failure", Sw3.SAM_SELF_TEST_FAILED: "SAM self-test failed",
    Sw3.SAM_NOT_AUTHORISED: "SAM not authorised",
}


def describe_sw3(sw3: int) -> str:
    try:
        code = Sw3(sw3)
    except ValueError:
        return f"0x{sw3:02X} (unknown status)"
    return f"0x{sw3:02X} ({_SW3_TEXT[code]})"


def error_for_sw3(sw3: int, context: str = "") -> DeviceError:
    """The typed exception for a non-success SW3 (an unknown code is a :class:`ProtocolError`)."""
    where = f" during {context}" if context else ""
    try:
        cls = SW3_ERRORS[Sw3(sw3)]
    except (ValueError, KeyError):
        cls = ProtocolError
    return cls(f"reader status {describe_sw3(sw3)}{where}", sw3=sw3)


# Framing -------------------------------------------------------------------------------------------------------

class FrameError(ProtocolError):
    """A frame that is not valid on the wire. ``reason`` is one of the stable ``REASON_*`` strings."""

    REASON_BAD_CHECKSUM = "bad_checksum"
    REASON_BAD_LENGTH = "bad_length"
    REASON_BAD_STATUS_WORD = "bad_status_word"
    REASON_BAD_PAYLOAD = "bad_payload"

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason, reason=reason)
        self.reason = reason


def checksum(len_and_body: bytes) -> int:
    """XOR of LEN_H, LEN_L and every body byte."""
    value = 0
    for byte in len_and_body:
        value ^= byte
    return value


def build_frame(body: bytes) -> bytes:
    """Wrap ``body`` (request or response body, without CHK) into a complete frame."""
    length = len(body) + 1
    if not MIN_LEN <= length <= MAX_LEN:
        raise ValueError(f"frame body of {len(body)} bytes is out of range")
    head = struct.pack(">H", length) + body
    return PREAMBLE + head + bytes([checksum(head)])


def build_request(cmd: int | Command, para: int | None = None, data: bytes = b"") -> bytes:
    """A request frame: ``build_request(0x20, 0x01)`` or ``build_request(FIND_CARD)``."""
    if isinstance(cmd, Command):
        if para is not None:
            raise TypeError("give either a Command or cmd and para")
        cmd, para = cmd
    if para is None:
        raise TypeError("para is required")
    return build_frame(bytes([cmd, para]) + bytes(data))


def build_response(sw3: int, data: bytes = b"", sw1: int = 0x00, sw2: int = 0x00) -> bytes:
    """A response frame (what a reader — here the simulator — sends back)."""
    return build_frame(bytes([sw1, sw2, sw3]) + bytes(data))


@dataclass(frozen=True)
class Frame:
    """One complete, checksum-verified frame. ``body`` excludes LEN and CHK."""

    body: bytes

    @property
    def raw(self) -> bytes:
        return build_frame(self.body)

    # request view
    @property
    def command(self) -> Command:
        return Command(self.body[0], self.body[1])

    @property
    def request_data(self) -> bytes:
        return self.body[2:]

    def response(self) -> "Response":
        """This frame read as a reply; raises :class:`FrameError` when it cannot be one."""
        if len(self.body) < 3:
            raise FrameError(FrameError.REASON_BAD_LENGTH, f"reply body of {len(self.body)} bytes has no status word")
        sw1, sw2, sw3 = self.body[:3]
        if sw1 != 0 or sw2 != 0:
            raise FrameError(FrameError.REASON_BAD_STATUS_WORD, f"reply status word {sw1:02X} {sw2:02X} {sw3:02X}")
        return Response(sw3, self.body[3:])


@dataclass(frozen=True)
class Response:
    sw3: int
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.sw3 in SUCCESS_CODES

    def __repr__(self) -> str:  # never dump card data into logs
        return f"Response(sw3={describe_sw3(self.sw3)}, data_len={len(self.data)})"


class FrameDecoder:
    """Feed it bytes as they arrive; it yields complete frames.

    * Bytes before a preamble are skipped (``discarded`` counts them), so garbage never breaks a session.
    * A LEN outside ``MIN_LEN..MAX_LEN`` raises ``FrameError(reason="bad_length")`` as soon as it is seen; a complete
      frame whose CHK does not match raises ``FrameError(reason="bad_checksum")``. In both cases only the bad
      frame's preamble is dropped and decoding resumes at the next preamble (a corrupted LEN must not swallow the
      good frame behind it). Bytes after the error stay buffered: ``feed(b"")`` continues with them.

    ``for frame in decoder.feed(chunk): ...`` — the data is buffered at once; frames are parsed as you iterate.
    """

    def __init__(self, max_len: int = MAX_LEN) -> None:
        self._buf = bytearray()
        self.max_len = max_len
        self.discarded = 0

    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buf += data
        return self._drain()

    def decode_all(self, data: bytes) -> list[Frame]:
        """Every complete frame in ``data`` (raises on the first bad frame)."""
        return list(self.feed(data))

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet part of a complete frame."""
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started (a full preamble is buffered) but not completed."""
        return self._buf.startswith(PREAMBLE)

    def reset(self) -> None:
        self._buf.clear()

    def skip_stalled(self) -> Iterator[Frame]:
        """Give up the frame that started but never completed and look for frames after its preamble.

        For when the line has gone quiet (inter-byte gap) in the middle of a frame: a corrupted LEN can claim more
        bytes than will ever come, and would otherwise hide the good frame that follows it. Only the stalled
        frame's preamble is dropped; frames found in the buffered bytes are yielded (a bad one raises FrameError as
        in :meth:`feed`)."""
        if self.in_frame:
            del self._buf[: len(PREAMBLE)]
            self.discarded += len(PREAMBLE)
        return self._drain()

    def _drain(self) -> Iterator[Frame]:
        while True:
            frame = self._next()
            if frame is None:
                return
            yield frame

    def _next(self) -> Frame | None:
        buf = self._buf
        start = buf.find(PREAMBLE)
        if start < 0:
            # keep a possible partial preamble at the end
            keep = 0
            for n in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
                if buf.endswith(PREAMBLE[:n]):
                    keep = n
                    break
            self.discarded += len(buf) - keep
            del buf[: len(buf) - keep]
            return None
        if start:
            self.discarded += start
            del buf[:start]
        if len(buf) < len(PREAMBLE) + 2:
            return None
        length = struct.unpack_from(">H", buf, len(PREAMBLE))[0]
        if not MIN_LEN <= length <= self.max_len:
            del buf[: len(PREAMBLE)]
            self.discarded += len(PREAMBLE)
            raise FrameError(FrameError.REASON_BAD_LENGTH, f"frame length {length} out of range")
        total = len(PREAMBLE) + 2 + length
        if len(buf) < total:
            return None
        head = bytes(buf[len(PREAMBLE): total - 1])
        chk = buf[total - 1]
        if checksum(head) != chk:
            del buf[: len(PREAMBLE)]
            self.discarded += len(PREAMBLE)
            raise FrameError(FrameError.REASON_BAD_CHECKSUM,
                             f"frame checksum 0x{chk:02X}, expected 0x{checksum(head):02X}")
        del buf[:total]
        return Frame(head[2:])


def decode_frame(data: bytes) -> Frame:
    """Exactly one frame from ``data`` (garbage before it is allowed); raises :class:`FrameError` otherwise."""
    frames = FrameDecoder().decode_all(data)
    if len(frames) != 1:
        raise FrameError(FrameError.REASON_BAD_LENGTH, f"expected one complete frame, found {len(frames)}")
    return frames[0]


# Payloads ------------------------------------------------------------------------------------------------------

def format_sam_id(data: bytes) -> str:
    """The 16-byte SAM ID as vendors print it: LE u16,u16,u32,u32,u32 → ``%02d.%02d-%08u-%010u-%010u``."""
    if len(data) < SAM_ID_LEN:
        raise FrameError(FrameError.REASON_BAD_PAYLOAD, f"SAM ID of {len(data)} bytes, expected {SAM_ID_LEN}")
    a, b, c, d, e = struct.unpack_from("<HHIII", data)
    return f"{a:02d}.{b:02d}-{c:08d}-{d:010d}-{e:010d}"


def pack_sam_id(text: str) -> bytes:
    """Inverse of :func:`format_sam_id` (for the simulator)."""
    head, c, d, e = text.split("-")
    a, b = head.split(".")
    return struct.pack("<HHIII", int(a), int(b), int(c), int(d), int(e))


def pack_card_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """The data part of a "read text + photo (+ fingerprint)" reply: BE lengths, then the blocks."""
    if fingerprint is None:
        return struct.pack(">HH", len(text), len(photo)) + text + photo
    return struct.pack(">HHH", len(text), len(photo), len(fingerprint)) + text + photo + fingerprint


def split_card_data(data: bytes, with_fingerprint: bool = False) -> tuple[bytes, bytes, bytes]:
    """(text, photo, fingerprint) from a read reply's data; raises :class:`FrameError` if lengths disagree."""
    n = 6 if with_fingerprint else 4
    if len(data) < n:
        raise FrameError(FrameError.REASON_BAD_PAYLOAD, "card data too short for its length fields")
    lengths = struct.unpack_from(">HHH" if with_fingerprint else ">HH", data)
    if sum(lengths) != len(data) - n:
        raise FrameError(FrameError.REASON_BAD_PAYLOAD,
                         f"card data lengths {lengths} do not add up to {len(data) - n} bytes")
    if lengths[0] != TEXT_LEN:
        raise FrameError(FrameError.REASON_BAD_PAYLOAD, f"text block of {lengths[0]} bytes, expected {TEXT_LEN}")
    text = data[n: n + lengths[0]]
    photo = data[n + lengths[0]: n + lengths[0] + lengths[1]]
    fp = data[n + lengths[0] + lengths[1]:] if with_fingerprint else b""
    return text, photo, fp
