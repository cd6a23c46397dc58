"""Pushed profiles on the kiosk (kiosk/profile_updates.py) without a fleet: a profile that kills the kiosk while it
starts (here: starts that never reach the trial) is put back to the last good one before the devices open, and both
outcomes are recorded once the kiosk comes up. The through-the-controller version: tests/fleet/test_profile_versions.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from device_profiles.loader import load_profile, parse_profile
from kiosk.core import KioskCore
from kiosk.profile_updates import MAX_TRIAL_STARTS, changed_paths


def test_a_profile_that_never_finishes_starting_is_rolled_back(make_profile: Any, wait_for: Any) -> None:
    path = make_profile()
    data = yaml.safe_load(path.read_text("utf-8"))
    for kind in ("qr_scanner", "licence_printer", "payment_pad"):
        data["devices"].pop(kind, None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    good_text = path.read_text("utf-8")

    core = KioskCore(load_profile(path, environ={}))
    core.start()
    try:
        assert wait_for(lambda: core.profile_updates.outcome, timeout=15) == "first_start"
        pushed = dict(data, session={**data["session"], "idle_timeout_s": 75})
        pushed_text = yaml.safe_dump(pushed, allow_unicode=True)
        core.profile_updates.stage(pushed_text, parse_profile(pushed, environ={}).digest)
    finally:
        core.stop()
    assert path.read_text("utf-8") == pushed_text

    # the kiosk dies while starting with it (constructed, never finished starting) …
    for _ in range(MAX_TRIAL_STARTS + 1):
        KioskCore(load_profile(path, environ={}))._audit_writer.shutdown(wait=True)
    assert path.read_text("utf-8") == good_text, "the last good profile is back before the devices open"

    # … and the next start reports both outcomes
    core = KioskCore(load_profile(path, environ={}))
    core.start()
    try:
        assert wait_for(lambda: core.profile_updates.outcome, timeout=15) == "rolled_back"
        core.flush_audit()
    finally:
        core.stop()
    audit = "".join(p.read_text("utf-8") for p in Path(data["kiosk"]["data_dir"]).glob("audit*.jsonl"))
    codes = [json.loads(line).get("code") for line in audit.splitlines() if '"profile_event"' in line]
    assert codes[-3:] == ["profile_trial_failed", "profile_rolled_back", "profile_restored"], codes


def test_changed_paths_name_fields_not_values() -> None:
    old = {"session": {"idle_timeout_s": 90, "warning_s": 20}, "devices": {"idcard": {"settings": {"baud": 115200}}}}
    new = {"session": {"idle_timeout_s": 90, "warning_s": 25}, "devices": {"idcard": {"settings": {"baud": 9600}},
                                                                           "camera": {"driver": "opencv"}}}
    assert changed_paths(old, new) == ["devices.camera", "devices.idcard.settings.baud", "session.warning_s"]
