"""A kiosk core on the simulated profile (real simulators, real drivers, the real platform server), no Kivy."""
from __future__ import annotations

import queue
from typing import Any, Iterator

import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


class Core:
    """The core with its events collected, and helpers to wait for them and to call callback-style methods."""

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

    def identify(self, who: str = "zhang") -> None:
        self.core.devices.simulators["idcard"].control("place_card", identity=who)
        self.next_event("identified")

    def receipts(self) -> list[dict[str, Any]]:
        return self.core.devices.simulators["receipt_printer"].control("receipts")["receipts"]


def call(method: Any, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Run a flow method that answers through callbacks; return its result or raise its error."""
    box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
    method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)), **kwargs)
    ok, value = box.get(timeout=timeout)
    if not ok:
        raise value
    return value


@pytest.fixture
def kiosk(make_profile, clock) -> Iterator[Core]:
    core = KioskCore(load_profile(make_profile(), environ={}), clock=clock)
    wrapped = Core(core)
    core.start()
    try:
        yield wrapped
    finally:
        core.stop()


@pytest.fixture(name="call")
def call_fixture() -> Any:
    return call
