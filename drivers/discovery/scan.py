"""Run every probe (serial ports and hosts in parallel) and turn the findings into a proposed ``devices`` block."""
from __future__ import annotations

import glob
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from drivers.discovery import network_probe, serial_probe, system_probe
from drivers.discovery.model import RANK, Confidence, Finding

log = logging.getLogger(__name__)

#: the stable names deploy/udev gives kiosk devices (device_profiles/udev.py)
STABLE_NAMES = "/dev/kiosk-*"


@dataclass
class DiscoveryOptions:
    #: serial ports to ask besides the system's (a pty, /dev/ttyUSB3, socket://host:port)
    ports: list[str] = field(default_factory=list)
    #: HOST:PORT candidates (printers on 9100, pads' terminal API, IP cameras, serial-to-TCP readers)
    hosts: list[tuple[str, int]] = field(default_factory=list)
    #: seconds a silent serial port is listened to for a scanned code (0: not listened to)
    listen_s: float = 0.0
    #: ask this print server (host[:port] or socket path) instead of the system's
    cups_server: str | None = None
    #: scan port 9100 on this subnet (only when asked)
    subnet_9100: str | None = None
    #: the raw printer port that scan asks (9100; another only where a site maps it elsewhere)
    subnet_port: int = network_probe.RAW_PRINTER_PORT
    #: also ask what the machine itself has: its serial ports, pcscd, the system's CUPS, cameras
    local: bool = True
    #: per-question timeout
    timeout_s: float = 0.3


def system_serial_ports() -> list[str]:
    """Serial ports with hardware behind them (pyserial's list: USB adapters, ACM, real UARTs) and the kiosk's
    stable names."""
    from serial.tools import list_ports

    ports = sorted(p.device for p in list_ports.comports())
    return sorted(set(ports) | set(glob.glob(STABLE_NAMES)) - set(glob.glob("/dev/kiosk-*cam*")))


#: the settings field naming a serial device, per kind (device_profiles/udev.py gives it a stable name)
SERIAL_FIELDS = {"idcard": "port", "payment_pad": "port", "qr_scanner": "port", "receipt_printer": "device"}
#: the stable names device_profiles/udev.py gives each kind
STABLE = {"idcard": "/dev/kiosk-idcard", "payment_pad": "/dev/kiosk-pad", "qr_scanner": "/dev/kiosk-qr",
          "receipt_printer": "/dev/kiosk-printer"}


def usb_identities() -> dict[str, dict[str, str]]:
    """Serial port → its USB identity (vendor, product, serial number, port path) as pyserial reads it from sysfs."""
    from serial.tools import list_ports

    out: dict[str, dict[str, str]] = {}
    for p in list_ports.comports():
        if p.vid is None or p.pid is None:
            continue
        usb = {"vendor": f"{p.vid:04x}", "product": f"{p.pid:04x}"}
        if p.serial_number:
            usb["serial"] = str(p.serial_number)
        elif p.location:
            usb["usb_path"] = str(p.location).split(":")[0]
        out[p.device] = usb
    return out


def with_usb(finding: Finding, usb: dict[str, str] | None) -> Finding:
    """A serial finding of a USB device with its ``usb`` identity (for the udev rule) and the stable name in its
    settings instead of today's /dev/ttyUSBn; others unchanged."""
    field_name = SERIAL_FIELDS.get(finding.kind)
    if not usb or field_name is None or finding.settings.get(field_name) != finding.address:
        return finding
    settings = {**finding.settings, field_name: STABLE[finding.kind]}
    return Finding(finding.kind, finding.driver, finding.address, settings, finding.confidence,
                   f"{finding.evidence}; USB {usb['vendor']}:{usb['product']}", {**finding.extra, "usb": usb})


def discover(options: DiscoveryOptions) -> list[Finding]:
    """Every finding, devices first (best confidence first), then what answered nothing."""
    ports = list(dict.fromkeys([*options.ports, *(system_serial_ports() if options.local else [])]))
    jobs: list[Any] = []
    with ThreadPoolExecutor(max_workers=max(4, len(ports) + len(options.hosts) + 3)) as pool:
        jobs += [pool.submit(serial_probe.probe_serial_port, port, options.timeout_s, options.listen_s)
                 for port in ports]
        jobs += [pool.submit(network_probe.probe_host, host, port, max(options.timeout_s, 0.4))
                 for host, port in options.hosts]
        if options.subnet_9100:
            jobs.append(pool.submit(network_probe.scan_subnet_9100, options.subnet_9100, port=options.subnet_port))
        if options.local:
            jobs.append(pool.submit(system_probe.pcsc_readers))
            jobs.append(pool.submit(system_probe.cameras))
            jobs.append(pool.submit(system_probe.usb_printers))
        if options.local or options.cups_server:
            jobs.append(pool.submit(system_probe.cups_queues, options.cups_server))
        findings: list[Finding] = []
        for job in jobs:
            result = job.result()
            findings += result if isinstance(result, list) else [result]
    usb = usb_identities() if ports else {}
    findings = [with_usb(f, usb.get(f.address)) for f in findings]
    return sorted(findings, key=lambda f: (f.kind == "unknown", -RANK[f.confidence], f.kind, f.address))


def _frame_area(f: Finding) -> int:
    size = f.extra.get("size") or [0, 0]
    return int(size[0]) * int(size[1])


def propose_devices(findings: list[Finding]) -> dict[str, dict[str, Any]]:
    """A profile's ``devices`` block from the findings: per kind the most certain one; LOW findings (a silent
    port, an unanswered printer port) are listed by discover but never proposed. With two cameras the one with more
    pixels, or a name saying document (高拍仪), is proposed as the ``document_camera``."""
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        if f.kind != "unknown" and f.confidence is not Confidence.LOW:
            by_kind.setdefault(f.kind, []).append(f)
    devices: dict[str, dict[str, Any]] = {}
    cams = sorted(by_kind.pop("camera", []), key=lambda f: -RANK[f.confidence])
    if len(cams) >= 2:
        def doc_score(f: Finding) -> tuple[int, int]:
            name = str(f.extra.get("name", "")).lower()
            return (any(w in name for w in ("doc", "高拍", "visualizer", "scanner")), _frame_area(f))

        doc = max(cams, key=doc_score)
        devices["document_camera"] = _entry(doc)
        cams = [c for c in cams if c is not doc]
    if cams:
        devices["camera"] = _entry(cams[0])
    for kind, items in sorted(by_kind.items()):
        best = sorted(items, key=lambda f: -RANK[f.confidence])[0]
        devices[kind] = _entry(best)
    return devices


def _entry(f: Finding) -> dict[str, Any]:
    entry: dict[str, Any] = {"driver": f.driver, "required": f.kind in ("idcard", "receipt_printer")}
    if f.extra.get("usb"):
        entry["usb"] = dict(f.extra["usb"])
    entry["settings"] = dict(f.settings)
    return entry
