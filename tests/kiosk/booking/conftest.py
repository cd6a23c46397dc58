"""Booking and delivery tests: the shared core harness (tests/kiosk/conftest.py) on the simulated profile."""
from __future__ import annotations

import pytest


@pytest.fixture
def kiosk(make_harness):
    return make_harness()
