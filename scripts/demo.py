"""``make demo``: the reference platform (SQLite file), the MQTT broker, the fleet controller with its dashboard, and
the kiosk shell whose profile starts the device simulators (ID card reader on a pty, receipt printer on a TCP socket)
and reports to the fleet — every process stopped by PID on exit.

Options: --windowed (default fullscreen), --screenshot DIR, --duration SECONDS (stop by itself; for headless runs),
--profile PATH (default device_profiles/simulated.yaml).
"""
from __future__ import annotations

import argparse
import os
import secrets
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
from kiosk.request_signing import key_pair_files  # noqa: E402

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
    # the demo kiosk's own signing key (KIOSK-ED25519-V1): made once into var/demo (0600), its public key enrolled
    # by `serve --demo`; there is no shared demo secret
    kiosk_key, kiosk_pub = key_pair_files(var)
    # the simulated payment provider's key pair (signs wallet payment notifications); the platform gets the public key
    from drivers.payment.wallet_sim import generate_keypair as provider_keypair

    provider_key, provider_pub = var / "payment-provider.key", var / "payment-provider.pub"
    if not (provider_key.exists() and provider_pub.exists()):
        provider_keypair(var)
    platform = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                               f"sqlite:///{var / 'platform.db'}", "--host", "127.0.0.1", "--port", "0", "--demo",
                               "--demo-kiosk-public-key", str(kiosk_pub),
                               "--payment-provider-key", str(provider_pub),
                               # the seal CA of the demo (made at the first start; private keys, never committed)
                               "--seal-dir", str(var / "seal")],
                              "service-platform", start_timeout=30, cwd=str(ROOT), env=env)
    url = platform.endpoints["url"]
    print(f"demo: pay an order as the citizen's phone: {sys.executable} -m drivers.payment.wallet_sim pay "
          f"--key {provider_key} --amount-fen FEN {url} ORDER_NO")
    print(f"demo: service platform at {url} (API docs {url}/docs), pid {platform.pid}")
    from fleet.broker import CONTROLLER_USER, Mosquitto, TlsListener, dev_pki, free_port
    from fleet.signing import generate_keypair

    # the broker knows who connects: a TLS listener that requires a client certificate (CN = the MQTT username the
    # per-kiosk ACL uses) from the demo's throw-away CA — one for the kiosk (CN = its id), one for the controller
    kiosk_id = yaml.safe_load(Path(args.profile).read_text("utf-8"))["kiosk"]["id"]
    pki = dev_pki(workdir / "pki", [kiosk_id, CONTROLLER_USER])
    broker = Mosquitto(workdir / "broker", tls_listener=TlsListener(free_port(), str(pki.ca), str(pki.server_cert),
                                                                    str(pki.server_key))).start()
    controller_broker_url = broker.tls_url(*pki.clients[CONTROLLER_USER])
    kiosk_broker_url = broker.tls_url(*pki.clients[kiosk_id])
    print(f"demo: MQTT broker (mosquitto) at mqtts://127.0.0.1:{broker.tls_listener.port} (client certificates only)")
    keys = var / "fleet"
    if not (keys / "command-signing.key").exists():
        generate_keypair(keys)
    # no built-in password: FLEET_ADMIN_PASSWORD, else a fresh random one, set on the demo database's admin at
    # every start (the demo database outlives a run; serve --demo alone would only create a missing admin)
    password = os.environ.get("FLEET_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    subprocess.run([sys.executable, "-m", "fleet.controller.cli", "add-operator", "admin", "--role", "admin",
                    "--display-name", "管理员", "--db", str(var / "fleet.db")], cwd=str(ROOT), check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "FLEET_OPERATOR_PASSWORD": password})
    controller = ManagedProcess([sys.executable, "-m", "fleet.controller.cli", "serve", "--demo", "--broker",
                                 controller_broker_url, "--db", str(var / "fleet.db"), "--http", "127.0.0.1:0", "--signing-key",
                                 str(keys / "command-signing.key")], "fleet-controller", start_timeout=30,
                                cwd=str(ROOT), env={"FLEET_ADMIN_PASSWORD": password})
    print(f"demo: fleet controller dashboard http://{controller.endpoints['http']}/ (admin / {password})")

    profile = yaml.safe_load(Path(args.profile).read_text("utf-8"))
    profile["platform"]["url"] = url
    profile["platform"]["key_file"] = str(kiosk_key)
    profile["kiosk"]["data_dir"] = str(var / "kiosk")
    profile["fleet"] = {"broker_url": kiosk_broker_url, "verify_key": str(keys / "command-signing.pub")}
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
