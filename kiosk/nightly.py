"""Nightly self-test and restart at a quiet hour (profile ``kiosk.nightly_restart_at: "HH:MM"``, local time).

A kiosk that runs for months restarts once a day while nobody uses it: the devices are self-tested first (the
results go to the audit journal and, for a device that fails, to the fleet as an alarm), then the shell asks its
supervisor for a restart (``KioskCore.request_restart``, which waits for a citizen being served). The day of the last
run is kept in ``<data_dir>/nightly.json``, so the restarted process does not run it again that day; a clock step
(NTP) can at most move the run by the size of the step, never repeat it within one day.

The decision is a pure function of local wall time, the last run's date and whether a citizen is being served:
:meth:`NightlyMaintenance.due` is testable without a clock of its own.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
#: after the set time, the run may still start within this window (a citizen was being served at the set time)
WINDOW = dt.timedelta(hours=2)


def parse_hhmm(value: str) -> dt.time:
    """``"03:30"`` → ``time(3, 30)``; ValueError for anything else."""
    match = _HHMM.match(value or "")
    if not match:
        raise ValueError(f"not a time of day HH:MM: {value!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


@dataclass
class NightlyMaintenance:
    at: dt.time
    state_file: Path

    @classmethod
    def from_profile(cls, at: str, data_dir: str | os.PathLike[str]) -> "NightlyMaintenance | None":
        """None when the profile sets no time (the feature is off)."""
        if not at:
            return None
        return cls(parse_hhmm(at), Path(data_dir) / "nightly.json")

    def last_run(self) -> dt.date | None:
        try:
            return dt.date.fromisoformat(json.loads(self.state_file.read_text("utf-8"))["date"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def due(self, now: dt.datetime, busy: bool) -> bool:
        """True when the run should start now: local time within [at, at + 2 h), not run yet today, nobody served."""
        if busy:
            return False
        start = dt.datetime.combine(now.date(), self.at, tzinfo=now.tzinfo)
        if not start <= now < start + WINDOW:
            return False
        last = self.last_run()
        return last is None or last < now.date()

    def mark_done(self, now: dt.datetime) -> None:
        """Record today's run before the restart (written atomically)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"date": now.date().isoformat(), "at": now.isoformat(timespec="seconds")}),
                       "utf-8")
        os.replace(tmp, self.state_file)
