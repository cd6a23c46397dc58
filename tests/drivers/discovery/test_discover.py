"""``kiosk-profile discover`` against the simulators, each started the way the kiosk starts it and found through its
own wire protocol: the GA 467 reader at a non-default speed (and one behind a serial-to-TCP server), ESC/POS
printers on TCP and on a serial line, the payment pad's three link kinds (nexo over HTTP, nexo and ECR framing on
serial lines), a QR scanner that speaks only when it scans, an MJPEG face camera beside a document camera (高拍仪:
told apart by their frames' size), and a CUPS queue on a private cupsd.
The proposed devices block must validate against each driver's settings schema and carry the settings that reach
each simulator."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import yaml

from drivers import registry
from drivers.base import settings_problems
from drivers.discovery import Confidence, DiscoveryOptions, Finding, discover, propose_devices
from drivers.sim.process import SimulatorProcess

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def simulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SimulatorProcess]]:
    frames = tmp_path_factory.mktemp("camera-frames")
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((120, 160, 3), 40 * i, np.uint8))
    specs = {
        "idcard": ("idcard", "--pty", "--baud", "38400"),
        "idcard_tcp": ("idcard", "--tcp", "127.0.0.1:0"),     # a reader behind a serial-to-TCP server
        "printer_tcp": ("receipt-printer", "--tcp", "127.0.0.1:0"),
        "printer_serial": ("receipt-printer", "--pty"),
        "pad_http": ("payment-pad", "--tcp", "127.0.0.1:0"),
        "pad_nexo_serial": ("payment-pad", "--pty", "--protocol", "nexo"),
        "pad_ecr": ("payment-pad", "--pty"),
        "qr": ("qr-scanner", "--pty"),
        "camera": ("camera", "--images", str(frames), "--tcp", "127.0.0.1:0", "--fps", "5"),
        "document_camera": ("document-camera", "--tcp", "127.0.0.1:0"),
        "cups": ("licence-printer",),
    }
    started: dict[str, SimulatorProcess] = {}
    try:
        for name, (kind, *args) in specs.items():
            started[name] = SimulatorProcess(kind, *args, start_timeout=30)
        yield started
    finally:
        for sim in started.values():      # all told to stop at once, then each waited for
            if sim.proc.poll() is None:
                os.killpg(sim.pid, signal.SIGTERM)
        for sim in started.values():
            sim.stop()


def test_discover_finds_every_simulator_with_the_right_settings(simulators: dict[str, SimulatorProcess]) -> None:
    ep = {name: sim.endpoints for name, sim in simulators.items()}
    ports = [ep[n]["pty"] for n in ("idcard", "printer_serial", "pad_nexo_serial", "pad_ecr", "qr")]
    hosts = [ep["printer_tcp"]["tcp"], ep["pad_http"]["tcp"], ep["camera"]["tcp"], ep["idcard_tcp"]["tcp"],
             ep["document_camera"]["tcp"]]
    stop = threading.Event()

    def scan_codes() -> None:   # the technician scans a code now and then while discover listens
        while not stop.wait(0.25):
            simulators["qr"].control("scan", code="TECHNICIAN-TEST-0001")

    scanner = threading.Thread(target=scan_codes, daemon=True)
    scanner.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "device_profiles.cli", "discover", "--no-local", "--json", "--listen", "4",
             "--ports", *ports, "--hosts", *hosts, "--cups", ep["cups"]["server"]],
            capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        stop.set()
        scanner.join()
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    found = {(f["kind"], f["driver"], f["address"]): f for f in out["findings"]}

    def one(kind: str, driver: str, address: str) -> dict:
        f = found.get((kind, driver, address))
        assert f is not None, f"{kind}/{driver} at {address} not found: {sorted(found)}"
        assert f["confidence"] == "high", f
        return f

    idcard = one("idcard", "ga467_serial", ep["idcard"]["pty"])
    assert idcard["settings"] == {"port": ep["idcard"]["pty"], "baud": 38400}
    assert "SAM id" in idcard["evidence"]
    assert one("idcard", "ga467_serial", ep["idcard_tcp"]["tcp"])["settings"] == \
        {"port": f"socket://{ep['idcard_tcp']['tcp']}"}
    host, port = ep["printer_tcp"]["tcp"].rsplit(":", 1)
    assert one("receipt_printer", "escpos", ep["printer_tcp"]["tcp"])["settings"] == \
        {"connection": "network", "host": host, "port": int(port)}
    assert one("receipt_printer", "escpos", ep["printer_serial"]["pty"])["settings"]["device"] == \
        ep["printer_serial"]["pty"]
    assert one("payment_pad", "nexo_tcp", ep["pad_http"]["tcp"])["settings"] == \
        {"url": ep["pad_http"]["url"], "poi_id": ep["pad_http"]["poiid"]}
    assert one("payment_pad", "nexo_serial", ep["pad_nexo_serial"]["pty"])["settings"]["poi_id"] == \
        ep["pad_nexo_serial"]["poiid"]
    assert one("payment_pad", "ecr_serial", ep["pad_ecr"]["pty"])["settings"]["port"] == ep["pad_ecr"]["pty"]
    qr = one("qr_scanner", "serial", ep["qr"]["pty"])
    assert "TECHNICIAN" not in qr["evidence"]        # what was scanned never shows (it may be a payment code)
    assert one("camera", "opencv", ep["camera"]["tcp"])["settings"] == {"source": ep["camera"]["url"]}
    document_camera = one("camera", "opencv", ep["document_camera"]["tcp"])
    assert document_camera["extra"]["size"] == ep["document_camera"]["size"]
    cups = one("licence_printer", "cups", f"{ep['cups']['server']}/{ep['cups']['queue']}")
    assert cups["settings"] == {"queue": ep["cups"]["queue"], "server": ep["cups"]["server"]}

    devices = out["devices"]
    assert set(devices) >= {"idcard", "receipt_printer", "payment_pad", "qr_scanner", "camera", "document_camera",
                            "licence_printer"}
    assert devices["camera"]["settings"] == {"source": ep["camera"]["url"]}
    assert devices["document_camera"]["settings"] == {"source": ep["document_camera"]["url"]}
    for kind, entry in devices.items():
        cls = registry.resolve(kind, entry["driver"])
        assert settings_problems(cls.SETTINGS_SCHEMA, entry["settings"]) == [], (kind, entry)


def test_a_silent_port_is_a_low_confidence_guess_and_nothing_listening_is_unknown() -> None:
    sim = SimulatorProcess("qr-scanner", "--pty")
    try:
        findings = discover(DiscoveryOptions(ports=[sim.endpoints["pty"], "/dev/ttyNOSUCH9"],
                                             hosts=[("127.0.0.1", 1)], local=False, timeout_s=0.15))
    finally:
        sim.stop()
    by_address = {f.address: f for f in findings}
    silent = by_address[sim.endpoints["pty"]]
    assert (silent.kind, silent.confidence) == ("qr_scanner", Confidence.LOW)
    assert "--listen" in silent.evidence
    assert by_address["/dev/ttyNOSUCH9"].kind == "unknown"
    assert by_address["127.0.0.1:1"].kind == "unknown"
    assert "nothing listens" in by_address["127.0.0.1:1"].evidence
    assert propose_devices(findings) == {}        # guesses are listed, never proposed


def test_two_cameras_the_document_camera_is_the_one_with_more_pixels_or_named_so() -> None:
    face = Finding("camera", "opencv", "/dev/video0", {"source": "/dev/video0"}, Confidence.HIGH, "",
                   {"name": "USB2.0 HD UVC WebCam", "size": [1280, 720]})
    doc = Finding("camera", "opencv", "/dev/video2", {"source": "/dev/video2"}, Confidence.HIGH, "",
                  {"name": "S500L Document Camera", "size": [640, 480]})
    devices = propose_devices([face, doc])
    assert devices["document_camera"]["settings"] == {"source": "/dev/video2"}
    assert devices["camera"]["settings"] == {"source": "/dev/video0"}
    big = Finding("camera", "opencv", "/dev/video4", {"source": "/dev/video4"}, Confidence.HIGH, "",
                  {"name": "camera", "size": [3264, 2448]})
    small = Finding("camera", "opencv", "/dev/video0", {"source": "/dev/video0"}, Confidence.HIGH, "",
                    {"name": "camera", "size": [640, 480]})
    assert propose_devices([small, big])["document_camera"]["settings"]["source"] == "/dev/video4"


def test_usb_printers_through_usblp_nodes_or_the_printer_class_interface(
        simulators: dict[str, SimulatorProcess], tmp_path: Path) -> None:
    from drivers.discovery.system_probe import usb_printers

    # a usblp node is a character device answering DLE EOT like the serial line: the simulator's pty stands in
    found = usb_printers(sys_root=str(tmp_path), dev_glob=simulators["printer_serial"].endpoints["pty"])
    assert [(f.kind, f.confidence, f.settings["connection"]) for f in found] == \
        [("receipt_printer", Confidence.HIGH, "file")]
    # no usblp node: the printer-class (07) interface in sysfs, for python-escpos' libusb connection
    device = tmp_path / "1-1.2"
    (device / "1-1.2:1.0").mkdir(parents=True)
    (device / "1-1.2:1.0" / "bInterfaceClass").write_text("07\n")
    for name, value in {"idVendor": "04b8", "idProduct": "0202", "manufacturer": "EPSON", "product": "TM-T88V"}.items():
        (device / name).write_text(value + "\n")
    (tmp_path / "1-1.2:1.0").symlink_to(device / "1-1.2:1.0")
    found = usb_printers(sys_root=str(tmp_path), dev_glob=str(tmp_path / "no-lp*"))
    assert [(f.settings, f.confidence) for f in found] == \
        [({"connection": "usb", "vendor_id": 0x04B8, "product_id": 0x0202}, Confidence.MEDIUM)]
    assert "EPSON TM-T88V" in found[0].evidence


def test_a_usb_serial_device_is_proposed_under_its_stable_name_with_its_usb_identity() -> None:
    from drivers.discovery.scan import with_usb

    found = Finding("idcard", "ga467_serial", "/dev/ttyUSB0", {"port": "/dev/ttyUSB0", "baud": 115200},
                    Confidence.HIGH, "GA 467 SAM id … at 115200 baud")
    usb = {"vendor": "1a86", "product": "7523", "usb_path": "1-1.2"}
    entry = propose_devices([with_usb(found, usb)])["idcard"]
    assert entry["settings"] == {"port": "/dev/kiosk-idcard", "baud": 115200}
    assert entry["usb"] == usb
    # what device_profiles/udev.py then writes for it gives exactly that name
    from device_profiles.loader import parse_profile
    from device_profiles.udev import rules_for

    profile = yaml.safe_load((ROOT / "device_profiles" / "example-kiosk.yaml").read_text("utf-8"))
    profile["devices"] = {"idcard": entry}
    rules, _ = rules_for(parse_profile(profile))
    assert [(r.name, r.warning) for r in rules] == [("kiosk-idcard", "")]
    assert 'KERNELS=="1-1.2"' in rules[0].text
    # not a USB device (a pty, a UART): unchanged
    assert with_usb(found, None) is found
