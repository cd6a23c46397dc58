"""``make demo``: the reference platform (SQLite file), the MQTT broker, and the kiosk shell whose profile starts the
device simulators (ID card reader on a pty, receipt printer on a TCP socket) — every process stopped by PID on exit.

Options: --windowed (default fullscreen), --screenshot DIR, --duration SECONDS (stop by itself; for headless runs),
--profile PATH (default device_profiles/simulated.yaml).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.sim.process import ManagedProcess  # noqa: E402


def start_broker(workdir: Path) -> subprocess.Popen | None:
    """mosquitto on a free loopback port for the fleet agent (the controller arrives with the fleet issue)."""
    if shutil.which("mosquitto") is None:
        print("demo: mosquitto not installed; skipping the broker", file=sys.stderr)
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    print(f"demo: MQTT broker (mosquitto) on 127.0.0.1:{port}, pid {proc.pid}")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=str(ROOT / "device_profiles" / "simulated.yaml"))
    parser.add_argument("--windowed", action="store_true")
    parser.add_argument("--screenshot", metavar="DIR")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args()

    var = ROOT / "var" / "demo"
    var.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    platform = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                               f"sqlite:///{var / 'platform.db'}", "--host", "127.0.0.1", "--port", "0"],
                              "service-platform", start_timeout=30, cwd=str(ROOT))
    url = platform.endpoints["url"]
    print(f"demo: service platform at {url} (API docs {url}/docs), pid {platform.pid}")
    broker = start_broker(workdir)

    profile = yaml.safe_load(Path(args.profile).read_text("utf-8"))
    profile["platform"]["url"] = url
    profile["kiosk"]["data_dir"] = str(var / "kiosk")
    demo_profile = workdir / "profile.yaml"
    demo_profile.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")

    cmd = [sys.executable, "-m", "kiosk.cli", "run", "--profile", str(demo_profile)]
    if args.windowed:
        cmd.append("--windowed")
    if args.screenshot:
        cmd += ["--screenshot", args.screenshot]
    kiosk = subprocess.Popen(cmd, cwd=str(ROOT), start_new_session=True)
    print(f"demo: kiosk shell pid {kiosk.pid}; it starts the device simulators itself. "
          "Use the demo bar at the bottom to place an ID card or run the printer out of paper. Ctrl-C stops all.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.duration:
            stop.wait(args.duration)
        else:
            while kiosk.poll() is None and not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        if kiosk.poll() is None:
            kiosk.send_signal(signal.SIGTERM)
            try:
                kiosk.wait(15)
            except subprocess.TimeoutExpired:
                kiosk.kill()
        platform.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
