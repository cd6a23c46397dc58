"""An identity document as read from a card, and the 256-byte GA 467 text block it comes from.

Layout source: shared/protocols.md §1 ("256-byte text block, UCS-2LE, space-padded"). Personal data rule: an
:class:`IdentityDocument` never shows its name, ID number or address in ``repr``/``str`` (only the kind and the
masked number), and error messages raised here never quote card data — both may end up in logs.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from drivers.errors import InvalidCardData

TEXT_BLOCK_LEN = 256
LONG_TERM = "长期"  # "valid to" on documents without an end date

# GB 11643 check digit (shared/protocols.md §1): weights for the first 17 digits, sum mod 11 → "10X98765432"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

#: GB 3304 nationality ("民族") codes → names, as printed on resident ID cards
NATIONS: dict[str, str] = {
    "01": "汉", "02": "蒙古", "03": "回", "04": "藏", "05": "维吾尔", "06": "苗", "07": "彝", "08": "壮",
    "09": "布依", "10": "朝鲜", "11": "满", "12": "侗", "13": "瑶", "14": "白", "15": "土家", "16": "哈尼",
    "17": "哈萨克", "18": "傣", "19": "黎", "20": "傈僳", "21": "佤", "22": "畲", "23": "高山", "24": "拉祜",
    "25": "水", "26": "东乡", "27": "纳西", "28": "景颇", "29": "柯尔克孜", "30": "土", "31": "达斡尔",
    "32": "仫佬", "33": "羌", "34": "布朗", "35": "撒拉", "36": "毛南", "37": "仡佬", "38": "锡伯", "39": "阿昌",
    "40": "普米", "41": "塔吉克", "42": "怒", "43": "乌孜别克", "44": "俄罗斯", "45": "鄂温克", "46": "德昂",
    "47": "保安", "48": "裕固", "49": "京", "50": "塔塔尔", "51": "独龙", "52": "鄂伦春", "53": "赫哲",
    "54": "门巴", "55": "珞巴", "56": "基诺", "97": "其他", "98": "外国血统中国籍人士",
}


class DocumentKind(str, enum.Enum):
    RESIDENT_ID = "resident_id"                                  # 居民身份证
    HMT_RESIDENCE_PERMIT = "hmt_residence_permit"                # 港澳台居民居住证 (type flag 'J')
    FOREIGN_PERMANENT_RESIDENT = "foreign_permanent_resident"    # 外国人永久居留身份证 (type flag 'I'; 2023: 'Y')


# card-type flag at bytes 248–249 (shared/protocols.md §1)
_FLAG_OFFSET = 248
_FLAGS = {"I": DocumentKind.FOREIGN_PERMANENT_RESIDENT, "J": DocumentKind.HMT_RESIDENCE_PERMIT,
          "Y": DocumentKind.FOREIGN_PERMANENT_RESIDENT}
_FLAG_OF = {DocumentKind.FOREIGN_PERMANENT_RESIDENT: "I", DocumentKind.HMT_RESIDENCE_PERMIT: "J"}
#: type flag of the 2023 edition of the foreign permanent resident ID card (vendor SDK convention; unverified)
FLAG_FOREIGN_2023 = "Y"

# (offset, bytes) of each field; resident card and HMT permit (shared/protocols.md §1)
_RESIDENT_FIELDS: dict[str, tuple[int, int]] = {
    "name": (0, 30),
    "sex": (30, 2),
    "nation": (32, 4),
    "birth": (36, 16),
    "address": (52, 70),
    "id_number": (122, 36),
    "issuer": (158, 30),
    "valid_from": (188, 16),
    "valid_to": (204, 16),
}
# HMT permit: as the resident card up to 220 (nation reserved), then these (shared/protocols.md §1)
_HMT_FIELDS: dict[str, tuple[int, int]] = {
    "pass_number": (220, 18),
    "issue_count": (238, 4),
}
# Foreign permanent resident card: §1 gives only the field ORDER ("English name, sex, card number (15),
# nationality code, Chinese name, valid from, valid to, birth, card version, issuing-authority code, type flag")
# and marks the widths unverified. ASSUMED widths (bytes), chosen from the widely circulated vendor SDK layout and
# consistent with §1 in that the type flag lands at 248: English name 120, sex 2, card number 30 (15 chars),
# nationality 6 (ISO 3166-1 alpha-3), Chinese name 30, valid from 16, valid to 16, birth 16, card version 4,
# issuing-authority code 8, type flag 2, reserved 6. Check against a real card before relying on it.
_FOREIGN_FIELDS: dict[str, tuple[int, int]] = {
    "english_name": (0, 120),
    "sex": (120, 2),
    "id_number": (122, 30),
    "nationality": (152, 6),
    "name": (158, 30),
    "valid_from": (188, 16),
    "valid_to": (204, 16),
    "birth": (220, 16),
    "card_version": (236, 4),
    "issuer_code": (240, 8),
}

# The 2023 edition of the foreign permanent resident ID card (issued from 1 Dec 2023) carries an 18-character number
# built like a citizen's: "9", 2-digit province code of the first issuing place (GB/T 2260), 3-digit nationality code
# (ISO 3166-1 numeric), birth date YYYYMMDD, a 2-digit sequence, a sex digit (odd male, even female) and the GB 11643
# check character. shared/protocols.md §1 gives no text-block layout for it; readers flag it 'Y' at 248 (vendor SDK
# convention). ASSUMED layout (bytes, UCS-2LE, space padded) — the fields the card prints, with the number, validity
# and issuer at the resident card's offsets: Chinese name 30 @0, sex 2 @30, nationality (ISO alpha-3) 6 @32, birth 16
# @38, English name 68 @54, number 36 @122, issuing authority 30 @158, valid from 16 @188, valid to 16 @204, card
# version 4 @220, reserved to 248, type flag 'Y' @248. Check against a real card before relying on it.
_FOREIGN_2023_FIELDS: dict[str, tuple[int, int]] = {
    "name": (0, 30),
    "sex": (30, 2),
    "nationality": (32, 6),
    "birth": (38, 16),
    "english_name": (54, 68),
    "id_number": (122, 36),
    "issuer": (158, 30),
    "valid_from": (188, 16),
    "valid_to": (204, 16),
    "card_version": (220, 4),
}

_SEX_CODES = {"1": "male", "2": "female"}
_SEX_OF = {v: k for k, v in _SEX_CODES.items()}
_FOREIGN_NUMBER = re.compile(r"[A-Z]{3}\d{12}")


def gb11643_check_digit(first17: str) -> str:
    """The check character ("0"–"9" or "X") for the first 17 digits of a citizen ID number (GB 11643)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 ASCII digits")
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def _parse_ymd(text: str) -> date | None:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def validate_id_number(s: str) -> bool:
    """Whether ``s`` is a well-formed 18-character citizen ID number: 17 digits, a valid birth date at 7–14, and a
    correct GB 11643 check character (lower-case "x" is not accepted: cards carry "X")."""
    if not isinstance(s, str) or len(s) != 18 or not s[:17].isascii() or not s[:17].isdigit():
        return False
    if _parse_ymd(s[6:14]) is None:
        return False
    return gb11643_check_digit(s[:17]) == s[17]


def validate_foreign_permanent_number(s: str) -> bool:
    """Whether ``s`` is a foreign permanent resident ID card number of either edition: the 15-character one (ISO
    3166-1 alpha-3 nationality + 12 digits) or the 2023 one (18 characters starting with "9", a valid birth date at
    6–14 and a correct GB 11643 check character)."""
    if not isinstance(s, str):
        return False
    if len(s) == 15:
        return bool(_FOREIGN_NUMBER.fullmatch(s))
    return len(s) == 18 and s[0] == "9" and validate_id_number(s)


def foreign_card_edition(number: str) -> str:
    """"2023" for an 18-character number, "2017" for the 15-character one (the text block's layout follows)."""
    return "2023" if len(number) == 18 else "2017"


def mask_middle(text: str, keep: int = 4) -> str:
    """``keep`` characters at each end, stars in between (same length); short strings become all stars."""
    if len(text) <= 2 * keep:
        return "*" * len(text)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


@dataclass(frozen=True, repr=False)
class IdentityDocument:
    """One document as read from the card. ``valid_to`` None means 长期 (no end date).

    ``extra`` holds kind-specific fields: ``pass_number``/``issue_count`` (HMT permit), ``english_name``/
    ``nationality``/``card_version``/``issuer_code`` (foreign permanent resident card), ``extra_address`` (the
    latest 追加住址 entry, when the card carries one), and for a social-security card read through PC/SC
    ``card_number``/``issuer``/``region``/``medium``. ``photo_wlt`` is the raw 1024-byte WLT photo (decodable only by
    a licensed library, see ``wlt.py``); ``fingerprint`` the raw fingerprint templates when the reader was asked for
    them (biometric data: never logged, dropped with the session).
    """

    kind: DocumentKind
    name: str
    sex: str
    nation: str | None
    birth_date: date
    address: str
    id_number: str
    issuer: str
    valid_from: date
    valid_to: date | None
    photo_wlt: bytes = field(default=b"", repr=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    fingerprint: bytes = field(default=b"", repr=False)

    def masked_id(self) -> str:
        """``3403**********2018``: first 4 and last 4 characters, stars in between, same length."""
        return mask_middle(self.id_number, 4)

    def masked_name(self) -> str:
        """``张*华``: first and last character kept, the middle starred; two characters → ``李*``."""
        name = self.name
        if len(name) <= 1:
            return "*" * len(name)
        if len(name) == 2:
            return name[0] + "*"
        return name[0] + "*" * (len(name) - 2) + name[-1]

    @property
    def nation_name(self) -> str | None:
        return NATIONS.get(self.nation) if self.nation else None

    def is_expired(self, today: date) -> bool:
        """True when ``today`` is after the last day of validity (the end date itself is still valid)."""
        return self.valid_to is not None and today > self.valid_to

    def age_on(self, today: date) -> int:
        """Completed years of age on ``today``."""
        years = today.year - self.birth_date.year
        if (today.month, today.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def __repr__(self) -> str:
        return f"IdentityDocument(kind={self.kind.value}, id={self.masked_id()})"

    __str__ = __repr__


# text block codec ----------------------------------------------------------------------------------------------

def _field(block: bytes, offset: int, size: int) -> str:
    try:
        text = block[offset: offset + size].decode("utf-16-le")
    except UnicodeDecodeError:
        raise InvalidCardData(f"text field at offset {offset} is not valid UCS-2") from None
    return text.rstrip(" \x00")


def _put(block: bytearray, offset: int, size: int, value: str, what: str) -> None:
    raw = value.encode("utf-16-le")
    if len(raw) > size:
        raise ValueError(f"{what} is longer than its {size // 2}-character field")
    block[offset: offset + size] = raw + " ".encode("utf-16-le") * ((size - len(raw)) // 2)


def _date(text: str, what: str) -> date:
    value = _parse_ymd(text)
    if value is None:
        raise InvalidCardData(f"{what} is not a valid YYYYMMDD date")
    return value


def _sex(code: str) -> str:
    try:
        return _SEX_CODES[code]
    except KeyError:
        raise InvalidCardData("sex code is neither 1 nor 2") from None


def _valid_to(text: str) -> date | None:
    return None if text == LONG_TERM else _date(text, "valid-to date")


def card_kind(block: bytes) -> DocumentKind:
    """The document kind from the type flag at bytes 248–249."""
    if block[_FLAG_OFFSET + 1] == 0:
        return _FLAGS.get(chr(block[_FLAG_OFFSET]), DocumentKind.RESIDENT_ID)
    return DocumentKind.RESIDENT_ID


def decode_text_block(block: bytes, photo_wlt: bytes = b"") -> IdentityDocument:
    """The 256-byte text block → :class:`IdentityDocument`; raises :class:`InvalidCardData` when it is not a valid
    identity (wrong size, unparsable date, bad sex code, bad ID number check digit)."""
    if len(block) != TEXT_BLOCK_LEN:
        raise InvalidCardData(f"text block of {len(block)} bytes, expected {TEXT_BLOCK_LEN}")
    kind = card_kind(block)
    if kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT:
        if chr(block[_FLAG_OFFSET]) == FLAG_FOREIGN_2023:
            return _decode_foreign_2023(block, photo_wlt)
        return _decode_foreign(block, photo_wlt)
    f = {key: _field(block, *pos) for key, pos in _RESIDENT_FIELDS.items()}
    id_number = f["id_number"]
    if not (len(id_number) == 18 and id_number[:17].isascii() and id_number[:17].isdigit()):
        raise InvalidCardData("ID number is not 17 digits and a check character")
    if gb11643_check_digit(id_number[:17]) != id_number[17]:
        raise InvalidCardData("ID number check digit does not match (GB 11643)")
    extra: dict[str, Any] = {}
    nation: str | None = f["nation"] or None
    if kind is DocumentKind.HMT_RESIDENCE_PERMIT:
        nation = None  # reserved on HMT permits
        extra = {key: _field(block, *pos) for key, pos in _HMT_FIELDS.items()}
    elif nation is not None and nation not in NATIONS:
        raise InvalidCardData("nation code is not a GB 3304 code")
    return IdentityDocument(
        kind=kind,
        name=f["name"],
        sex=_sex(f["sex"]),
        nation=nation,
        birth_date=_date(f["birth"], "birth date"),
        address=f["address"],
        id_number=id_number,
        issuer=f["issuer"],
        valid_from=_date(f["valid_from"], "valid-from date"),
        valid_to=_valid_to(f["valid_to"]),
        photo_wlt=bytes(photo_wlt),
        extra=extra,
    )


def _decode_foreign(block: bytes, photo_wlt: bytes) -> IdentityDocument:
    f = {key: _field(block, *pos) for key, pos in _FOREIGN_FIELDS.items()}
    if not _FOREIGN_NUMBER.fullmatch(f["id_number"]):
        raise InvalidCardData("permanent resident card number is not 3 letters and 12 digits")
    return IdentityDocument(
        kind=DocumentKind.FOREIGN_PERMANENT_RESIDENT,
        name=f["name"] or f["english_name"],
        sex=_sex(f["sex"]),
        nation=None,
        birth_date=_date(f["birth"], "birth date"),
        address="",
        id_number=f["id_number"],
        issuer="",
        valid_from=_date(f["valid_from"], "valid-from date"),
        valid_to=_valid_to(f["valid_to"]),
        photo_wlt=bytes(photo_wlt),
        extra={"english_name": f["english_name"], "nationality": f["nationality"],
               "card_version": f["card_version"], "issuer_code": f["issuer_code"]},
    )


def _decode_foreign_2023(block: bytes, photo_wlt: bytes) -> IdentityDocument:
    f = {key: _field(block, *pos) for key, pos in _FOREIGN_2023_FIELDS.items()}
    number = f["id_number"]
    if not (len(number) == 18 and number[0] == "9" and number[:17].isascii() and number[:17].isdigit()):
        raise InvalidCardData("permanent resident card number (2023) is not 9 and 16 digits and a check character")
    if gb11643_check_digit(number[:17]) != number[17]:
        raise InvalidCardData("permanent resident card number check digit does not match (GB 11643)")
    birth = _date(f["birth"], "birth date")
    if number[6:14] != f["birth"]:
        raise InvalidCardData("permanent resident card number does not carry the birth date")
    return IdentityDocument(
        kind=DocumentKind.FOREIGN_PERMANENT_RESIDENT,
        name=f["name"] or f["english_name"],
        sex=_sex(f["sex"]),
        nation=None,
        birth_date=birth,
        address="",
        id_number=number,
        issuer=f["issuer"],
        valid_from=_date(f["valid_from"], "valid-from date"),
        valid_to=_valid_to(f["valid_to"]),
        photo_wlt=bytes(photo_wlt),
        extra={"english_name": f["english_name"], "nationality": f["nationality"],
               "card_version": f["card_version"], "edition": "2023"},
    )


#: the extra-address reply holds up to 4 entries of 70 bytes (35 UCS-2 characters) each, oldest first
EXTRA_ADDRESS_ENTRY = 70
EXTRA_ADDRESS_MAX = 280


def decode_extra_address(data: bytes) -> str | None:
    """The latest entry of a "read extra address" reply (UCS-2LE, 70-byte entries, space padded), or None when it
    holds none. Raises :class:`InvalidCardData` when it is not UCS-2 text. Layout: shared/protocols.md §1 says "up to
    280 bytes"; the 70-byte entry size follows the address field of the text block (unverified)."""
    if len(data) > EXTRA_ADDRESS_MAX or len(data) % 2:
        raise InvalidCardData(f"extra address of {len(data)} bytes is not UCS-2 text of at most 280 bytes")
    entries = []
    for offset in range(0, len(data), EXTRA_ADDRESS_ENTRY):
        entry = _field(data, offset, EXTRA_ADDRESS_ENTRY)
        if entry:
            if not entry.isprintable():
                raise InvalidCardData("extra address entry is not printable text")
            entries.append(entry)
    return entries[-1] if entries else None


def encode_extra_address(*entries: str) -> bytes:
    """The reply data for ``entries`` (oldest first; for the simulator)."""
    if len(entries) > EXTRA_ADDRESS_MAX // EXTRA_ADDRESS_ENTRY:
        raise ValueError("at most 4 extra address entries")
    out = bytearray()
    for entry in entries:
        block = bytearray(EXTRA_ADDRESS_ENTRY)
        _put(block, 0, EXTRA_ADDRESS_ENTRY, entry, "extra address")
        out += block
    return bytes(out)


def _ymd(value: date) -> str:
    return value.strftime("%Y%m%d")


def encode_text_block(doc: IdentityDocument) -> bytes:
    """:class:`IdentityDocument` → the 256-byte text block (used by the simulator). Inverse of
    :func:`decode_text_block`; raises ValueError when a field does not fit."""
    block = bytearray(" ".encode("utf-16-le") * (TEXT_BLOCK_LEN // 2))
    valid_to = LONG_TERM if doc.valid_to is None else _ymd(doc.valid_to)
    flag = _FLAG_OF.get(doc.kind)
    if doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT and foreign_card_edition(doc.id_number) == "2023":
        values = {
            "name": doc.name, "sex": _SEX_OF[doc.sex], "nationality": str(doc.extra.get("nationality", "")),
            "birth": _ymd(doc.birth_date), "english_name": str(doc.extra.get("english_name", "")),
            "id_number": doc.id_number, "issuer": doc.issuer, "valid_from": _ymd(doc.valid_from),
            "valid_to": valid_to, "card_version": str(doc.extra.get("card_version", "")),
        }
        layout: Mapping[str, tuple[int, int]] = _FOREIGN_2023_FIELDS
        flag = FLAG_FOREIGN_2023
    elif doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT:
        values = {
            "english_name": str(doc.extra.get("english_name", "")), "sex": _SEX_OF[doc.sex],
            "id_number": doc.id_number, "nationality": str(doc.extra.get("nationality", "")), "name": doc.name,
            "valid_from": _ymd(doc.valid_from), "valid_to": valid_to, "birth": _ymd(doc.birth_date),
            "card_version": str(doc.extra.get("card_version", "")),
            "issuer_code": str(doc.extra.get("issuer_code", "")),
        }
        layout = _FOREIGN_FIELDS
    else:
        values = {
            "name": doc.name, "sex": _SEX_OF[doc.sex],
            "nation": "" if doc.kind is DocumentKind.HMT_RESIDENCE_PERMIT else (doc.nation or ""),
            "birth": _ymd(doc.birth_date), "address": doc.address, "id_number": doc.id_number,
            "issuer": doc.issuer, "valid_from": _ymd(doc.valid_from), "valid_to": valid_to,
        }
        layout = dict(_RESIDENT_FIELDS)
        if doc.kind is DocumentKind.HMT_RESIDENCE_PERMIT:
            values.update({key: str(doc.extra.get(key, "")) for key in _HMT_FIELDS})
            layout = {**layout, **_HMT_FIELDS}
    for key, (offset, size) in layout.items():
        _put(block, offset, size, values[key], key)
    if flag is not None:
        block[_FLAG_OFFSET: _FLAG_OFFSET + 2] = flag.encode("utf-16-le")
    return bytes(block)
