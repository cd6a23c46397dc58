"""``kiosk-sim idcard [--pty | --tcp HOST:PORT] [--control HOST:PORT] [--baud N]`` — a GA 467 ID card reader.

It answers the frames of shared/protocols.md §1 exactly like a reader (frames built by ``protocol.py``, the codec
the driver uses too), on a pseudo-terminal (default; the master stays open across client reconnects) or on a TCP
port (one client at a time; use ``socket://HOST:PORT`` in the driver). The first stdout line is one JSON object::

    {"kind": "idcard", "pty": "/dev/pts/5", "control": "127.0.0.1:40123", "baud": 115200}
    {"kind": "idcard", "tcp": "127.0.0.1:5000", "control": "127.0.0.1:40123", "baud": 115200}

Control commands (``kiosk-sim ctl ADDRESS CMD key=value``, see ``drivers/sim/control.py``)::

    place_card identity=zhang        remove_card        list_identities        status        clear_faults
    inject_fault kind=pull_after_bytes n=200   (the card is pulled after n bytes of the next read reply; the rest
                                                is never sent)
    inject_fault kind=bad_checksum             (next reply)
    inject_fault kind=silence                  (answer nothing until clear_faults)
    inject_fault kind=garbage n=16             (n random bytes before the next reply; hex=AAAAAA966905 for exactly
                                                those bytes, e.g. a frame start with a corrupt length)
    inject_fault kind=slow [baud=9600]         (stream replies at the byte rate of the emulated baud)
    inject_fault kind=sw3 code=0x41 [command=read]   (answer the next [such] request with that status only;
                                                      command=read_fp code=0x21: a reader without fingerprints)

Card model, as real readers (shared/protocols.md §1): absent → present --find(9F)--> found --select--> selected
--read--> halted. A halted card is invisible to "find" (80) until it is removed and placed again.

On a pty the simulator also checks the speed the client set on the line (termios): at another speed than the
emulated one it answers nothing (a real reader cannot decode the bytes), so baud fallback can be tested.

Identities: ``sim_identities.yaml`` (all made up). Photos are 1024 bytes of deterministic pseudo-WLT (a header and
SHA-256-derived bytes): real WLT cannot be produced. Identities marked ``fingerprint: true`` answer "read text +
photo + fingerprint" with two 512-byte pseudo templates (others with an empty fingerprint block); those with
``extra_address`` entries answer "read extra address" with them (others with SW3 91, field not on card).
"""
from __future__ import annotations

import argparse
import enum
import hashlib
import json
import os
import random
import select
import socket
import sys
import termios
import threading
import tty
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import yaml

from drivers.idcard import protocol as p
from drivers.idcard.identity import (
    DocumentKind, IdentityDocument, encode_extra_address, encode_text_block, validate_foreign_permanent_number,
    validate_id_number,
)
from drivers.sim.control import ControlServer

IDENTITIES_FILE = Path(__file__).with_name("sim_identities.yaml")
PHOTO_HEADER = b"SIM-WLT\x00"
DEFAULT_SAM_ID = "05.01-20240315-0000012345-1234567890"


def synthetic_photo(seed: str) -> bytes:
    """1024 bytes of deterministic pseudo-WLT for ``seed``: a header and SHA-256-derived bytes."""
    out = bytearray(PHOTO_HEADER)
    block = seed.encode()
    while len(out) < p.PHOTO_LEN:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[: p.PHOTO_LEN])


FINGERPRINT_HEADER = b"SIM-FP\x00\x00"
FINGERPRINT_LEN = 1024   # two templates of 512 bytes (shared/protocols.md §1 sizes, see protocol.MAX_LEN)


def synthetic_fingerprint(seed: str) -> bytes:
    """Two deterministic 512-byte pseudo fingerprint templates for ``seed``."""
    out = bytearray()
    block = ("fp:" + seed).encode()
    while len(out) < FINGERPRINT_LEN:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(FINGERPRINT_HEADER + out[len(FINGERPRINT_HEADER): FINGERPRINT_LEN])


def load_card_extras(path: Path = IDENTITIES_FILE) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    """(extra addresses, fingerprints) of the identities that have them."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    addresses = {key: [str(a) for a in item["extra_address"]] for key, item in raw.items()
                 if item.get("extra_address")}
    fingerprints = {key: synthetic_fingerprint(f"{key}:{item['id_number']}") for key, item in raw.items()
                    if item.get("fingerprint")}
    return addresses, fingerprints


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def load_identities(path: Path = IDENTITIES_FILE) -> dict[str, IdentityDocument]:
    """The simulator's identity library, key → document (with its synthetic photo)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    library: dict[str, IdentityDocument] = {}
    for key, item in raw.items():
        kind = DocumentKind(item["kind"])
        doc = IdentityDocument(
            kind=kind, name=item["name"], sex=item["sex"], nation=item.get("nation"),
            birth_date=_date(item["birth_date"]), address=item.get("address") or "",
            id_number=str(item["id_number"]), issuer=item.get("issuer") or "",
            valid_from=_date(item["valid_from"]),
            valid_to=None if item.get("valid_to") is None else _date(item["valid_to"]),
            photo_wlt=synthetic_photo(f"{key}:{item['id_number']}"),
            extra={k: str(v) for k, v in (item.get("extra") or {}).items()},
        )
        if item.get("extra_address"):   # what a reader that reads the extra address reports: the latest entry
            doc.extra["extra_address"] = str(item["extra_address"][-1])
        if kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT:
            if not validate_foreign_permanent_number(doc.id_number):
                raise ValueError(f"identity {key!r}: not a permanent resident card number of either edition")
        elif not validate_id_number(doc.id_number):
            raise ValueError(f"identity {key!r}: ID number fails the GB 11643 check")
        encode_text_block(doc)  # every field fits
        library[key] = doc
    return library


class CardState(str, enum.Enum):
    ABSENT = "absent"
    PRESENT = "present"
    FOUND = "found"
    SELECTED = "selected"
    HALTED = "halted"   # read: invisible to "find" until removed


FAULT_KINDS = ("pull_after_bytes", "bad_checksum", "silence", "garbage", "slow", "sw3")
COMMAND_NAMES: dict[str, p.Command] = {
    "reset": p.RESET_SAM, "sam_status": p.SAM_STATUS, "sam_id": p.SAM_ID, "find": p.FIND_CARD,
    "select": p.SELECT_CARD, "read": p.READ_TEXT_PHOTO, "read_fp": p.READ_TEXT_PHOTO_FP,
    "read_address": p.READ_EXTRA_ADDRESS,
}
_READ_COMMANDS = (p.READ_TEXT_PHOTO, p.READ_TEXT_PHOTO_FP)


@dataclass
class Outgoing:
    """What to send for one request."""

    data: bytes
    garbage: bytes = b""
    byte_rate: float | None = None       # bytes per second when "slow"
    then_pull_card: bool = False          # data was cut: the card left the field


class SimulatedReader:
    """The reader's behaviour, without any transport. Thread-safe (control commands arrive on other threads)."""

    def __init__(self, identities: dict[str, IdentityDocument], baud: int = p.DEFAULT_BAUD,
                 sam_id: str = DEFAULT_SAM_ID, extra_addresses: dict[str, list[str]] | None = None,
                 fingerprints: dict[str, bytes] | None = None) -> None:
        self.identities = identities
        self.extra_addresses = extra_addresses or {}
        self.fingerprints = fingerprints or {}
        self.baud = baud
        self.sam_id = sam_id
        self._lock = threading.Lock()
        self.card_key: str | None = None
        self.state = CardState.ABSENT
        self.faults: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {"requests": 0, "replies": 0, "bad_requests": 0, "finds": 0,
                                         "reads": 0, "faults_fired": 0, "ignored": 0}
        self._rng = random.Random(0x467)

    # control commands -----------------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Any]:
        return {
            "place_card": self.place_card, "remove_card": self.remove_card,
            "list_identities": self.list_identities, "inject_fault": self.inject_fault,
            "clear_faults": self.clear_faults, "status": self.status,
        }

    def place_card(self, identity: str) -> dict[str, Any]:
        if identity not in self.identities:
            raise KeyError(f"unknown identity {identity!r}; choose one of {sorted(self.identities)}")
        with self._lock:
            self.card_key, self.state = identity, CardState.PRESENT
        return {"card": identity}

    def remove_card(self) -> dict[str, Any]:
        with self._lock:
            was, self.card_key, self.state = self.card_key, None, CardState.ABSENT
        return {"removed": was}

    def list_identities(self) -> dict[str, Any]:
        return {"identities": {key: {"kind": doc.kind.value, "masked_id": doc.masked_id(),
                                     "masked_name": doc.masked_name()}
                               for key, doc in self.identities.items()}}

    def inject_fault(self, kind: str, **params: Any) -> dict[str, Any]:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {list(FAULT_KINDS)}")
        if kind == "garbage" and "hex" in params:      # exactly these bytes (e.g. a corrupt frame start)
            params = {"hex": bytes.fromhex(str(params["hex"])).hex()}
        elif kind in ("pull_after_bytes", "garbage"):
            n = int(params.get("n", 16 if kind == "garbage" else 0))
            if n < 0:
                raise ValueError("n must be >= 0")
            params = {"n": n, **({"seed": int(params["seed"])} if "seed" in params else {})}
        elif kind == "slow":
            params = {"baud": int(params.get("baud", self.baud))}
        elif kind == "sw3":
            code = params.get("code")
            code = int(code, 0) if isinstance(code, str) else int(code)
            if not 0 <= code <= 0xFF:
                raise ValueError("code must be a byte")
            command = params.get("command")
            if command is not None and command not in COMMAND_NAMES:
                raise ValueError(f"unknown command {command!r}; choose one of {sorted(COMMAND_NAMES)}")
            params = {"code": code, "command": command}
        elif params:
            raise ValueError(f"fault {kind!r} takes no parameters")
        with self._lock:
            self.faults[kind] = params
        return {"faults": self._faults_view()}

    def clear_faults(self) -> dict[str, Any]:
        with self._lock:
            self.faults.clear()
        return {"faults": {}}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"card_present": self.state is not CardState.ABSENT, "card": self.card_key,
                    "card_state": self.state.value, "faults": self._faults_view(),
                    "counters": dict(self.counters), "baud": self.baud}

    def _faults_view(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.faults.items()}

    # the reader -------------------------------------------------------------------------------------------------------
    def bad_request(self, reason: str) -> Outgoing | None:
        """A request frame that failed to decode: the reader says so (10 checksum, 11 length)."""
        with self._lock:
            self.counters["bad_requests"] += 1
            if "silence" in self.faults:
                return None
        sw3 = p.Sw3.CHECKSUM_ERROR if reason == p.FrameError.REASON_BAD_CHECKSUM else p.Sw3.LENGTH_ERROR
        return Outgoing(p.build_response(sw3))

    def handle(self, frame: p.Frame, line_baud: int | None = None) -> Outgoing | None:
        """The reply to one request frame (None: say nothing)."""
        with self._lock:
            self.counters["requests"] += 1
            if "silence" in self.faults or (line_baud is not None and line_baud != self.baud):
                self.counters["ignored"] += 1
                return None
            if len(frame.body) < 2:
                return Outgoing(p.build_response(p.Sw3.LENGTH_ERROR))
            command = frame.command
            forced = self.faults.get("sw3")
            if forced and (forced["command"] is None or COMMAND_NAMES[forced["command"]] == command):
                del self.faults["sw3"]
                self.counters["faults_fired"] += 1
                reply = p.build_response(forced["code"])
            else:
                reply = self._reply(command, frame.request_data)
            out = Outgoing(reply)
            if "bad_checksum" in self.faults:
                del self.faults["bad_checksum"]
                self.counters["faults_fired"] += 1
                out.data = out.data[:-1] + bytes([out.data[-1] ^ 0xFF])
            if "garbage" in self.faults:
                fault = self.faults.pop("garbage")
                self.counters["faults_fired"] += 1
                if "hex" in fault:
                    out.garbage = bytes.fromhex(fault["hex"])
                else:
                    rng = random.Random(fault["seed"]) if "seed" in fault else self._rng
                    out.garbage = bytes(rng.randrange(256) for _ in range(fault["n"]))
            if "slow" in self.faults:
                out.byte_rate = self.faults["slow"]["baud"] / 10.0   # 8N1: 10 bits a byte
            if command in _READ_COMMANDS and "pull_after_bytes" in self.faults and reply[len(p.PREAMBLE) + 4] == p.Sw3.OK:
                n = self.faults.pop("pull_after_bytes")["n"]
                self.counters["faults_fired"] += 1
                out.data = out.data[:n]
                out.then_pull_card = True
            self.counters["replies"] += 1
            return out

    def card_pulled(self) -> None:
        with self._lock:
            self.card_key, self.state = None, CardState.ABSENT

    def _reply(self, command: p.Command, data: bytes) -> bytes:
        Sw3 = p.Sw3
        if command in (p.RESET_SAM, p.SAM_STATUS):
            return p.build_response(Sw3.OK)
        if command == p.SAM_ID:
            return p.build_response(Sw3.OK, p.pack_sam_id(self.sam_id))
        if command == p.FIND_CARD:
            self.counters["finds"] += 1
            if self.state in (CardState.PRESENT, CardState.FOUND, CardState.SELECTED):
                self.state = CardState.FOUND
                return p.build_response(Sw3.CARD_FOUND, bytes(4))
            return p.build_response(Sw3.NO_CARD)
        if command == p.SELECT_CARD:
            if self.state in (CardState.FOUND, CardState.SELECTED):
                self.state = CardState.SELECTED
                serial_no = hashlib.sha256(f"serial:{self.card_key}".encode()).digest()[:8]
                return p.build_response(Sw3.OK, serial_no)
            return p.build_response(Sw3.SELECT_FAILED)
        if command in _READ_COMMANDS:
            if self.state is not CardState.SELECTED or self.card_key is None:
                return p.build_response(Sw3.READ_FAILED)
            self.counters["reads"] += 1
            self.state = CardState.HALTED
            doc = self.identities[self.card_key]
            text = encode_text_block(doc)
            fingerprint = self.fingerprints.get(self.card_key, b"") if command == p.READ_TEXT_PHOTO_FP else None
            return p.build_response(Sw3.OK, p.pack_card_data(text, doc.photo_wlt, fingerprint))
        if command == p.READ_EXTRA_ADDRESS:
            if self.state in (CardState.SELECTED, CardState.HALTED) and self.card_key is not None:
                entries = self.extra_addresses.get(self.card_key)
                if not entries:
                    return p.build_response(Sw3.FIELD_NOT_ON_CARD)
                return p.build_response(Sw3.OK, encode_extra_address(*entries))
            return p.build_response(Sw3.READ_FAILED)
        if command.cmd == p.SET_BAUD_CMD:
            if command.para >= len(p.BAUD_RATES):
                return p.build_response(Sw3.BAD_COMMAND)
            self.baud = p.BAUD_RATES[command.para]   # takes effect after this reply
            return p.build_response(Sw3.OK)
        return p.build_response(Sw3.BAD_COMMAND)


# transports ---------------------------------------------------------------------------------------------------------

class _Link:
    def read(self, timeout: float) -> bytes | None:
        """Bytes received (b"" if none within ``timeout``); None when the client went away."""
        raise NotImplementedError

    def write(self, data: bytes) -> bool:
        raise NotImplementedError

    def line_baud(self) -> int | None:
        return None

    def close(self) -> None: ...


_TERMIOS_SPEEDS = {getattr(termios, f"B{b}"): b for b in p.BAUD_RATES if hasattr(termios, f"B{b}")}


class PtyLink(_Link):
    """Serves on a pty master. The simulator keeps the slave open too, so clients may come and go."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def read(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: no slave open (cannot happen while we hold it, but never die on it)
            return b""

    def write(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self.master], [], 2.0)
            if not ready:
                return False  # nobody reads the slave: drop the rest
            try:
                sent = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[sent:]
        return True

    def line_baud(self) -> int | None:
        try:
            return _TERMIOS_SPEEDS.get(termios.tcgetattr(self.slave)[5])
        except termios.error:
            return None

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpLink(_Link):
    """Serves one TCP client at a time; the next one is accepted when it leaves."""

    def __init__(self, host: str, port: int) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(1)
        self.address = "%s:%d" % self.server.getsockname()[:2]
        self.client: socket.socket | None = None

    def read(self, timeout: float) -> bytes | None:
        if self.client is None:
            ready, _, _ = select.select([self.server], [], [], timeout)
            if ready:
                self.client, _ = self.server.accept()
                self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        ready, _, _ = select.select([self.client], [], [], timeout)
        if not ready:
            return b""
        try:
            data = self.client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop()
            return None
        return data

    def write(self, data: bytes) -> bool:
        if self.client is None:
            return False
        try:
            self.client.sendall(data)
            return True
        except OSError:
            self._drop()
            return False

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except OSError:
                pass
            self.client = None

    def close(self) -> None:
        self._drop()
        self.server.close()


# serving ------------------------------------------------------------------------------------------------------------

def _events(decoder: p.FrameDecoder, data: bytes) -> Iterator[p.Frame | p.FrameError]:
    pending = data
    while True:
        try:
            for frame in decoder.feed(pending):
                yield frame
            return
        except p.FrameError as exc:
            yield exc
            pending = b""


def _send(link: _Link, out: Outgoing, stop: threading.Event) -> None:
    if out.garbage:
        link.write(out.garbage)
    if out.byte_rate is None:
        link.write(out.data)
    else:
        chunk = 32
        for i in range(0, len(out.data), chunk):
            piece = out.data[i: i + chunk]
            if stop.wait(len(piece) / out.byte_rate) or not link.write(piece):
                break


def serve(link: _Link, reader: SimulatedReader, stop: threading.Event) -> None:
    decoder = p.FrameDecoder()
    while not stop.is_set():
        data = link.read(0.1)
        if data is None:      # the client left: forget its half frame
            decoder.reset()
            continue
        if not data:
            continue
        for item in _events(decoder, data):
            if isinstance(item, p.FrameError):
                out = reader.bad_request(item.reason)
            else:
                out = reader.handle(item, link.line_baud())
            if out is None:
                continue
            _send(link, out, stop)
            if out.then_pull_card:
                reader.card_pulled()


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    addresses, fingerprints = load_card_extras()
    reader = SimulatedReader(load_identities(), baud=args.baud, extra_addresses=addresses, fingerprints=fingerprints)
    control = ControlServer(reader.handlers(), *args.control).start()
    link: _Link
    try:
        if args.tcp:
            link = TcpLink(*args.tcp)
            endpoint = {"tcp": link.address}
        else:
            link = PtyLink()
            endpoint = {"pty": link.path}
        print(json.dumps({"kind": "idcard", **endpoint, "control": control.address, "baud": args.baud}),
              flush=True)
        try:
            serve(link, reader, stop_event)
        finally:
            link.close()
    finally:
        control.stop()
    sys.stdout.flush()
