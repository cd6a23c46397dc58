"""PcscCardWatcher over pyscard's CardMonitor, real pcscd + vpcd and the virtual card: the ID reader's events."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from drivers.errors import CardReadFailed, CardRemoved, NoCard
from drivers.idcard.base import CardEvent
from drivers.idcard.identity import IdentityDocument
from drivers.smartcard.errors import PinIncorrect, PinRequired, UnsupportedCard
from drivers.smartcard.pcsc_reader import PcscSmartCardReader
from drivers.smartcard.watcher import PcscCardWatcher, SmartCardWatcher

CardSlot = Any   # tests/drivers/smartcard/conftest.py:CardSlot




@pytest.fixture
def watcher(reader: PcscSmartCardReader, recorder) -> Iterator[PcscCardWatcher]:
    w = PcscCardWatcher(reader, recorder, health_interval=0.2)
    yield w
    w.stop()


def polls(card: CardSlot) -> int:
    """pcscd asks the virtual card for its ATR on every presence poll (every 0.4 s)."""
    return card.must("status")["counters"]["atr_requests"]


def test_social_security_card_events(card: CardSlot, watcher: PcscCardWatcher, recorder,
                                     identities: dict[str, IdentityDocument],
                                     wait_for: Callable[..., Any]) -> None:
    watcher.start()
    card.must("insert_card", card="social_security", identity="zhang")
    wait_for(lambda: recorder.count("read") == 1, what="read event")
    card.must("remove_card")
    wait_for(lambda: recorder.count("removed") == 1, what="removed event")
    assert recorder.types == ["inserted", "read", "removed"]
    assert all(isinstance(e, CardEvent) and e.source == "smartcard" for e in recorder.events)
    doc = recorder.events[1].document
    assert isinstance(doc, IdentityDocument) and doc.id_number == identities["zhang"].id_number
    assert doc.extra["card_number"] == "B34031688"
    assert "340302195803172018" not in repr(recorder.events)


def test_bank_card_events_carry_only_the_masked_pan(card: CardSlot, watcher: PcscCardWatcher, recorder,
                                                    wait_for: Callable[..., Any]) -> None:
    watcher.start()
    card.must("insert_card", card="bank", bank="unionpay_debit")
    wait_for(lambda: recorder.count("bank_card") == 1, what="bank card event")
    event = recorder.events[1]
    assert event.document is None and event.error is None
    assert event.bank_card.masked_pan == "629999******0017" and "6299990000000017" not in repr(event)
    card.must("remove_card")
    wait_for(lambda: recorder.count("removed") == 1, what="removed event")
    assert recorder.types == ["inserted", "bank_card", "removed"]


def test_card_already_in_the_reader_at_start_is_read(card: CardSlot, reader: PcscSmartCardReader,
                                                     recorder, wait_for: Callable[..., Any]) -> None:
    card.must("insert_card", card="social_security", identity="chen")
    wait_for(reader.card_present, what="card seen by pcscd")
    with SmartCardWatcher(reader, recorder, health_interval=0.2):
        wait_for(lambda: recorder.count("read") == 1, what="read of the card already there")
    assert recorder.types == ["inserted", "read"]


def test_a_failed_read_is_not_retried_while_the_card_stays(card: CardSlot, watcher: PcscCardWatcher,
                                                           recorder,
                                                           wait_for: Callable[..., Any]) -> None:
    watcher.start()
    card.must("insert_card", card="error")
    wait_for(lambda: recorder.count("error") == 1, what="error event")
    assert isinstance(recorder.events[1].error, CardReadFailed)
    apdus, seen = card.must("status")["counters"]["apdus"], polls(card)
    wait_for(lambda: polls(card) >= seen + 4, what="4 more presence polls")
    assert card.must("status")["counters"]["apdus"] == apdus
    assert recorder.types == ["inserted", "error"]
    card.must("remove_card")
    wait_for(lambda: recorder.count("removed") == 1, what="removed event")
    card.must("insert_card", card="blank")
    wait_for(lambda: recorder.count("error") == 2, what="unsupported card error")
    assert isinstance(recorder.events[-1].error, UnsupportedCard)


def test_card_pulled_mid_read(card: CardSlot, watcher: PcscCardWatcher, recorder,
                              wait_for: Callable[..., Any]) -> None:
    watcher.start()
    card.must("inject_fault", kind="pull_after_apdus", n=6)
    card.must("insert_card", card="social_security", identity="yang")
    wait_for(lambda: recorder.count("removed") == 1, what="removed event")
    assert recorder.types == ["inserted", "error", "removed"]
    assert isinstance(recorder.events[1].error, CardRemoved) and recorder.events[1].document is None
    card.must("insert_card", card="social_security", identity="yang")
    wait_for(lambda: recorder.count("read") == 1, what="read after putting the card back")
    assert recorder.types == ["inserted", "error", "removed", "inserted", "read"]


def test_pin_submitted_after_pin_required(card: CardSlot, watcher: PcscCardWatcher, recorder,
                                          identities: dict[str, IdentityDocument],
                                          wait_for: Callable[..., Any]) -> None:
    watcher.start()
    with pytest.raises(ValueError):
        watcher.submit_pin("12")
    watcher.submit_pin("123456")       # no card yet
    wait_for(lambda: recorder.count("error") == 1, what="no-card error")
    assert isinstance(recorder.events[0].error, NoCard)
    card.must("insert_card", card="social_security", identity="li")
    wait_for(lambda: recorder.count("error") == 2, what="PIN required")
    assert isinstance(recorder.events[-1].error, PinRequired)
    watcher.submit_pin("111111")
    wait_for(lambda: recorder.count("error") == 3, what="wrong PIN")
    assert isinstance(recorder.events[-1].error, PinIncorrect)
    assert recorder.events[-1].error.placeholders["tries_left"] == 2
    watcher.submit_pin("123456")
    wait_for(lambda: recorder.count("read") == 1, what="read with the PIN")
    assert recorder.events[-1].document.id_number == identities["li"].id_number
    assert recorder.types == ["error", "inserted", "error", "error", "read"]


def test_swapped_cards_are_each_read(card: CardSlot, watcher: PcscCardWatcher, recorder,
                                     wait_for: Callable[..., Any]) -> None:
    watcher.start()
    card.must("insert_card", card="social_security", identity="zhao")
    wait_for(lambda: recorder.count("read") == 1, what="first read")
    card.must("insert_card", card="bank", bank="unionpay_credit")   # out and the next one in
    wait_for(lambda: recorder.count("bank_card") == 1, what="second card")
    assert recorder.types == ["inserted", "read", "removed", "inserted", "bank_card"]


def test_a_failing_listener_does_not_stop_the_watcher(card: CardSlot, reader: PcscSmartCardReader,
                                                      wait_for: Callable[..., Any]) -> None:
    seen: list[str] = []

    def listener(event: CardEvent) -> None:
        seen.append(event.type)
        raise RuntimeError("listener bug")

    with PcscCardWatcher(reader, listener, health_interval=0.2) as watcher:
        card.must("insert_card", card="bank")
        wait_for(lambda: "bank_card" in seen, what="events despite listener errors")
        card.must("remove_card")
        wait_for(lambda: "removed" in seen, what="removal despite listener errors")
        assert watcher.running
    assert seen == ["inserted", "bank_card", "removed"]


def test_start_and_stop_are_idempotent(reader: PcscSmartCardReader, recorder) -> None:
    watcher = PcscCardWatcher(reader, recorder, health_interval=0.2)
    watcher.start()
    thread = watcher._thread
    watcher.start()
    assert watcher._thread is thread and watcher.running
    watcher.stop()
    watcher.stop()
    assert not watcher.running
    watcher.start()
    assert watcher.running
    watcher.stop()
    assert not watcher.running
    with pytest.raises(ValueError):
        PcscCardWatcher(reader, recorder, health_interval=0)
