"""Known-answer vectors for the card codecs: records written out in hex from the public layouts, decoded by the
driver and compared field by field; the virtual card's encoders must produce the same bytes.

* Social-security card (shared/protocols.md §2, after the national 社会保障卡 spec): EF05/EF06 records are SIMPLE-TLV
  (tag = record number, one length byte, value): card identification code 16 ASCII (first 6 = region), card type,
  spec version "3.00", issuer 12, issue/expiry dates as 4 BCD bytes, card number 9 ASCII; ID number 18 ASCII, name
  30 bytes GBK space padded, sex "1"/"2", nation one BCD byte, birthplace 3 BCD bytes, birth date 4 BCD bytes.
* Bank card (EMV 4.3 Book 3 Annex A): record template 70 with 5A (PAN, 'F'-padded BCD), 5F24 (expiry YYMMDD),
  57 (track 2 equivalent: PAN 'D' YYMM service code discretionary data, 'F'-padded); GPO answers format 1 (80: AIP
  2 bytes ‖ AFL) and format 2 (77 with 82 and 94); AFL entries SFI<<3, first, last, offline-auth count; the PPSE FCI
  6F { 84 "2PAY.SYS.DDF01", A5 { BF0C { 61 { 4F AID, 50 label, 87 priority } } } }.
"""
from __future__ import annotations

from datetime import date

import pytest

from drivers.errors import InvalidCardData
from drivers.idcard.identity import DocumentKind
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss

# --- social-security card ------------------------------------------------------------------------------------------
EF05 = {
    1: bytes.fromhex("01 10 33343033303044313536303030303035"),     # "340300D156000005"
    2: bytes.fromhex("02 01 33"),                                    # card type "3"
    3: bytes.fromhex("03 04 332E3030"),                              # "3.00"
    4: bytes.fromhex("04 0C 333430333030 202020202020"),             # "340300" space padded to 12
    5: bytes.fromhex("05 04 20180601"),                              # issued 2018-06-01
    6: bytes.fromhex("06 04 20280601"),                              # expires 2028-06-01
    7: bytes.fromhex("07 09 413132333435363738"),                    # card number "A12345678"
}
EF06 = {
    1: bytes.fromhex("01 12 333430333032313935383033313732303138"),  # "340302195803172018"
    2: bytes.fromhex("02 1E D5C5C3F7BBAA" + "20" * 24),             # 张明华 in GBK, padded to 30
    3: bytes.fromhex("03 01 31"),                                    # sex "1" male
    4: bytes.fromhex("04 01 01"),                                    # nation 01 (汉), BCD
    5: bytes.fromhex("05 03 340302"),                                # birthplace 340302, BCD
    6: bytes.fromhex("06 04 19580317"),                              # born 1958-03-17, BCD
}


def test_social_security_records_decode_field_by_field() -> None:
    ef05 = {rec: ss.record_value(raw, rec) for rec, raw in EF05.items()}
    ef06 = {rec: ss.record_value(raw, rec) for rec, raw in EF06.items()}
    info = ss.decode_ef05(ef05)
    assert info.card_id_code == "340300D156000005" and info.region == "340300"
    assert (info.card_type, info.spec_version, info.issuer) == ("3", "3.00", "340300")
    assert info.issue_date == date(2018, 6, 1) and info.expiry == date(2028, 6, 1)
    assert info.card_number == "A12345678"
    doc = ss.decode_identity(ef05, ef06)
    assert doc.kind is DocumentKind.RESIDENT_ID
    assert doc.id_number == "340302195803172018"
    assert doc.name == "张明华"
    assert doc.sex == "male"
    assert doc.nation == "01"
    assert doc.birth_date == date(1958, 3, 17)
    assert doc.valid_from == date(2018, 6, 1) and doc.valid_to == date(2028, 6, 1)
    assert doc.extra == {"card_number": "A12345678", "issuer": "340300", "region": "340300", "card_type": "3",
                         "spec_version": "3.00", "medium": "social_security_card", "birthplace": "340302"}


def test_social_security_encoders_reproduce_the_records() -> None:
    assert ss.encode_ef05("340300D156000005", "3", "3.00", "340300", date(2018, 6, 1), date(2028, 6, 1),
                          "A12345678") == EF05
    doc = ss.decode_identity({r: ss.record_value(v, r) for r, v in EF05.items()},
                             {r: ss.record_value(v, r) for r, v in EF06.items()})
    assert ss.encode_ef06(doc, "340302") == EF06


def test_social_security_no_end_date_and_ascii_nation() -> None:
    ef05 = {rec: ss.record_value(raw, rec) for rec, raw in EF05.items()}
    ef05[6] = ss.record_value(bytes.fromhex("06 04 99991231"), 6)
    ef06 = {rec: ss.record_value(raw, rec) for rec, raw in EF06.items()}
    ef06[4] = ss.record_value(bytes.fromhex("04 02 3033"), 4)      # nation "03" (回) as ASCII digits
    doc = ss.decode_identity(ef05, ef06)
    assert doc.valid_to is None and doc.nation == "03"


def test_social_security_select_command_bytes() -> None:
    assert ss.SSSE_AID == bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")   # "sx1.sh.社会保障" in GBK


# --- bank card (EMV) -----------------------------------------------------------------------------------------------
PAN = "6217000010012345677"             # 19 digits, Luhn-valid, made up
MASKED = "621700*********5677"
TAG_5A = bytes.fromhex("5A 0A 6217000010012345677F")
TAG_5F24 = bytes.fromhex("5F24 03 291231")
TAG_57 = bytes.fromhex("57 13 6217000010012345677D2912220000000000 0F".replace(" ", ""))
RECORD = bytes.fromhex("70 27") + TAG_5A + TAG_5F24 + TAG_57          # 12 + 6 + 21 = 39 = 0x27
RECORD_TRACK2_ONLY = bytes.fromhex("70 15") + TAG_57


def test_emv_record_with_5a_5f24_57_gives_only_the_masked_pan() -> None:
    assert len(RECORD) == 2 + 0x27 and len(TAG_57) == 2 + 0x13
    assert bc.masked_pan_from_records([RECORD]) == MASKED
    assert bc.masked_pan_from_records([bytes.fromhex("70 03 9F0800"), RECORD_TRACK2_ONLY]) == MASKED
    items = bc.parse_ber_tlv(RECORD)
    record = bc.find_tag(items, 0x70)
    assert record is not None
    assert bc.find_tag(record.children, 0x5F24).value == bytes.fromhex("291231")
    assert bc.encode_pan(PAN) == TAG_5A[2:]
    assert bc.encode_track2(PAN, "2912") == TAG_57[2:]


def test_emv_pan_failing_luhn_is_refused_without_quoting_it() -> None:
    bad = bytes.fromhex("70 0C 5A 0A 6217000010012345678F")
    with pytest.raises(InvalidCardData) as info:
        bc.masked_pan_from_records([bad])
    assert "6217000010" not in str(info.value)


def test_emv_gpo_answers_and_afl() -> None:
    aip, afl = bc.parse_gpo(bytes.fromhex("80 06 5C00 08010100"))
    assert (aip, afl) == (bytes.fromhex("5C00"), bytes.fromhex("08010100"))
    assert bc.parse_afl(afl) == [(1, 1)]
    aip, afl = bc.parse_gpo(bytes.fromhex("77 0A 82 02 5C00 94 04 10010200"))
    assert aip == bytes.fromhex("5C00") and bc.parse_afl(afl) == [(2, 1), (2, 2)]
    assert bc.gpo_command(b"") == bytes.fromhex("80A80000 02 8300 00")


def test_emv_ppse_directory() -> None:
    entry = bytes.fromhex("61 18 4F 07 A0000003330101 50 0A") + b"PBOC DEBIT" + bytes.fromhex("87 01 01")
    fci = (bytes.fromhex("6F 2F 84 0E") + b"2PAY.SYS.DDF01" + bytes.fromhex("A5 1D BF0C 1A") + entry)
    assert len(fci) == 2 + 0x2F
    (app,) = bc.parse_directory(fci)
    assert app.aid == bytes.fromhex("A0000003330101") and app.label == "PBOC DEBIT" and app.priority == 1
    assert bc.PPSE == bytes.fromhex("325041592E5359532E4444463031")
