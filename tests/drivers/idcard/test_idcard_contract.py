"""The ID card reader contract, run on the simulator always and on a real reader with ``--hardware``.

    KIOSK_IDCARD_PORT=/dev/ttyUSB0 [KIOSK_IDCARD_BAUD=115200] pytest tests/drivers/idcard/test_idcard_contract.py \
        --hardware -s

On hardware the tests ask the technician (on the terminal, hence ``-s``) to keep the reader empty or to lay a card
on it, and wait for that with a deadline. The same assertions hold for both targets (as python-can's
back2back tests run over the virtual bus and, with a flag, over hardware).
"""
from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from drivers.base import DeviceState
from drivers.errors import NoCard
from drivers.idcard.base import CardEvent, CardWatcher
from drivers.idcard.identity import DocumentKind, IdentityDocument, validate_id_number
from drivers.idcard.serial_reader import Ga467SerialReader

HUMAN_TIMEOUT_S = 60.0


class Target:
    name = ""

    def __init__(self, reader: Ga467SerialReader) -> None:
        self.reader = reader

    def ensure_empty(self) -> None: ...

    def present_card(self) -> None: ...

    def check(self, doc: IdentityDocument) -> None:
        assert isinstance(doc, IdentityDocument)
        if doc.kind is DocumentKind.FOREIGN_PERMANENT_RESIDENT:
            assert re.fullmatch(r"[A-Z]{3}\d{12}|9\d{16}[\dX]", doc.id_number)   # 2017 / 2023 editions
        else:
            assert validate_id_number(doc.id_number)
        assert doc.name and doc.valid_from <= (doc.valid_to or doc.valid_from)
        assert len(doc.photo_wlt) == 1024
        assert doc.id_number not in repr(doc) and doc.name not in repr(doc)


class SimulatorTarget(Target):
    name = "simulator"

    def __init__(self, reader: Ga467SerialReader, sim: Any, identities: dict[str, IdentityDocument]) -> None:
        super().__init__(reader)
        self.sim, self.identities = sim, identities

    def ensure_empty(self) -> None:
        self.sim.control("remove_card")

    def present_card(self) -> None:
        self.sim.control("place_card", identity="zhang")

    def check(self, doc: IdentityDocument) -> None:
        super().check(doc)
        assert doc == self.identities["zhang"]


class HardwareTarget(Target):
    name = "hardware"

    def _ask(self, text: str) -> None:
        print(f"\n>>> {text}", flush=True)

    def ensure_empty(self) -> None:
        self._ask("take any card off the ID card reader")
        deadline = time.monotonic() + HUMAN_TIMEOUT_S
        while self.reader.find_card():
            assert time.monotonic() < deadline, "the reader still sees a card"
            time.sleep(0.2)

    def present_card(self) -> None:
        self._ask(f"lay an ID card on the reader (within {HUMAN_TIMEOUT_S:.0f} s)")


@pytest.fixture(params=["simulator", pytest.param("hardware", marks=pytest.mark.hardware)])
def target(request: pytest.FixtureRequest, make_reader: Callable[..., Ga467SerialReader]) -> Iterator[Target]:
    if request.param == "hardware":
        port = os.environ.get("KIOSK_IDCARD_PORT")
        if not request.config.getoption("--hardware") or not port:
            pytest.skip("real reader: run with --hardware and KIOSK_IDCARD_PORT=<serial port>")
        reader = make_reader(port, timeout_s=2.0, read_timeout_s=5.0,
                             baud=int(os.environ.get("KIOSK_IDCARD_BAUD", "115200")))
        yield HardwareTarget(reader)
    else:
        sim = request.getfixturevalue("sim")
        yield SimulatorTarget(make_reader(sim.endpoints["pty"]), sim, request.getfixturevalue("identities"))


def test_contract_reader_is_online_with_a_sam_id(target: Target) -> None:
    status = target.reader.status()
    assert status.kind == "idcard" and status.device is DeviceState.ONLINE and status.usable
    assert re.fullmatch(r"\d{2}\.\d{2}-\d{8}-\d{10}-\d{10}", target.reader.sam_id())
    assert status.extra["baud"] in (115200, 57600, 38400, 19200, 9600)


def test_contract_empty_reader(target: Target) -> None:
    target.ensure_empty()
    assert target.reader.find_card() is False
    with pytest.raises(NoCard):
        target.reader.read_card()


def test_contract_a_presented_card_is_read_once_through_the_watcher(target: Target) -> None:
    target.ensure_empty()
    events: list[CardEvent] = []
    got = threading.Event()

    def on_event(event: CardEvent) -> None:
        events.append(event)
        if event.type in ("read", "error"):
            got.set()

    with CardWatcher(target.reader, on_event, interval=0.1):
        target.present_card()
        assert got.wait(HUMAN_TIMEOUT_S), "no card read"
    assert [e.type for e in events[:2]] == ["inserted", "read"], events
    target.check(events[1].document)
    assert target.reader.counters["cards_read"] == 1
