"""Staying up for months: what the kiosk does after an unexpected exception (no Kivy here).

The shell routes every exception that would otherwise end its loop (Kivy's ``ExceptionManager``), every worker
exception nobody handles (:class:`kiosk.workers.Workers` ``unhandled``) and every uncaught exception in a thread
(``threading.excepthook``) to :meth:`CrashRecovery.handle`, which

1. logs the exception's type and stack — never its message or local variables, which may hold a citizen's name or ID
   number (:func:`describe_exception`; the logging scrub filter still runs over it);
2. ends the citizen session with the usual wipe (``KioskCore.end_session("error")``);
3. reports an alarm to the fleet (device ``app``, code ``app_exception``);
4. counts it in the :class:`CrashPolicy`: ``limit`` exceptions within ``window_s`` take the kiosk out of service
   (``KioskCore.set_maintenance``) and raise a critical ``crash_loop`` alarm for operators.

The shell itself then shows "please start again" on the attract screen (spoken too) and keeps running.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kiosk.privacy import scrub

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)

#: maintenance reason set when the crash policy takes the kiosk out of service (operators bring it back with the
#: fleet's back_in_service command, or a restart)
CRASH_LOOP_REASON = "crash_loop"
_ROOT = str(Path(__file__).resolve().parents[1]) + "/"


def _short(filename: str) -> str:
    if filename.startswith(_ROOT):
        return filename[len(_ROOT):]
    marker = "site-packages/"
    return filename.split(marker, 1)[1] if marker in filename else filename


def describe_exception(exc: BaseException, limit: int = 40) -> str:
    """The exception's type and stack (file, line, function), its causes too, and nothing else: the message, the
    local variables and the source lines are left out because they may carry personal data."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 5:
        seen.add(id(current))
        lines = [f"{type(current).__module__}.{type(current).__qualname__} (message withheld)"]
        for frame in traceback.extract_tb(current.__traceback__)[-limit:]:
            lines.append(f"  {_short(frame.filename)}:{frame.lineno} in {frame.name}")
        parts.append("\n".join(lines))
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return scrub("\n  caused by / during: ".join(parts))


@dataclass(frozen=True)
class CrashDecision:
    count: int               # exceptions within the window, this one included
    out_of_service: bool     # this one took the kiosk out of service


class CrashPolicy:
    """``limit`` unexpected exceptions within ``window_s`` seconds → out of service. Once it has decided, it starts
    counting from zero (an operator who brings the kiosk back gets a fresh window)."""

    def __init__(self, limit: int = 3, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit ≥ 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def record(self) -> CrashDecision:
        with self._lock:
            now = self._clock()
            self.total += 1
            self._times.append(now)
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            count = len(self._times)
            if count >= self.limit:
                self._times.clear()
                return CrashDecision(count, True)
            return CrashDecision(count, False)

    def recent(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._times if now - t <= self.window_s)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


class CrashRecovery:
    """Handles one unexpected exception for the kiosk (see the module docstring). Never raises."""

    #: a flood (the same broken callback every frame) logs one line per exception and one alarm per interval
    QUIET_S = 10.0

    def __init__(self, ctx: "UseCaseContext", policy: CrashPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.policy = policy or CrashPolicy(clock=clock)
        self.handled = 0
        self._clock = clock
        self._lock = threading.RLock()
        self._last_full: dict[str, float] = {}   # exception type → when its stack was last logged / alarmed

    def handle(self, exc: BaseException, where: str = "ui") -> CrashDecision:
        with self._lock:
            self.handled += 1
            decision = self.policy.record()
            kind = type(exc).__name__
            now = self._clock()
            quiet = now - self._last_full.get(kind, float("-inf")) < self.QUIET_S
            try:
                if quiet:
                    log.error("unexpected %s in %s again (%d within %.0f s)", kind, where, decision.count,
                              self.policy.window_s)
                else:
                    log.error("unexpected %s in %s (%d within %.0f s); the citizen session is ended:\n%s", kind,
                              where, decision.count, self.policy.window_s, describe_exception(exc))
            except Exception:  # noqa: BLE001 - logging must not take the handler down
                pass
            if not quiet:
                self._last_full[kind] = now
            self._step("audit", lambda: self.ctx.audit("crash", where=where, type=kind, count=decision.count))
            self._step("end session", lambda: self.ctx.end_session("error"))
            if not quiet:
                self._step("alarm", lambda: self._alarm("app_exception", "major", f"{kind} in {where}"))
            if decision.out_of_service:
                log.critical("%d unexpected exceptions within %.0f s: the kiosk goes out of service",
                             decision.count, self.policy.window_s)
                self._step("out of service", lambda: self.ctx.set_maintenance(CRASH_LOOP_REASON))
                self._step("alarm", lambda: self._alarm(
                    "crash_loop", "critical", f"{decision.count} exceptions within {self.policy.window_s:.0f} s; "
                                              f"out of service"))
            return decision

    def _alarm(self, code: str, severity: str, text: str) -> None:
        fleet = getattr(self.ctx, "fleet", None)
        if fleet is not None:
            fleet.alarm(code, severity, text)

    @staticmethod
    def _step(what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failing step must not stop the others
            log.error("crash recovery: %s failed: %s", what, type(exc).__name__)


def is_expected(exc: BaseException) -> bool:
    """Errors the flows know and show (typed device, kiosk and platform errors) — not crashes."""
    from drivers.errors import DeviceError
    from kiosk.errors import KioskError

    return isinstance(exc, (DeviceError, KioskError))
