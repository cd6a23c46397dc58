"""Nightly self-test and restart at a quiet hour (kiosk/nightly.py, profile ``kiosk.nightly_restart_at``)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kiosk.nightly import NightlyMaintenance, parse_hhmm

CST = dt.timezone(dt.timedelta(hours=8))


def at(hour: int, minute: int, day: int = 7) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=CST)


def test_due_once_a_day_in_its_window_and_never_while_a_citizen_is_served(tmp_path: Path) -> None:
    nightly = NightlyMaintenance(parse_hhmm("03:30"), tmp_path / "nightly.json")
    assert not nightly.due(at(3, 29), busy=False)          # not yet
    assert not nightly.due(at(3, 31), busy=True)           # someone at the kiosk: wait
    assert nightly.due(at(3, 31), busy=False)
    assert nightly.due(at(5, 29), busy=False)               # still in the 2-hour window
    assert not nightly.due(at(5, 30), busy=False)           # window over: tomorrow
    nightly.mark_done(at(3, 31))
    assert not nightly.due(at(3, 45), busy=False)          # the restarted process does not run it again
    assert not nightly.due(at(3, 35), busy=False)          # a clock stepped back into the window: still done today
    assert nightly.due(at(3, 31, day=8), busy=False)        # the next night runs again
    assert json.loads((tmp_path / "nightly.json").read_text("utf-8"))["date"] == "2026-12-07"


@pytest.mark.parametrize("bad", ["3:30", "24:00", "03:60", "0330", "", "noon"])
def test_times_of_day_are_strict(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(bad)


def test_off_without_a_time(tmp_path: Path) -> None:
    assert NightlyMaintenance.from_profile("", tmp_path) is None


def test_profile_refuses_a_malformed_time(make_profile) -> None:
    from device_profiles.loader import ProfileError, load_profile

    with pytest.raises(ProfileError, match="nightly_restart_at"):
        load_profile(make_profile(kiosk__nightly_restart_at="25:00"), environ={})


def test_core_self_tests_devices_audits_and_asks_for_a_restart(make_harness) -> None:
    h = make_harness(kiosk__nightly_restart_at="03:30")
    core = h.core
    assert core.nightly is not None
    core._wall_now = lambda: at(3, 31)   # the quiet hour has come (the decision reads local wall time)
    core.tick()
    payload = h.next_event("restart_requested", timeout=30)
    assert payload["reason"] == "nightly maintenance"
    core.flush_audit()
    audit = Path(core.profile.kiosk.data_dir) / "audit.jsonl"
    entries = [json.loads(line) for line in audit.read_text("utf-8").splitlines() if line.strip()]
    tests = [e for e in entries if e.get("event") == "nightly_self_test"]
    assert tests and set(tests[-1]["results"]) >= {"idcard", "receipt_printer"}
    assert tests[-1]["results"]["receipt_printer"] == "online"
    # the next process (same data_dir) does not run it again today
    again = NightlyMaintenance.from_profile("03:30", core.profile.kiosk.data_dir)
    assert again is not None and not again.due(at(3, 40), busy=False)
