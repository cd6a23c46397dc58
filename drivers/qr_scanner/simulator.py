"""``kiosk-sim qr-scanner [--pty] [--control HOST:PORT]`` — a serial QR scanner on a pseudo-terminal.

First stdout line: ``{"kind": "qr-scanner", "pty": "/dev/pts/8", "control": "127.0.0.1:40123"}``. Control::

    scan code=134567890123456789      (the scanner reads that code: it sends it + CR)
    scan_noise n=8                    (n bytes of line noise without a terminator)
    status
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

from drivers.idcard.simulator import PtyLink
from drivers.sim.control import ControlServer


class SimulatedScanner:
    def __init__(self, link: PtyLink) -> None:
        self.link = link
        self.scans = 0
        self._lock = threading.Lock()

    def handlers(self) -> dict[str, Any]:
        return {"scan": self.scan, "scan_noise": self.scan_noise, "status": self.status}

    def scan(self, code: str) -> dict[str, Any]:
        text = str(code)
        if "\r" in text or "\n" in text or not text:
            raise ValueError("a code is one non-empty line")
        with self._lock:
            self.scans += 1
            sent = self.link.write(text.encode("utf-8") + b"\r")
        return {"sent": sent, "scans": self.scans}

    def scan_noise(self, n: int = 8) -> dict[str, Any]:
        with self._lock:
            self.link.write(bytes(b for b in os.urandom(int(n) * 2) if b not in (0x0D, 0x0A))[: int(n)])
        return {}

    def status(self) -> dict[str, Any]:
        return {"scans": self.scans}


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    link = PtyLink()
    scanner = SimulatedScanner(link)
    control = ControlServer(scanner.handlers(), *args.control).start()
    try:
        print(json.dumps({"kind": "qr-scanner", "pty": link.path, "control": control.address}), flush=True)
        while not stop_event.is_set():
            link.read(0.2)   # the scanner ignores what the host sends (no configuration commands emulated)
    finally:
        link.close()
        control.stop()
    sys.stdout.flush()
