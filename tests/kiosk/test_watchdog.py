"""sd_notify as the one datagram it is, the supervisor's environment, and the liveness decision behind WATCHDOG=1
(no Kivy: the shell calls these from its UI loop; tests/e2e/test_watchdog.py checks the real shell)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kiosk.watchdog import Heartbeat, Liveness, Notifier, sd_notify


@pytest.fixture
def supervisor(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_one_datagram_per_message(supervisor) -> None:
    path, sock = supervisor
    assert sd_notify("READY=1\nSTATUS=attract shown", path)
    assert sock.recv(4096) == b"READY=1\nSTATUS=attract shown"


def test_abstract_namespace() -> None:
    name = f"@kiosk-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": name}).heartbeat()
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_no_supervisor_no_error(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.heartbeat_interval_s == 0
    assert notifier.ready("x") is False
    assert sd_notify("READY=1", str(tmp_path / "nobody-listens")) is False   # logged, never raised


def test_environment(supervisor) -> None:
    path, sock = supervisor
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"}, pid=42)
    assert notifier.heartbeat_interval_s == 10.0
    assert Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "41"},
                    pid=42).heartbeat_interval_s == 0   # meant for another process
    assert Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "bogus"}, pid=42).heartbeat_interval_s == 0
    notifier.ready("in service: attract")
    notifier.stopping()
    assert sock.recv(4096) == b"READY=1\nSTATUS=in service: attract"
    assert sock.recv(4096) == b"STOPPING=1"


def test_heartbeat_withheld_when_no_frame_is_drawn(supervisor, clock) -> None:
    path, sock = supervisor
    liveness = Liveness(stall_s=15, clock=clock)
    beat = Heartbeat(Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"}), liveness)
    for _ in range(3):          # frames keep coming: heartbeats
        clock.advance(10)
        liveness.frame()
        assert beat.beat()
        assert sock.recv(64) == b"WATCHDOG=1"
    clock.advance(10)           # the loop runs (it calls beat) but nothing has been drawn for 10 s: still fine
    assert beat.beat()
    assert sock.recv(64) == b"WATCHDOG=1"
    clock.advance(10)           # 20 s without a frame: withheld, said once
    assert not beat.beat()
    assert sock.recv(256) == b"STATUS=unhealthy: no frame drawn for 20 s"
    clock.advance(10)
    assert not beat.beat() and beat.withheld == 2
    liveness.frame()            # drawing again (before systemd acted): heartbeats resume
    assert beat.beat()
    assert sock.recv(64) == b"STATUS=alive again"
    assert sock.recv(64) == b"WATCHDOG=1"


def test_input_is_counted(clock) -> None:
    liveness = Liveness(stall_s=5, clock=clock)
    assert liveness.input_age_s() is None
    liveness.input()
    clock.advance(3)
    assert liveness.input_age_s() == 3 and liveness.inputs == 1


def test_a_blocked_loop_is_not_a_render_stall(clock) -> None:
    """When the UI loop itself was blocked, the heartbeat is late (systemd's own check); the frame check only fires
    when the loop kept iterating without drawing."""
    ticks = {"n": 0}
    liveness = Liveness(stall_s=3, clock=clock, ticks=lambda: ticks["n"])
    clock.advance(5)            # blocked: no iteration, no frame
    ticks["n"] += 1
    assert liveness.check() == (True, "")
    ticks["n"] += Liveness.MIN_TICKS   # iterating, redraw asked, still nothing drawn
    alive, reason = liveness.check()
    assert not alive and "no frame drawn" in reason
    liveness.frame()
    assert liveness.check() == (True, "")
