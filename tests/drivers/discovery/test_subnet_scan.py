"""``kiosk-profile discover --subnet``: raw printer ports on a subnet, asked DLE EOT and nothing else. Run on
loopback (127.0.0.0/29) at the printer simulator's own port instead of 9100 (the scan's ``port`` keyword): the
simulator answers on 127.0.0.1, a listener that accepts and stays silent sits on 127.0.0.2, nothing listens on
127.0.0.3-6."""
from __future__ import annotations

import inspect
import socket
import threading
from typing import Iterator

import pytest

from drivers.discovery import Confidence, DiscoveryOptions, discover, propose_devices
from drivers.discovery.network_probe import scan_subnet_9100
from drivers.discovery.serial_probe import DLE_EOT_PRINTER
from drivers.sim.process import SimulatorProcess

SUBNET = "127.0.0.0/29"


class SilentPort:
    """Accepts connections on HOST:PORT, answers nothing, keeps what it was sent."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_server((host, port))
        self.received = b""
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            while chunk := conn.recv(4096):
                self.received += chunk
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(timeout=5)


@pytest.fixture
def printer() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", start_timeout=30)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def silent(printer: SimulatorProcess) -> Iterator[SilentPort]:
    port = SilentPort("127.0.0.2", int(printer.endpoints["tcp"].rsplit(":", 1)[1]))
    try:
        yield port
    finally:
        port.close()


def test_the_subnet_scan_finds_the_printer_simulator_and_skips_addresses_where_nothing_listens(
        printer: SimulatorProcess, silent: SilentPort) -> None:
    host, port = printer.endpoints["tcp"].rsplit(":", 1)
    findings = discover(DiscoveryOptions(subnet_9100=SUBNET, subnet_port=int(port), local=False, timeout_s=0.3))

    by_address = {f.address: f for f in findings}
    printer_found = by_address[f"{host}:{port}"]
    assert (printer_found.kind, printer_found.driver, printer_found.confidence) == \
        ("receipt_printer", "escpos", Confidence.HIGH)
    assert printer_found.settings == {"connection": "network", "host": host, "port": int(port)}
    assert "DLE EOT" in printer_found.evidence
    # the addresses where nothing listens say nothing (no "unknown" line for each of them)
    assert set(by_address) == {f"{host}:{port}", f"127.0.0.2:{port}"}
    assert not [f for f in findings if f.kind == "unknown"]
    # the port that accepts but never answers: a guess (a printer without a back channel?), listed, never proposed
    guess = by_address[f"127.0.0.2:{port}"]
    assert (guess.kind, guess.confidence) == ("receipt_printer", Confidence.LOW)
    assert "unanswered" in guess.evidence
    assert propose_devices(findings) == {"receipt_printer": {
        "driver": "escpos", "required": True, "settings": {"connection": "network", "host": host, "port": int(port)}}}

    # a raw printer port prints whatever it is sent: the scan sent status questions only, and nothing came out
    assert set(silent.received) <= set(DLE_EOT_PRINTER), silent.received
    assert DLE_EOT_PRINTER in silent.received
    status = printer.control("status")
    assert status["receipts"] == 0 and status["data_bytes"] == 0, status


def test_the_subnet_scan_is_bounded_and_9100_by_default() -> None:
    with pytest.raises(ValueError, match="at most 1024"):
        scan_subnet_9100("10.0.0.0/21")
    assert DiscoveryOptions().subnet_port == 9100
    assert inspect.signature(scan_subnet_9100).parameters["port"].default == 9100
