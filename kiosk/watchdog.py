"""systemd notification and the shell's liveness check (no Kivy here; the shell calls it from its UI loop).

``sd_notify`` is one datagram on the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract
namespace): ``READY=1`` once the attract screen is shown, ``WATCHDOG=1`` heartbeats every ``WATCHDOG_USEC / 2``,
``STATUS=…`` lines for ``systemctl status``, ``STOPPING=1`` on a clean stop. No dependency: the protocol is that one
``sendto``.

The heartbeats are sent *from the UI loop itself* (a Kivy ``Clock`` interval), so a UI thread that hangs stops them and
systemd (``WatchdogSec=``) kills and restarts the shell. A second check, :class:`Liveness`, stops them too when the
loop still runs but no frame has been drawn for too long (the shell asks for a redraw at every heartbeat, so a healthy
static screen draws at least once per interval). See docs/kiosk-session.md for what is and is not detected (a frozen
touch panel cannot be told apart from nobody touching it).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping

log = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    if path.startswith("@"):
        return "\0" + path[1:]   # abstract namespace
    return path


def sd_notify(message: str, socket_path: str | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1\\nSTATUS=…"``) to the supervisor. False when there is none (not started by
    systemd) or the datagram could not be sent; never raises."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), _address(path))
        return True
    except OSError as exc:
        log.warning("sd_notify failed: %s", type(exc).__name__)
        return False


class Notifier:
    """The supervisor as the environment describes it: ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``,
    which must be this process when set)."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        own = pid if pid is not None else os.getpid()
        try:
            self.watchdog_s = int(usec) / 1_000_000 if usec else 0.0
        except ValueError:
            self.watchdog_s = 0.0
        if watchdog_pid and watchdog_pid.isdigit() and int(watchdog_pid) != own:
            self.watchdog_s = 0.0   # the watchdog is meant for another process (our parent, say)
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.socket_path)

    @property
    def heartbeat_interval_s(self) -> float:
        """Half the watchdog period (what sd_watchdog_enabled(3) recommends); 0 when no watchdog is asked for."""
        return self.watchdog_s / 2 if self.enabled and self.watchdog_s > 0 else 0.0

    def notify(self, *lines: str) -> bool:
        if not self.enabled or not lines:
            return False
        ok = sd_notify("\n".join(lines), self.socket_path)
        self.sent += ok
        return ok

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def heartbeat(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


class Liveness:
    """Is the shell alive *as a citizen sees it*? Called from the UI loop: :meth:`frame` on every frame drawn,
    :meth:`input` on every touch/key, :meth:`check` at every heartbeat. The loop calling :meth:`check` proves the UI
    thread runs; a frame within ``stall_s`` proves rendering runs (the caller requests a redraw at each heartbeat)."""

    #: loop iterations without a frame (a redraw being asked) before rendering counts as stalled: a loop that is
    #: itself blocked does not iterate — that is the heartbeat's own job (it is late), not this check's
    MIN_TICKS = 10

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic,
                 ticks: Callable[[], int] | None = None) -> None:
        self.stall_s = stall_s
        self._clock = clock
        self._ticks = ticks
        started = clock()
        self.last_frame = started
        self._ticks_at_frame = ticks() if ticks else 0
        self.last_input: float | None = None
        self.frames = 0
        self.inputs = 0

    def frame(self) -> None:
        self.frames += 1
        self.last_frame = self._clock()
        if self._ticks is not None:
            self._ticks_at_frame = self._ticks()

    def input(self) -> None:
        self.inputs += 1
        self.last_input = self._clock()

    def check(self) -> tuple[bool, str]:
        """(alive, reason): not alive when no frame has been drawn for more than ``stall_s`` although the loop kept
        running (``ticks``, when given: at least :attr:`MIN_TICKS` loop iterations since the last frame)."""
        since = self._clock() - self.last_frame
        if since > self.stall_s:
            if self._ticks is not None and self._ticks() - self._ticks_at_frame < self.MIN_TICKS:
                return True, ""   # the loop was blocked, not the rendering: this beat is simply late
            return False, f"no frame drawn for {since:.0f} s"
        return True, ""

    def input_age_s(self) -> float | None:
        return None if self.last_input is None else self._clock() - self.last_input


class Heartbeat:
    """One heartbeat decision per call (from a UI-loop timer): send ``WATCHDOG=1`` when :class:`Liveness` says the
    shell is alive, otherwise withhold it (and say why once in ``STATUS=``) so systemd restarts the shell."""

    def __init__(self, notifier: Notifier, liveness: Liveness) -> None:
        self.notifier = notifier
        self.liveness = liveness
        self.withheld = 0
        self._reported: str = ""

    def beat(self) -> bool:
        alive, reason = self.liveness.check()
        if alive:
            if self._reported:
                self.notifier.status("alive again")
                log.warning("liveness recovered (%s before)", self._reported)
                self._reported = ""
            return self.notifier.heartbeat()
        self.withheld += 1
        if not self._reported:   # once per episode (the reason's figure grows at every beat)
            log.error("watchdog heartbeat withheld: %s", reason)
            self.notifier.status(f"unhealthy: {reason}")
            self._reported = reason
        return False
