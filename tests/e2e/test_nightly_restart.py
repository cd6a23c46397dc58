"""The nightly run through the real shell: at the profile's quiet hour, with nobody at the kiosk, the shell self-tests
its devices, records the day and exits with the restart code its supervisor (systemd ``Restart=always``, the demo's
loop) answers by starting it again — the run that once surprised a test run at 03:30."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from screens.app import RESTART_EXIT_CODE

pytestmark = pytest.mark.e2e


def test_at_the_quiet_hour_the_idle_shell_self_tests_and_exits_for_a_restart(start_kiosk, wait_for,
                                                                             tmp_path: Path) -> None:
    # the window opens at the current minute: [HH:MM, HH:MM + 2 h) of today, local time (as the kiosk reads it)
    wait_for(lambda: dt.datetime.now().time() < dt.time(23, 58), timeout=150, what="a minute with today ahead")
    now = dt.datetime.now()
    ui = start_kiosk(kiosk__nightly_restart_at=now.strftime("%H:%M"))
    code = wait_for(lambda: ui.proc.proc.poll(), timeout=90, what="the shell leaving for its nightly restart")
    assert code == RESTART_EXIT_CODE

    data = tmp_path / "kiosk-data"
    assert json.loads((data / "nightly.json").read_text("utf-8"))["date"] == now.date().isoformat(), \
        "the day is recorded: the restarted shell does not run it again today"
    entries = [json.loads(line) for line in (data / "audit.jsonl").read_text("utf-8").splitlines() if line.strip()]
    events = [e.get("event") for e in entries]
    assert "nightly_self_test" in events and "restart_requested" in events
    assert events.index("nightly_self_test") < events.index("restart_requested"), "self-test first, then restart"
    results = next(e for e in entries if e.get("event") == "nightly_self_test")["results"]
    assert results["idcard"] == "online" and results["receipt_printer"] == "online"
