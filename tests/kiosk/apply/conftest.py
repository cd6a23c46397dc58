"""The application-flow tests use the shared core harness (tests/kiosk/conftest.py) on the simulated profile."""
from __future__ import annotations

import pytest


@pytest.fixture
def harness(make_harness):
    return make_harness()
