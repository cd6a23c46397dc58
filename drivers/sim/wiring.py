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
    # photographed pages of a sample form (drivers/document_camera/simulator.py)
    "document_camera": ("document-camera", ("--tcp", "127.0.0.1:0"), lambda ep: {"source": ep["url"]}),
}


#: (device kind, driver name) → the same, for drivers of one kind that need another simulator set-up
SIMULATED_DRIVERS: dict[tuple[str, str], tuple[str, tuple[str, ...], Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    # nexo Sale-to-POI: the terminal API over HTTP (POST /nexo), or the same JSON in ECR frames on a pty
    ("payment_pad", "nexo_tcp"): ("payment-pad", ("--tcp", "127.0.0.1:0"),
                                  lambda ep: {"url": ep["url"], "poi_id": ep["poiid"]}),
    ("payment_pad", "nexo_serial"): ("payment-pad", ("--pty", "--protocol", "nexo"),
                                     lambda ep: {"port": ep["pty"], "poi_id": ep["poiid"]}),
}


def _entry(kind: str, driver: str | None):  # type: ignore[no-untyped-def]
    return SIMULATED_DRIVERS.get((kind, driver or "")) or SIMULATED_KINDS[kind]


def simulator_for(kind: str, driver: str | None = None) -> tuple[str, tuple[str, ...]]:
    sim_kind, args, _ = _entry(kind, driver)
    return sim_kind, args


def settings_from_endpoints(kind: str, endpoints: Mapping[str, Any], driver: str | None = None) -> dict[str, Any]:
    return _entry(kind, driver)[2](endpoints)


def placeholder_settings(kind: str, driver: str | None = None) -> dict[str, Any]:
    """The settings a simulator will supply, with stand-in values, for validating a profile before start-up."""
    return settings_from_endpoints(kind, {"pty": "/dev/null", "tcp": "127.0.0.1:9100", "control": "127.0.0.1:1",
                                          "reader": "Virtual PCD 00 00", "server": "/run/cups/cups.sock",
                                          "queue": "KioskPDF", "url": "http://127.0.0.1:1/stream.mjpg",
                                          "poiid": "SIMPOI-0001"}, driver)
