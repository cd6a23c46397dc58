"""How a simulator's endpoints become the settings of the real driver that talks to it.

The device manager (profiles with ``simulate: true``), the demo and the tests all use this one table, so the driver
code under test is exactly the code a kiosk runs with hardware.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

#: device kind (profile name) → (kiosk-sim kind, extra arguments, endpoints → settings overrides)
SIMULATED_KINDS: dict[str, tuple[str, tuple[str, ...], Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "idcard": ("idcard", ("--pty",), lambda ep: {"port": ep["pty"]}),
    "receipt_printer": (
        "receipt-printer", ("--tcp", "127.0.0.1:0"),
        lambda ep: {"connection": "network", "host": ep["tcp"].rpartition(":")[0],
                    "port": int(ep["tcp"].rpartition(":")[2])},
    ),
    # needs pcscd running with the vpcd reader (scripts/pcscd.sh); the card process connects to vpcd
    "smartcard": ("smartcard", (), lambda ep: {"reader": ep["reader"]}),
    "licence_printer": ("licence-printer", (), lambda ep: {"server": ep["server"], "queue": ep["queue"]}),
    "payment_pad": ("payment-pad", ("--pty",), lambda ep: {"port": ep["pty"]}),
    "qr_scanner": ("qr-scanner", ("--pty",), lambda ep: {"port": ep["pty"]}),
    # the demo clip (a packaged photo blinking and turning), built on first use; a profile may name other settings
    "camera": ("camera", ("--demo", "var/demo/camera-live.avi", "--tcp", "127.0.0.1:0"), lambda ep: {"source": ep["url"]}),
}


def simulator_for(kind: str) -> tuple[str, tuple[str, ...]]:
    sim_kind, args, _ = SIMULATED_KINDS[kind]
    return sim_kind, args


def settings_from_endpoints(kind: str, endpoints: Mapping[str, Any]) -> dict[str, Any]:
    return SIMULATED_KINDS[kind][2](endpoints)


def placeholder_settings(kind: str) -> dict[str, Any]:
    """The settings a simulator will supply, with stand-in values, for validating a profile before start-up."""
    return settings_from_endpoints(kind, {"pty": "/dev/null", "tcp": "127.0.0.1:9100", "control": "127.0.0.1:1",
                                          "reader": "Virtual PCD 00 00", "server": "/run/cups/cups.sock",
                                          "queue": "KioskPDF", "url": "http://127.0.0.1:1/stream.mjpg"})
