"""Online application: time from "submit" (the citizen's tap) to the number delivered to the screen, through the
kiosk core (outbox journal with fsync + encryption, the platform's filing with Idempotency-Key, result through the
dispatcher), with the real simulators and platform; and the offline path: platform stopped → outbox reference.
Run: ``.venv/bin/python bench/apply_submit.py [--runs 40]``.
"""
from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import call, started_core, start_platform  # noqa: E402

from kiosk.core import KioskCore  # noqa: E402

IDENTITIES = ["zhang", "li", "chen", "yang", "zhao"]


def timed_submit(core: KioskCore, identity: str, identified: "queue.Queue[str]") -> tuple[float, Any]:
    reader = core.devices.simulators["idcard"]
    reader.control("place_card", identity=identity)
    assert identified.get(timeout=15) == "identified"
    flow = core.apply
    flow.start()
    call(flow.choose, "hukou-certificate")
    flow.accept_notice()
    flow.set_field("/purpose", "employment", typed=False)
    assert flow.finish_form() == []
    flow.next_after_attach()
    assert call(flow.pre_review).acceptable
    started = time.perf_counter()
    outcome = call(flow.submit)
    elapsed = time.perf_counter() - started
    core.end_session("finished")
    reader.control("remove_card")
    return elapsed, outcome


def figures(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[max(0, int(round(0.95 * len(ms))) - 1)]
    print(f"{name}: n={len(ms)} median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    platform = start_platform(work)
    core, identified = started_core(work, platform.endpoints["url"])
    try:
        online: list[float] = []
        for i in range(args.runs):
            elapsed, outcome = timed_submit(core, IDENTITIES[i % len(IDENTITIES)], identified)
            assert outcome.status == "submitted" and outcome.number
            online.append(elapsed)
        figures("submit → number on screen (platform up)", online)

        # offline: the citizen gets the outbox reference; the platform is stopped after pre-review
        offline: list[float] = []
        for i in range(min(5, args.runs)):
            reader = core.devices.simulators["idcard"]
            reader.control("place_card", identity=IDENTITIES[i % len(IDENTITIES)])
            assert identified.get(timeout=15) == "identified"
            flow = core.apply
            flow.start()
            call(flow.choose, "hukou-certificate")
            flow.accept_notice()
            flow.set_field("/purpose", "employment", typed=False)
            flow.finish_form()
            flow.next_after_attach()
            bad = core.platform._http.base_url  # point the client at a closed port: connection refused
            core.platform._http.base_url = "http://127.0.0.1:9"
            started = time.perf_counter()
            outcome = call(flow.submit)
            offline.append(time.perf_counter() - started)
            core.platform._http.base_url = bad
            assert outcome.status == "queued"
            core.end_session("finished")
            reader.control("remove_card")
        figures("submit → outbox reference on screen (platform unreachable, with retries)", offline)
        started = time.perf_counter()
        report = core.outbox.drain()
        print(f"drain of {len(report.submitted)} queued applications: {(time.perf_counter() - started) * 1000:.0f} ms,"
              f" {report.remaining} left")
    finally:
        core.stop()
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
