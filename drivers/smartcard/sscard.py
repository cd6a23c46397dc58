"""The social-security card (社会保障卡): application selection, record layout, and decoding into the same
:class:`~drivers.idcard.identity.IdentityDocument` the ID card reader produces.

Source: shared/protocols.md §2.

* SELECT SSSE: ``00 A4 04 00 0F`` + "sx1.sh.社会保障" in GBK → 9000 (or 61xx: GET RESPONSE for the FCI).
* EF05 (SFI 5, ``00 B2 rr 2C 00``): 1 card identification code (16, first 6 = region), 2 card type, 3 spec version
  ("3.00"/"2.00"), 4 issuer (12), 5 issue date (BCD 4), 6 expiry (BCD 4), 7 card number (9 ASCII).
* EF06 (SFI 6, ``00 B2 rr 34 00``): 1 social security number = ID number (18), 2 name (30, GBK), 3 sex, 4 nation,
  5 birthplace (BCD 3), 6 birth date (BCD 4).
* records are SIMPLE-TLV (tag, len, value); some regions want VERIFY PIN (``00 20 00 00 03 <BCD PIN>``) before EF06.

Unverified details, decoded leniently (both forms are accepted): sex as ASCII "1"/"2" or the byte 01/02; nation as
two ASCII digits or one BCD byte; issuer as ASCII or packed BCD; the record's tag is expected to be the record
number, but a record holding exactly one object is accepted whatever its tag. An expiry of 99991231 means no end
date (长期). Everything raises :class:`~drivers.errors.InvalidCardData` or
:class:`~drivers.smartcard.errors.TlvError` for bad data, never another exception; messages never quote card data.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Mapping

from drivers.errors import InvalidCardData
from drivers.idcard.identity import NATIONS, DocumentKind, IdentityDocument, validate_id_number
from drivers.smartcard.errors import TlvError
from drivers.smartcard.tlv import build_simple_tlv, parse_simple_tlv

#: "sx1.sh.社会保障" in GBK — the social-security application's DF name (shared/protocols.md §2)
SSSE_AID = b"sx1.sh." + "社会保障".encode("gbk")
assert SSSE_AID.hex().upper() == "7378312E73682EC9E7BBE1B1A3D5CF"

EF05_SFI = 5   # card information (P2 0x2C)
EF06_SFI = 6   # cardholder information (P2 0x34)
EF05_RECORDS = (1, 2, 3, 4, 5, 6, 7)
EF06_RECORDS = (1, 2, 3, 4, 5, 6)
NO_END_DATE = "99991231"
MEDIUM = "social_security_card"

_SEX = {"1": "male", "2": "female"}


@dataclass(frozen=True, repr=False)
class SocialSecurityCardInfo:
    """EF05, the card's own data (no personal data except the card number)."""

    card_id_code: str
    card_type: str
    spec_version: str
    issuer: str
    issue_date: date
    expiry: date | None
    card_number: str

    @property
    def region(self) -> str:
        return self.card_id_code[:6]

    def __repr__(self) -> str:
        return f"SocialSecurityCardInfo(region={self.region}, spec={self.spec_version})"


def record_value(raw: bytes, record: int) -> bytes:
    """The value of one record read with READ RECORD: the SIMPLE-TLV object tagged with the record number (or the
    only object in the record)."""
    items = parse_simple_tlv(raw)
    for tag, value in items:
        if tag == record:
            return value
    if len(items) == 1:
        return items[0][1]
    raise TlvError(TlvError.REASON_MISSING_TAG, f"record {record} holds no object tagged {record:02X}")


def _strip(value: bytes) -> bytes:
    return value.rstrip(b" \x00\xff").lstrip(b" ")


def _ascii(value: bytes, what: str) -> str:
    value = _strip(value)
    if not value.isascii() or not all(0x20 <= b < 0x7F for b in value):
        raise InvalidCardData(f"{what} is not printable ASCII")
    return value.decode("ascii")


def _bcd_digits(value: bytes, what: str) -> str:
    text = value.hex().upper()
    if not text.isdigit():
        raise InvalidCardData(f"{what} is not packed BCD")
    return text


def _bcd_date(value: bytes, what: str, allow_no_end: bool = False) -> date | None:
    if len(value) != 4:
        raise InvalidCardData(f"{what} is not 4 BCD bytes")
    text = _bcd_digits(value, what)
    if allow_no_end and text == NO_END_DATE:
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidCardData(f"{what} is not a valid date") from None


def _code(value: bytes, what: str, width: int) -> str:
    """A numeric code stored either as ASCII digits or as packed BCD / a binary byte."""
    stripped = _strip(value)
    if stripped and stripped.isascii() and stripped.isdigit():
        return stripped.decode("ascii").zfill(width)
    if len(value) == 1:
        text = value.hex()
        if text.isdigit():
            return text.zfill(width)[-width:]
    raise InvalidCardData(f"{what} is neither ASCII digits nor BCD")


def _text_or_bcd(value: bytes) -> str:
    stripped = _strip(value)
    if stripped and stripped.isascii() and all(0x20 <= b < 0x7F for b in stripped):
        return stripped.decode("ascii")
    return value.hex().upper().rstrip("F")


def decode_ef05(records: Mapping[int, bytes]) -> SocialSecurityCardInfo:
    """EF05's record values (already unwrapped with :func:`record_value`) → :class:`SocialSecurityCardInfo`."""
    try:
        card_id = _ascii(records[1], "card identification code")
        card_number = _ascii(records[7], "card number")
        issue = _bcd_date(records[5], "issue date")
        expiry = _bcd_date(records[6], "expiry date", allow_no_end=True)
        info = SocialSecurityCardInfo(
            card_id_code=card_id,
            card_type=_text_or_bcd(records[2]),
            spec_version=_ascii(records[3], "spec version"),
            issuer=_text_or_bcd(records[4]),
            issue_date=issue,  # type: ignore[arg-type]
            expiry=expiry,
            card_number=card_number,
        )
    except KeyError as exc:
        raise InvalidCardData(f"EF05 record {exc.args[0]} missing") from None
    if len(card_id) < 6 or not card_id[:6].isdigit():
        raise InvalidCardData("card identification code does not start with a region code")
    if not card_number.isalnum():
        raise InvalidCardData("card number is not alphanumeric")
    return info


def decode_identity(ef05: Mapping[int, bytes], ef06: Mapping[int, bytes]) -> IdentityDocument:
    """EF05 + EF06 record values → an :class:`IdentityDocument` of kind ``resident_id`` (``address`` empty, no
    photo: the platform supplies it), ``extra`` = card_number, issuer, region, card_type, spec_version, birthplace,
    medium."""
    info = decode_ef05(ef05)
    try:
        id_number = _ascii(ef06[1], "social security number")
        try:
            name = _strip(ef06[2]).decode("gbk")
        except UnicodeDecodeError:
            raise InvalidCardData("name is not GBK text") from None
        sex_code = _code(ef06[3], "sex code", 1)
        nation_raw = ef06.get(4, b"")
        birthplace = ef06.get(5, b"")
        birth = _bcd_date(ef06[6], "birth date")
    except KeyError as exc:
        raise InvalidCardData(f"EF06 record {exc.args[0]} missing") from None
    if not validate_id_number(id_number):
        raise InvalidCardData("social security number is not a valid ID number (GB 11643)")
    if birth is None or birth.strftime("%Y%m%d") != id_number[6:14]:
        raise InvalidCardData("birth date does not match the ID number")
    if not name or not name.isprintable():
        raise InvalidCardData("name is empty or not printable")
    if sex_code not in _SEX:
        raise InvalidCardData("sex code is neither 1 nor 2")
    nation: str | None = None
    if _strip(nation_raw):
        nation = _code(nation_raw, "nation code", 2)
        if nation not in NATIONS:
            raise InvalidCardData("nation code is not a GB 3304 code")
    extra = {
        "card_number": info.card_number, "issuer": info.issuer, "region": info.region,
        "card_type": info.card_type, "spec_version": info.spec_version, "medium": MEDIUM,
    }
    if _strip(birthplace):
        extra["birthplace"] = _bcd_digits(birthplace, "birthplace")
    return IdentityDocument(
        kind=DocumentKind.RESIDENT_ID, name=name, sex=_SEX[sex_code], nation=nation, birth_date=birth,
        address="", id_number=id_number, issuer="", valid_from=info.issue_date, valid_to=info.expiry,
        photo_wlt=b"", extra=extra,
    )


# encoding (the virtual card) ----------------------------------------------------------------------------------------

def _bcd(text: str) -> bytes:
    return bytes.fromhex(text)


def _pad(value: bytes, size: int, fill: bytes = b" ") -> bytes:
    if len(value) > size:
        raise ValueError("value longer than its field")
    return value + fill * (size - len(value))


def encode_ef05(card_id_code: str, card_type: str, spec_version: str, issuer: str, issue_date: date,
                expiry: date | None, card_number: str) -> dict[int, bytes]:
    """EF05 records as a card stores them (SIMPLE-TLV, tag = record number)."""
    values = {
        1: _pad(card_id_code.encode("ascii"), 16),
        2: card_type.encode("ascii"),
        3: spec_version.encode("ascii"),
        4: _pad(issuer.encode("ascii"), 12),
        5: _bcd(issue_date.strftime("%Y%m%d")),
        6: _bcd(NO_END_DATE if expiry is None else expiry.strftime("%Y%m%d")),
        7: _pad(card_number.encode("ascii"), 9),
    }
    return {rec: build_simple_tlv(rec, value) for rec, value in values.items()}


def encode_ef06(doc: IdentityDocument, birthplace: str) -> dict[int, bytes]:
    """EF06 records for ``doc`` (sex as an ASCII digit, nation as one BCD byte, as the spec's "cn" suggests)."""
    values = {
        1: doc.id_number.encode("ascii"),
        2: _pad(doc.name.encode("gbk"), 30),
        3: {"male": b"1", "female": b"2"}[doc.sex],
        4: _bcd(doc.nation) if doc.nation else b"\xff",
        5: _bcd(birthplace),
        6: _bcd(doc.birth_date.strftime("%Y%m%d")),
    }
    return {rec: build_simple_tlv(rec, value) for rec, value in values.items()}
