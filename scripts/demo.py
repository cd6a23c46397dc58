"""``make demo``: the reference platform (SQLite file), the MQTT broker, the fleet controller with its dashboard, and
the kiosk shell whose profile starts the device simulators (ID card reader on a pty, receipt printer on a TCP socket)
and reports to the fleet — every process stopped by PID on exit.

Options: --windowed (default fullscreen), --screenshot DIR, --duration SECONDS (stop by itself; for headless runs),
--profile PATH (default device_profiles/simulated.yaml).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.sim.process import ManagedProcess  # noqa: E402

RESTART_EXIT_CODE = 75  # screens.app.RESTART_EXIT_CODE (not imported: that module needs a window)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=str(ROOT / "device_profiles" / "simulated.yaml"))
    parser.add_argument("--windowed", action="store_true")
    parser.add_argument("--screenshot", metavar="DIR")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--no-camera", action="store_true",
                        help="no simulated camera, so no face check after the card (starts faster: no dlib)")
    args = parser.parse_args()

    var = ROOT / "var" / "demo"
    var.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    env: dict[str, str] = {}
    if not args.no_camera:
        # 人证核验 in the demo: the simulated camera plays a packaged photo blinking and turning, and the platform
        # serves that same face as the registered photo of every demo identity
        from drivers.camera.samples import sample_photo_path
        from drivers.idcard.simulator import load_identities

        photos = workdir / "photos.yaml"
        photos.write_text(yaml.safe_dump({"identities": {doc.id_number: str(sample_photo_path("astronaut"))
                                                         for doc in load_identities().values()}}), "utf-8")
        env["PLATFORM_PHOTOS"] = str(photos)
    platform = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                               f"sqlite:///{var / 'platform.db'}", "--host", "127.0.0.1", "--port", "0"],
                              "service-platform", start_timeout=30, cwd=str(ROOT), env=env)
    url = platform.endpoints["url"]
    print(f"demo: service platform at {url} (API docs {url}/docs), pid {platform.pid}")
    from fleet.broker import Mosquitto
    from fleet.signing import generate_keypair

    broker = Mosquitto(workdir / "broker").start()  # config and per-kiosk ACL from fleet/broker/
    print(f"demo: MQTT broker (mosquitto) at {broker.url}")
    keys = var / "fleet"
    if not (keys / "command-signing.key").exists():
        generate_keypair(keys)
    password = os.environ.get("FLEET_ADMIN_PASSWORD", "demo-admin")
    controller = ManagedProcess([sys.executable, "-m", "fleet.controller.cli", "serve", "--broker", broker.url,
                                 "--db", str(var / "fleet.db"), "--http", "127.0.0.1:0", "--signing-key",
                                 str(keys / "command-signing.key")], "fleet-controller", start_timeout=30,
                                cwd=str(ROOT), env={"FLEET_ADMIN_PASSWORD": password})
    print(f"demo: fleet controller dashboard http://{controller.endpoints['http']}/ (admin / {password})")

    profile = yaml.safe_load(Path(args.profile).read_text("utf-8"))
    profile["platform"]["url"] = url
    profile["kiosk"]["data_dir"] = str(var / "kiosk")
    profile["fleet"] = {"broker_url": broker.url, "verify_key": str(keys / "command-signing.pub")}
    if not args.no_camera:
        profile["devices"].setdefault("camera", {"driver": "opencv", "required": False, "simulate": True})
    demo_profile = workdir / "profile.yaml"
    demo_profile.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")

    cmd = [sys.executable, "-m", "screens.cli", "run", "--profile", str(demo_profile)]
    if args.windowed:
        cmd.append("--windowed")
    if args.screenshot:
        cmd += ["--screenshot", args.screenshot]
    kiosk = subprocess.Popen(cmd, cwd=str(ROOT), start_new_session=True)
    print(f"demo: kiosk shell pid {kiosk.pid}; it starts the device simulators itself. "
          "Use the demo bar at the bottom to place an ID card or run the printer out of paper. Ctrl-C stops all.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while not stop.wait(0.5) and (deadline is None or time.monotonic() < deadline):
            if kiosk.poll() is None:
                continue
            if kiosk.returncode != RESTART_EXIT_CODE:  # closed by hand, or failed
                break
            print("demo: the kiosk asked to be restarted (fleet command); starting it again")
            kiosk = subprocess.Popen(cmd, cwd=str(ROOT), start_new_session=True)
    except KeyboardInterrupt:
        pass
    finally:
        if kiosk.poll() is None:
            kiosk.send_signal(signal.SIGTERM)
            try:
                kiosk.wait(15)
            except subprocess.TimeoutExpired:
                kiosk.kill()
        controller.stop()
        platform.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
