"""The smart card reader contract, run on pcscd + vpcd + the virtual card always, and on a real PC/SC reader with
``--hardware``:

    KIOSK_PCSC_READER="ACS ACR39U ICC Reader" pytest tests/drivers/smartcard/test_smartcard_contract.py --hardware -s

On hardware the technician is asked (terminal, hence ``-s``) to take the card out or to insert a social-security or
bank card; each wait has a deadline. The assertions are the same for both targets.
"""
from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from drivers.base import DeviceState, MediaState
from drivers.errors import NoCard
from drivers.idcard.base import CardEvent
from drivers.idcard.identity import IdentityDocument, validate_id_number
from drivers.smartcard.bankcard import BankCard
from drivers.smartcard.pcsc_reader import PcscSmartCardReader
from drivers.smartcard.watcher import PcscCardWatcher

HUMAN_TIMEOUT_S = 60.0


class Target:
    def __init__(self, reader: PcscSmartCardReader) -> None:
        self.reader = reader

    def _wait_media(self, media: MediaState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.reader.status().media is not media:
            assert time.monotonic() < deadline, f"reader media not {media.value}"
            time.sleep(0.05)


class SimulatorTarget(Target):
    def __init__(self, reader: PcscSmartCardReader, card: Any) -> None:
        super().__init__(reader)
        self.card = card

    def ensure_empty(self) -> None:
        self.card.must("remove_card")
        self._wait_media(MediaState.NOT_PRESENT, 5)

    def insert(self) -> None:
        self.card.must("insert_card", card="social_security", identity="zhang")


class HardwareTarget(Target):
    def ensure_empty(self) -> None:
        print("\n>>> take the card out of the smart card reader", flush=True)
        self._wait_media(MediaState.NOT_PRESENT, HUMAN_TIMEOUT_S)

    def insert(self) -> None:
        print(f"\n>>> insert a social-security or bank card (within {HUMAN_TIMEOUT_S:.0f} s)", flush=True)


@pytest.fixture(params=["simulator", pytest.param("hardware", marks=pytest.mark.hardware)])
def target(request: pytest.FixtureRequest, make_reader: Callable[..., PcscSmartCardReader]) -> Iterator[Target]:
    if request.param == "hardware":
        name = os.environ.get("KIOSK_PCSC_READER")
        if not request.config.getoption("--hardware") or not name:
            pytest.skip("real reader: run with --hardware and KIOSK_PCSC_READER=<reader name>")
        yield HardwareTarget(make_reader(reader=name))
    else:
        card = request.getfixturevalue("card")
        yield SimulatorTarget(make_reader(reader=card.reader_name), card)


def check(result: Any) -> None:
    if isinstance(result, IdentityDocument):
        assert validate_id_number(result.id_number) and result.name
        assert {"card_number", "issuer", "region"} <= set(result.extra)
        assert result.id_number not in repr(result)
    else:
        assert isinstance(result, BankCard)
        assert re.fullmatch(r"\d{6}\*{3,9}\d{4}", result.masked_pan)


def test_contract_reader_online_and_empty(target: Target) -> None:
    target.ensure_empty()
    status = target.reader.status()
    assert (status.kind, status.device, status.media) == ("smartcard", DeviceState.ONLINE, MediaState.NOT_PRESENT)
    assert target.reader.card_present() is False
    with pytest.raises(NoCard):
        target.reader.read_card()


def test_contract_inserted_card_gives_the_events(target: Target) -> None:
    target.ensure_empty()
    events: list[CardEvent] = []
    got = threading.Event()

    def on_event(event: CardEvent) -> None:
        events.append(event)
        if event.type in ("read", "bank_card", "error"):
            got.set()

    with PcscCardWatcher(target.reader, on_event, health_interval=0.5):
        target.insert()
        assert got.wait(HUMAN_TIMEOUT_S), "no card read"
    assert [e.type for e in events[:1]] == ["inserted"] and events[1].type in ("read", "bank_card"), events
    check(events[1].document or events[1].bank_card)
    assert all(e.source == "smartcard" for e in events)
    check(target.reader.read_card())      # and directly, while the card stays
