"""``kiosk-sim smartcard [--tcp VPCD_HOST:PORT] [--control HOST:PORT]`` — virtual PC/SC cards behind vsmartcard's vpcd.

The real ``pcscd`` with the ``vpcd`` reader driver (``apt-get install pcscd vsmartcard-vpcd``) listens on TCP 35963
for reader "Virtual PCD 00 00" (35964: "Virtual PCD 00 01"). This process plays the card: while a card is inserted
it holds a TCP connection to vpcd (TCP_NODELAY) and answers its messages — each a u16 big-endian length and a
payload; a 1-byte payload is control (0 power off, 1 power on, 2 reset, 4 get ATR → the ATR), anything else is a
C-APDU answered with the R-APDU (shared/protocols.md §2, checked against vsmartcard's vpcd). Removing the card closes
the connection, which is how vpcd learns the card is gone. ``--tcp`` names vpcd's socket (default 127.0.0.1:35963).

The first stdout line is one JSON object::

    {"kind": "smartcard", "vpcd": "127.0.0.1:35963", "reader": "Virtual PCD 00 00", "control": "127.0.0.1:40123"}

Cards (``sim_cards.yaml``; people from ``drivers/idcard/sim_identities.yaml``)::

    insert_card card=social_security identity=zhang [pin=123456]   social-security card (SELECT SSSE, EF05/EF06)
    insert_card card=bank bank=unionpay_debit                       bank card (PPSE, AID, GPO, READ RECORD)
    insert_card card=error [sw=6F00]                                answers every APDU with that status word
    insert_card card=blank                                          a card with neither application
    place_card identity=zhang                                       = insert_card card=social_security
    remove_card · list_cards · status · clear_faults
    inject_fault kind=pull_after_apdus n=3       the card leaves after answering n more APDUs (mid-read removal)
    inject_fault kind=sw sw=6581 [ins=B2] [count=1]   answer the next (matching) APDUs with that status word
    inject_fault kind=corrupt [ins=B2]           the next (matching) answer's data is cut in half (bad TLV)
    inject_fault kind=delay ms=50                every answer comes that much later (until clear_faults)

The social-security card behaves like a T=0 card: SELECT answers 61xx (the FCI comes with GET RESPONSE) and
READ RECORD with Le=00 answers 6Cxx (repeat with the exact length), so the driver's T=0 handling is exercised. The
bank cards answer directly (T=1 style).
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from drivers.idcard.identity import DocumentKind, IdentityDocument
from drivers.idcard.simulator import load_identities
from drivers.sim.control import ControlServer
from drivers.smartcard import apdu as a
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss
from drivers.smartcard.tlv import build_ber_tlv

CARDS_FILE = Path(__file__).with_name("sim_cards.yaml")
VPCD_PORT = 35963
DEFAULT_VPCD = ("127.0.0.1", VPCD_PORT)
#: a card swapped for another stays out at least this long (pcscd polls vpcd's slot every 0.4 s)
SWAP_GAP_S = 0.6

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

# vpcd control bytes (vsmartcard vpcd.h)
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


def _atr_t0(historical: bytes) -> bytes:
    """An ATR for a T=0-only card: TS 3B, T0 6K (TB1 = TC1 = 00), K historical bytes, no TCK."""
    return bytes([0x3B, 0x60 | len(historical), 0x00, 0x00]) + historical


def _atr_t1(historical: bytes) -> bytes:
    """An ATR announcing T=1 only (TD1 = 01), with its TCK."""
    body = bytes([0x80 | len(historical), 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3B" + body + bytes([tck])


def reader_name_for_port(port: int, base: int = VPCD_PORT) -> str:
    """vpcd names its slots "Virtual PCD 00 0N" for port ``base`` + N, ``base`` being the CHANNELID of its reader.conf
    (35963 in the stock /etc/reader.conf.d/vpcd)."""
    return f"Virtual PCD 00 {port - base:02d}"


def _sw(sw: int) -> bytes:
    return bytes([sw >> 8, sw & 0xFF])


# cards ---------------------------------------------------------------------------------------------------------------

class VirtualCard:
    kind = "card"
    atr = _atr_t0(b"KIOSK-SIM-CARD")

    def power_on(self) -> None:
        self.reset()

    def power_off(self) -> None:
        self.reset()

    def reset(self) -> None:
        pass

    def process(self, apdu: bytes) -> bytes:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"card": self.kind}


class ErrorCard(VirtualCard):
    """A card that answers every APDU with one status word (6F00 by default)."""

    kind = "error"

    def __init__(self, sw: int = a.SW_NO_PRECISE_DIAGNOSIS) -> None:
        self.sw = sw
        self.atr = _atr_t0(b"KIOSK-ERRCARD")

    def process(self, apdu: bytes) -> bytes:
        return _sw(self.sw)

    def describe(self) -> dict[str, Any]:
        return {"card": self.kind, "sw": f"{self.sw:04X}"}


class BlankCard(VirtualCard):
    """A card with neither application: every SELECT by name is 6A82."""

    kind = "blank"

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) >= 4 and apdu[1] == a.INS_SELECT:
            return _sw(a.SW_FILE_NOT_FOUND)
        return _sw(a.SW_INS_NOT_SUPPORTED)


class SocialSecurityCard(VirtualCard):
    kind = "social_security"

    def __init__(self, key: str, doc: IdentityDocument, info: dict[str, Any], pin: str | None = None) -> None:
        self.key = key
        self.atr = _atr_t0(b"SSCARD-SIM30")
        expiry = info.get("expiry")
        self.records = {
            ss.EF05_SFI: ss.encode_ef05(
                card_id_code=str(info["card_id_code"]), card_type=str(info["card_type"]),
                spec_version=str(info["spec_version"]), issuer=str(info["issuer"]),
                issue_date=_date(info["issue_date"]), expiry=None if expiry is None else _date(expiry),
                card_number=str(info["card_number"])),
            ss.EF06_SFI: ss.encode_ef06(doc, str(info["birthplace"])),
        }
        self.pin = pin if pin is not None else (str(info["pin"]) if info.get("pin") else None)
        self.tries_left = 3
        self.reset()

    def reset(self) -> None:
        self.selected = False
        self.verified = False
        self.pending = b""

    def describe(self) -> dict[str, Any]:
        return {"card": self.kind, "identity": self.key, "pin_required": self.pin is not None,
                "pin_tries_left": self.tries_left}

    def _with_le(self, data: bytes, le: int | None) -> bytes:
        # T=0: with Le absent or 00 and data to send, say 6Cxx (repeat with Le = xx)
        if le != len(data):
            return _sw(0x6C00 | (len(data) & 0xFF))
        return data + _sw(a.SW_OK)

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return _sw(a.SW_WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        lc_data = body[1: 1 + body[0]] if len(body) > 1 else b""
        le = body[0] if len(body) == 1 else (body[1 + body[0]] if len(body) > 1 + body[0] else None)
        if cla != 0x00:
            return _sw(a.SW_CLA_NOT_SUPPORTED)
        if ins == a.INS_SELECT:
            if p1 == 0x04 and lc_data == ss.SSSE_AID:
                self.selected, self.verified = True, False
                fci = build_ber_tlv(0x6F, [build_ber_tlv(0x84, ss.SSSE_AID), build_ber_tlv(0xA5, b"")])
                self.pending = fci
                return _sw(0x6100 | len(fci))  # T=0: the FCI waits for GET RESPONSE
            if p1 == 0x02 and self.selected and lc_data in (b"\xEF\x05", b"\xEF\x06"):
                return _sw(a.SW_OK)
            return _sw(a.SW_FILE_NOT_FOUND)
        if ins == a.INS_GET_RESPONSE:
            if not self.pending:
                return _sw(a.SW_CONDITIONS_NOT_SATISFIED)
            data = self.pending
            if le not in (0, len(data)):
                return _sw(0x6C00 | len(data))
            self.pending = b""
            return data + _sw(a.SW_OK)
        if ins == a.INS_VERIFY:
            if self.pin is None:
                return _sw(a.SW_OK)
            if self.tries_left == 0:
                return _sw(a.SW_AUTH_BLOCKED)
            if not self.selected:
                return _sw(a.SW_CONDITIONS_NOT_SATISFIED)
            if lc_data == a.pin_to_bcd(self.pin):
                self.verified, self.tries_left = True, 3
                return _sw(a.SW_OK)
            self.tries_left -= 1
            return _sw(a.SW_AUTH_BLOCKED if self.tries_left == 0 else 0x63C0 | self.tries_left)
        if ins == a.INS_READ_RECORD:
            if not self.selected:
                return _sw(a.SW_CONDITIONS_NOT_SATISFIED)
            sfi = p2 >> 3
            if p2 & 0x07 != 0x04 or sfi not in self.records:
                return _sw(a.SW_FILE_NOT_FOUND)
            if sfi == ss.EF06_SFI and self.pin is not None and not self.verified:
                return _sw(a.SW_SECURITY_NOT_SATISFIED)
            record = self.records[sfi].get(p1)
            if record is None:
                return _sw(a.SW_RECORD_NOT_FOUND)
            return self._with_le(record, le)
        return _sw(a.SW_INS_NOT_SUPPORTED)


class BankCardSim(VirtualCard):
    kind = "bank"

    def __init__(self, key: str, info: dict[str, Any]) -> None:
        self.key = key
        self.atr = _atr_t1(b"PBOC-SIM")
        self.aid = bytes.fromhex(str(info["aid"]))
        self.label = str(info.get("label", ""))
        self.ppse = bool(info.get("ppse", True))
        self.gpo_format = int(info.get("gpo_format", 2))
        pan, expiry = str(info["pan"]), str(info["expiry"])
        if not bc.luhn_valid(pan):
            raise ValueError(f"bank card {key!r}: PAN fails the Luhn check")
        self.pdol = bytes.fromhex("9F6604" "9F0206" "9F3704" "5F2A02")
        self.pdol_len = 4 + 6 + 4 + 2
        expiry_full = expiry + "31"
        if str(info.get("pan_in", "track2")) == "track2":
            records = {(1, 1): build_ber_tlv(0x70, [build_ber_tlv(bc.TAG_TRACK2, bc.encode_track2(pan, expiry))]),
                       (1, 2): build_ber_tlv(0x70, [build_ber_tlv(0x5F24, bytes.fromhex(expiry_full))])}
        else:
            records = {(1, 1): build_ber_tlv(0x70, [build_ber_tlv(0x8C, bytes.fromhex("9F02069F03069F1A02"))]),
                       (1, 2): build_ber_tlv(0x70, [build_ber_tlv(bc.TAG_PAN, bc.encode_pan(pan)),
                                                    build_ber_tlv(0x5F24, bytes.fromhex(expiry_full))])}
        records[(2, 1)] = build_ber_tlv(0x70, [build_ber_tlv(0x8E, bytes(10))])
        self.records = records
        self.masked_pan = bc.mask_pan(pan)
        self.reset()

    def reset(self) -> None:
        self.selected_app = False
        self.gpo_done = False

    def describe(self) -> dict[str, Any]:
        return {"card": self.kind, "bank": self.key, "masked_pan": self.masked_pan}

    def _fci(self) -> bytes:
        return build_ber_tlv(0x6F, [
            build_ber_tlv(bc.TAG_DF_NAME, self.aid),
            build_ber_tlv(bc.TAG_FCI_PROPRIETARY, [
                build_ber_tlv(bc.TAG_LABEL, self.label.encode("ascii")),
                build_ber_tlv(bc.TAG_PRIORITY, b"\x01"),
                build_ber_tlv(bc.TAG_PDOL, self.pdol),
            ]),
        ])

    def _ppse_fci(self) -> bytes:
        entry = build_ber_tlv(bc.TAG_DIRECTORY_ENTRY, [
            build_ber_tlv(bc.TAG_AID, self.aid), build_ber_tlv(bc.TAG_LABEL, self.label.encode("ascii")),
            build_ber_tlv(bc.TAG_PRIORITY, b"\x01")])
        return build_ber_tlv(0x6F, [build_ber_tlv(bc.TAG_DF_NAME, bc.PPSE),
                                    build_ber_tlv(bc.TAG_FCI_PROPRIETARY,
                                                  [build_ber_tlv(bc.TAG_FCI_ISSUER_DISCRETIONARY, [entry])])])

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return _sw(a.SW_WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        lc_data = body[1: 1 + body[0]] if len(body) > 1 else b""
        if ins == a.INS_SELECT and cla == 0x00 and p1 == 0x04:
            if lc_data == bc.PPSE and self.ppse:
                self.selected_app = False
                return self._ppse_fci() + _sw(a.SW_OK)
            if 5 <= len(lc_data) <= 16 and self.aid.startswith(lc_data) and p2 == 0x00:
                self.selected_app, self.gpo_done = True, False
                return self._fci() + _sw(a.SW_OK)
            if p2 == 0x02 and self.aid.startswith(lc_data):
                return _sw(a.SW_FILE_NOT_FOUND)   # no next occurrence
            return _sw(a.SW_FILE_NOT_FOUND)
        if ins == a.INS_GPO and cla == 0x80:
            if not self.selected_app:
                return _sw(a.SW_CONDITIONS_NOT_SATISFIED)
            if len(lc_data) != 2 + self.pdol_len or lc_data[0] != 0x83 or lc_data[1] != self.pdol_len:
                return _sw(a.SW_WRONG_LENGTH)
            self.gpo_done = True
            aip, afl = bytes.fromhex("7C00"), bytes.fromhex("08010200" "10010100")
            if self.gpo_format == 1:
                return build_ber_tlv(0x80, aip + afl) + _sw(a.SW_OK)
            return build_ber_tlv(0x77, [build_ber_tlv(bc.TAG_AIP, aip), build_ber_tlv(bc.TAG_AFL, afl)]) + _sw(a.SW_OK)
        if ins == a.INS_READ_RECORD and cla == 0x00:
            if not self.selected_app:
                return _sw(a.SW_CONDITIONS_NOT_SATISFIED)
            record = self.records.get((p2 >> 3, p1))
            if record is None or p2 & 0x07 != 0x04:
                return _sw(a.SW_RECORD_NOT_FOUND)
            return record + _sw(a.SW_OK)
        if cla not in (0x00, 0x80):
            return _sw(a.SW_CLA_NOT_SUPPORTED)
        return _sw(a.SW_INS_NOT_SUPPORTED)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def load_cards(path: Path = CARDS_FILE) -> dict[str, dict[str, Any]]:
    """``{"social_security": {key: info}, "bank": {key: info}}``, checked: every social-security card belongs to a
    resident ID holder of the ID card simulator's library."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    identities = load_identities()
    for key in raw["social_security"]:
        doc = identities.get(key)
        if doc is None or doc.kind is not DocumentKind.RESIDENT_ID:
            raise ValueError(f"social-security card {key!r} has no resident identity in sim_identities.yaml")
    return raw


# the simulator -------------------------------------------------------------------------------------------------------

FAULT_KINDS = ("pull_after_apdus", "sw", "corrupt", "delay")


def _parse_sw(value: Any) -> int:
    sw = int(value, 16) if isinstance(value, str) else int(value)
    if not 0x6000 <= sw <= 0x9FFF:
        raise ValueError("sw must be a status word such as 6F00")
    return sw


def _parse_ins(value: Any) -> int | None:
    if value is None:
        return None
    ins = int(value, 16) if isinstance(value, str) else int(value)
    if not 0 <= ins <= 0xFF:
        raise ValueError("ins must be a byte")
    return ins


@dataclass
class _Faults:
    pull_after: int | None = None
    sw: list[dict[str, Any]] = field(default_factory=list)
    corrupt: list[int | None] = field(default_factory=list)
    delay_s: float = 0.0


class VirtualCardSimulator:
    """The card slot: which card is inserted, the connection to vpcd, fault injection. Thread-safe."""

    def __init__(self, vpcd: tuple[str, int] = DEFAULT_VPCD) -> None:
        self.vpcd = vpcd
        self.cards = load_cards()
        self.identities = load_identities()
        self._lock = threading.RLock()
        self.card: VirtualCard | None = None
        self.sock: socket.socket | None = None
        self.faults = _Faults()
        self._hold_until = 0.0
        self.counters: dict[str, int] = {"apdus": 0, "connects": 0, "connect_failures": 0, "atr_requests": 0,
                                         "power_on": 0, "faults_fired": 0, "inserted": 0}

    # control commands -----------------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Any]:
        return {"insert_card": self.insert_card, "place_card": self.place_card, "remove_card": self.remove_card,
                "list_cards": self.list_cards, "inject_fault": self.inject_fault, "clear_faults": self.clear_faults,
                "status": self.status}

    def make_card(self, card: str = "social_security", identity: str | None = None, bank: str | None = None,
                  sw: Any = None, pin: str | None = None) -> VirtualCard:
        if card == "social_security":
            key = identity or "zhang"
            if key not in self.cards["social_security"]:
                raise KeyError(f"no social-security card for {key!r}; choose one of "
                               f"{sorted(self.cards['social_security'])}")
            return SocialSecurityCard(key, self.identities[key], self.cards["social_security"][key],
                                      pin=None if pin is None else str(pin))
        if card == "bank":
            key = bank or "unionpay_debit"
            if key not in self.cards["bank"]:
                raise KeyError(f"no bank card {key!r}; choose one of {sorted(self.cards['bank'])}")
            return BankCardSim(key, self.cards["bank"][key])
        if card == "error":
            return ErrorCard(_parse_sw(sw) if sw is not None else a.SW_NO_PRECISE_DIAGNOSIS)
        if card == "blank":
            return BlankCard()
        raise ValueError(f"unknown card {card!r}; choose social_security, bank, error or blank")

    def insert_card(self, card: str = "social_security", identity: str | None = None, bank: str | None = None,
                    sw: Any = None, pin: str | None = None) -> dict[str, Any]:
        new = self.make_card(card, identity, bank, sw, pin)
        with self._lock:
            self._disconnect()          # a card already in the slot is taken out first
            self.card = new
            self.counters["inserted"] += 1
            connected = self._connect()
        return {**new.describe(), "connected": connected}

    def place_card(self, identity: str = "zhang", pin: str | None = None) -> dict[str, Any]:
        return self.insert_card("social_security", identity=identity, pin=pin)

    def remove_card(self) -> dict[str, Any]:
        with self._lock:
            was = self.card.describe() if self.card else None
            self.card = None
            self._disconnect()
        return {"removed": was}

    def list_cards(self) -> dict[str, Any]:
        social = {}
        for key in self.cards["social_security"]:
            doc = self.identities[key]
            social[key] = {"masked_id": doc.masked_id(), "masked_name": doc.masked_name(),
                           "pin_required": bool(self.cards["social_security"][key].get("pin"))}
        bank = {key: {"masked_pan": bc.mask_pan(str(info["pan"])), "label": info.get("label", "")}
                for key, info in self.cards["bank"].items()}
        return {"social_security": social, "bank": bank, "other": ["error", "blank"]}

    def inject_fault(self, kind: str, **params: Any) -> dict[str, Any]:
        with self._lock:
            if kind == "pull_after_apdus":
                n = int(params.get("n", 0))
                if n < 0:
                    raise ValueError("n must be >= 0")
                self.faults.pull_after = n
            elif kind == "sw":
                count = int(params.get("count", 1))
                self.faults.sw.append({"sw": _parse_sw(params["sw"]), "ins": _parse_ins(params.get("ins")),
                                       "count": count})
            elif kind == "corrupt":
                self.faults.corrupt.append(_parse_ins(params.get("ins")))
            elif kind == "delay":
                ms = float(params.get("ms", 0))
                if not 0 <= ms <= 5000:
                    raise ValueError("ms must be 0..5000")
                self.faults.delay_s = ms / 1000
            else:
                raise ValueError(f"unknown fault {kind!r}; choose one of {list(FAULT_KINDS)}")
            return {"faults": self._faults_view()}

    def clear_faults(self) -> dict[str, Any]:
        with self._lock:
            self.faults = _Faults()
        return {"faults": {}}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"card_present": self.card is not None, "card": self.card.describe() if self.card else None,
                    "connected": self.sock is not None, "vpcd": "%s:%d" % self.vpcd,
                    "faults": self._faults_view(), "counters": dict(self.counters)}

    def _faults_view(self) -> dict[str, Any]:
        f = self.faults
        view: dict[str, Any] = {}
        if f.pull_after is not None:
            view["pull_after_apdus"] = f.pull_after
        if f.sw:
            view["sw"] = [{**x, "sw": f"{x['sw']:04X}", "ins": None if x["ins"] is None else f"{x['ins']:02X}"}
                          for x in f.sw]
        if f.corrupt:
            view["corrupt"] = [None if x is None else f"{x:02X}" for x in f.corrupt]
        if f.delay_s:
            view["delay_ms"] = f.delay_s * 1000
        return view

    # the connection to vpcd -------------------------------------------------------------------------------------------
    def _connect(self) -> bool:
        if self.sock is not None:
            return True
        if time.monotonic() < self._hold_until:
            return False
        try:
            sock = socket.create_connection(self.vpcd, timeout=1.0)
        except OSError:
            self.counters["connect_failures"] += 1
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        sock.settimeout(None)
        self.sock = sock
        self.counters["connects"] += 1
        if self.card is not None:
            self.card.reset()
        return True

    def _disconnect(self) -> None:
        """Take the card out. The slot then stays empty for SWAP_GAP_S before a card can go in again: pcscd polls
        vpcd's slot every 0.4 s, and a card put back faster than that would look like no change at all (no hand is
        that quick)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            self._hold_until = time.monotonic() + SWAP_GAP_S
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _answer(self, payload: bytes) -> bytes | None:
        """The reply to one vpcd message (None: no reply)."""
        card = self.card
        if card is None:
            return None
        if len(payload) == 1:
            ctrl = payload[0]
            if ctrl == CTRL_ATR:
                self.counters["atr_requests"] += 1
                return card.atr
            if ctrl == CTRL_ON:
                self.counters["power_on"] += 1
                card.power_on()
            elif ctrl == CTRL_OFF:
                card.power_off()
            elif ctrl == CTRL_RESET:
                card.reset()
            return None
        self.counters["apdus"] += 1
        ins = payload[1] if len(payload) > 1 else None
        for fault in self.faults.sw:
            if fault["ins"] is None or fault["ins"] == ins:
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self.faults.sw.remove(fault)
                self.counters["faults_fired"] += 1
                return _sw(fault["sw"])
        reply = card.process(payload)
        for wanted in self.faults.corrupt:
            if (wanted is None or wanted == ins) and len(reply) > 2:
                self.faults.corrupt.remove(wanted)
                self.counters["faults_fired"] += 1
                data = reply[:-2]
                reply = data[: len(data) // 2] + reply[-2:]
                break
        return reply

    def serve(self, stop: threading.Event) -> None:
        """Keep the connection to vpcd while a card is inserted; answer its messages."""
        buf = b""
        while not stop.is_set():
            with self._lock:
                if self.card is not None and self.sock is None:
                    if not self._connect():
                        pass
                sock = self.sock
            if sock is None:
                buf = b""
                stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):   # closed by remove_card meanwhile
                continue
            if not ready:
                continue
            try:
                chunk = sock.recv(4096)
                # vpcd writes the length and the payload separately; ACK at once so its Nagle does not hold the
                # payload back for our delayed ACK (~40 ms per APDU otherwise). Linux resets QUICKACK: set it each time.
                if _QUICKACK is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                chunk = b""
            if not chunk:                   # vpcd went away (pcscd stopped) or the card was removed
                with self._lock:
                    if self.sock is sock:
                        self._disconnect()
                buf = b""
                continue
            buf += chunk
            while len(buf) >= 2:
                (length,) = struct.unpack_from(">H", buf)
                if len(buf) < 2 + length:
                    break
                payload, buf = buf[2: 2 + length], buf[2 + length:]
                with self._lock:
                    if self.sock is not sock:
                        break
                    if len(payload) > 1 and self.faults.pull_after == 0:
                        self._pull()               # pulled before this APDU could be answered
                        break
                    reply = self._answer(payload)
                    delay = self.faults.delay_s
                if reply is None:
                    continue
                if delay and stop.wait(delay):
                    return
                with self._lock:
                    if self.sock is not sock:
                        break
                    try:
                        sock.sendall(struct.pack(">H", len(reply)) + reply)
                    except OSError:
                        self._disconnect()
                        break
                    if len(payload) > 1 and self.faults.pull_after is not None:
                        self.faults.pull_after -= 1
                        if self.faults.pull_after <= 0:
                            self._pull()
                            break

    def _pull(self) -> None:
        """The citizen pulls the card: it leaves the slot without a goodbye."""
        self.faults.pull_after = None
        self.counters["faults_fired"] += 1
        self.card = None
        self._disconnect()

    def close(self) -> None:
        with self._lock:
            self.card = None
            self._disconnect()


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    vpcd = getattr(args, "vpcd", None) or getattr(args, "tcp", None) or DEFAULT_VPCD
    sim = VirtualCardSimulator(tuple(vpcd))  # type: ignore[arg-type]
    control = ControlServer(sim.handlers(), *args.control).start()
    try:
        print(json.dumps({"kind": "smartcard", "vpcd": "%s:%d" % sim.vpcd,
                          "reader": reader_name_for_port(sim.vpcd[1], getattr(args, "vpcd_base", None) or VPCD_PORT),
                          "control": control.address}), flush=True)
        try:
            sim.serve(stop_event)
        finally:
            sim.close()
    finally:
        control.stop()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.smartcard.simulator`` is ``kiosk-sim smartcard``."""
    from drivers.sim.cli import main as kiosk_sim

    return kiosk_sim(["smartcard", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
