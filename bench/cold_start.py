"""Cold start → attract screen, and the shell's resident memory at rest (target: < 4 s; shared/README.md).

Starts the reference platform once, then the kiosk shell N times under a private Xvfb with the simulated profile
(the shell starts its simulators itself), and times process spawn → attract screen shown and answering. Prints one
line per run and a summary. Run: ``.venv/bin/python bench/cold_start.py [--runs 5]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import rss_mb, simulated_profile, start_platform  # noqa: E402

from drivers.sim.control import send_command  # noqa: E402
from drivers.sim.process import ManagedProcess  # noqa: E402
from kiosk.display import Xvfb  # noqa: E402




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    platform = start_platform(work)
    path = simulated_profile(work, platform.endpoints["url"])
    times, memory = [], []
    with Xvfb(1920, 1080) as display:
        env = {"DISPLAY": display.display, "KIVY_HOME": str(work / "kivy"), "KIVY_NO_ARGS": "1"}
        for i in range(args.runs):
            started = time.monotonic()
            kiosk = ManagedProcess([sys.executable, "-m", "screens.cli", "run", "--profile", str(path), "--windowed",
                                    "--automation", "127.0.0.1:0"], "kiosk", start_timeout=60, env=env)
            try:
                while send_command(kiosk.endpoints["automation"], "state").get("screen") != "attract":
                    time.sleep(0.02)
                elapsed = time.monotonic() - started
                mem = rss_mb(kiosk.pid)
            finally:
                kiosk.stop(timeout=15)
            times.append(elapsed)
            memory.append(mem)
            print(f"run {i + 1}: spawn → attract shown {elapsed:.2f} s, shell RSS {mem:.0f} MB")
    platform.stop()
    print(f"cold start → attract: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
          f"(target < 4 s); RSS median {statistics.median(memory):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
