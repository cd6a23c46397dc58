"""Known-answer vectors for the GA 467 text block: bytes laid out by hand at the offsets of shared/protocols.md §1
(and, for the 2023 foreign card, the assumed layout written down in identity.py), decoded by the driver and compared
field by field; the encoder must reproduce the same bytes. Nothing here is produced by the driver's encoder.

UCS-2 little endian, space (20 00) padded. A few fields are also written out in hex to pin the byte order:
黄嘉欣 = C4 9E 09 56 23 6B, 史密斯 = F2 53 C6 5B AF 65, 长期 = 7F 95 1F 67, 'J' 00 = 4A 00, 'I' 00 = 49 00.
"""
from __future__ import annotations

from datetime import date

import pytest

from drivers.errors import InvalidCardData
from drivers.idcard import protocol as p
from drivers.idcard.identity import (
    DocumentKind, decode_text_block, encode_text_block, validate_foreign_permanent_number, validate_id_number,
)

SPACE = b"\x20\x00"


def ucs2(text: str, size: int) -> bytes:
    raw = text.encode("utf-16-le")
    assert len(raw) <= size
    return raw + SPACE * ((size - len(raw)) // 2)


def gb11643(first17: str) -> str:
    """Independent of the driver: weights and the check table from GB 11643 (shared/protocols.md §1)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


def layout(*fields: tuple[int, bytes]) -> bytes:
    """A 256-byte block with each (offset, bytes) placed where it is documented; the rest spaces."""
    block = bytearray(SPACE * 128)
    end = 0
    for offset, raw in fields:
        assert offset >= end, "fields overlap"
        block[offset:offset + len(raw)] = raw
        end = offset + len(raw)
    assert len(block) == 256
    return bytes(block)


# --- HMT residence permit ('J'): the resident layout to 220 (nation reserved), pass number 18 @220, issue count 4 @238
HMT_NUMBER = "810000199205082049"
HMT_BLOCK = layout(
    (0, bytes.fromhex("c49e 0956 236b") + SPACE * 12),      # name 黄嘉欣, 30 bytes
    (30, b"2\x00"),                                          # sex: 2 female
    (32, SPACE * 2),                                         # nation: reserved on the permit
    (36, ucs2("19920508", 16)),                              # birth
    (52, ucs2("香港特别行政区湾仔区告士打道5号", 70)),             # address
    (122, ucs2(HMT_NUMBER, 36)),                             # number
    (158, ucs2("深圳市公安局", 30)),                             # issuing authority
    (188, ucs2("20260601", 16)),                             # valid from
    (204, ucs2("20310601", 16)),                             # valid to
    (220, ucs2("H60123456", 18)),                            # pass number (港澳居民来往内地通行证)
    (238, ucs2("01", 4)),                                    # issue count
    (248, b"J\x00"),                                         # card-type flag
)


def test_hmt_permit_block_decodes_field_by_field() -> None:
    assert HMT_BLOCK[248:250] == bytes.fromhex("4a00") and gb11643(HMT_NUMBER[:17]) == HMT_NUMBER[17]
    doc = decode_text_block(HMT_BLOCK)
    assert doc.kind is DocumentKind.HMT_RESIDENCE_PERMIT
    assert doc.name == "黄嘉欣"
    assert doc.sex == "female"
    assert doc.nation is None
    assert doc.birth_date == date(1992, 5, 8)
    assert doc.address == "香港特别行政区湾仔区告士打道5号"
    assert doc.id_number == HMT_NUMBER
    assert doc.issuer == "深圳市公安局"
    assert doc.valid_from == date(2026, 6, 1) and doc.valid_to == date(2031, 6, 1)
    assert doc.extra == {"pass_number": "H60123456", "issue_count": "01"}
    assert encode_text_block(doc) == HMT_BLOCK


# --- foreign permanent resident card, 15-character number ('I'): field order of §1, widths as in identity.py -------
OLD_NUMBER = "USA348005200017"
OLD_BLOCK = layout(
    (0, ucs2("SMITH JOHN MICHAEL", 120)),                    # English name
    (120, b"1\x00"),                                         # sex: 1 male
    (122, ucs2(OLD_NUMBER, 30)),                             # card number, 15 characters
    (152, ucs2("USA", 6)),                                   # nationality (ISO 3166-1 alpha-3)
    (158, bytes.fromhex("f253 c65b af65") + SPACE * 12),     # Chinese name 史密斯
    (188, ucs2("20200301", 16)),                             # valid from
    (204, ucs2("20300301", 16)),                             # valid to
    (220, ucs2("19800520", 16)),                             # birth
    (236, ucs2("01", 4)),                                    # card version
    (240, ucs2("3400", 8)),                                  # issuing-authority code
    (248, b"I\x00"),                                         # card-type flag
)


def test_foreign_permanent_resident_block_decodes_field_by_field() -> None:
    assert OLD_BLOCK[248:250] == bytes.fromhex("4900")
    doc = decode_text_block(OLD_BLOCK)
    assert doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT
    assert doc.name == "史密斯"
    assert doc.sex == "male"
    assert doc.id_number == OLD_NUMBER
    assert doc.birth_date == date(1980, 5, 20)
    assert doc.valid_from == date(2020, 3, 1) and doc.valid_to == date(2030, 3, 1)
    assert doc.nation is None and doc.address == "" and doc.issuer == ""
    assert doc.extra == {"english_name": "SMITH JOHN MICHAEL", "nationality": "USA", "card_version": "01",
                         "issuer_code": "3400"}
    assert encode_text_block(doc) == OLD_BLOCK


# --- 2023 foreign permanent resident ID card ('Y'): 9 + province 31 + nationality 840 + birth + seq 01 + sex 1 + check
NEW_FIRST17 = "9" + "31" + "840" + "19800520" + "01" + "1"
# by hand: 9×7+3×9+1×10+8×5+4×8+0×4+1×2+9×1+8×6+0×3+0×7+5×9+2×10+0×5+0×8+1×4+1×2 = 302; 302 mod 11 = 5 → "7"
NEW_NUMBER = NEW_FIRST17 + "7"
NEW_BLOCK = layout(
    (0, bytes.fromhex("f253 c65b af65") + SPACE * 12),      # Chinese name 史密斯
    (30, b"1\x00"),                                          # sex
    (32, ucs2("USA", 6)),                                    # nationality
    (38, ucs2("19800520", 16)),                              # birth
    (54, ucs2("SMITH JOHN MICHAEL", 68)),                    # English name
    (122, ucs2(NEW_NUMBER, 36)),                             # number, 18 characters
    (158, ucs2("国家移民管理局", 30)),                           # issuing authority
    (188, ucs2("20240115", 16)),                             # valid from
    (204, bytes.fromhex("7f95 1f67") + SPACE * 6),           # valid to: 长期
    (220, ucs2("02", 4)),                                    # card version
    (248, b"Y\x00"),                                         # card-type flag of the 2023 edition
)


def test_2023_number_check_digit_is_gb11643() -> None:
    assert gb11643(NEW_FIRST17) == "7"
    assert validate_foreign_permanent_number(NEW_NUMBER)
    assert validate_foreign_permanent_number(OLD_NUMBER)                    # the 15-character one still works
    assert not validate_foreign_permanent_number(NEW_FIRST17 + "8")         # wrong check digit
    assert not validate_foreign_permanent_number("1" + NEW_NUMBER[1:])      # does not start with 9
    assert not validate_foreign_permanent_number(NEW_NUMBER[:6] + "19801320" + NEW_NUMBER[14:])   # no 13th month
    assert not validate_foreign_permanent_number("usa348005200017")
    assert validate_id_number(NEW_NUMBER)      # built like a citizen number (GB 11643)


def test_2023_foreign_card_block_decodes_field_by_field() -> None:
    doc = decode_text_block(NEW_BLOCK)
    assert doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT
    assert doc.id_number == NEW_NUMBER
    assert doc.name == "史密斯"
    assert doc.sex == "male"
    assert doc.birth_date == date(1980, 5, 20)
    assert doc.issuer == "国家移民管理局"
    assert doc.valid_from == date(2024, 1, 15) and doc.valid_to is None
    assert doc.extra == {"english_name": "SMITH JOHN MICHAEL", "nationality": "USA", "card_version": "02",
                         "edition": "2023"}
    assert doc.masked_id() == "9318**********0117" and NEW_NUMBER not in repr(doc)
    assert encode_text_block(doc) == NEW_BLOCK


@pytest.mark.parametrize("offset, raw, words", [
    (122, ucs2(NEW_FIRST17 + "8", 36), "check digit"),
    (122, ucs2("USA348005200017", 36), "2023"),
    (38, ucs2("19800521", 16), "birth date"),
])
def test_2023_blocks_that_disagree_are_refused_without_quoting_them(offset: int, raw: bytes, words: str) -> None:
    block = bytearray(NEW_BLOCK)
    block[offset:offset + len(raw)] = raw
    with pytest.raises(InvalidCardData) as info:
        decode_text_block(bytes(block))
    assert words in str(info.value) and "93184019" not in str(info.value)


def test_a_whole_read_reply_frame_with_the_2023_card() -> None:
    """The "read text + photo" reply around NEW_BLOCK: SW 00 00 90, BE lengths 0100 0400, text, photo; LEN 0x0508."""
    photo = bytes(1024)
    body = bytes.fromhex("000090") + bytes.fromhex("0100 0400") + NEW_BLOCK + photo
    head = bytes.fromhex("0508") + body
    chk = 0
    for byte in head:
        chk ^= byte
    frame = bytes.fromhex("aaaaaa9669") + head + bytes([chk])
    assert len(frame) == 1295
    response = p.decode_frame(frame).response()
    text, got_photo, _ = p.split_card_data(response.data)
    assert response.sw3 == 0x90 and text == NEW_BLOCK and got_photo == photo
    assert decode_text_block(text, got_photo).id_number == NEW_NUMBER
