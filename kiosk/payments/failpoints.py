"""Fault injection for the crash tests: ``KIOSK_PAYMENT_CRASH_AT=<point>`` makes the process kill itself with
SIGKILL (exactly a ``kill -9``: no cleanup, no flush) when the payment flow reaches that point. Points are named
after the journal state just committed (``after:started``, ``after:approved``, …) or the action about to happen
(``before:confirm``). Unset in production: then :func:`hit` is one dict lookup."""
from __future__ import annotations

import os
import signal

ENV = "KIOSK_PAYMENT_CRASH_AT"


def hit(point: str) -> None:
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
