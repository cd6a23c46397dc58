"""Fixtures for the receipt printer: a real ``kiosk-sim receipt-printer`` process and the real driver talking to it."""
from __future__ import annotations

import socket
from typing import Any, Callable, Iterator

import pytest

from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess

#: short status timeouts keep the fault tests fast; the defaults (2 s, 0.2 s poll) are for real printers
FAST = {"timeout_s": 1.0, "poll_interval_s": 0.05, "job_timeout_s": 5.0}


@pytest.fixture(scope="module")
def _tcp_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    out = tmp_path_factory.mktemp("receipts")
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out", str(out)) as sim:
        yield sim


@pytest.fixture
def sim(_tcp_sim: SimulatorProcess) -> SimulatorProcess:
    """The module's emulator, back at power-on state: paper ok, cover closed, online, no receipts."""
    _tcp_sim.control("reset")
    return _tcp_sim


@pytest.fixture
def make_printer(sim: SimulatorProcess) -> Iterator[Callable[..., EscposReceiptPrinter]]:
    """``make_printer(**settings)``: the real driver on the emulator's TCP port, closed after the test."""
    made: list[EscposReceiptPrinter] = []

    def make(**settings: Any) -> EscposReceiptPrinter:
        host, port = sim.endpoints["tcp"].rsplit(":", 1)
        printer = EscposReceiptPrinter(**{"connection": "network", "host": host, "port": int(port), **FAST,
                                          **settings})
        made.append(printer)
        return printer

    yield make
    for printer in made:
        printer.close()


@pytest.fixture
def printer(make_printer: Callable[..., EscposReceiptPrinter]) -> EscposReceiptPrinter:
    return make_printer()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
