"""Fixtures for the payment pad tests: real ``kiosk-sim payment-pad`` processes (the legacy ECR layer on a pty; a nexo
POI on HTTP and on a pty) and the real drivers talking to them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(__file__).resolve().parents[3] / "var" / "hypothesis"))

from drivers.payment.base import PaymentPad  # noqa: E402
from drivers.payment.ecr_pad import EcrPaymentPad  # noqa: E402
from drivers.payment.nexo_pad import NexoSerialPaymentPad, NexoTcpPaymentPad  # noqa: E402
from drivers.sim.process import SimulatorProcess  # noqa: E402

#: fast pad timings and driver timeouts for the simulator; real pads take seconds per step
FAST_TIMING = {"card_s": 0.05, "pin_s": 0.05, "host_s": 0.05, "pin_timeout_s": 0.3, "card_timeout_s": 0.5}
FAST_DRIVER = {"ack_timeout_s": 0.3, "retries": 2, "response_timeout_s": 2.0, "keepalive_s": 0.4}
FAST_NEXO = {"response_timeout_s": 2.0, "keepalive_s": 0.2, "payment_timeout_s": 30.0}
#: the pad drivers the contract runs over: the nexo POI on HTTP and on serial, and the legacy ECR layer
PAD_DRIVERS = ("nexo_tcp", "nexo_serial", "ecr_serial")


@pytest.fixture(scope="module")
def _pad_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("payment-pad", "--pty") as sim:
        yield sim


@pytest.fixture(scope="module")
def _nexo_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("payment-pad", "--tcp", "127.0.0.1:0", "--pty", "--protocol", "nexo") as sim:
        yield sim


@pytest.fixture
def pad_sim(_pad_sim: SimulatorProcess) -> SimulatorProcess:
    """The module's pad simulator: empty ledger, no scenario queued, fast timings."""
    _pad_sim.control("reset")
    _pad_sim.control("set_timing", **FAST_TIMING)
    return _pad_sim


@pytest.fixture
def ecr_sim(_pad_sim: SimulatorProcess) -> SimulatorProcess:
    """The ECR pad simulator (as ``pad_sim``, under a name test modules do not override)."""
    _pad_sim.control("reset")
    _pad_sim.control("set_timing", **FAST_TIMING)
    return _pad_sim


@pytest.fixture
def nexo_sim(_nexo_sim: SimulatorProcess) -> SimulatorProcess:
    """The module's nexo POI simulator (HTTP and pty): empty ledger, no scenario queued, fast timings."""
    _nexo_sim.control("reset")
    _nexo_sim.control("set_timing", **FAST_TIMING)
    return _nexo_sim


@pytest.fixture
def make_driver() -> Iterator[Callable[..., PaymentPad]]:
    """make_driver(driver_name, sim_endpoints_or_settings, **settings) → an open pad driver."""
    pads: list[PaymentPad] = []

    def make(driver: str, endpoints: dict, **settings: object) -> PaymentPad:
        if driver == "nexo_tcp":
            pad: PaymentPad = NexoTcpPaymentPad(url=endpoints["url"], poi_id=endpoints["poiid"],
                                                **{**FAST_NEXO, **settings})
        elif driver == "nexo_serial":
            pad = NexoSerialPaymentPad(port=endpoints["pty"], poi_id=endpoints["poiid"],
                                       **{**FAST_NEXO, "ack_timeout_s": 0.3, "retries": 2, **settings})
        else:
            pad = EcrPaymentPad(port=endpoints["pty"], **{**FAST_DRIVER, **settings})
        pads.append(pad)
        return pad.open()  # type: ignore[return-value]

    yield make
    for pad in pads:
        pad.close()


@pytest.fixture(params=PAD_DRIVERS)
def driver_and_sim(request: pytest.FixtureRequest) -> tuple[str, SimulatorProcess]:
    """(driver name, the simulator it talks to), for every pad driver."""
    sim = request.getfixturevalue("ecr_sim" if request.param == "ecr_serial" else "nexo_sim")
    return request.param, sim


@pytest.fixture
def make_pad() -> Iterator[Callable[..., EcrPaymentPad]]:
    pads: list[EcrPaymentPad] = []

    def make(port: str, **settings: object) -> EcrPaymentPad:
        pad = EcrPaymentPad(port=port, **{**FAST_DRIVER, **settings})
        pads.append(pad)
        return pad.open()  # type: ignore[return-value]

    yield make
    for pad in pads:
        pad.close()
