"""APDUs, TLV, the social-security record layout and the EMV parsing, against shared/protocols.md §2 bytes."""
from __future__ import annotations

from datetime import date

import pytest

from drivers.errors import CardReadFailed, InvalidCardData, ProtocolError, Unsupported
from drivers.idcard.identity import DocumentKind, IdentityDocument
from drivers.smartcard import apdu as a
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss
from drivers.smartcard.errors import PinBlocked, PinIncorrect, PinRequired, TlvError
from drivers.smartcard.simulator import BankCardSim, SocialSecurityCard, load_cards
from drivers.smartcard.tlv import (
    build_ber_tlv, build_simple_tlv, find_tag, parse_ber_tlv, parse_simple_tlv, simple_tlv_value,
)


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


# APDUs --------------------------------------------------------------------------------------------------------------

def test_select_ssse_is_the_documented_frame() -> None:
    assert a.select_by_name_no_le(ss.SSSE_AID) == hx("00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF")
    assert ss.SSSE_AID.decode("gbk") == "sx1.sh.社会保障"


def test_select_ppse_is_the_documented_frame() -> None:
    assert a.select_by_name(bc.PPSE) == hx("00 A4 04 00 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 00")


@pytest.mark.parametrize("record", [1, 4, 7])
def test_read_record_frames(record: int) -> None:
    assert a.read_record(record, ss.EF05_SFI) == bytes([0x00, 0xB2, record, 0x2C, 0x00])
    assert a.read_record(record, ss.EF06_SFI) == bytes([0x00, 0xB2, record, 0x34, 0x00])


def test_verify_pin_frame() -> None:
    assert a.verify_pin("123456") == hx("00 20 00 00 03 12 34 56")
    assert a.pin_to_bcd("12345") == hx("12 34 5F")
    for bad in ("123", "12a456", "１２３４", "1" * 13, 123456):
        with pytest.raises(ValueError):
            a.pin_to_bcd(bad)  # type: ignore[arg-type]


def test_build_apdu_cases_and_limits() -> None:
    assert a.build_apdu(0x00, 0xC0, 0, 0, le=0x15) == hx("00 C0 00 00 15")
    assert a.build_apdu(0x00, 0xA4, 4, 0, b"\x01\x02") == hx("00 A4 04 00 02 01 02")
    assert a.build_apdu(0x00, 0xB0, 0, 0, le=256) == hx("00 B0 00 00 00")
    with pytest.raises(ValueError):
        a.build_apdu(0x100, 0, 0, 0)
    with pytest.raises(ValueError):
        a.build_apdu(0, 0, 0, 0, bytes(256))


def test_response_apdu_parse_and_safe_repr() -> None:
    response = a.ResponseApdu.parse(hx("34 30 33 90 00"))
    assert (response.data, response.sw, response.ok) == (b"403", 0x9000, True)
    assert "403" not in repr(response) and "9000" in repr(response)
    with pytest.raises(ProtocolError):
        a.ResponseApdu.parse(b"\x90")


@pytest.mark.parametrize("sw, error", [
    (0x63C2, PinIncorrect), (0x6983, PinBlocked), (0x6984, PinBlocked), (0x6982, PinRequired),
    (0x6A82, InvalidCardData), (0x6A83, InvalidCardData), (0x6D00, Unsupported), (0x6E00, Unsupported),
    (0x6700, ProtocolError), (0x6F00, CardReadFailed), (0x6581, CardReadFailed),
])
def test_status_words_map_to_typed_errors(sw: int, error: type) -> None:
    exc = a.error_for_sw(sw, "read")
    assert type(exc) is error and exc.placeholders["sw"] == sw and f"{sw:04X}" in str(exc)


def test_pin_incorrect_says_how_many_tries_are_left() -> None:
    assert a.error_for_sw(0x63C1).placeholders["tries_left"] == 1


def test_describe_never_shows_apdu_data() -> None:
    assert a.describe(a.verify_pin("123456")) == "00 20 00 00 (+4 bytes)"


# TLV ------------------------------------------------------------------------------------------------------------------

def test_simple_tlv_round_trip_and_long_form() -> None:
    data = build_simple_tlv(0x07, b"B34031688") + build_simple_tlv(0x02, bytes(300))
    assert data[:2] == hx("07 09") and data[11:14] == hx("02 FF 01")
    assert parse_simple_tlv(data) == [(0x07, b"B34031688"), (0x02, bytes(300))]
    assert simple_tlv_value(data, 0x02) == bytes(300)
    with pytest.raises(TlvError) as info:
        simple_tlv_value(data, 0x05)
    assert info.value.reason == "tlv_missing_tag"


@pytest.mark.parametrize("data, reason", [
    (hx("07"), "tlv_truncated"), (hx("07 09 41"), "tlv_truncated"), (hx("07 FF 00"), "tlv_truncated"),
    (hx("00 01 41"), "tlv_bad_length"), (hx("FF 01 41"), "tlv_bad_length"),
])
def test_simple_tlv_errors(data: bytes, reason: str) -> None:
    with pytest.raises(TlvError) as info:
        parse_simple_tlv(data)
    assert info.value.reason == reason and info.value.code == "invalid_data"


def test_ber_tlv_nested_multibyte_tags_and_padding() -> None:
    inner = build_ber_tlv(0x9F38, hx("9F 66 04")) + build_ber_tlv(0x50, b"UnionPay")
    data = b"\x00" + build_ber_tlv(0x6F, [build_ber_tlv(0x84, bc.PPSE), build_ber_tlv(0xA5, inner)]) + b"\xFF\x00"
    items = parse_ber_tlv(data)
    assert [i.tag for i in items] == [0x6F]
    assert find_tag(items, 0x9F38).value == hx("9F 66 04")
    assert find_tag(items, 0x50).value == b"UnionPay"
    assert "UnionPay" not in repr(items[0])
    long_value = build_ber_tlv(0x70, bytes(200))
    assert long_value[:3] == hx("70 81 C8") and parse_ber_tlv(long_value)[0].value == bytes(200)


@pytest.mark.parametrize("data, reason", [
    (hx("9F"), "tlv_truncated"), (hx("5A"), "tlv_truncated"), (hx("5A 05 01"), "tlv_truncated"),
    (hx("5A 84 00 00 00 01"), "tlv_bad_length"), (hx("5A 80"), "tlv_bad_length"),
    (hx("9F FF FF FF 01 00"), "tlv_bad_length"), (hx("6F 02 70 00") * 1 + hx("6F 01"), "tlv_truncated"),
])
def test_ber_tlv_errors(data: bytes, reason: str) -> None:
    with pytest.raises(TlvError) as info:
        parse_ber_tlv(data)
    assert info.value.reason == reason


def test_ber_tlv_depth_is_bounded() -> None:
    data = b""
    for _ in range(20):
        data = build_ber_tlv(0x70, data or b"\x5A\x00")
    with pytest.raises(TlvError) as info:
        parse_ber_tlv(data)
    assert info.value.reason == "tlv_too_deep"


# social-security card -----------------------------------------------------------------------------------------------

def _records(card: SocialSecurityCard, sfi: int) -> dict[int, bytes]:
    return {rec: ss.record_value(raw, rec) for rec, raw in card.records[sfi].items()}


@pytest.fixture(scope="module")
def cards() -> dict:
    return load_cards()


@pytest.mark.parametrize("key", ["zhang", "li", "wang_expired", "chen", "yang", "zhao"])
def test_social_security_records_decode_into_the_same_identity(key: str, cards: dict,
                                                               identities: dict[str, IdentityDocument]) -> None:
    info = cards["social_security"][key]
    card = SocialSecurityCard(key, identities[key], info)
    doc = ss.decode_identity(_records(card, 5), _records(card, 6))
    person = identities[key]
    assert doc.kind is DocumentKind.RESIDENT_ID
    assert (doc.name, doc.id_number, doc.sex, doc.nation, doc.birth_date) == \
        (person.name, person.id_number, person.sex, person.nation, person.birth_date)
    assert doc.extra["card_number"] == info["card_number"] and doc.extra["issuer"] == info["issuer"]
    assert doc.extra["region"] == info["card_id_code"][:6] and doc.extra["medium"] == "social_security_card"
    assert doc.valid_from == date.fromisoformat(info["issue_date"])
    assert doc.valid_to == (None if info["expiry"] is None else date.fromisoformat(info["expiry"]))
    assert doc.photo_wlt == b"" and doc.address == ""
    assert doc.masked_id() == person.masked_id() and person.id_number not in repr(doc)


def test_wang_social_security_card_is_expired(cards: dict, identities: dict[str, IdentityDocument]) -> None:
    card = SocialSecurityCard("wang_expired", identities["wang_expired"], cards["social_security"]["wang_expired"])
    assert ss.decode_identity(_records(card, 5), _records(card, 6)).is_expired(date(2025, 6, 1))


def test_lenient_field_forms(cards: dict, identities: dict[str, IdentityDocument]) -> None:
    card = SocialSecurityCard("zhang", identities["zhang"], cards["social_security"]["zhang"])
    ef05, ef06 = _records(card, 5), _records(card, 6)
    ef06.update({3: b"\x01", 4: b"01"})                      # sex as a byte, nation as ASCII digits
    ef05[4] = hx("34 03 00 00 00 01")                        # issuer as packed BCD
    doc = ss.decode_identity(ef05, ef06)
    assert (doc.sex, doc.nation, doc.extra["issuer"]) == ("male", "01", "340300000001")
    assert ss.record_value(build_simple_tlv(0x30, b"x"), 2) == b"x"   # one object: its tag does not matter


@pytest.mark.parametrize("sfi, record, value, message", [
    (6, 1, b"340302195803172019", "GB 11643"),
    (6, 6, hx("19580318"), "birth date does not match"),
    (6, 6, hx("1958 13 17"), "not a valid date"),
    (6, 6, hx("19 58 03 1A"), "not packed BCD"),
    (6, 2, hx("C9"), "GBK"),
    (6, 3, b"3", "sex code"),
    (6, 4, b"77", "GB 3304"),
    (5, 7, "卡号".encode("gbk"), "ASCII"),
    (5, 1, b"ABCDEF0000000000", "region"),
    (5, 6, hx("2029"), "4 BCD bytes"),
])
def test_invalid_social_security_data_is_invalid_card_data(sfi: int, record: int, value: bytes, message: str,
                                                           cards: dict,
                                                           identities: dict[str, IdentityDocument]) -> None:
    card = SocialSecurityCard("zhang", identities["zhang"], cards["social_security"]["zhang"])
    ef = {5: _records(card, 5), 6: _records(card, 6)}
    ef[sfi][record] = value
    with pytest.raises(InvalidCardData) as info:
        ss.decode_identity(ef[5], ef[6])
    assert message in str(info.value)
    assert "张明华" not in str(info.value) and "340302195803172018" not in str(info.value)


def test_missing_record_is_invalid_card_data(cards: dict, identities: dict[str, IdentityDocument]) -> None:
    card = SocialSecurityCard("zhang", identities["zhang"], cards["social_security"]["zhang"])
    ef06 = _records(card, 6)
    del ef06[2]
    with pytest.raises(InvalidCardData):
        ss.decode_identity(_records(card, 5), ef06)


# bank cards ---------------------------------------------------------------------------------------------------------

def test_luhn_and_masking() -> None:
    assert bc.luhn_valid("6299990000000017") and not bc.luhn_valid("6299990000000018")
    assert bc.mask_pan("6299990000000017") == "629999******0017"
    card = bc.BankCard(masked_pan="629999******0017", aid="A000000333010101")
    assert (card.last4, card.display) == ("0017", "**** 0017")


def test_pan_comes_masked_from_5a_or_track2() -> None:
    pan = "6299990012345678907"
    with_5a = build_ber_tlv(0x70, [build_ber_tlv(0x5A, bc.encode_pan(pan))])
    with_57 = build_ber_tlv(0x70, [build_ber_tlv(0x57, bc.encode_track2(pan, "2906"))])
    empty = build_ber_tlv(0x70, [build_ber_tlv(0x8C, b"\x9F\x02\x06")])
    assert bc.masked_pan_from_records([empty, with_5a]) == "629999*********8907"
    assert bc.masked_pan_from_records([with_57]) == "629999*********8907"
    with pytest.raises(InvalidCardData) as info:
        bc.masked_pan_from_records([empty])
    assert "no card number" in str(info.value)
    bad = build_ber_tlv(0x70, [build_ber_tlv(0x5A, bc.encode_pan("6299990000000018"))])
    with pytest.raises(InvalidCardData) as info:
        bc.masked_pan_from_records([bad])
    assert "6299990000000018" not in str(info.value)


def test_gpo_both_formats_afl_and_pdol() -> None:
    aip, afl = hx("7C00"), hx("08 01 02 00 10 01 01 00")
    assert bc.parse_gpo(build_ber_tlv(0x80, aip + afl)) == (aip, afl)
    assert bc.parse_gpo(build_ber_tlv(0x77, [build_ber_tlv(0x82, aip), build_ber_tlv(0x94, afl)])) == (aip, afl)
    assert bc.parse_afl(afl) == [(1, 1), (1, 2), (2, 1)]
    for bad in (hx("08 01"), hx("00 01 01 00"), hx("08 00 01 00"), hx("08 03 01 00")):
        with pytest.raises(InvalidCardData):
            bc.parse_afl(bad)
    assert len(bc.parse_afl(hx("08 01 FF 00"))) == bc.MAX_RECORDS
    pdol = hx("9F66 04 9F02 06 9F37 04 5F2A 02 9A 03 DF01 02")
    data = bc.pdol_data(pdol, date(2025, 3, 9), unpredictable=hx("01020304"))
    assert data == hx("28000000 000000000000 01020304 0156 250309 0000")
    assert bc.gpo_command(data) == hx("80 A8 00 00") + bytes([len(data) + 2, 0x83, len(data)]) + data + b"\x00"


def test_directory_and_fci_of_the_virtual_bank_card(cards: dict) -> None:
    card = BankCardSim("unionpay_debit", cards["bank"]["unionpay_debit"])
    apps = bc.parse_directory(card._ppse_fci())
    assert [(app.aid.hex().upper(), app.label, app.priority) for app in apps] == \
        [("A000000333010101", "UnionPay Debit", 1)]
    selected = bc.parse_application_fci(card._fci())
    assert selected.df_name == hx("A000000333010101") and selected.label == "UnionPay Debit"
    assert bc.parse_dol(selected.pdol) == [(0x9F66, 4), (0x9F02, 6), (0x9F37, 4), (0x5F2A, 2)]
    assert bc.scheme_of(selected.df_name) == "unionpay"
    with pytest.raises(TlvError):
        bc.parse_application_fci(build_ber_tlv(0x70, b""))
