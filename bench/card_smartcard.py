"""Smart card figures: card inserted → identity (social-security card) / masked PAN (bank card) through the real
pcscd + vpcd, our virtual card process and the PC/SC driver + watcher, as the kiosk would run them.

Uses a running pcscd that lists "Virtual PCD 00 00", or starts ``pcscd -f`` with the vpcd reader for the run (and
stops it by PID). Prints a note and exits 0 when pcscd/vpcd are not installed.

Run: ``.venv/bin/python bench/card_smartcard.py [--runs 15]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.idcard.base import CardEvent  # noqa: E402
from drivers.sim.control import send_command  # noqa: E402
from drivers.sim.process import ManagedProcess  # noqa: E402

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER = "Virtual PCD 00 00"


def readers() -> list[str] | None:
    from smartcard import scard as sc

    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        return None
    try:
        hr, names = sc.SCardListReaders(ctx, [])
        return list(names) if hr == sc.SCARD_S_SUCCESS else []
    finally:
        sc.SCardReleaseContext(ctx)


def wait(predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out")
        time.sleep(0.002)


def describe(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return (f"median {statistics.median(values) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   "
            f"max {values[-1] * 1000:6.1f} ms")


def bench(runs: int) -> None:
    from drivers.smartcard.pcsc_reader import PcscSmartCardReader
    from drivers.smartcard.watcher import PcscCardWatcher, stop_monitor_thread

    card = ManagedProcess([sys.executable, "-m", "drivers.smartcard.simulator"], "kiosk-sim smartcard")
    try:
        ctl = card.endpoints["control"]
        reader = PcscSmartCardReader(reader=READER).open()
        events: list[tuple[float, CardEvent]] = []
        lock = threading.Lock()

        def on_event(event: CardEvent) -> None:
            with lock:
                events.append((time.perf_counter(), event))

        def count(kind: str) -> int:
            with lock:
                return sum(1 for _, e in events if e.type == kind)

        for label, args, kind in (("social-security card → IdentityDocument", {"card": "social_security"}, "read"),
                                  ("bank card → masked PAN", {"card": "bank"}, "bank_card")):
            with lock:
                events.clear()
            watched: list[float] = []
            with PcscCardWatcher(reader, on_event):
                for i in range(runs):
                    wait(lambda: reader.status().media.value == "not_present")
                    started = time.perf_counter()
                    send_command(ctl, "insert_card", **args)
                    wait(lambda: count(kind) == i + 1)
                    with lock:
                        watched.append(events[-1][0] - started)
                    send_command(ctl, "remove_card")
                    wait(lambda: count("removed") == i + 1)
            send_command(ctl, "insert_card", **args)
            wait(lambda: send_command(ctl, "status")["connected"] and reader.card_present())
            direct = []
            apdus_before = reader.counters["apdus"]
            for _ in range(runs):
                started = time.perf_counter()
                reader.read_card()
                direct.append(time.perf_counter() - started)
            send_command(ctl, "remove_card")
            apdus = (reader.counters["apdus"] - apdus_before) // runs
            print(f"{label}: inserted → event (pcscd polls vpcd every 0.4 s): {describe(watched)}")
            print(f"{label}: driver read alone, {apdus} APDUs (card already in): {describe(direct)}")
        reader.close()
        stop_monitor_thread()
    finally:
        card.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    try:
        import smartcard  # noqa: F401
    except ImportError:
        print("card_smartcard: pyscard not installed — skipped")
        return 0
    started: subprocess.Popen[bytes] | None = None
    listed = readers()
    if listed is None:
        if shutil.which("pcscd") is None or not VPCD_DRIVER.exists():
            print("card_smartcard: pcscd / vsmartcard-vpcd not installed — skipped")
            return 0
        conf = Path(tempfile.mkdtemp(prefix="bench-pcscd-"))
        (conf / "vpcd").write_text(Path("/etc/reader.conf.d/vpcd").read_text())
        started = subprocess.Popen(["pcscd", "-f", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: READER in (readers() or []))
    elif READER not in listed:
        print(f"card_smartcard: the running pcscd has no vpcd reader ({listed}) — skipped")
        return 0
    try:
        bench(args.runs)
    finally:
        if started is not None:
            os.kill(started.pid, signal.SIGTERM)
            started.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
