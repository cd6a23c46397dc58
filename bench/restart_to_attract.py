"""kill -9 → restarted → attract shown (READY=1), as systemd's Restart=always does it (target < 5 s).

This script is the supervisor: it binds a notify socket, starts the real shell (simulated profile, private Xvfb, a
reference platform) with NOTIFY_SOCKET and WATCHDOG_USEC, waits for READY=1, then N times: SIGKILL the shell, start it
again at once, and time kill → READY=1 (the attract screen drawn). systemd adds RestartSec (0.3 s in
deploy/systemd/kiosk.service) on top. Run: ``.venv/bin/python bench/restart_to_attract.py [--runs 5]``.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import simulated_profile, start_platform  # noqa: E402

from drivers.sim.process import ManagedProcess  # noqa: E402
from kiosk.display import Xvfb  # noqa: E402


def wait_ready(sock: socket.socket, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        if "READY=1" in sock.recv(4096).decode().split("\n"):
            return time.monotonic()
    raise TimeoutError("no READY=1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    platform = start_platform(work)
    profile = simulated_profile(work, platform.endpoints["url"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(work / "notify.sock"))
    times = []
    with Xvfb(1920, 1080) as display:
        env = {"DISPLAY": display.display, "KIVY_HOME": str(work / "kivy"), "KIVY_NO_ARGS": "1",
               "NOTIFY_SOCKET": str(work / "notify.sock"), "WATCHDOG_USEC": "30000000"}
        cmd = [sys.executable, "-m", "screens.cli", "run", "--profile", str(profile), "--windowed"]
        started = time.monotonic()
        kiosk = ManagedProcess(cmd, "kiosk", start_timeout=60, env=env)
        print(f"first start → READY=1 {wait_ready(sock) - started:.2f} s")
        try:
            for i in range(args.runs):
                time.sleep(3)   # let it settle (devices, simulators, guide refresh) as a running kiosk would be
                killed = time.monotonic()
                kiosk.kill()   # SIGKILL to the process group, reaped
                kiosk = ManagedProcess(cmd, "kiosk", start_timeout=60, env=env)
                ready = wait_ready(sock)
                times.append(ready - killed)
                print(f"run {i + 1}: kill -9 → restarted → attract shown (READY=1) {times[-1]:.2f} s")
        finally:
            kiosk.stop(timeout=15)
    sock.close()
    platform.stop()
    print(f"kill -9 → attract shown: median {statistics.median(times):.2f} s, max {max(times):.2f} s (target < 5 s; "
          f"systemd adds RestartSec=300ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
