"""Payment codes (付款码): the serial QR scanner and its simulator, and the payment-code terminal that hands the
code to the pad's acquirer — real processes, real drivers."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest

from drivers.base import DeviceState
from drivers.payment.base import PaymentEvent, TxnStatus, code_wallet
from drivers.payment.code_pay import CodePaymentTerminal
from drivers.payment.ecr_pad import EcrPaymentPad
from drivers.qr_scanner.serial_scanner import SerialQrScanner
from drivers.sim.process import SimulatorProcess

WECHAT = "134567890123456789"
ALIPAY = "281234567890123456"


@pytest.fixture(scope="module")
def scanner_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("qr-scanner", "--pty") as sim:
        yield sim


@pytest.fixture
def scanner(scanner_sim: SimulatorProcess) -> Iterator[SerialQrScanner]:
    with SerialQrScanner(port=scanner_sim.endpoints["pty"]) as s:
        yield s  # type: ignore[misc]


def test_code_formats() -> None:
    assert code_wallet(WECHAT) == "wechat_pay" and code_wallet(ALIPAY) == "alipay"
    assert code_wallet("12345") is None and code_wallet("https://example.org") is None


def test_scanner_reads_one_line_per_code_and_skips_what_came_before(scanner_sim: SimulatorProcess,
                                                                     scanner: SerialQrScanner,
                                                                     wait_for: Callable[..., Any]) -> None:
    assert scanner.status().device is DeviceState.ONLINE
    assert scanner.read_code(0.1) is None
    scanner_sim.control("scan", code="stale")
    wait_for(lambda: scanner._port().in_waiting >= 6, 2.0, what="the stale code on the line")
    scanner.flush()
    scanner_sim.control("scan_noise", n=5)
    scanner_sim.control("scan", code=WECHAT)
    got = scanner.read_code(2.0)
    assert got is not None and got.endswith(WECHAT)   # noise before the code stays on the line of the code
    scanner_sim.control("scan", code=ALIPAY)
    assert scanner.read_code(2.0) == ALIPAY


def test_code_payment_through_the_pad_acquirer(scanner_sim: SimulatorProcess, scanner: SerialQrScanner,
                                               pad_sim: Any, make_pad: Callable[..., EcrPaymentPad]) -> None:
    terminal = CodePaymentTerminal(scanner, make_pad(pad_sim.endpoints["pty"]))
    events: list[PaymentEvent] = []
    terminal.set_listener(events.append)
    txn = terminal.start("C1", 600)
    assert terminal.wait(txn, 0.1).reason == "waiting_for_code"
    scanner_sim.control("scan", code=ALIPAY)
    deadline = time.monotonic() + 5
    while (result := terminal.wait(txn, 0.5)).status is TxnStatus.PENDING and time.monotonic() < deadline:
        pass
    assert result.status is TxnStatus.APPROVED and result.method == "alipay" and not result.card_masked
    assert "code_scanned" in [e.type for e in events]
    assert terminal.query("C1").status is TxnStatus.APPROVED
    # no code shown: cancelling costs nothing and reaches nobody
    txn = terminal.start("C2", 600)
    assert terminal.cancel(txn).status is TxnStatus.CANCELLED
    assert pad_sim.control("ledger")["ledger"].keys() == {"C1"}


@pytest.fixture(params=["simulator", pytest.param("hardware", marks=pytest.mark.hardware)])
def scanner_target(request: pytest.FixtureRequest, scanner_sim: SimulatorProcess) -> Iterator[tuple[Any, Any]]:
    """(scanner, show(code)): the simulator scans on command; on hardware the technician shows the code."""
    if request.param == "hardware":
        import os

        port = os.environ.get("KIOSK_QR_PORT")
        if not request.config.getoption("--hardware") or not port:
            pytest.skip("real scanner: run with --hardware and KIOSK_QR_PORT=<serial port>")
        with SerialQrScanner(port=port, baud=int(os.environ.get("KIOSK_QR_BAUD", "9600"))) as s:
            yield s, lambda code: print(f"\n>>> show a QR code containing {code!r} to the scanner", flush=True)
    else:
        with SerialQrScanner(port=scanner_sim.endpoints["pty"]) as s:
            yield s, lambda code: scanner_sim.control("scan", code=code)


def test_contract_a_shown_code_is_read_once(scanner_target: tuple[Any, Any]) -> None:
    scanner, show = scanner_target
    assert scanner.status().device is DeviceState.ONLINE
    scanner.flush()
    show(WECHAT)
    assert scanner.read_code(60.0) == WECHAT
    assert scanner.read_code(0.3) is None
