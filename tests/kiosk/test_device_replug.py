"""Unplug and replug ("unattended for months"): a receipt printer or ID card reader that goes away — its
simulator process killed like a pulled cable — is reported missing and refused clearly, and once it is back at the
same address (the printer on the same TCP port, the reader behind its stable name <data_dir>/sim-dev/idcard, as
udev's /dev/kiosk-idcard) the running kiosk sees it online again within seconds and uses it: no kiosk restart.

Through the real KioskCore with real simulators and drivers; polls with deadlines (the core's own tick and health
check drive the recovery), no sleeps."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from drivers.errors import DeviceError

#: the two devices under test only (no cupsd, no payment pad): faster, and nothing else to wait for
DEVICES = {
    "idcard": {"driver": "ga467_serial", "required": False, "simulate": True, "settings": {"baud": 115200}},
    "receipt_printer": {"driver": "escpos", "required": True, "simulate": True,
                        "settings": {"connection": "network", "host": "127.0.0.1", "port": 9100,
                                     "profile": "TM-T88V", "paper_width_mm": 80}},
}


def poll(predicate: Callable[[], Any], timeout: float, what: str, tick: Callable[[], None] | None = None) -> Any:
    """Run ``tick`` and check ``predicate`` until it holds, or fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)   # the poll's pace, not a wait for something to happen


@pytest.fixture
def harness(make_harness):
    return make_harness(devices=DEVICES)


def kiosk_ticks(harness) -> Callable[[], None]:
    """What the shell does: the core's tick (its health check runs every 2 s while a device is down, every 15 s
    otherwise); the test's fake clock follows real time, so "within seconds" is real seconds."""
    core = harness.core
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        core._clock.advance(now - last[0])
        last[0] = now
        core.tick()
    return tick


def test_receipt_printer_unplugged_and_replugged(harness, call) -> None:
    core = harness.core
    tick = kiosk_ticks(harness)
    poll(lambda: core.availability.devices.get("receipt_printer"), 10, "printer online at start", tick)
    detail = call(core.service_detail, call(core.search_services, "公积金")[0].code)
    call(core.print_service_notice, detail)
    endpoint = core.devices.sim_endpoints["receipt_printer"]["tcp"]
    old_pid = core.devices.simulators["receipt_printer"].pid

    core.devices.unplug("receipt_printer")
    with pytest.raises(DeviceError) as refused:     # a print is refused clearly, nothing hangs
        call(core.print_service_notice, detail)
    assert refused.value.code == "no_device", refused.value.code
    assert core.translator.error_text(refused.value) != "error.generic"
    poll(lambda: core.availability.devices.get("receipt_printer") is False, 10, "printer reported missing", tick)
    assert core.availability.device_errors["receipt_printer"] == "no_device"
    assert core.availability.out_of_service, "a required printer missing: out of service (and the fleet sees it)"
    assert core.devices.status("receipt_printer").device.value == "no_device"
    journal = core.print_journal.get(refused.value.job_id)
    assert journal.state == "failed" and journal.closed == "not_printed"

    sim = core.devices.replug("receipt_printer")
    assert sim.pid != old_pid and sim.endpoints["tcp"] == endpoint, "the same port, a new process"
    started = time.monotonic()
    poll(lambda: core.availability.devices.get("receipt_printer"), 5, "printer online again", tick)
    assert time.monotonic() - started < 5
    assert not core.availability.out_of_service
    result = call(core.print_service_notice, detail)
    assert result.bytes_sent > 0
    printed = harness.receipts()
    assert len(printed) == 1 and "公积金" in printed[0]["text"], "printed by the replugged printer"


def test_id_card_reader_unplugged_and_replugged(harness) -> None:
    core = harness.core
    tick = kiosk_ticks(harness)
    link = Path(core.devices.sim_endpoints["idcard"]["pty"])
    assert link.is_symlink() and core.devices.get("idcard").port == str(link), "the driver uses the stable name"
    assert os.readlink(link).startswith("/dev/pts/")
    poll(lambda: core.availability.devices.get("idcard"), 10, "reader online at start", tick)
    harness.identify("zhang")
    core.end_session("finished")

    core.devices.unplug("idcard")
    assert not link.exists()
    poll(lambda: core.availability.devices.get("idcard") is False, 10, "reader reported missing", tick)
    assert core.availability.device_errors["idcard"] == "no_device"
    assert not core.availability.feature("identify") and core.availability.feature("guide")
    error = harness.next_event("card_error")["error"]     # the card watcher reports the outage once
    assert error.code == "no_device"

    core.devices.replug("idcard")
    assert link.is_symlink() and os.readlink(link).startswith("/dev/pts/"), "the stable name → the new pty"
    started = time.monotonic()
    poll(lambda: core.availability.devices.get("idcard"), 6, "reader online again", tick)
    assert time.monotonic() - started < 6
    assert core.availability.feature("identify")
    harness.identify("li")          # a card read works again, through the same watcher and driver
    assert core.session.citizen is not None and core.session.citizen.name_masked.startswith("李")
    assert core.devices.get("idcard").counters["reconnects"] >= 1
