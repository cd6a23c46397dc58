"""Fixtures shared by the device driver suites."""
from __future__ import annotations

import threading

import pytest


class CardEventRecorder:
    """Collects card events from a watcher thread (ID reader or PC/SC), for the watcher tests."""

    def __init__(self) -> None:
        self.events: list = []
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        with self._lock:
            self.events.append(event)

    @property
    def types(self) -> list[str]:
        with self._lock:
            return [e.type for e in self.events]

    def count(self, kind: str) -> int:
        return self.types.count(kind)


@pytest.fixture
def recorder() -> CardEventRecorder:
    return CardEventRecorder()
