"""The rest of the GA 467 command set through the real driver and simulator: quick removal detection (inter-byte gap),
extra address, text + photo + fingerprint, baud negotiation and switching."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator

import pytest

from drivers.base import DeviceState
from drivers.errors import CardReadFailed, CardRemoved, DeviceTimeout
from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.idcard.simulator import synthetic_fingerprint
from drivers.sim.process import SimulatorProcess


@pytest.mark.parametrize("n", [20, 300, 1200])
def test_card_pulled_mid_reply_is_reported_within_the_gap_not_the_long_timeout(
        sim: SimulatorProcess, make_reader: Callable[..., Ga467SerialReader],
        identities: dict[str, IdentityDocument], n: int) -> None:
    reader = make_reader(sim.endpoints["pty"], timeout_s=2.0, read_timeout_s=5.0)   # the real readers' defaults
    sim.control("place_card", identity="zhang")
    assert reader.find_card()
    sim.control("inject_fault", kind="pull_after_bytes", n=n)
    started = time.monotonic()
    with pytest.raises(CardRemoved):
        reader.read_card()
    elapsed = time.monotonic() - started
    assert elapsed < reader.inter_byte_timeout_s + 0.5, elapsed     # not read_timeout_s (5 s)
    sim.control("place_card", identity="li")
    assert reader.read_card() == identities["li"]


def test_a_slow_line_is_not_mistaken_for_a_pulled_card(sim: SimulatorProcess,
                                                       make_reader: Callable[..., Ga467SerialReader],
                                                       identities: dict[str, IdentityDocument]) -> None:
    reader = make_reader(sim.endpoints["pty"], read_timeout_s=3.0)
    sim.control("place_card", identity="yang")
    reader.find_card()
    sim.control("inject_fault", kind="slow", baud=9600)     # the slowest standard speed: 32-byte bursts 33 ms apart
    assert reader.read_card() == identities["yang"]


def test_a_reply_that_trickles_slower_than_the_gap_fails_cleanly(
        sim: SimulatorProcess, make_reader: Callable[..., Ga467SerialReader],
        wait_until: Callable[..., object]) -> None:
    reader = make_reader(sim.endpoints["pty"], inter_byte_timeout_s=0.01, read_timeout_s=3.0)
    sim.control("place_card", identity="chen")
    reader.find_card()
    sim.control("inject_fault", kind="slow", baud=9600)
    started = time.monotonic()
    with pytest.raises((CardReadFailed, DeviceTimeout)) as info:   # typed, and not "removed": the card is there
        reader.read_card()
    assert not isinstance(info.value, CardRemoved)
    assert time.monotonic() - started < 1.3      # before the whole slow reply (1295 bytes at 9600 baud ≈ 1.35 s)
    sim.control("clear_faults")
    wait_until(lambda: reader.status().device is DeviceState.ONLINE, message="reader answers again")


def test_extra_address_is_read_with_the_card(sim: SimulatorProcess, reader: Ga467SerialReader,
                                             make_reader: Callable[..., Ga467SerialReader],
                                             identities: dict[str, IdentityDocument]) -> None:
    sim.control("place_card", identity="zhao")
    doc = reader.read_card()
    assert doc.extra["extra_address"] == "安徽省蚌埠市蚌山区涂山路266号" and doc == identities["zhao"]
    assert "涂山路" not in repr(doc)
    reader.close()                                   # one driver on the port at a time (exclusive lock)
    without = make_reader(sim.endpoints["pty"], read_extra_address=False)
    sim.control("remove_card")
    sim.control("place_card", identity="zhao")
    assert "extra_address" not in without.read_card().extra
    without.close()
    reader.open()
    sim.control("remove_card")
    sim.control("place_card", identity="chen")      # no extra address on the card (SW3 91): none in the document
    assert "extra_address" not in reader.read_card().extra


def test_extra_address_failure_fails_the_whole_read(sim: SimulatorProcess, reader: Ga467SerialReader) -> None:
    sim.control("place_card", identity="zhao")
    sim.control("inject_fault", kind="sw3", code=0x41, command="read_address")
    with pytest.raises(CardReadFailed):
        reader.read_card()
    assert reader.counters["cards_read"] == 0


def test_text_photo_and_fingerprint(sim: SimulatorProcess, make_reader: Callable[..., Ga467SerialReader],
                                    identities: dict[str, IdentityDocument]) -> None:
    reader = make_reader(sim.endpoints["pty"], read_fingerprint=True)
    sim.control("place_card", identity="zhang")
    doc = reader.read_card()
    assert doc.fingerprint == synthetic_fingerprint("zhang:340302195803172018") and len(doc.fingerprint) == 1024
    assert dataclasses.replace(doc, fingerprint=b"") == identities["zhang"]
    assert "fingerprint" not in repr(doc) and "SIM-FP" not in repr(doc)
    sim.control("remove_card")
    sim.control("place_card", identity="chen")       # a card without fingerprints
    assert reader.read_card() == identities["chen"]


def test_a_reader_without_fingerprint_support_still_reads(sim: SimulatorProcess,
                                                          make_reader: Callable[..., Ga467SerialReader],
                                                          identities: dict[str, IdentityDocument]) -> None:
    reader = make_reader(sim.endpoints["pty"], read_fingerprint=True)
    sim.control("place_card", identity="li")
    sim.control("inject_fault", kind="sw3", code=0x21, command="read_fp")   # bad command: no fingerprint module
    doc = reader.read_card()
    assert doc == identities["li"] and doc.fingerprint == b""
    sim.control("remove_card")
    sim.control("place_card", identity="li")
    assert reader.read_card().fingerprint == b""     # it does not ask again


@pytest.fixture
def own_sim() -> Iterator[SimulatorProcess]:
    """A simulator of its own: these tests change its speed."""
    with SimulatorProcess("idcard", "--pty") as sim:
        yield sim


def test_negotiation_by_default_finds_the_readers_speed(own_sim: SimulatorProcess,
                                                        make_reader: Callable[..., Ga467SerialReader]) -> None:
    reader = make_reader(own_sim.endpoints["pty"], baud=9600)          # no baud_fallbacks: the standard list
    assert reader.active_baud == 115200 and reader.status().device is DeviceState.ONLINE
    assert own_sim.control("status")["baud"] == 115200                 # detection does not move the reader


def test_switch_baud_moves_the_reader_to_the_profiles_speed(own_sim: SimulatorProcess,
                                                            make_reader: Callable[..., Ga467SerialReader],
                                                            identities: dict[str, IdentityDocument]) -> None:
    reader = make_reader(own_sim.endpoints["pty"], baud=57600, switch_baud=True)
    assert reader.active_baud == 57600 and own_sim.control("status")["baud"] == 57600
    status = reader.status()
    assert status.device is DeviceState.ONLINE and status.extra["baud"] == 57600
    own_sim.control("place_card", identity="huang_hk")
    assert reader.read_card() == identities["huang_hk"]
    reader.set_baud(115200)                                            # and back, by the public method
    assert reader.active_baud == 115200 and own_sim.control("status")["baud"] == 115200
    assert reader.status().device is DeviceState.ONLINE
    with pytest.raises(ValueError):
        reader.set_baud(4800)
    # a new driver with the old profile speed finds the reader again by negotiation
    reader.close()
    again = make_reader(own_sim.endpoints["pty"], baud=57600)
    assert again.active_baud == 115200


def test_a_corrupt_frame_start_before_the_reply_is_skipped(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                          identities: dict[str, IdentityDocument]) -> None:
    # a preamble whose length is corrupt (0x05AA = 1450 bytes claimed) right before the real reply: the decoder
    # waits for bytes that never come; at the inter-byte gap it looks past that preamble and finds the reply
    sim.control("place_card", identity="zhang")
    reader.find_card()
    sim.control("inject_fault", kind="garbage", hex="AAAAAA966905")   # before the select reply inside read_card
    started = time.monotonic()
    assert reader.read_card() == identities["zhang"]
    assert time.monotonic() - started < reader.inter_byte_timeout_s + 0.5
    assert sim.control("status")["counters"]["faults_fired"] >= 1
