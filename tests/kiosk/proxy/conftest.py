"""代办 and feedback tests: the shared core harness (tests/kiosk/conftest.py) on the simulated profile."""
from __future__ import annotations

import pytest


@pytest.fixture
def kiosk(make_harness):
    return make_harness()


@pytest.fixture
def face_verified_later(monkeypatch):
    """face_verified_later(): from now on, platform sessions open as card+face (as tests/kiosk/conftest.py's
    ``face_verified``), for a test that first shows what a card-only session may not do."""
    from kiosk.usecases import identify

    real = identify.open_platform_session

    def switch() -> None:
        monkeypatch.setattr(identify, "open_platform_session", lambda platform, citizen, face_match=None: real(
            platform, citizen, face_match=True if face_match is None else face_match))

    return switch
