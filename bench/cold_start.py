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

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.sim.control import send_command  # noqa: E402
from drivers.sim.process import ManagedProcess  # noqa: E402
from kiosk.display import Xvfb  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    platform = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                               f"sqlite:///{work / 'p.db'}", "--port", "0", "--no-access-log"], "platform",
                              start_timeout=30)
    profile = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    profile["platform"]["url"] = platform.endpoints["url"]
    profile["kiosk"]["data_dir"] = str(work / "kiosk")
    profile["kiosk"]["demo_controls"] = False
    path = work / "profile.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")
    times, memory = [], []
    with Xvfb(1920, 1080) as display:
        env = {"DISPLAY": display.display, "KIVY_HOME": str(work / "kivy"), "KIVY_NO_ARGS": "1"}
        for i in range(args.runs):
            started = time.monotonic()
            kiosk = ManagedProcess([sys.executable, "-m", "kiosk.cli", "run", "--profile", str(path), "--windowed",
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
