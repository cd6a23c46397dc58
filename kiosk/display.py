"""A display for the shell when the machine has none: a private Xvfb, found with ``-displayfd``, stopped by PID."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess


class XvfbUnavailable(RuntimeError):
    code = "xvfb_unavailable"


class Xvfb:
    def __init__(self, width: int = 1920, height: int = 1080, depth: int = 24) -> None:
        if shutil.which("Xvfb") is None:
            raise XvfbUnavailable("Xvfb is not installed (apt-get install xvfb); run `make setup`")
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}", "-nolisten", "tcp",
             "-noreset"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # Xvfb writes the display number once it accepts connections
        if not number:
            self.stop()
            raise XvfbUnavailable("Xvfb did not start")
        self.display = f":{number}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> "Xvfb":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
