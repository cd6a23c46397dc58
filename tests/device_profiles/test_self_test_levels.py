"""Self-test levels (``kiosk-profile self-test --level …``) against simulators started as a technician meets real
devices: the simulators run on their own, the profile points the real drivers at their pty / TCP port
(``simulate: false``), and the test plays the technician through the simulators' control endpoints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from drivers.sim.process import SimulatorProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Camera frames: a packaged face photo (drivers/camera/samples.py), and an empty grey wall."""
    import cv2
    import numpy as np

    from drivers.camera.samples import sample_photo_path

    face, wall = tmp_path_factory.mktemp("face"), tmp_path_factory.mktemp("wall")
    cv2.imwrite(str(face / "0001.png"), cv2.resize(cv2.imread(str(sample_photo_path("astronaut"))), (640, 640)))
    cv2.imwrite(str(wall / "0001.png"), np.full((480, 640, 3), 128, np.uint8))
    return {"face": face, "wall": wall}


@pytest.fixture(scope="module")
def sims(frames: dict[str, Path]) -> Iterator[dict[str, SimulatorProcess]]:
    started = {"idcard": SimulatorProcess("idcard", "--pty"),
               "receipt_printer": SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0"),
               "camera": SimulatorProcess("camera", "--images", str(frames["face"]), "--tcp", "127.0.0.1:0"),
               "payment_pad": SimulatorProcess("payment-pad", "--tcp", "127.0.0.1:0"),
               "licence_printer": SimulatorProcess("licence-printer")}
    try:
        yield started
    finally:
        for sim in started.values():
            sim.stop()


@pytest.fixture
def profile(tmp_path: Path, sims: dict[str, SimulatorProcess]) -> Path:
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    host, _, port = sims["receipt_printer"].endpoints["tcp"].rpartition(":")
    data["kiosk"]["data_dir"] = str(tmp_path / "data")
    data["devices"] = {
        "idcard": {"driver": "ga467_serial", "required": True,
                   "settings": {"port": sims["idcard"].endpoints["pty"], "baud": 115200}},
        "receipt_printer": {"driver": "escpos", "required": True,
                            "settings": {"connection": "network", "host": host, "port": int(port),
                                         "profile": "TM-T88V", "paper_width_mm": 80}},
        "camera": {"driver": "opencv", "required": False,
                   "settings": {"source": sims["camera"].endpoints["url"]}},
        "payment_pad": {"driver": "nexo_tcp", "required": False,
                        "settings": {"url": sims["payment_pad"].endpoints["url"],
                                     "poi_id": sims["payment_pad"].endpoints["poiid"]}},
        "licence_printer": {"driver": "cups", "required": False,
                            "settings": {"queue": sims["licence_printer"].endpoints["queue"],
                                         "server": sims["licence_printer"].endpoints["server"],
                                         "poll_interval_s": 0.1}},
    }
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def self_test(profile: Path, *args: str, stdin: str = "") -> tuple[int, dict[str, Any], str]:
    result = subprocess.run([sys.executable, "-m", "device_profiles.cli", "self-test", str(profile), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=90, input=stdin)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def test_printer_out_of_paper_passes_internal_and_fails_external_with_the_reason(
        profile: Path, sims: dict[str, SimulatorProcess]) -> None:
    printer = sims["receipt_printer"]
    printer.control("set_paper", state="out")
    try:
        code, report, _ = self_test(profile, "--level", "internal")
        assert code == 0, report
        assert report["results"]["receipt_printer"]["ok"] is True
        assert "paper out" in report["results"]["receipt_printer"]["checks"][1]["detail"]

        printed_before = len(printer.control("receipts")["receipts"])
        code, report, _ = self_test(profile, "--level", "external", "--device", "receipt_printer")
        assert code == 1
        result = report["results"]["receipt_printer"]
        assert result["ok"] is False and result["reason"] == "paper_out"
        assert report["devices"]["receipt_printer"] == {"ok": False, "reason": "paper_out", "level": "external"}
        assert len(printer.control("receipts")["receipts"]) == printed_before   # nothing half-printed
    finally:
        printer.control("set_paper", state="ok")


def test_external_prints_a_slip_with_qr_and_reads_the_technicians_card_masked(
        profile: Path, sims: dict[str, SimulatorProcess]) -> None:
    sims["idcard"].control("place_card", identity="zhang")
    full_number = yaml.safe_load((ROOT / "drivers" / "idcard" / "sim_identities.yaml").read_text("utf-8"))[
        "zhang"]["id_number"]
    code, report, stderr = self_test(profile, "--level", "external", "--card-timeout", "20")
    assert code == 0, (report, stderr)
    card = report["results"]["idcard"]["checks"][-1]
    assert card["name"] == "card_read" and card["ok"] is True
    assert card["detail"] == full_number[:4] + "*" * 10 + full_number[-4:]
    assert full_number not in json.dumps(report) + stderr   # only the masked number leaves the tool
    slip = sims["receipt_printer"].control("receipts")["receipts"][-1]
    assert "KIOSK-SELF-TEST" in json.dumps(slip, ensure_ascii=False)
    assert "place the technician" in stderr.lower()


def test_external_without_a_card_fails_with_no_card(profile: Path, sims: dict[str, SimulatorProcess]) -> None:
    sims["idcard"].control("remove_card")
    code, report, _ = self_test(profile, "--level", "external", "--device", "idcard", "--card-timeout", "1")
    assert code == 1
    assert report["results"]["idcard"]["reason"] == "no_card"


def test_interactive_asks_the_technician(profile: Path) -> None:
    code, report, stderr = self_test(profile, "--level", "interactive", "--device", "receipt_printer",
                                     stdin="y\nn\n")
    assert code == 1
    checks = {c["name"]: c for c in report["results"]["receipt_printer"]["checks"]}
    assert checks["confirm:slip_readable"]["ok"] is True
    assert checks["confirm:qr_scans"] == {"name": "confirm:qr_scans", "ok": False, "code": "technician_refused",
                                          "detail": ""}
    assert "QR" in stderr


def test_external_camera_needs_a_face(profile: Path, sims: dict[str, SimulatorProcess],
                                      frames: dict[str, Path]) -> None:
    code, report, _ = self_test(profile, "--level", "external", "--device", "camera")
    assert code == 0, report
    checks = {c["name"]: c for c in report["results"]["camera"]["checks"]}
    assert checks["face_found"]["ok"] is True and checks["frame"]["detail"]
    sims["camera"].control("set_source", path=str(frames["wall"]))
    try:
        code, report, _ = self_test(profile, "--level", "external", "--device", "camera", "--face-timeout", "2")
        assert code == 1 and report["results"]["camera"]["reason"] == "no_face"
    finally:
        sims["camera"].control("set_source", path=str(frames["face"]))


def test_external_pad_answers_its_diagnosis_and_cups_prints_a_test_page(
        profile: Path, sims: dict[str, SimulatorProcess]) -> None:
    cups = sims["licence_printer"]
    pages_before = len(cups.control("outputs")["outputs"])
    code, report, _ = self_test(profile, "--level", "external", "--device", "payment_pad", "--device",
                                "licence_printer")
    assert code == 0, report
    pad = {c["name"]: c for c in report["results"]["payment_pad"]["checks"]}
    assert pad["loopback"] == {"name": "loopback", "ok": True, "code": "", "detail": "diagnosis answered"}
    page = {c["name"]: c for c in report["results"]["licence_printer"]["checks"]}["test_page"]
    assert page["ok"] is True and page["detail"].startswith("completed")
    assert len(cups.control("outputs")["outputs"]) == pages_before + 1   # the page went through cupsd to its backend

    cups.control("set_offline", offline=True)
    try:
        code, report, _ = self_test(profile, "--level", "external", "--device", "licence_printer")
        assert code == 1 and report["results"]["licence_printer"]["ok"] is False
        assert report["results"]["licence_printer"]["reason"] == "printer_offline"
    finally:
        cups.control("set_offline", offline=False)
