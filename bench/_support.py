"""What the kiosk benchmarks share: a reference platform on a free port, the simulated profile pointed at it, RSS."""
from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from drivers.sim.process import ManagedProcess  # noqa: E402


def demo_kiosk_key(work: Path) -> tuple[Path, Path]:
    """(private key file, public key file) of the demo kiosk's signing key under ``work``, made on first use."""
    from kiosk.request_signing import key_pair_files

    return key_pair_files(work)


def kiosk_signer(work: Path) -> Any:
    """An httpx auth signing as the demo kiosk with the key under ``work`` (see :func:`demo_kiosk_key`)."""
    from kiosk.request_signing import KioskRequestSigner

    return KioskRequestSigner.from_file("KSK-340302-0001", demo_kiosk_key(work)[0])


def start_platform(work: Path) -> ManagedProcess:
    """``service-platform serve --demo`` with a fresh SQLite file under ``work``, on a free loopback port; the demo
    kiosk's public key is the one :func:`demo_kiosk_key` made under ``work``."""
    return ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                           f"sqlite:///{work / 'p.db'}", "--port", "0", "--no-access-log", "--demo",
                           "--demo-kiosk-public-key", str(demo_kiosk_key(work)[1])], "platform",
                          start_timeout=30)


def simulated_profile(work: Path, platform_url: str, demo_controls: bool = False) -> Path:
    """device_profiles/simulated.yaml pointed at ``platform_url``, with its data under ``work``."""
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["platform"]["url"] = platform_url
    data["platform"]["key_file"] = str(demo_kiosk_key(work)[0])
    data["kiosk"]["data_dir"] = str(work / "kiosk")
    data["kiosk"]["demo_controls"] = demo_controls
    data["kiosk"].pop("nightly_restart_at", None)   # a run that crosses 03:30 measures the same as one that does not
    path = work / "profile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def call(method: Any, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Run a core method that answers through ``on_result``/``on_error``; return its result or raise its error."""
    box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
    method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)), **kwargs)
    ok, value = box.get(timeout=timeout)
    if not ok:
        raise value
    return value


def started_core(work: Path, platform_url: str) -> tuple[Any, "queue.Queue[str]"]:
    """A started kiosk core on the simulated profile, and a queue of its ``identified``/``card_error`` events."""
    from device_profiles.loader import load_profile
    from kiosk.core import KioskCore

    core = KioskCore(load_profile(simulated_profile(work, platform_url), environ={}))
    identified: "queue.Queue[str]" = queue.Queue()
    core.subscribe(lambda name, payload: identified.put(name) if name in ("identified", "card_error") else None)
    core.start()
    return core, identified


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
