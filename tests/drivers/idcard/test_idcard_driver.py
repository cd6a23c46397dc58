"""Contract suite: the real Ga467SerialReader against the ``kiosk-sim idcard`` process on a pty."""
from __future__ import annotations

import json
import re
import threading
import time
from typing import Callable

import pytest

from drivers import registry
from drivers.base import DeviceState, MediaState
from drivers.errors import (
    CardReadFailed, CardRemoved, DeviceTimeout, HardwareError, InvalidCardData, NoCard, NoDevice, ProtocolError,
)
from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import SETTINGS_SCHEMA, Ga467SerialReader
from drivers.sim.process import SimulatorProcess


def test_registry_resolves_the_driver() -> None:
    assert registry.resolve("idcard", "ga467_serial") is Ga467SerialReader
    assert Ga467SerialReader.KIND == "idcard"


def test_settings_schema_and_validation() -> None:
    assert SETTINGS_SCHEMA["additionalProperties"] is False
    assert set(SETTINGS_SCHEMA["properties"]) == {
        "port", "baud", "timeout_s", "read_timeout_s", "baud_fallbacks", "probe_timeout_s", "switch_baud",
        "inter_byte_timeout_s", "read_extra_address", "read_fingerprint", "wlt_decoder"}
    with pytest.raises(ValueError):
        Ga467SerialReader(port="/dev/ttyS0", colour="blue")
    with pytest.raises(ValueError):
        Ga467SerialReader(port="/dev/ttyS0", baud=12345)
    with pytest.raises(ValueError):
        Ga467SerialReader()
    reader = Ga467SerialReader(port="/dev/ttyS0")
    assert (reader.baud, reader.timeout_s, reader.read_timeout_s) == (115200, 2.0, 5.0)
    # negotiation by default: the profile's speed, then the other standard speeds (shared/protocols.md §1)
    assert reader.baud_fallbacks == [57600, 38400, 19200, 9600]
    assert Ga467SerialReader(port="/dev/ttyS0", baud=9600).baud_fallbacks == [115200, 57600, 38400, 19200]
    assert Ga467SerialReader(port="/dev/ttyS0", baud_fallbacks=[]).baud_fallbacks == []
    assert (reader.inter_byte_timeout_s, reader.read_extra_address, reader.read_fingerprint) == (0.3, True, False)
    assert reader.wlt_decoder is None
    with pytest.raises(ValueError):
        Ga467SerialReader(port="/dev/ttyS0", wlt_decoder={"function": "unpack"})   # library missing


def test_missing_port_is_no_device(tmp_path) -> None:
    reader = Ga467SerialReader(port=str(tmp_path / "no-such-tty"))
    with pytest.raises(NoDevice):
        reader.open()
    assert not reader.is_open
    status = reader.status()
    assert status.device is DeviceState.NO_DEVICE and not status.usable
    with pytest.raises(NoDevice):
        reader.find_card()


def test_no_card_find_is_false(reader: Ga467SerialReader) -> None:
    assert reader.find_card() is False
    with pytest.raises(NoCard):
        reader.read_card()


def test_place_and_read(sim: SimulatorProcess, reader: Ga467SerialReader,
                        identities: dict[str, IdentityDocument]) -> None:
    sim.control("place_card", identity="zhang")
    assert reader.find_card() is True
    doc = reader.read_card()
    assert doc == identities["zhang"]
    assert doc.photo_wlt == identities["zhang"].photo_wlt and len(doc.photo_wlt) == 1024
    assert reader.counters["cards_read"] == 1


@pytest.mark.parametrize("key", ["li", "wang_expired", "chen", "yang", "huang_hk", "zhao", "smith_foreign"])
def test_every_identity_reads_through_the_driver(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                 identities: dict[str, IdentityDocument], key: str) -> None:
    sim.control("place_card", identity=key)
    assert reader.read_card() == identities[key]  # read_card finds by itself when not found yet


def test_find_after_read_is_false_until_the_card_is_replaced(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                             identities: dict[str, IdentityDocument]) -> None:
    sim.control("place_card", identity="chen")
    assert reader.find_card()
    reader.read_card()
    assert reader.find_card() is False
    assert reader.find_card() is False
    with pytest.raises(NoCard):
        reader.read_card()
    sim.control("remove_card")
    assert reader.find_card() is False
    sim.control("place_card", identity="chen")
    assert reader.find_card() is True
    assert reader.read_card() == identities["chen"]


@pytest.mark.parametrize("n", [0, 3, 300, 1294])
def test_card_pulled_mid_read_gives_card_removed_then_the_next_card_reads(
        sim: SimulatorProcess, reader: Ga467SerialReader, identities: dict[str, IdentityDocument], n: int) -> None:
    sim.control("place_card", identity="zhang")
    assert reader.find_card()
    sim.control("inject_fault", kind="pull_after_bytes", n=n)
    with pytest.raises(CardRemoved):
        reader.read_card()
    assert sim.control("status")["card_present"] is False
    assert reader.counters["cards_read"] == 0 and reader.counters["errors.card_removed"] == 1
    sim.control("place_card", identity="li")
    assert reader.read_card() == identities["li"]


def test_bad_checksum_is_a_protocol_error_then_recovers(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                        identities: dict[str, IdentityDocument]) -> None:
    sim.control("place_card", identity="yang")
    sim.control("inject_fault", kind="bad_checksum")
    with pytest.raises(ProtocolError) as info:
        reader.find_card()
    assert info.value.reason == "bad_checksum"
    assert reader.find_card() is True
    sim.control("inject_fault", kind="bad_checksum")   # hits the select reply inside read_card
    with pytest.raises(ProtocolError):
        reader.read_card()
    assert reader.read_card() == identities["yang"]
    assert reader.counters["errors.invalid_data"] == 2


@pytest.mark.parametrize("n", [1, 64, 700])
def test_garbage_before_replies_is_skipped(sim: SimulatorProcess, reader: Ga467SerialReader,
                                           identities: dict[str, IdentityDocument], n: int) -> None:
    sim.control("inject_fault", kind="garbage", n=n, seed=n)
    assert reader.find_card() is False
    sim.control("place_card", identity="zhao")
    reader.find_card()
    sim.control("inject_fault", kind="garbage", n=n, seed=n + 1)   # before the select reply
    assert reader.read_card() == identities["zhao"]


def test_silence_times_out_within_the_configured_timeout_then_recovers(
        sim: SimulatorProcess, reader: Ga467SerialReader) -> None:
    sim.control("inject_fault", kind="silence")
    started = time.monotonic()
    with pytest.raises(DeviceTimeout):
        reader.find_card()
    elapsed = time.monotonic() - started
    assert reader.timeout_s - 0.05 <= elapsed <= reader.timeout_s + 0.3
    status = reader.status()
    assert status.device is DeviceState.OFFLINE and status.error_code == "timeout"
    sim.control("clear_faults")
    assert reader.find_card() is False
    assert reader.status().device is DeviceState.ONLINE


def test_slow_line_still_reads(sim: SimulatorProcess, make_reader: Callable[..., Ga467SerialReader],
                               identities: dict[str, IdentityDocument]) -> None:
    reader = make_reader(sim.endpoints["pty"], read_timeout_s=2.0)
    sim.control("place_card", identity="li")
    reader.find_card()
    sim.control("inject_fault", kind="slow", baud=38400)
    started = time.monotonic()
    assert reader.read_card() == identities["li"]
    # at least the time 1295 bytes take at 38400 baud, 8N1 (the select reply adds a little)
    assert time.monotonic() - started >= 1295 * 10 / 38400


def test_sam_id(reader: Ga467SerialReader) -> None:
    sam = reader.sam_id()
    assert re.fullmatch(r"\d{2}\.\d{2}-\d{8}-\d{10}-\d{10}", sam)
    assert sam == "05.01-20240315-0000012345-1234567890"
    assert reader.status().extra["sam_id"] == sam


def test_status(sim: SimulatorProcess, reader: Ga467SerialReader, identities: dict[str, IdentityDocument]) -> None:
    status = reader.status()
    assert (status.kind, status.device, status.media) == ("idcard", DeviceState.ONLINE, MediaState.NOT_PRESENT)
    assert status.usable
    sim.control("place_card", identity="zhang")
    assert reader.status().media is MediaState.PRESENT
    reader.read_card()
    # the card still lies there but the reader cannot see it after the read: unknown, not "not present"
    status = reader.status()
    assert status.media is MediaState.UNKNOWN and status.counters["cards_read"] == 1
    text = json.dumps(status.to_dict(), ensure_ascii=False)
    doc = identities["zhang"]
    assert doc.name not in text and doc.id_number not in text
    sim.control("remove_card")
    sim.control("place_card", identity="li")
    assert reader.status().media is MediaState.PRESENT


@pytest.mark.parametrize("code, command, error", [
    (0x41, "read", CardReadFailed),
    (0x31, "read", CardReadFailed),
    (0x33, "select", CardReadFailed),
    (0x40, "read", InvalidCardData),
    (0x60, "read", HardwareError),
])
def test_reader_status_codes_become_typed_errors(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                 code: int, command: str, error: type) -> None:
    sim.control("place_card", identity="zhang")
    reader.find_card()
    sim.control("inject_fault", kind="sw3", code=code, command=command)
    with pytest.raises(error) as info:
        reader.read_card()
    assert info.value.placeholders.get("sw3", code) == code


def test_sam_failure_shows_in_status(sim: SimulatorProcess, reader: Ga467SerialReader) -> None:
    sim.control("inject_fault", kind="sw3", code=0x60, command="sam_status")
    status = reader.status()
    assert status.device is DeviceState.HARDWARE_ERROR and status.error_code == "hardware_error"
    assert reader.status().device is DeviceState.ONLINE


def test_baud_fallback_finds_the_readers_speed(sim: SimulatorProcess,
                                               make_reader: Callable[..., Ga467SerialReader]) -> None:
    wrong = make_reader(sim.endpoints["pty"], baud=9600, timeout_s=0.2, baud_fallbacks=[])
    assert wrong.status().device is DeviceState.OFFLINE   # the simulator ignores a line at the wrong speed
    wrong.close()
    reader = make_reader(sim.endpoints["pty"], baud=9600, baud_fallbacks=[57600, 115200], timeout_s=0.2)
    assert reader.active_baud == 115200
    assert reader.status().device is DeviceState.ONLINE
    assert reader.status().extra["baud"] == 115200


def test_concurrent_callers_get_one_transaction_at_a_time(sim: SimulatorProcess, reader: Ga467SerialReader,
                                                          identities: dict[str, IdentityDocument]) -> None:
    sim.control("place_card", identity="zhang")
    failures: list[BaseException] = []
    results: list[object] = []

    def worker(op: Callable[[], object]) -> None:
        try:
            for _ in range(15):
                results.append(op())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(op,))
               for op in (reader.find_card, reader.sam_id, reader.status, reader.find_card)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert failures == []
    assert len(results) == 60
    assert reader.read_card() == identities["zhang"]


def test_close_is_idempotent_and_a_closed_reader_reports_no_device(reader: Ga467SerialReader) -> None:
    reader.close()
    reader.close()
    assert reader.status().device is DeviceState.NO_DEVICE
    with pytest.raises(NoDevice):
        reader.find_card()
    reader.open()
    assert reader.find_card() is False
