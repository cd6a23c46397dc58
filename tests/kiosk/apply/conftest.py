"""A kiosk core on the simulated profile against the test platform (real simulators, drivers and server)."""
from __future__ import annotations

import queue
from typing import Any

import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


class CoreHarness:
    def __init__(self, core: KioskCore) -> None:
        self.core = core
        self.events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
        core.subscribe(lambda name, payload: self.events.put((name, payload)))

    def next_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            try:
                got, payload = self.events.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {name!r} event within {timeout} s")
            if got == name:
                return payload

    def identify(self, identity: str) -> None:
        self.core.devices.simulators["idcard"].control("place_card", identity=identity)
        self.next_event("identified")


def _call(method: Any, *args: Any, timeout: float = 20.0, **kwargs: Any) -> Any:
    """Run a method that answers through callbacks; return its result or raise its error."""
    box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
    method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)), **kwargs)
    ok, value = box.get(timeout=timeout)
    if not ok:
        raise value
    return value


@pytest.fixture
def make_harness(make_profile, clock):
    """``make_harness(**profile_overrides)``: a started core (stopped after the test)."""
    cores: list[KioskCore] = []

    def make(**overrides: Any) -> CoreHarness:
        core = KioskCore(load_profile(make_profile(**overrides), environ={}), clock=clock)
        h = CoreHarness(core)
        cores.append(core)
        core.start()
        return h

    try:
        yield make
    finally:
        for core in cores:
            core.stop()


@pytest.fixture
def harness(make_harness):
    return make_harness()


@pytest.fixture
def call():
    """``call(method, *args)``: run a method that answers through callbacks; its result, or its error raised."""
    return _call
