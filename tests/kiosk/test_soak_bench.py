"""The soak bench (bench/soak_sessions.py) runs end to end and prints its figures: a short run in the default suite
(structure only: 50 sessions say nothing about leaks), the full 10,000-session soak under ``-m slow`` (flat)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"card_print", "guide_print", "guide_read", "application", "payment", "timeout"}


def run_soak(*args: str, timeout: float) -> tuple[str, dict[str, Any]]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "soak_sessions.py"), *args, "--json"],
                         capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, json.loads(out.stdout.strip().splitlines()[-1])


def test_soak_bench_prints_its_table_and_verdict() -> None:
    stdout, r = run_soak("--sessions", "50", "--interval", "25", timeout=600)
    mix = {k: v for k, v in r["mix"].items() if k in KINDS}
    assert r["sessions"] == 50 and set(mix) == KINDS and sum(mix.values()) == 50
    assert [s["session"] for s in r["samples"]] == [0, 25, 50]
    last = r["samples"][-1]
    assert last["rss_mb"] > 0 and last["fds"] > 0 and last["threads"] > 0
    assert {"print-journal.sqlite3", "payments.sqlite3", "outbox.sqlite3"} <= set(last["sqlite_bytes"])
    # 5 receipts per 10 sessions (card ×3, guide ×2) + the payment voucher; 2 payments; ratings + applications
    assert last["rows"]["jobs"] >= 30 and last["rows"]["payments"] >= 5 and last["rows"]["outbox"] >= 25
    assert last["rows"]["audit_lines"] > 50
    assert set(r["slopes_per_1000"]) == {"rss_mb", "fds", "threads"}
    lines = stdout.splitlines()
    assert any(line.split()[:1] == ["25"] and "sqlite:" in line and "rows:" in line for line in lines)
    assert any(line.startswith("verdict: 50 sessions") and "per 1,000 sessions" in line for line in lines)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)   # 10,000 sessions take 20–40 min on the 2-core box (the suite's default is 300 s)
def test_soak_10000_sessions_is_flat() -> None:
    sessions = os.environ.get("KIOSK_SOAK_SESSIONS", "10000")
    _, r = run_soak("--sessions", sessions, timeout=4 * 3600)
    assert r["flat"], r["slopes_per_1000"]
    steady = r["samples"][1:]
    assert all(s["fds"] <= steady[0]["fds"] + 2 and s["threads"] <= steady[0]["threads"] + 2 for s in steady)
