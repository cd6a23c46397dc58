"""Bank cards (PBOC 3.0 / EMV), for identification only: which card is it, shown as a masked PAN. Never payment.

Sources: shared/protocols.md §2 (SELECT PPSE ``00 A4 04 00 0E "2PAY.SYS.DDF01" 00``, contact PSE
``1PAY.SYS.DDF01``, SELECT AID ``A0 00 00 03 33 01 01 0x``, GPO ``80 A8 00 00 …``, READ RECORD per AFL, PAN in tag 5A
or 57) and EMV 4.3 Book 1 §11–12 / Book 3 §5, §10.1, Annex A (FCI 6F/A5/BF0C/61/4F/50/87, PDOL 9F38, GPO response
format 1 tag 80 = AIP‖AFL and format 2 tag 77 with 82 AIP and 94 AFL, AFL entries of 4 bytes: SFI<<3, first record,
last record, records for offline authentication; record template 70; track 2 equivalent data 57 = PAN 'D' YYMM …).

The full PAN exists only inside :func:`masked_pan_from_records` for as long as it takes to check and mask it: it is
never returned, stored, logged or put into an exception. Parsers raise only typed errors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Iterable

from drivers.base import luhn_ok, mask_card_number, mask_pan, redact_card_numbers
from drivers.errors import InvalidCardData
from drivers.smartcard.errors import TlvError
from drivers.smartcard.tlv import Tlv, build_ber_tlv, find_tag, iter_tags, parse_ber_tlv

PPSE = b"2PAY.SYS.DDF01"
PSE = b"1PAY.SYS.DDF01"
#: UnionPay debit/credit/quasi-credit applications share this prefix (A000000333 RID, 0101 PBOC debit/credit)
UNIONPAY_AID_PREFIX = bytes.fromhex("A0000003330101")
#: AIDs tried in this order when the card has no PPSE (selection by partial name)
FALLBACK_AIDS: tuple[bytes, ...] = (UNIONPAY_AID_PREFIX,)
#: at most this many records are read while looking for the PAN
MAX_RECORDS = 16

TAG_FCI = 0x6F
TAG_FCI_PROPRIETARY = 0xA5
TAG_FCI_ISSUER_DISCRETIONARY = 0xBF0C
TAG_DIRECTORY_ENTRY = 0x61
TAG_AID = 0x4F
TAG_DF_NAME = 0x84
TAG_LABEL = 0x50
TAG_PRIORITY = 0x87
TAG_PDOL = 0x9F38
TAG_GPO_FORMAT1 = 0x80
TAG_GPO_FORMAT2 = 0x77
TAG_AIP = 0x82
TAG_AFL = 0x94
TAG_RECORD = 0x70
TAG_PAN = 0x5A
TAG_TRACK2 = 0x57
TAG_COMMAND_TEMPLATE = 0x83


@dataclass(frozen=True)
class BankCard:
    """A bank card as the kiosk may know it: the masked PAN (first 6 and last 4 digits), the application, the
    scheme. Nothing here can be turned back into the card number."""

    masked_pan: str
    aid: str
    label: str = ""
    scheme: str = ""

    def __post_init__(self) -> None:
        # the boundary holds whoever builds one: a full number given here is masked, and the card's own free-text
        # application label (tag 50, written by the issuer — or by a hostile card) cannot carry a PAN out either
        object.__setattr__(self, "masked_pan", mask_card_number(self.masked_pan))
        object.__setattr__(self, "label", redact_card_numbers(self.label))

    @property
    def last4(self) -> str:
        return self.masked_pan[-4:]

    @property
    def display(self) -> str:
        """``**** 1234`` for screens and receipts."""
        return f"**** {self.last4}"


@dataclass(frozen=True)
class Application:
    aid: bytes
    label: str = ""
    priority: int = 15

    def __repr__(self) -> str:
        return f"Application(aid={self.aid.hex().upper()}, priority={self.priority})"


def _label(value: bytes) -> str:
    text = value.decode("latin-1")
    return "".join(ch for ch in text if ch.isprintable()).strip()


def parse_directory(fci: bytes) -> list[Application]:
    """The applications a PPSE/PSE FCI lists (61 entries with 4F, 50, 87), sorted by priority."""
    apps = []
    for entry in iter_tags(parse_ber_tlv(fci), TAG_DIRECTORY_ENTRY):
        aid = find_tag(entry.children, TAG_AID)
        if aid is None or not 5 <= len(aid.value) <= 16:
            continue
        label = find_tag(entry.children, TAG_LABEL)
        priority = find_tag(entry.children, TAG_PRIORITY)
        apps.append(Application(aid.value, _label(label.value) if label else "",
                                (priority.value[0] & 0x0F) if priority and priority.value else 15))
    return sorted(apps, key=lambda a: a.priority)


@dataclass(frozen=True)
class SelectedApplication:
    df_name: bytes
    label: str
    pdol: bytes


def parse_application_fci(fci: bytes) -> SelectedApplication:
    """The FCI returned by SELECT AID → DF name, label and PDOL (empty when the card asks for none)."""
    items = parse_ber_tlv(fci)
    top = find_tag(items, TAG_FCI)
    if top is None:
        raise TlvError(TlvError.REASON_MISSING_TAG, "SELECT AID answer has no FCI template")
    name = find_tag(top.children, TAG_DF_NAME)
    label = find_tag(top.children, TAG_LABEL)
    pdol = find_tag(top.children, TAG_PDOL)
    return SelectedApplication(name.value if name else b"", _label(label.value) if label else "",
                               pdol.value if pdol else b"")


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """A data object list: (tag, length) pairs."""
    out = []
    i, n = 0, len(dol)
    while i < n:
        tag = dol[i]
        i += 1
        if tag & 0x1F == 0x1F:
            count = 1
            while True:
                if i >= n:
                    raise TlvError(TlvError.REASON_TRUNCATED, "DOL tag cut short")
                tag = (tag << 8) | dol[i]
                i += 1
                count += 1
                if count > 4:
                    raise TlvError(TlvError.REASON_BAD_LENGTH, "DOL tag too long")
                if not tag & 0x80:
                    break
        if i >= n:
            raise TlvError(TlvError.REASON_TRUNCATED, "DOL entry has no length")
        out.append((tag, dol[i]))
        i += 1
    return out


def pdol_data(pdol: bytes, today: date | None = None, unpredictable: bytes | None = None) -> bytes:
    """The data the card's PDOL asks for. Identification needs no transaction: amounts are zero; the terminal
    country and currency are China (0156); TTQ says "contact EMV, online capable"; unknown tags are zeros."""
    today = today or date.today()
    unpredictable = unpredictable if unpredictable is not None else os.urandom(4)
    known = {
        0x9F66: bytes.fromhex("28000000"),          # terminal transaction qualifiers
        0x9F02: bytes(6), 0x9F03: bytes(6),         # amount authorised / other: 0
        0x9F1A: bytes.fromhex("0156"),              # terminal country code: China
        0x5F2A: bytes.fromhex("0156"),              # transaction currency code: CNY
        0x9A: bytes.fromhex(today.strftime("%y%m%d")),
        0x9C: b"\x00",                               # transaction type: goods/services
        0x9F37: unpredictable,
        0x9F35: b"\x14",                             # terminal type: attended, offline with online capability
    }
    out = bytearray()
    for tag, length in parse_dol(pdol):
        value = known.get(tag, b"")
        if len(value) >= length:
            out += value[len(value) - length:]       # numeric values keep their low-order end
        else:
            out += value + bytes(length - len(value))
    return bytes(out)


def gpo_command(data: bytes) -> bytes:
    """GET PROCESSING OPTIONS ``80 A8 00 00 Lc 83 L <PDOL data> 00``."""
    body = build_ber_tlv(TAG_COMMAND_TEMPLATE, data)
    if len(body) > 255:
        raise InvalidCardData("the card's PDOL asks for too much data")
    return bytes([0x80, 0xA8, 0x00, 0x00, len(body)]) + body + b"\x00"


def parse_gpo(data: bytes) -> tuple[bytes, bytes]:
    """(AIP, AFL) from a GPO answer, format 1 (tag 80) or format 2 (tag 77)."""
    items = parse_ber_tlv(data)
    if not items:
        raise TlvError(TlvError.REASON_MISSING_TAG, "empty GPO answer")
    first = items[0]
    if first.tag == TAG_GPO_FORMAT1:
        if len(first.value) < 2:
            raise InvalidCardData("GPO format 1 answer shorter than the AIP")
        return first.value[:2], first.value[2:]
    if first.tag == TAG_GPO_FORMAT2:
        aip = find_tag(first.children, TAG_AIP)
        afl = find_tag(first.children, TAG_AFL)
        if aip is None or afl is None:
            raise TlvError(TlvError.REASON_MISSING_TAG, "GPO format 2 answer lacks AIP or AFL")
        return aip.value, afl.value
    raise TlvError(TlvError.REASON_MISSING_TAG, "GPO answer is neither format 1 nor format 2")


def parse_afl(afl: bytes) -> list[tuple[int, int]]:
    """(SFI, record) pairs to read, in AFL order, at most :data:`MAX_RECORDS`."""
    if len(afl) % 4:
        raise InvalidCardData("AFL length is not a multiple of 4")
    out: list[tuple[int, int]] = []
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise InvalidCardData("AFL entry is invalid")
        for record in range(first, last + 1):
            if len(out) >= MAX_RECORDS:
                return out
            out.append((sfi, record))
    return out


def luhn_valid(digits: str) -> bool:
    """A plausible PAN: 12 or more ASCII digits whose Luhn check holds."""
    return digits.isascii() and digits.isdigit() and len(digits) >= 12 and luhn_ok(digits)


def _pan_from(items: list[Tlv]) -> str | None:
    tag = find_tag(items, TAG_PAN)
    if tag is not None:
        return tag.value.hex().upper().rstrip("F")
    track2 = find_tag(items, TAG_TRACK2)
    if track2 is not None:
        return track2.value.hex().upper().split("D", 1)[0]
    return None


def masked_pan_from_records(records: Iterable[bytes]) -> str:
    """The masked PAN from the first record (template 70) carrying 5A or 57. Raises InvalidCardData when no record
    has one or the number fails its Luhn check."""
    for raw in records:
        items = parse_ber_tlv(raw)
        pan = _pan_from(items)
        if pan is None:
            continue
        if not (13 <= len(pan) <= 19 and luhn_valid(pan)):
            raise InvalidCardData("the card number on the card fails its check digit")
        return mask_pan(pan)
    raise InvalidCardData("no card number in the card's records")


def scheme_of(aid: bytes) -> str:
    return "unionpay" if aid.startswith(bytes.fromhex("A000000333")) else ""


# encoding (the virtual card) ----------------------------------------------------------------------------------------

def encode_pan(pan: str) -> bytes:
    return bytes.fromhex(pan + ("F" if len(pan) % 2 else ""))


def encode_track2(pan: str, expiry_yymm: str, service_code: str = "220") -> bytes:
    text = f"{pan}D{expiry_yymm}{service_code}0000000000"
    if len(text) % 2:
        text += "F"
    return bytes.fromhex(text)
