"""Soak: N whole citizen sessions through the kiosk core (card → my applications → print → rate → end), with the
real simulators and platform, printing resident memory as it goes (target: flat; shared/README.md) and the time per
session. Run: ``.venv/bin/python bench/soak_sessions.py [--sessions 1000]``.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import call, rss_mb, started_core, start_platform  # noqa: E402


IDENTITIES = ["zhang", "li", "chen", "yang", "zhao", "huang_hk"]




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    platform = start_platform(work)
    core, identified = started_core(work, platform.endpoints["url"])
    reader = core.devices.simulators["idcard"]
    printer = core.devices.simulators["receipt_printer"]
    baseline = None
    started = time.monotonic()
    try:
        for i in range(args.sessions):
            reader.control("place_card", identity=IDENTITIES[i % len(IDENTITIES)])
            assert identified.get(timeout=15) == "identified"
            apps = call(core.my_applications)
            call(core.print_progress, apps[0])
            call(core.submit_rating, 4, [])
            core.end_session("finished")
            reader.control("remove_card")
            if i % 50 == 49:
                printer.control("clear")
            if i % 100 == 99 or i == args.sessions - 1:
                gc.collect()
                mem = rss_mb()
                baseline = baseline or mem
                per = (time.monotonic() - started) / (i + 1)
                print(f"sessions {i + 1:5d}: RSS {mem:6.1f} MB (Δ {mem - baseline:+.1f} MB since 100), "
                      f"{per * 1000:.0f} ms per session", flush=True)
    finally:
        core.stop()
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
