"""The fleet benchmark runs end to end (small sizes); the real figures come from `make bench`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fleet_ingest_bench_quick() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet_ingest.py"), "--quick", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    for n in ("1_controller", "2_controller"):
        assert r[n]["processed_twice"] == 0 and r[n]["duplicates_stored"] == 0
        assert r[n]["time_series_rows"] == r[n]["distinct_kiosk_mid"]
    assert r["1_controller"]["paper_out_alert_s"]["max"] < 2.0


@pytest.mark.slow
def test_fleet_reports_bench_quick() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet_reports.py"), "--quick", "--json",
                          "--kiosks", "50", "--days", "7", "--burst", "500", "--requests", "5"],
                         capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ingest"]["messages"] == 500 and r["ingest"]["dead_letters"] == 0
    assert r["bucket_rows"] > 0 and all(v["p95_ms"] > 0 for v in r["latency"].values())
