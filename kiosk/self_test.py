"""The kiosk's own device self-test at a level (:mod:`drivers.health`): the nightly run, the maintenance screen, the
fleet's ``self_test`` command and a pushed profile's trial all go through :class:`SelfTestRunner`.

Every run goes to the audit journal (``self_test``: level, who asked, per device ok + reason) and to the fleet as an
event of device ``self_test`` (``self_test_passed`` info / ``self_test_failed`` major, with the failed devices and
their reasons in the text). No personal data: the only card number a test sees is the technician's, kept masked in
the detailed result shown on the maintenance screen and never sent on.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from drivers.health import HealthOptions, HealthResult, Level, check_all, summary

log = logging.getLogger(__name__)

Audit = Callable[..., None]


@dataclass(frozen=True)
class SelfTestRun:
    """One run: its level, who asked (``nightly``, ``maintenance``, ``fleet``, ``profile_trial``) and the results."""

    level: Level
    origin: str
    results: Mapping[str, HealthResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    def failed(self, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
        """Failed devices (of ``kinds``, or all) → their reason."""
        return {k: r.reason for k, r in self.results.items() if not r.ok and (kinds is None or k in kinds)}

    def summary(self) -> dict[str, Any]:
        return {"level": self.level.value, "origin": self.origin, **summary(self.results)}

    def text(self) -> str:
        failed = self.failed()
        if not failed:
            return f"{self.level.value} self-test ({self.origin}): all {len(self.results)} devices passed"
        return f"{self.level.value} self-test ({self.origin}) failed: " + \
            ", ".join(f"{k}={v}" for k, v in sorted(failed.items()))


class SelfTestRunner:
    """Runs self-tests over the device manager's devices, one at a time (a second request waits for the first)."""

    def __init__(self, devices: Callable[[], Mapping[str, Any]], audit: Audit,
                 fleet: Callable[[], Any] = lambda: None) -> None:
        self._devices = devices
        self._audit = audit
        self._fleet = fleet
        self._lock = threading.Lock()
        self.last: SelfTestRun | None = None

    def run(self, level: Level | str = Level.INTERNAL, origin: str = "maintenance",
            options: HealthOptions | None = None, kinds: list[str] | None = None,
            report: bool = True) -> SelfTestRun:
        """Blocking (call it on a worker): test, audit, report to the fleet (unless ``report`` is False: the caller
        reports in its own words, e.g. a profile trial)."""
        level = Level(level)
        with self._lock:
            results = check_all(self._devices(), level, options, kinds)
            run = SelfTestRun(level, origin, results)
            self.last = run
        self._audit("self_test", **run.summary())
        if report:
            self.report(run)
        return run

    def report(self, run: SelfTestRun) -> None:
        fleet = self._fleet()
        if fleet is None:
            return
        try:
            fleet.event("self_test", "self_test_passed" if run.ok else "self_test_failed",
                        "info" if run.ok else "major", run.text())
        except Exception as exc:  # noqa: BLE001 - the audit journal has the result; the fleet link may be down
            log.warning("self-test result not queued for the fleet: %s", type(exc).__name__)
