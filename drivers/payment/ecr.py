"""ECR-style framed serial protocol between the kiosk (the "ECR") and a payment pad.

No open UnionPay MIS-POS wire protocol exists (shared/protocols.md §5); this follows the framing every open ECR
protocol uses::

    STX | LEN_H LEN_L | DATA | ETX | LRC          STX = 0x02, ETX = 0x03
    LRC = XOR of LEN_H, LEN_L, every DATA byte and ETX;  LEN = len(DATA), big-endian, at most MAX_DATA

Link level: the receiver answers every frame with ACK (0x06) when its LRC and length are right, NAK (0x15) otherwise.
The sender waits ``ack_timeout`` for it and retransmits the same frame on NAK or silence, at most ``retries`` times;
then the link is down. A receiver that gets the same frame twice (its ACK was lost) ACKs it again; duplicates are
harmless at the application level because every request carries the order id, the idempotency key of the pad.

Application level, DATA = a two-letter message type, then ``TAG=value`` fields separated by FS (0x1C), UTF-8::

    ECR → pad   ST status · SA sale (ORD, AMT fen, MTH, [CODE payment code]) · CN cancel (ORD) · QY query (ORD)
                RV reverse (ORD) · RF refund (ORD, AMT)
    pad → ECR   ST status (STATE, SN) · EV event (ORD, EVT card_detected|pin_entry_started|code_scanned|processing)
                RS sale result (ORD, ST, RC, REF, PAN masked, TXN, AMT) · QR query result · RR reverse/refund result

Requests other than SA may carry ``SEQ`` (a number the ECR increments); the pad echoes it in its answer, so a late
duplicate answer to a retransmitted request is never taken for the answer to the next one. Amounts are integer fen;
card numbers leave the pad masked (``622848*********0018``); the PIN never leaves it.

PAN rule (PCI DSS 3.4): a pad may still send a full card number in ``PAN`` (some do, and a misconfigured one will).
:meth:`Message.decode` — the one place the kiosk side parses a pad's message — masks ``PAN`` to first 6 / last 4
before the message exists as an object, so a full number is never held, logged, journalled or sent on by the kiosk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

from drivers.base import mask_card_number

STX, ETX, ACK, NAK = 0x02, 0x03, 0x06, 0x15
FS = 0x1C
MAX_DATA = 1024
#: a real pad answers a frame with ACK within ~0.2 s; ECR specs commonly allow 1–2 s and three transmissions
ACK_TIMEOUT_S = 1.0
RETRIES = 2
#: a frame that has started and pauses this long is abandoned (the pad streams a frame back to back)
INTER_BYTE_TIMEOUT_S = 0.5

MESSAGE_TYPES = ("ST", "SA", "CN", "QY", "RV", "RF", "EV", "RS", "QR", "RR", "ER")
#: fields that carry a card number: masked to first 6 / last 4 when a message is decoded or shown
PAN_FIELDS = frozenset({"PAN"})


class FrameError(ValueError):
    """Bytes that look like a frame but are not one (bad LRC, bad length, missing ETX)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lrc(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def encode_frame(data: bytes, max_data: int = MAX_DATA) -> bytes:
    """One frame around ``data`` (ValueError when too long; ``max_data`` at most 65535, the LEN field's range)."""
    if len(data) > min(max_data, 0xFFFF):
        raise ValueError(f"frame data too long: {len(data)} > {max_data}")
    body = len(data).to_bytes(2, "big") + data + bytes([ETX])
    return bytes([STX]) + body + bytes([lrc(body)])


class FrameDecoder:
    """Incremental decoder. ``feed(bytes)`` yields ("frame", data) for good frames, ("bad", reason) for frames that
    failed (the receiver NAKs those), ("ack"|"nak", b"") for link control bytes. Bytes outside a frame that are not
    STX/ACK/NAK are line noise and are skipped."""

    def __init__(self, max_data: int = MAX_DATA) -> None:
        self._buf = bytearray()
        self.max_data = max_data

    @property
    def in_frame(self) -> bool:
        return bool(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, chunk: bytes) -> Iterator[tuple[str, bytes | str]]:
        for b in chunk:
            if not self._buf:
                if b == STX:
                    self._buf.append(b)
                elif b == ACK:
                    yield "ack", b""
                elif b == NAK:
                    yield "nak", b""
                continue
            self._buf.append(b)
            if len(self._buf) < 3:
                continue
            length = int.from_bytes(self._buf[1:3], "big")
            if length > self.max_data:
                self._buf.clear()
                yield "bad", "length"
                continue
            if len(self._buf) < length + 5:
                continue
            frame = bytes(self._buf)
            self._buf.clear()
            if frame[3 + length] != ETX:
                yield "bad", "etx"
            elif lrc(frame[1:4 + length]) != frame[4 + length]:
                yield "bad", "lrc"
            else:
                yield "frame", frame[3:3 + length]


# --- messages -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    type: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def encode(self) -> bytes:
        if self.type not in MESSAGE_TYPES:
            raise ValueError(f"unknown message type {self.type!r}")
        parts = [self.type.encode("ascii")]
        for key, value in self.fields.items():
            text = str(value)
            if "=" in key or chr(FS) in key or chr(FS) in text:
                raise ValueError(f"field {key!r} cannot be encoded")
            parts.append(f"{key}={text}".encode("utf-8"))
        return bytes([FS]).join(parts)

    @classmethod
    def decode(cls, data: bytes) -> "Message":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError("utf-8") from exc
        kind, *items = text.split(chr(FS))
        if kind not in MESSAGE_TYPES:
            raise FrameError(f"message type {kind!r}")
        fields: dict[str, str] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise FrameError("field without '=' or name")   # never quote it: it may hold a card number
            fields[key] = mask_card_number(value) if key in PAN_FIELDS else value
        return cls(kind, fields)

    def __repr__(self) -> str:  # never show payment codes or a clear card number in logs
        shown = {k: ("***" if k == "CODE" else mask_card_number(v) if k in PAN_FIELDS else v)
                 for k, v in self.fields.items()}
        return f"Message({self.type}, {shown})"


# --- link ------------------------------------------------------------------------------------------------------------

class LinkTimeout(Exception):
    """No ACK after every retransmission (the pad is not answering)."""


class Link:
    """ACK/NAK with retransmission over byte-level ``read(timeout) -> bytes`` / ``write(bytes)`` callables.

    ``send`` blocks until the frame is ACKed; ``receive`` returns the next message (ACKing it) or None at the
    deadline. Messages that arrive while ``send`` waits for its ACK are queued for ``receive``. Not thread-safe:
    one user at a time (the driver holds its lock)."""

    def __init__(self, read: Callable[[float], bytes], write: Callable[[bytes], None],
                 ack_timeout: float = ACK_TIMEOUT_S, retries: int = RETRIES,
                 inter_byte_timeout: float = INTER_BYTE_TIMEOUT_S) -> None:
        self._read, self._write = read, write
        self.ack_timeout, self.retries, self.inter_byte_timeout = ack_timeout, retries, inter_byte_timeout
        self.decoder = FrameDecoder()
        self.inbox: list[Message] = []
        self.counters = {"sent": 0, "retransmitted": 0, "naks_sent": 0, "received": 0}
        self._last_byte = 0.0

    def _pump(self, timeout: float) -> Iterator[tuple[str, bytes | str]]:
        chunk = self._read(timeout)
        now = time.monotonic()
        if self.decoder.in_frame and now - self._last_byte > self.inter_byte_timeout:
            self.decoder.reset()  # a frame that stopped part-way: forget it, the sender will retransmit
        if chunk:
            self._last_byte = now
        for event in self.decoder.feed(chunk or b""):
            if event[0] == "frame":
                self._write(bytes([ACK]))
                try:
                    message = Message.decode(event[1])  # type: ignore[arg-type]
                except FrameError:
                    continue  # a well-framed message we cannot read: ACKed, ignored
                self.counters["received"] += 1
                self.inbox.append(message)
            elif event[0] == "bad":
                self.counters["naks_sent"] += 1
                self._write(bytes([NAK]))
            else:
                yield event

    def send(self, message: Message) -> None:
        frame = encode_frame(message.encode())
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters["retransmitted"] += 1
            self._write(frame)
            self.counters["sent"] += 1
            deadline = time.monotonic() + self.ack_timeout
            while (remaining := deadline - time.monotonic()) > 0:
                answers = [kind for kind, _ in self._pump(min(remaining, 0.05))]
                if "ack" in answers:
                    return
                if "nak" in answers:
                    break
        raise LinkTimeout(f"no ACK for {message.type} after {self.retries + 1} transmissions")

    def receive(self, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while not self.inbox:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for _ in self._pump(min(remaining, 0.05)):
                pass  # a stray ACK/NAK outside a send
        return self.inbox.pop(0)
