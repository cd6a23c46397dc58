"""A kiosk core on the simulated profile plus a simulated licence printer (a private cupsd with a cups-pdf queue),
real drivers, the real platform server; no Kivy."""
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


#: a licence printer whose simulator the device manager starts (fast polling: the defaults are for real printers)
LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}


@pytest.fixture
def kiosk(make_profile, clock) -> Iterator[Core]:
    core = KioskCore(load_profile(make_profile(devices__licence_printer=LICENCE_PRINTER), environ={}), clock=clock)
    wrapped = Core(core)
    core.start()
    try:
        yield wrapped
    finally:
        core.stop()


@pytest.fixture(name="call")
def call_fixture() -> Any:
    return call


@pytest.fixture
def plain_kiosk(make_profile, clock) -> Iterator[Core]:
    """The simulated profile without its licence printer."""
    import yaml

    path = make_profile()
    data = yaml.safe_load(path.read_text("utf-8"))
    data["devices"].pop("licence_printer", None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    core = KioskCore(load_profile(path, environ={}), clock=clock)
    wrapped = Core(core)
    core.start()
    try:
        yield wrapped
    finally:
        core.stop()
