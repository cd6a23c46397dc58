"""What the kiosk-core tests of several capabilities share: a started core on the simulated profile (real simulators,
real drivers, the real platform server; no Kivy) with its events collected, and ``call`` for callback-style methods."""
from __future__ import annotations

import queue
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


class CoreHarness:
    """The core with its events collected, and helpers to wait for them."""

    def __init__(self, core: KioskCore) -> None:
        self.core = core
        self.events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
        core.subscribe(lambda name, payload: self.events.put((name, payload)))

    def next_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the named event (others are skipped)."""
        while True:
            try:
                got, payload = self.events.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {name!r} event within {timeout} s")
            if got == name:
                return payload

    def identify(self, who: str = "zhang") -> None:
        """Place the simulated ID card of ``who`` and wait until the core has identified the citizen."""
        self.core.devices.simulators["idcard"].control("place_card", identity=who)
        self.next_event("identified")

    def receipts(self) -> list[dict[str, Any]]:
        """What the receipt printer emulator has printed (decoded text, QR, PNG path)."""
        return self.core.devices.simulators["receipt_printer"].control("receipts")["receipts"]


def call_back(method: Any, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Run a method that answers through ``on_result``/``on_error``; return its result or raise its error."""
    box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
    method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)), **kwargs)
    ok, value = box.get(timeout=timeout)
    if not ok:
        raise value
    return value


@pytest.fixture
def make_harness(make_profile, clock) -> Iterator[Callable[..., CoreHarness]]:
    """``make_harness(profile_path=None, **profile_overrides)``: a started core (stopped after the test)."""
    cores: list[KioskCore] = []

    def make(profile_path: Path | None = None, **overrides: Any) -> CoreHarness:
        core = KioskCore(load_profile(profile_path or make_profile(**overrides), environ={}), clock=clock)
        harness = CoreHarness(core)
        cores.append(core)
        core.start()
        return harness

    try:
        yield make
    finally:
        for core in cores:
            core.stop()


@pytest.fixture
def call() -> Callable[..., Any]:
    """``call(method, *args)``: run a callback-style method; its result, or its error raised."""
    return call_back


@pytest.fixture
def face_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    """The card holder passed the face check: platform sessions open as ``card+face`` on these camera-less test
    profiles (a ``card`` session may not file, pay, read e-certificates or ask for delivery: kiosk/identity_levels.py).
    For flow tests that are about the flow, not about identity levels."""
    from kiosk.usecases import identify

    real = identify.open_platform_session

    def as_face_verified(platform: Any, citizen: Any, face_match: bool | None = None) -> str:
        return real(platform, citizen, face_match=True if face_match is None else face_match)

    monkeypatch.setattr(identify, "open_platform_session", as_face_verified)
