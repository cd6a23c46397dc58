"""CardWatcher over the real driver and simulator: events in order, one read per presentation, back-off."""
from __future__ import annotations

import os
import signal
import time
from typing import Callable

import pytest

from drivers.errors import CardRemoved, NoDevice
from drivers.idcard.base import CardEvent, CardWatcher
from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.sim.process import SimulatorProcess




@pytest.fixture
def watcher(reader: Ga467SerialReader, recorder) -> CardWatcher:
    w = CardWatcher(reader, recorder, interval=0.03, removal_polls=3)
    yield w
    w.stop()


def test_events_follow_place_and_remove_in_order(sim: SimulatorProcess, watcher: CardWatcher, recorder,
                                                 identities: dict[str, IdentityDocument],
                                                 wait_until: Callable[..., object]) -> None:
    watcher.start()
    wait_until(lambda: sim.control("status")["counters"]["finds"] >= 2, message="watcher polling")
    assert recorder.types == []
    sim.control("place_card", identity="zhang")
    wait_until(lambda: recorder.count("read") == 1, message="first read")
    sim.control("remove_card")
    wait_until(lambda: recorder.count("removed") == 1, message="first removal")
    sim.control("place_card", identity="li")
    wait_until(lambda: recorder.count("read") == 2, message="second read")
    sim.control("remove_card")
    wait_until(lambda: recorder.count("removed") == 2, message="second removal")
    assert recorder.types == ["inserted", "read", "removed", "inserted", "read", "removed"]
    reads = [e.document for e in recorder.events if e.type == "read"]
    assert reads == [identities["zhang"], identities["li"]]
    assert all(e.error is None for e in recorder.events)


def test_a_card_left_on_the_reader_is_read_once(sim: SimulatorProcess, watcher: CardWatcher, recorder,
                                                wait_until: Callable[..., object]) -> None:
    reads = sim.control("status")["counters"]["reads"]
    watcher.start()
    sim.control("place_card", identity="chen")
    wait_until(lambda: recorder.count("read") == 1, message="read")
    finds = sim.control("status")["counters"]["finds"]
    wait_until(lambda: sim.control("status")["counters"]["finds"] >= finds + 15, message="15 more polls")
    assert sim.control("status")["counters"]["reads"] == reads + 1
    assert sim.control("status")["card_present"] is True
    # after the read the reader no longer sees the (halted) card: reported as removed once, never re-read
    assert recorder.types == ["inserted", "read", "removed"]


def test_card_swapped_faster_than_removal_detection(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                    recorder, identities: dict[str, IdentityDocument],
                                                    wait_until: Callable[..., object]) -> None:
    with CardWatcher(reader, recorder, interval=0.03, removal_polls=1000):
        sim.control("place_card", identity="zhang")
        wait_until(lambda: recorder.count("read") == 1, message="first read")
        sim.control("place_card", identity="yang")   # taken away and the next card put down between two polls
        wait_until(lambda: recorder.count("read") == 2, message="second read")
    assert recorder.types == ["inserted", "read", "removed", "inserted", "read"]
    assert recorder.events[-1].document == identities["yang"]


def test_card_pulled_mid_read(sim: SimulatorProcess, watcher: CardWatcher, recorder,
                              wait_until: Callable[..., object]) -> None:
    sim.control("inject_fault", kind="pull_after_bytes", n=400)
    watcher.start()
    sim.control("place_card", identity="zhang")
    wait_until(lambda: recorder.count("removed") == 1, message="removal")
    assert recorder.types == ["inserted", "error", "removed"]
    assert isinstance(recorder.events[1].error, CardRemoved)
    assert recorder.events[1].document is None
    sim.control("place_card", identity="zhang")
    wait_until(lambda: recorder.count("read") == 1, message="read after re-placing")


def test_a_failed_read_is_not_retried_while_the_card_stays(sim: SimulatorProcess, watcher: CardWatcher,
                                                           recorder,
                                                           wait_until: Callable[..., object]) -> None:
    sim.control("inject_fault", kind="sw3", code=0x41, command="read")
    watcher.start()
    sim.control("place_card", identity="zhang")
    wait_until(lambda: recorder.count("error") == 1, message="read error")
    finds = sim.control("status")["counters"]["finds"]
    wait_until(lambda: sim.control("status")["counters"]["finds"] >= finds + 10, message="10 more polls")
    assert recorder.types == ["inserted", "error"]
    sim.control("remove_card")
    wait_until(lambda: recorder.count("removed") == 1, message="removal")
    sim.control("place_card", identity="zhang")
    wait_until(lambda: recorder.count("read") == 1, message="read after re-placing")
    assert recorder.types == ["inserted", "error", "removed", "inserted", "read"]


def test_reader_gone_backs_off_reports_once_and_recovers(make_reader: Callable[..., Ga467SerialReader],
                                                         recorder, identities: dict[str, IdentityDocument],
                                                         wait_until: Callable[..., object]) -> None:
    first = SimulatorProcess("idcard", "--tcp", "127.0.0.1:0")
    address = first.endpoints["tcp"]
    reader = make_reader("socket://" + address)
    watcher = CardWatcher(reader, recorder, interval=0.02, removal_polls=3, max_backoff=0.3)
    try:
        watcher.start()
        wait_until(lambda: first.control("status")["counters"]["finds"] >= 2, message="polling")
        os.killpg(first.pid, signal.SIGTERM)   # do not block in stop(): the failures are timed from the first
        wait_until(lambda: reader.counters.get("errors.no_device", 0) >= 1, message="first failure")
        t0 = time.monotonic()
        wait_until(lambda: reader.counters.get("errors.no_device", 0) >= 5, message="more failures")
        # without back-off 4 more polls would take 4 × 0.02 s; with it 0.04 + 0.08 + 0.16 + 0.3 s
        assert time.monotonic() - t0 >= 0.4
        assert recorder.types == ["error"]
        assert isinstance(recorder.events[0].error, NoDevice)
        with SimulatorProcess("idcard", "--tcp", address) as second:
            second.control("place_card", identity="li")
            wait_until(lambda: recorder.count("read") == 1, timeout=5.0, message="read after recovery")
            assert recorder.types == ["error", "inserted", "read"]
            assert recorder.events[-1].document == identities["li"]
    finally:
        watcher.stop()
        first.stop()


def test_start_and_stop_are_idempotent(reader: Ga467SerialReader, recorder) -> None:
    watcher = CardWatcher(reader, recorder, interval=0.05)
    watcher.start()
    thread = watcher._thread
    watcher.start()
    assert watcher._thread is thread and watcher.running
    watcher.stop()
    watcher.stop()
    assert not watcher.running and thread is not None and not thread.is_alive()
    watcher.start()                      # can run again after a stop
    assert watcher.running
    watcher.stop()
    assert not watcher.running


def test_a_failing_listener_does_not_stop_the_watcher(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                      wait_until: Callable[..., object]) -> None:
    seen: list[str] = []

    def listener(event: CardEvent) -> None:
        seen.append(event.type)
        raise RuntimeError("listener bug")

    with CardWatcher(reader, listener, interval=0.03, removal_polls=2) as watcher:
        sim.control("place_card", identity="zhao")
        wait_until(lambda: "removed" in seen, message="events despite listener errors")
        assert watcher.running
    assert seen[:3] == ["inserted", "read", "removed"]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        CardWatcher(None, print, interval=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CardWatcher(None, print, removal_polls=0)  # type: ignore[arg-type]


class _CountingReader:
    """find_card() that never finds a card and counts its calls (the poll rate is all this test looks at)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def find_card(self) -> bool:
        self.calls.append(time.monotonic())
        return False


def test_polls_fast_while_a_card_is_expected_and_slowly_when_idle(wait_for) -> None:
    """The poll rate, read from the times of the polls themselves (no fixed sleeps): fast (~50/s) in the window after
    start and after ``expect_card``, idle (~4/s) once the window has run out."""
    reader = _CountingReader()
    watcher = CardWatcher(reader, lambda e: None, interval=0.25, fast_interval=0.02, fast_for=0.4)  # type: ignore[arg-type]

    def gaps(calls: list[float]) -> list[float]:
        return sorted(b - a for a, b in zip(calls, calls[1:]))

    with watcher:
        assert watcher.polling_fast                      # just started: a card may come at once
        wait_for(lambda: len(reader.calls) >= 8, timeout=5, what="8 polls")
        fast = gaps(reader.calls[:8])
        assert fast[len(fast) // 2] < 0.1, fast          # ~20 ms apart
        wait_for(lambda: not watcher.polling_fast, timeout=5, what="the fast window to run out")
        mark = len(reader.calls)
        wait_for(lambda: len(reader.calls) >= mark + 4, timeout=5, what="4 idle polls")
        idle = gaps(reader.calls[mark:mark + 4])
        assert idle[0] > 0.15, idle                      # ~250 ms apart
        before = len(reader.calls)
        asked = time.monotonic()
        watcher.expect_card(0.3)                         # a screen asks for the card: poll now, then fast
        wait_for(lambda: len(reader.calls) > before, timeout=1, interval=0.002, what="a poll after expect_card")
        assert reader.calls[before] - asked < 0.05       # not after the rest of the idle wait
        wait_for(lambda: len(reader.calls) >= before + 6, timeout=2, what="6 fast polls")
        again = gaps(reader.calls[before:before + 6])
        assert again[len(again) // 2] < 0.1, again
