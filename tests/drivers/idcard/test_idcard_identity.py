"""Identity documents: GB 11643 check digits, the 256-byte text block, masking, and keeping personal data out of
reprs."""
from __future__ import annotations

import dataclasses
import logging
from datetime import date

import pytest

from drivers.errors import InvalidCardData
from drivers.idcard.base import CardEvent
from drivers.idcard.identity import (
    NATIONS, DocumentKind, IdentityDocument, decode_text_block, encode_text_block, gb11643_check_digit,
    validate_id_number,
)

SEEDED_NUMBERS = [
    "340302195803172018", "35010219490822102X", "230202197511053015", "520302199002144027",
    "530102198306301518", "810000199205082049", "340302194501013033",
]


def ucs2(text: str, size: int) -> bytes:
    raw = text.encode("utf-16-le")
    return raw + b" \x00" * ((size - len(raw)) // 2)


def resident_block(**fields: str) -> bytes:
    """A text block built by hand from the table in shared/protocols.md §1 (independent of the encoder)."""
    f = {"name": "张明华", "sex": "1", "nation": "01", "birth": "19580317", "address": "安徽省蚌埠市龙子湖区东海大道1号",
         "id": "340302195803172018", "issuer": "蚌埠市公安局龙子湖分局", "from": "20160510", "to": "20360510",
         "reserved": "", **fields}
    block = (ucs2(f["name"], 30) + ucs2(f["sex"], 2) + ucs2(f["nation"], 4) + ucs2(f["birth"], 16)
             + ucs2(f["address"], 70) + ucs2(f["id"], 36) + ucs2(f["issuer"], 30) + ucs2(f["from"], 16)
             + ucs2(f["to"], 16) + ucs2(f["reserved"], 36))
    assert len(block) == 256
    return block


@pytest.mark.parametrize("number", SEEDED_NUMBERS)
def test_check_digit_of_the_seeded_numbers(number: str) -> None:
    assert gb11643_check_digit(number[:17]) == number[17]
    assert validate_id_number(number)


@pytest.mark.parametrize("bad", [
    "340302195803172019",      # wrong check digit
    "35010219490822102x",      # lower-case x
    "340302195802302018",      # 30 February (check digit recomputed below would still not help)
    "34030219580317201",       # 17 characters
    "3403021958031720188",     # 19
    "34030219580317201A",      # letter in the wrong place
    "",
])
def test_invalid_numbers_are_rejected(bad: str) -> None:
    assert not validate_id_number(bad)


def test_impossible_birth_date_is_rejected_even_with_a_valid_check_digit() -> None:
    first17 = "34030219580230201"
    assert not validate_id_number(first17 + gb11643_check_digit(first17))


def test_check_digit_needs_17_digits() -> None:
    with pytest.raises(ValueError):
        gb11643_check_digit("1234")


def test_decode_a_block_built_from_the_documented_offsets() -> None:
    doc = decode_text_block(resident_block(), photo_wlt=b"W" * 1024)
    assert doc == IdentityDocument(
        kind=DocumentKind.RESIDENT_ID, name="张明华", sex="male", nation="01", birth_date=date(1958, 3, 17),
        address="安徽省蚌埠市龙子湖区东海大道1号", id_number="340302195803172018", issuer="蚌埠市公安局龙子湖分局",
        valid_from=date(2016, 5, 10), valid_to=date(2036, 5, 10), photo_wlt=b"W" * 1024)
    assert doc.nation_name == "汉"


def test_encoder_matches_the_documented_offsets(identities: dict[str, IdentityDocument]) -> None:
    assert encode_text_block(identities["zhang"]) == resident_block()


def test_long_term_validity_decodes_to_none() -> None:
    doc = decode_text_block(resident_block(to="长期"))
    assert doc.valid_to is None and not doc.is_expired(date(2200, 1, 1))


def test_all_simulator_identities_round_trip(identities: dict[str, IdentityDocument]) -> None:
    assert set(identities) == {"zhang", "li", "wang_expired", "chen", "yang", "huang_hk", "zhao", "smith_foreign",
                               "mueller_2023"}
    for key, doc in identities.items():
        block = encode_text_block(doc)
        assert len(block) == 256
        # the extra address is not in the text block: the reader reads it with its own command
        on_block = dataclasses.replace(doc, extra={k: v for k, v in doc.extra.items() if k != "extra_address"})
        assert decode_text_block(block, doc.photo_wlt) == on_block, key
        assert len(doc.photo_wlt) == 1024
    assert identities["zhao"].extra["extra_address"] == "安徽省蚌埠市蚌山区涂山路266号"


def test_seeded_identities_are_exactly_as_specified(identities: dict[str, IdentityDocument]) -> None:
    expected = {
        "zhang": ("张明华", "340302195803172018", "male", "01", date(1958, 3, 17), date(2036, 5, 10)),
        "li": ("李秀英", "35010219490822102X", "female", "01", date(1949, 8, 22), None),
        "wang_expired": ("王建国", "230202197511053015", "male", "11", date(1975, 11, 5), date(2025, 1, 1)),
        "chen": ("陈静怡", "520302199002144027", "female", "06", date(1990, 2, 14), date(2029, 7, 1)),
        "yang": ("杨志强", "530102198306301518", "male", "07", date(1983, 6, 30), date(2034, 9, 9)),
        "huang_hk": ("黄嘉欣", "810000199205082049", "female", None, date(1992, 5, 8), date(2031, 6, 1)),
        "zhao": ("赵德顺", "340302194501013033", "male", "03", date(1945, 1, 1), None),
    }
    for key, (name, number, sex, nation, birth, valid_to) in expected.items():
        doc = identities[key]
        assert (doc.name, doc.id_number, doc.sex, doc.nation, doc.birth_date, doc.valid_to) == \
            (name, number, sex, nation, birth, valid_to), key
        assert number[6:14] == birth.strftime("%Y%m%d")                  # the number agrees with the birth date
        assert (int(number[16]) % 2 == 1) == (sex == "male")             # … and with the sex
    assert [NATIONS[identities[k].nation] for k in ("wang_expired", "zhao", "chen", "yang")] == ["满", "回", "苗", "彝"]


def test_card_type_flags(identities: dict[str, IdentityDocument]) -> None:
    assert encode_text_block(identities["zhang"])[248:250] == b" \x00"
    assert encode_text_block(identities["huang_hk"])[248:250] == b"J\x00"
    assert encode_text_block(identities["smith_foreign"])[248:250] == b"I\x00"
    hmt = decode_text_block(encode_text_block(identities["huang_hk"]))
    assert hmt.kind is DocumentKind.HMT_RESIDENCE_PERMIT
    assert hmt.extra == {"pass_number": "H60123456", "issue_count": "01"} and hmt.nation is None
    block = encode_text_block(identities["huang_hk"])
    assert block[220:238] == ucs2("H60123456", 18) and block[238:242] == ucs2("01", 4)


def test_foreign_card(identities: dict[str, IdentityDocument]) -> None:
    doc = decode_text_block(encode_text_block(identities["smith_foreign"]))
    assert doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT
    assert len(doc.id_number) == 15 and doc.id_number.startswith("USA")
    assert doc.extra["english_name"] == "SMITH JOHN MICHAEL" and doc.extra["nationality"] == "USA"
    assert doc.name == "史密斯"


def test_masking(identities: dict[str, IdentityDocument]) -> None:
    zhang = identities["zhang"]
    assert zhang.masked_id() == "3403**********2018"
    assert len(zhang.masked_id()) == 18
    assert zhang.masked_name() == "张*华"
    assert identities["li"].masked_id() == "3501**********102X"
    assert identities["smith_foreign"].masked_id() == "USA3*******0017"
    two = dataclasses.replace(zhang, name="李明")
    four = dataclasses.replace(zhang, name="欧阳娜娜")
    assert two.masked_name() == "李*" and four.masked_name() == "欧**娜"


def test_repr_and_str_carry_no_personal_data(identities: dict[str, IdentityDocument],
                                             caplog: pytest.LogCaptureFixture) -> None:
    for doc in identities.values():
        event = CardEvent("read", document=doc)
        with caplog.at_level(logging.INFO):
            logging.getLogger("test").info("got %s / %r / %s", doc, doc, event)
        for text in (repr(doc), str(doc), f"{doc}", repr([doc]), repr(event), caplog.text):
            assert doc.name not in text
            assert doc.id_number not in text
            if doc.address:
                assert doc.address not in text
            assert doc.masked_id() in text
        caplog.clear()


def test_expiry_and_age(identities: dict[str, IdentityDocument]) -> None:
    wang = identities["wang_expired"]
    assert not wang.is_expired(date(2025, 1, 1))      # the last day is still valid
    assert wang.is_expired(date(2025, 1, 2))
    assert wang.is_expired(date(2026, 6, 1))
    assert not identities["zhang"].is_expired(date(2026, 6, 1))
    assert not identities["li"].is_expired(date(2099, 1, 1))  # 长期
    assert identities["zhang"].age_on(date(2026, 3, 16)) == 67
    assert identities["zhang"].age_on(date(2026, 3, 17)) == 68


def test_document_is_frozen_and_hashable(identities: dict[str, IdentityDocument]) -> None:
    doc = identities["zhang"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.name = "x"  # type: ignore[misc]
    assert hash(doc) == hash(dataclasses.replace(doc))


@pytest.mark.parametrize("fields, words", [
    ({"id": "340302195803172019"}, "check digit"),
    ({"id": "3403021958031720"}, "ID number"),
    ({"birth": "19580332"}, "birth date"),
    ({"from": "2016O510"}, "valid-from"),
    ({"to": "20360230"}, "valid-to"),
    ({"sex": "9"}, "sex"),
    ({"nation": "77"}, "nation"),
])
def test_invalid_blocks_raise_invalid_card_data_without_quoting_the_data(fields: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidCardData) as info:
        decode_text_block(resident_block(**fields))
    message = str(info.value)
    assert words in message
    assert "3403021958" not in message and "张明华" not in message


def test_wrong_block_size_is_invalid() -> None:
    with pytest.raises(InvalidCardData):
        decode_text_block(bytes(255))


def test_encoder_refuses_fields_that_do_not_fit(identities: dict[str, IdentityDocument]) -> None:
    with pytest.raises(ValueError):
        encode_text_block(dataclasses.replace(identities["zhang"], name="名" * 16))


def test_nations_table_covers_all_56() -> None:
    assert [f"{i:02d}" for i in range(1, 57)] == [k for k in NATIONS if k <= "56"]
    assert NATIONS["01"] == "汉" and NATIONS["03"] == "回" and NATIONS["11"] == "满" and NATIONS["56"] == "基诺"
