"""TCP mode (``socket://`` URLs) and a reader that vanishes and comes back."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from drivers.base import DeviceState
from drivers.errors import NoDevice
from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.sim.process import SimulatorProcess


@pytest.fixture
def tcp_sim() -> SimulatorProcess:
    with SimulatorProcess("idcard", "--tcp", "127.0.0.1:0") as sim:
        yield sim


def test_tcp_mode_reads_through_a_socket_url(tcp_sim: SimulatorProcess,
                                             make_reader: Callable[..., Ga467SerialReader],
                                             identities: dict[str, IdentityDocument]) -> None:
    assert tcp_sim.endpoints["tcp"].startswith("127.0.0.1:") and "pty" not in tcp_sim.endpoints
    reader = make_reader("socket://" + tcp_sim.endpoints["tcp"])
    assert reader.find_card() is False
    tcp_sim.control("place_card", identity="huang_hk")
    assert reader.find_card() is True
    assert reader.read_card() == identities["huang_hk"]
    assert reader.find_card() is False
    tcp_sim.control("inject_fault", kind="garbage", n=50)
    assert reader.sam_id().startswith("05.01-")
    # one client at a time: after this one leaves, the next is served
    reader.close()
    other = make_reader("socket://" + tcp_sim.endpoints["tcp"])
    assert other.status().device is DeviceState.ONLINE


def test_tcp_reader_restarting_on_the_same_port_is_recovered(
        make_reader: Callable[..., Ga467SerialReader], identities: dict[str, IdentityDocument],
        wait_until: Callable[..., object]) -> None:
    first = SimulatorProcess("idcard", "--tcp", "127.0.0.1:0")
    address = first.endpoints["tcp"]
    try:
        reader = make_reader("socket://" + address)
        assert reader.status().device is DeviceState.ONLINE
    finally:
        first.stop()
    status = reader.status()
    assert status.device is DeviceState.NO_DEVICE and status.error_code == "no_device"
    with pytest.raises(NoDevice):          # the reopen attempt fails too: connection refused
        reader.find_card()
    with SimulatorProcess("idcard", "--tcp", address) as second:
        wait_until(lambda: reader.status().device is DeviceState.ONLINE, timeout=5.0, message="reader back online")
        second.control("place_card", identity="zhang")
        assert reader.read_card() == identities["zhang"]
    assert reader.counters["reconnects"] >= 1


def test_pty_reader_vanishing_and_coming_back_under_the_same_link(
        tmp_path: Path, make_reader: Callable[..., Ga467SerialReader], identities: dict[str, IdentityDocument],
        wait_until: Callable[..., object]) -> None:
    # kiosks name readers by a stable link (/dev/serial/by-id/…); udev repoints it when the reader comes back
    link = tmp_path / "idcard-reader"
    first = SimulatorProcess("idcard", "--pty")
    try:
        os.symlink(first.endpoints["pty"], link)
        reader = make_reader(str(link))
        first.control("place_card", identity="chen")
        assert reader.read_card() == identities["chen"]
    finally:
        first.stop()   # the pty disappears while the driver holds it open
    status = reader.status()
    assert status.device is DeviceState.NO_DEVICE
    with pytest.raises(NoDevice):
        reader.read_card()
    with SimulatorProcess("idcard", "--pty") as second:
        link.unlink()
        os.symlink(second.endpoints["pty"], link)
        wait_until(lambda: reader.status().device is DeviceState.ONLINE, timeout=5.0, message="reader back online")
        second.control("place_card", identity="yang")
        assert reader.read_card() == identities["yang"]
    assert reader.counters["reconnects"] >= 1
    assert reader.counters["cards_read"] == 2
