"""Start a ``kiosk-sim <kind>`` (or any server of ours), read its endpoints from its first stdout line, stop it by PID.

Used by the kiosk's device manager (profiles with ``simulate: true``), by the demo and by the tests, so all three
start simulators the same way.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from drivers.sim.control import send_command


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent dies (even by kill -9), so a crashed
    kiosk leaves no orphaned simulators holding ports. Linux ties this to the *thread* that started the child: start
    managed processes from the main thread or a long-lived pool thread, never from a short-lived thread."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


class SimulatorStartError(RuntimeError):
    code = "simulator_start_failed"


class ManagedProcess:
    """A child process (own process group) whose first stdout line is a JSON object, kept as ``endpoints``.

    Used for every server the project starts for itself: simulators, the service platform, the kiosk shell.
    """

    def __init__(self, cmd: list[str], name: str, start_timeout: float = 15.0, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.kind = name
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=None, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True, cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.endpoints: dict[str, Any] = self._read_first_line(start_timeout)

    def _read_first_line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                self.stop()
                raise SimulatorStartError(f"{self.kind} gave no endpoints within {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise SimulatorStartError(f"{self.kind} exited with {self.proc.wait()}")
            line += chunk
        sel.close()
        return json.loads(line.split(b"\n", 1)[0])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def kill(self) -> None:
        """Kill at once (SIGKILL to the process group: no goodbye, like a pulled plug or a crash) and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "ManagedProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorProcess(ManagedProcess):
    """A running ``kiosk-sim <kind>``. ``endpoints`` names ``pty``/``tcp``, ``control``…"""

    def __init__(self, kind: str, *args: str, start_timeout: float = 15.0, env: dict[str, str] | None = None) -> None:
        super().__init__([sys.executable, "-m", "drivers.sim.cli", kind, *args], f"kiosk-sim {kind}",
                         start_timeout, env)
        self.kind = kind

    def control(self, cmd: str, **args: Any) -> dict[str, Any]:
        return send_command(self.endpoints["control"], cmd, **args)
