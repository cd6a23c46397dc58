"""Fixtures for the payment use case: the real platform (session), a real pad simulator and QR scanner simulator
(module), the real drivers, a journal in a temporary folder, and fresh platform orders (a filed application with a
fee creates one)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from drivers.payment.code_pay import CodePaymentTerminal
from drivers.payment.ecr_pad import EcrPaymentPad
from drivers.qr_scanner.serial_scanner import SerialQrScanner
from drivers.sim.process import SimulatorProcess
from kiosk.payments.journal import PaymentJournal
from kiosk.payments.service import PaymentConfig, PaymentService
from kiosk.platform_client import MaterialRef, PaymentOrder, PlatformClient
from kiosk.request_signing import KioskRequestSigner

KIOSK_ID = "KSK-340302-0001"
WANG = ("230202197511053015", "王建国")
FAST_TIMING = {"card_s": 0.05, "pin_s": 0.05, "host_s": 0.05, "pin_timeout_s": 0.3, "card_timeout_s": 0.5}
FAST_DRIVER = {"ack_timeout_s": 0.2, "retries": 2, "response_timeout_s": 1.5, "keepalive_s": 0.3}
#: the payment devices as a profile names them (simulated: the device manager starts kiosk-sim for each)
PAYMENT_DEVICES = {
    "devices__payment_pad": {"driver": "ecr_serial", "required": False, "simulate": True, "settings": {}},
    "devices__qr_scanner": {"driver": "serial", "required": False, "simulate": True, "settings": {}},
}
FAST_CONFIG = PaymentConfig(wait_slice_s=0.1, sale_timeout_s=5.0, query_interval_s=0.2, give_up_s=1.5,
                            qr_poll_s=0.1, qr_timeout_s=1.5)


@pytest.fixture
def payment_profile(make_profile: Callable[..., Path]) -> Path:
    """The demo profile plus a simulated payment pad and QR scanner."""
    return make_profile(**PAYMENT_DEVICES)


@pytest.fixture
def platform(platform_server: Any) -> Iterator[PlatformClient]:
    signer = KioskRequestSigner.from_file(KIOSK_ID, os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(platform_server.url, KIOSK_ID, signer, timeout_s=10)
    try:
        yield client
    finally:
        client.close()


def file_with_fee(client: PlatformClient) -> PaymentOrder:
    """A driving-licence renewal (fee 10 yuan) filed at this kiosk: its payment order, pending."""
    token = client.open_citizen_session(*WANG, "resident_id", face_match=True).token
    certs = {c.type_code: c.id for c in client.my_e_certificates(token)}
    filed = client.file_application(
        token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                           "phone": "13905520004"},
        [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
         MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
    (order,) = filed.payment_orders
    return order


@pytest.fixture
def new_order(platform: PlatformClient) -> Callable[[], PaymentOrder]:
    return lambda: file_with_fee(platform)


@pytest.fixture
def phone_pays(platform_server: Any, wallet: Any) -> Callable[..., Any]:
    """phone_pays(order, method="wechat_pay") → the httpx answer: what the citizen's wallet does after scanning the
    cashier QR — its payment provider's signed notification to the platform (tests/conftest.py ``wallet``)."""
    return lambda order, method="wechat_pay": wallet.pay(platform_server.url, order.order_no, order.amount_fen,
                                                         method)


@pytest.fixture(scope="module")
def _pad_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("payment-pad", "--pty") as sim:
        yield sim


@pytest.fixture
def pad_sim(_pad_sim: SimulatorProcess) -> SimulatorProcess:
    _pad_sim.control("reset")
    _pad_sim.control("set_timing", **FAST_TIMING)
    return _pad_sim


@pytest.fixture(scope="module")
def scanner_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("qr-scanner", "--pty") as sim:
        yield sim


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[PaymentJournal]:
    j = PaymentJournal(tmp_path / "payments.sqlite3")
    yield j
    j.close()


class Kit:
    """The service with its devices, as the kiosk core wires it."""

    def __init__(self, journal: PaymentJournal, platform: PlatformClient, pad_port: str,
                 scanner_port: str | None, config: PaymentConfig) -> None:
        self.pad = EcrPaymentPad(port=pad_port, **FAST_DRIVER).open()
        self.scanner = SerialQrScanner(port=scanner_port).open() if scanner_port else None
        self.code = CodePaymentTerminal(self.scanner, self.pad) if self.scanner else None
        self.prompts: list[str] = []
        self.events: list[tuple[str, dict]] = []
        self.service = PaymentService(journal, platform, lambda ch: self.pad if ch == "card" else self.code,
                                      config, listener=self._on)

    def _on(self, name: str, payload: dict) -> None:
        self.events.append((name, payload))
        if name == "prompt":
            self.prompts.append(payload["key"])

    def close(self) -> None:
        self.pad.close()
        if self.scanner:
            self.scanner.close()


@pytest.fixture
def make_kit(journal: PaymentJournal, platform: PlatformClient) -> Iterator[Callable[..., Kit]]:
    kits: list[Kit] = []

    def make(pad_sim: SimulatorProcess, scanner_sim: SimulatorProcess | None = None,
             config: PaymentConfig = FAST_CONFIG) -> Kit:
        kit = Kit(journal, platform, pad_sim.endpoints["pty"],
                  scanner_sim.endpoints["pty"] if scanner_sim else None, config)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        kit.close()
