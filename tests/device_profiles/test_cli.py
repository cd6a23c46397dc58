from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device_profiles.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_validate_ok():
    result = run("validate", str(ROOT / "device_profiles" / "simulated.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "idcard" in result.stdout


def test_validate_names_bad_fields(tmp_path):
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["devices"]["receipt_printer"]["settings"]["paper_width_mm"] = 66
    data["kiosk"]["orientation"] = "diagonal"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert "kiosk.orientation" in result.stderr
    assert "devices.receipt_printer.settings.paper_width_mm" in result.stderr


def test_probe_starts_simulators_and_reports_status():
    result = run("probe", str(ROOT / "device_profiles" / "simulated.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = __import__("json").loads(result.stdout)
    assert statuses["idcard"]["device"] == "online"
    assert statuses["receipt_printer"]["paper"] == "full"
