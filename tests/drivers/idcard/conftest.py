"""Fixtures for the ID card reader tests: a real ``kiosk-sim idcard`` process and the real driver on its pty."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

# hypothesis (the fuzz tests) keeps a cache folder; keep it under the ignored var/ instead of the repository root
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(__file__).resolve().parents[3] / "var" / "hypothesis"))

from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.idcard.simulator import load_identities
from drivers.sim.process import SimulatorProcess

#: short driver timeouts keep the fault tests fast; the defaults (2 s / 5 s) are for real readers
TIMEOUT_S = 0.5
READ_TIMEOUT_S = 0.8

T = TypeVar("T")


def _wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01,
                message: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., object]:
    """``wait_until(predicate, timeout=5.0)``: poll until truthy (returns the value) or fail at the deadline."""
    return _wait_until


@pytest.fixture(scope="session")
def identities() -> dict[str, IdentityDocument]:
    return load_identities()


@pytest.fixture(scope="module")
def _pty_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("idcard", "--pty") as sim:
        yield sim


@pytest.fixture
def sim(_pty_sim: SimulatorProcess) -> SimulatorProcess:
    """The module's pty simulator, with no card and no fault armed."""
    _pty_sim.control("clear_faults")
    _pty_sim.control("remove_card")
    return _pty_sim


@pytest.fixture
def make_reader() -> Iterator[Callable[..., Ga467SerialReader]]:
    """``make_reader(port, **settings)``: an opened driver with the fast test timeouts, closed after the test."""
    readers: list[Ga467SerialReader] = []

    def make(port: str, open_: bool = True, **settings: object) -> Ga467SerialReader:
        settings = {"timeout_s": TIMEOUT_S, "read_timeout_s": READ_TIMEOUT_S, **settings}
        reader = Ga467SerialReader(port=port, **settings)
        readers.append(reader)
        return reader.open() if open_ else reader  # type: ignore[return-value]

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture
def reader(sim: SimulatorProcess, make_reader: Callable[..., Ga467SerialReader]) -> Ga467SerialReader:
    return make_reader(sim.endpoints["pty"])
