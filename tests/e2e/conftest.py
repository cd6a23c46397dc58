"""The real kiosk shell in a real X window (Xvfb), pressed with real X mouse clicks (xdotool), read through its
automation endpoint, and photographed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from drivers.sim.control import send_command
from drivers.sim.process import ManagedProcess
from kiosk.display import Xvfb

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def xvfb() -> Iterator[Xvfb]:
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.fail("Xvfb and xdotool are required (make setup installs them)")
    display = Xvfb(1920, 1920)  # square: room for the landscape and the portrait layouts
    try:
        yield display
    finally:
        display.stop()


class KioskUI:
    """Drive a running kiosk shell like a person: look at the screen, press buttons."""

    def __init__(self, proc: ManagedProcess, display: str, shots: Path) -> None:
        self.proc = proc
        self.display = display
        self.address = proc.endpoints["automation"]
        self.shots = shots

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = send_command(self.address, cmd, timeout=15, **args)
        assert reply.get("ok"), reply
        return reply

    def state(self) -> dict[str, Any]:
        return self.ask("state")

    def texts(self) -> list[str]:
        return self.ask("texts")["texts"]

    def find(self, aid: str) -> dict[str, Any]:
        return self.ask("find", aid=aid)

    def tap(self, aid: str, wait: Callable[..., Any]) -> None:
        """Press the widget named ``aid`` with a real X click once it is visible and enabled."""
        where = wait(lambda: (lambda f: f if f["found"] and not f["disabled"] else None)(self.find(aid)),
                     what=f"{aid} visible and enabled")
        subprocess.run(["xdotool", "mousemove", str(where["x"]), str(where["y"]), "click", "1"],
                       env={**os.environ, "DISPLAY": self.display}, check=True, timeout=10)

    def wait_screen(self, name: str, wait: Callable[..., Any], timeout: float = 15) -> None:
        wait(lambda: self.state()["screen"] == name, timeout=timeout, what=f"screen {name}")

    def wait_text(self, fragment: str, wait: Callable[..., Any], timeout: float = 15) -> str:
        return wait(lambda: next((t for t in self.texts() if fragment in t), None), timeout=timeout,
                    what=f"text containing {fragment!r}")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.ask("screenshot", path=str(path))
        assert path.exists() and path.stat().st_size > 10_000, f"screenshot {path} missing or empty"
        return path

    def simulators(self, wait: Callable[..., Any]) -> dict[str, Any]:
        # the card reader and the printer at least (the profile may simulate more devices)
        return wait(lambda: (lambda s: s if {"idcard", "receipt_printer"} <= set(s) else None)(
            {k: v for k, v in self.ask("simulators").items() if k != "ok"}), what="simulators started")


@pytest.fixture
def start_kiosk(xvfb: Xvfb, make_profile, output_dir: Path, tmp_path: Path) -> Iterator[Callable[..., KioskUI]]:
    procs: list[ManagedProcess] = []

    def start(**profile_overrides: Any) -> KioskUI:
        profile = make_profile(**profile_overrides)
        env = {"DISPLAY": xvfb.display, "KIVY_HOME": str(tmp_path / "kivy-home"), "KIVY_NO_ARGS": "1",
               "KIVY_NO_FILELOG": "1", "KIVY_LOG_MODE": "PYTHON"}
        proc = ManagedProcess([sys.executable, "-m", "screens.cli", "run", "--profile", str(profile), "--windowed",
                               "--automation", "127.0.0.1:0"], "kiosk", start_timeout=60, env=env)
        procs.append(proc)
        return KioskUI(proc, xvfb.display, output_dir)

    try:
        yield start
    finally:
        for proc in procs:
            proc.stop(timeout=15)
