"""pcscd stopping and coming back (service restart, reader driver reload): driver and watcher recover by themselves.

Runs whoever started pcscd: the session's own pcscd is restarted as it is; a systemd-managed one (socket activation
on a stock Debian) is stopped for the test and handed back after (``restartable_pcscd`` in conftest.py); any other
pcscd makes the test fail with the reason. Never a silent skip.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from drivers.base import DeviceState
from drivers.errors import NoDevice
from drivers.idcard.base import CardEvent
from drivers.idcard.identity import IdentityDocument
from drivers.smartcard.pcsc_reader import PcscSmartCardReader
from drivers.smartcard.watcher import PcscCardWatcher

CardSlot = Any


def test_pcscd_restart_is_reported_once_and_recovered(restartable_pcscd: Any, card: CardSlot,
                                                      reader: PcscSmartCardReader,
                                                      identities: dict[str, IdentityDocument],
                                                      wait_for: Callable[..., Any]) -> None:
    pcscd = restartable_pcscd
    events: list[CardEvent] = []
    lock = threading.Lock()

    def record(event: CardEvent) -> None:
        with lock:
            events.append(event)

    def types() -> list[str]:
        with lock:
            return [e.type for e in events]

    with PcscCardWatcher(reader, record, health_interval=0.1):
        card.must("insert_card", card="social_security", identity="zhang")
        wait_for(lambda: "read" in types(), what="first read")
        pcscd.stop()
        wait_for(lambda: types().count("error") == 1 and "removed" in types(), timeout=5, what="outage reported")
        assert isinstance(events[2].error, NoDevice) or isinstance(events[3].error, NoDevice)
        status = reader.status()
        assert status.device is DeviceState.NO_DEVICE and status.error_code == "no_device"
        with pytest.raises(NoDevice):
            reader.read_card()
        wait_for(lambda: len(events) >= 4 and reader.counters.get("errors.no_device", 0) >= 1, what="settled")
        outage_events = len(events)
        pcscd.start()   # the card stayed in the slot: it reconnects to the new vpcd and is read again
        wait_for(lambda: types().count("read") == 2, timeout=10, what="read after the service came back")
        assert types()[:outage_events].count("error") == 1     # one error per outage, not one per poll
        assert types()[outage_events:] == ["inserted", "read"]
        assert events[-1].document.id_number == identities["zhang"].id_number
    assert reader.status().device is DeviceState.ONLINE
    assert reader.counters["reconnects"] >= 1
