"""Fixtures for the payment pad tests: a real ``kiosk-sim payment-pad`` process and the real driver on its pty."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(__file__).resolve().parents[3] / "var" / "hypothesis"))

from drivers.payment.ecr_pad import EcrPaymentPad  # noqa: E402
from drivers.sim.process import SimulatorProcess  # noqa: E402

#: fast pad timings and driver timeouts for the simulator; real pads take seconds per step
FAST_TIMING = {"card_s": 0.05, "pin_s": 0.05, "host_s": 0.05, "pin_timeout_s": 0.3, "card_timeout_s": 0.5}
FAST_DRIVER = {"ack_timeout_s": 0.3, "retries": 2, "response_timeout_s": 2.0, "keepalive_s": 0.4}


@pytest.fixture(scope="module")
def _pad_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("payment-pad", "--pty") as sim:
        yield sim


@pytest.fixture
def pad_sim(_pad_sim: SimulatorProcess) -> SimulatorProcess:
    """The module's pad simulator: empty ledger, no scenario queued, fast timings."""
    _pad_sim.control("reset")
    _pad_sim.control("set_timing", **FAST_TIMING)
    return _pad_sim


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
