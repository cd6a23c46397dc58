"""The real PcscSmartCardReader against real pcscd + vpcd and our virtual card process."""
from __future__ import annotations

import json
import time
from datetime import date
from typing import Any, Callable

import pytest

from drivers import registry
from drivers.base import DeviceState, MediaState
from drivers.errors import CardReadFailed, CardRemoved, InvalidCardData, NoCard, NoDevice, ProtocolError
from drivers.idcard.identity import DocumentKind, IdentityDocument
from drivers.smartcard.bankcard import BankCard
from drivers.smartcard.errors import PinBlocked, PinIncorrect, PinRequired, UnsupportedCard
from drivers.smartcard.pcsc_reader import SETTINGS_SCHEMA, PcscSmartCardReader

Insert = Callable[..., dict[str, Any]]
CardSlot = Any   # tests/drivers/smartcard/conftest.py:CardSlot (conftest modules are not importable)


def test_registry_and_settings() -> None:
    assert registry.resolve("smartcard", "pcsc") is PcscSmartCardReader
    assert PcscSmartCardReader.KIND == "smartcard"
    assert SETTINGS_SCHEMA["additionalProperties"] is False
    for bad in ({"colour": "blue"}, {"applications": ["passport"]}, {"applications": []}, {"protocol": "T2"},
                {"reader": ""}):
        with pytest.raises(ValueError):
            PcscSmartCardReader(**bad)
    reader = PcscSmartCardReader()
    assert reader.applications == ["social_security", "bank"] and reader.reader_name == ""


def test_status_and_no_card(reader: PcscSmartCardReader) -> None:
    status = reader.status()
    assert (status.kind, status.device, status.media) == ("smartcard", DeviceState.ONLINE, MediaState.NOT_PRESENT)
    assert status.usable and status.extra["reader"] == reader.reader_name
    assert reader.card_present() is False
    with pytest.raises(NoCard):
        reader.read_card()
    assert reader.counters["errors"] == 0 and reader.counters["errors.no_media"] == 1


def test_reader_chosen_by_prefix_and_a_missing_reader_is_no_device(
        card: CardSlot, make_reader: Callable[..., PcscSmartCardReader]) -> None:
    by_prefix = make_reader(reader="Virtual PCD")
    assert by_prefix.status().device is DeviceState.ONLINE
    assert by_prefix.reader_name.startswith("Virtual PCD 00 0")
    missing = make_reader(reader="ACS ACR39U ICC Reader")
    status = missing.status()
    assert status.device is DeviceState.NO_DEVICE and status.error_code == "no_device" and not status.usable
    with pytest.raises(NoDevice):
        missing.card_present()
    with pytest.raises(NoDevice):
        missing.read_card()


@pytest.mark.parametrize("key", ["zhang", "wang_expired", "chen", "yang", "zhao"])
def test_social_security_card_reads_as_the_same_identity(insert: Insert, reader: PcscSmartCardReader,
                                                         identities: dict[str, IdentityDocument], key: str) -> None:
    insert(card="social_security", identity=key)
    assert reader.card_present() is True and reader.status().media is MediaState.PRESENT
    doc = reader.read_card()
    person = identities[key]
    assert isinstance(doc, IdentityDocument) and doc.kind is DocumentKind.RESIDENT_ID
    assert (doc.name, doc.id_number, doc.sex, doc.nation, doc.birth_date) == \
        (person.name, person.id_number, person.sex, person.nation, person.birth_date)
    assert {"card_number", "issuer", "region"} <= set(doc.extra)
    assert doc.masked_name() == person.masked_name()
    assert reader.counters["cards_read"] == 1
    # a second read of the card that stays in the reader works too (PC/SC cards are not halted)
    assert reader.read_social_security() == doc


def test_t0_exchanges_are_followed(insert: Insert, reader: PcscSmartCardReader) -> None:
    insert(card="social_security", identity="zhang")
    reader.read_card()
    # SELECT (61xx + GET RESPONSE) and 13 READ RECORDs each answered 6Cxx first, then repeated: 2 + 26 APDUs
    assert reader.counters["apdus"] == 28


def test_expired_social_security_card_is_read_and_reported_expired(insert: Insert,
                                                                   reader: PcscSmartCardReader) -> None:
    insert(card="social_security", identity="wang_expired")
    doc = reader.read_card()
    assert doc.valid_to == date(2022, 1, 1) and doc.is_expired(date.today())


def test_pin_flow(insert: Insert, reader: PcscSmartCardReader, identities: dict[str, IdentityDocument]) -> None:
    reply = insert(card="social_security", identity="li")
    assert reply["pin_required"] is True
    with pytest.raises(PinRequired):
        reader.read_card()
    with pytest.raises(PinIncorrect) as info:
        reader.read_card(pin="654321")
    assert info.value.placeholders["tries_left"] == 2
    doc = reader.read_card(pin="123456")
    assert doc.id_number == identities["li"].id_number
    with pytest.raises(ValueError):
        reader.read_card(pin="12ab")


def test_pin_blocked_after_three_wrong_tries(insert: Insert, reader: PcscSmartCardReader) -> None:
    insert(card="social_security", identity="li")
    tries = []
    for _ in range(2):
        with pytest.raises(PinIncorrect) as info:
            reader.read_card(pin="000000")
        tries.append(info.value.placeholders["tries_left"])
    with pytest.raises(PinBlocked):
        reader.read_card(pin="000000")
    with pytest.raises(PinBlocked):
        reader.read_card(pin="123456")     # even the right PIN: the card is blocked
    assert tries == [2, 1]


@pytest.mark.parametrize("bank, masked, aid, label", [
    ("unionpay_debit", "629999******0017", "A000000333010101", "UnionPay Debit"),
    ("unionpay_credit", "629999*********8907", "A000000333010102", "UnionPay Credit"),
])
def test_bank_card_gives_only_the_masked_pan(insert: Insert, reader: PcscSmartCardReader, bank: str, masked: str,
                                             aid: str, label: str) -> None:
    insert(card="bank", bank=bank)
    result = reader.read_card()
    assert result == BankCard(masked_pan=masked, aid=aid, label=label, scheme="unionpay")
    assert reader.read_bank_card() == result
    text = repr(result) + str(result) + json.dumps(result.__dict__) + json.dumps(reader.status().to_dict())
    assert "6299990000000017" not in text and "6299990012345678907" not in text


def test_applications_setting_orders_and_limits_the_search(insert: Insert, card: CardSlot,
                                                          make_reader: Callable[..., PcscSmartCardReader]) -> None:
    bank_only = make_reader(reader=card.reader_name, applications=["bank"])
    insert(card="social_security", identity="zhang")
    with pytest.raises(UnsupportedCard):
        bank_only.read_card()
    with pytest.raises(UnsupportedCard):
        bank_only.read_bank_card()
    ss_only = make_reader(reader=card.reader_name, applications=["social_security"])
    assert isinstance(ss_only.read_card(), IdentityDocument)


def test_error_card_and_blank_card(insert: Insert, reader: PcscSmartCardReader) -> None:
    insert(card="error")
    with pytest.raises(CardReadFailed) as info:
        reader.read_card()
    assert info.value.placeholders["sw"] == 0x6F00 and type(info.value) is CardReadFailed
    insert(card="error", sw="6581")
    with pytest.raises(CardReadFailed):
        reader.read_card()
    insert(card="blank")
    with pytest.raises(UnsupportedCard) as unsupported:
        reader.read_card()
    assert isinstance(unsupported.value, InvalidCardData) and unsupported.value.code == "unsupported_card"
    with pytest.raises(UnsupportedCard):
        reader.read_social_security()
    assert reader.status().device is DeviceState.ONLINE


@pytest.mark.parametrize("card_kind, n", [("social_security", 0), ("social_security", 1), ("social_security", 9),
                                          ("social_security", 27), ("bank", 3)])
def test_card_pulled_mid_read_is_card_removed_at_once(insert: Insert, card: CardSlot, reader: PcscSmartCardReader,
                                                      identities: dict[str, IdentityDocument], card_kind: str,
                                                      n: int) -> None:
    insert(card=card_kind)
    card.must("inject_fault", kind="pull_after_apdus", n=n)
    started = time.monotonic()
    with pytest.raises(CardRemoved):
        reader.read_card()
    assert time.monotonic() - started < 0.5    # no timeout to wait for: reported as soon as the slot is empty
    assert card.must("status")["card_present"] is False
    assert reader.counters["cards_read"] == 0 and reader.counters["errors.card_removed"] == 1
    insert(card="social_security", identity="chen")
    assert reader.read_card().id_number == identities["chen"].id_number


@pytest.mark.parametrize("sw, ins, error", [
    ("6581", "B2", CardReadFailed), ("6A83", "B2", InvalidCardData), ("6D00", "B2", Exception),
    ("6F00", "A4", CardReadFailed),
])
def test_error_status_mid_read_is_typed(insert: Insert, card: CardSlot, reader: PcscSmartCardReader, sw: str,
                                        ins: str, error: type) -> None:
    insert(card="social_security", identity="yang")
    card.must("inject_fault", kind="sw", sw=sw, ins=ins)
    with pytest.raises(error) as info:
        reader.read_card()
    assert info.value.placeholders.get("sw") == int(sw, 16)
    assert reader.read_card().name     # the next read is clean


def test_corrupt_record_is_a_typed_data_error(insert: Insert, card: CardSlot, reader: PcscSmartCardReader) -> None:
    insert(card="bank")
    card.must("inject_fault", kind="corrupt", ins="B2")
    with pytest.raises((ProtocolError, InvalidCardData)):
        reader.read_card()
    assert isinstance(reader.read_card(), BankCard)


def test_a_second_slot_is_a_second_reader(card: CardSlot, make_reader: Callable[..., PcscSmartCardReader]) -> None:
    other = make_reader(reader="Virtual PCD 00 01")   # vpcd's second slot (the next TCP port): no card process
    assert other.status().device is DeviceState.ONLINE
    assert other.card_present() is False
    card.must("insert_card", card="bank")
    assert other.card_present() is False


def test_close_is_idempotent_and_reopens(reader: PcscSmartCardReader) -> None:
    reader.close()
    reader.close()
    assert reader.status().device is DeviceState.NO_DEVICE
    with pytest.raises(NoDevice):
        reader.card_present()
    reader.open()
    assert reader.card_present() is False
