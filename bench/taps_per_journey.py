"""Taps and seconds from the card to the result for the top personal journeys (goal: ≤ 3 taps from the menu).

Runs the real shell in a private Xvfb with the simulated devices, a camera simulator showing the card holder (the
face check passes by itself, as in tests/e2e), a reference platform that knows that face, and presses real buttons
with xdotool through the e2e harness (tests/e2e/conftest.py ``KioskUI``). For each journey: the card is placed, the
face check passes, then the taps a citizen makes from the menu to the personal result are counted and timed:

- progress: my applications → one application's timeline
- print a certificate: my e-certificates → one → print → printed
- book: appointment (opens on the kiosk's own hall, services most used first) → a service → the earliest free time
  (day + time + hall; a tap books it) → booked, slip printed
- pay: pay fees → the citizen's pending order (a fee-bearing application filed for the card holder before the run:
  居民身份证换领, his 户口簿 e-certificate attached, the photo deferred) → bank card → paid

Run: ``.venv/bin/python bench/taps_per_journey.py`` (not part of the test run; ~2–3 min on this box).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import ROOT, demo_kiosk_key, simulated_profile  # noqa: E402,F401

import yaml  # noqa: E402

from drivers.sim.control import send_command  # noqa: E402
from drivers.sim.process import ManagedProcess, SimulatorProcess  # noqa: E402
from kiosk.display import Xvfb  # noqa: E402
from tests.conftest import wait_for  # noqa: E402
from tests.e2e.conftest import QUICK_FACE, FaceClips, KioskUI, pass_face_check, write_photo_map  # noqa: E402

GOAL_TAPS = 3
#: form answers of the fee-bearing services the bench may file
FORMS = {"id-card-renewal": {"reason": "expiring", "pickup": "window", "phone": "13905520001"},
         "driving-licence-renewal": {"licence_file_no": "340300123456", "pickup": "window", "phone": "13905520001"}}
LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}


@dataclass
class Journey:
    name: str
    taps: int = 0
    seconds: float = 0.0
    face_s: float = 0.0
    note: str = ""
    steps: list[str] = field(default_factory=list)


class CountingUI:
    """The harness, counting every tap after the menu was reached."""

    def __init__(self, ui: KioskUI, journey: Journey) -> None:
        self.ui, self.journey = ui, journey

    def tap(self, aid: str) -> None:
        self.ui.tap(aid, wait_for)   # once shown, enabled and no longer moving (lists are laid out after their data)
        self.journey.taps += 1
        self.journey.steps.append(aid)


def start_platform(work: Path) -> ManagedProcess:
    return ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                           f"sqlite:///{work / 'p.db'}", "--port", "0", "--no-access-log", "--demo",
                           "--demo-kiosk-public-key", str(demo_kiosk_key(work)[1]),
                           "--photos", str(write_photo_map(work / "photos"))], "platform", start_timeout=60)


def file_fee_order(url: str, work: Path) -> str:
    """A fee-bearing application of 张明华 (the card the bench places), filed as at a kiosk: its pending order's
    number, or "" when no fee-bearing service can be filed for him (the pay journey is then reported as skipped).
    Materials: his e-certificates where the guide takes one (a guide names the type by code or by name, as the
    kiosk's apply flow matches them), else deferred where allowed; optional ones he has no certificate for are left
    out (the platform refuses to defer those)."""
    from kiosk.errors import PlatformRejected
    from kiosk.platform_client import MaterialRef, PlatformClient, PreReviewFailed
    from kiosk.request_signing import KioskRequestSigner

    client = PlatformClient(url, "KSK-340302-0001",
                            KioskRequestSigner.from_file("KSK-340302-0001", demo_kiosk_key(work)[0]), timeout_s=10)
    try:
        token = client.open_citizen_session("340302195803172018", "张明华", "resident_id", face_match=True).token
        certs: dict[str, str] = {}
        for cert in client.my_e_certificates(token):
            certs.setdefault(cert.type_code, cert.id)
            certs.setdefault(cert.type_name, cert.id)
        services = sorted(client.search_services(""), key=lambda x: x.code not in FORMS)
        for summary in services:
            if summary.fee_fen <= 0:
                continue
            detail = client.service_detail(summary.code)
            refs = [MaterialRef(m.index, e_certificate_id=certs[m.e_cert_type]) if m.e_cert_type in certs
                    else MaterialRef(m.index, defer=True) for m in detail.materials
                    if not m.satisfied_by and (m.required or m.e_cert_type in certs)]
            try:
                form = FORMS.get(summary.code, {"phone": "13905520001"})
                filed = client.file_application(token, summary.code, form, refs, commitment=True)
            except (PreReviewFailed, PlatformRejected):   # pre-review problems, not filed online
                continue
            if filed.payment_orders:
                return filed.payment_orders[0].order_no
        return ""
    finally:
        client.close()


def run_journey(ui: KioskUI, name: str, steps: Callable[[CountingUI], None], done: Callable[[], Any]) -> Journey:
    journey = Journey(name)
    sims = ui.simulators(wait_for)
    ui.wait_screen("attract", wait_for, timeout=60)
    placed = time.monotonic()
    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    pass_face_check(ui, wait_for)
    journey.face_s = time.monotonic() - placed
    counting = CountingUI(ui, journey)
    try:
        steps(counting)
        wait_for(done, timeout=60, interval=0.05, what=f"the result of {name}")
        journey.seconds = time.monotonic() - placed
    except BaseException as exc:  # noqa: BLE001 - a bench reports what failed and goes on
        journey.note = f"did not finish: {str(exc).splitlines()[0][:120]}"
    send_command(sims["idcard"]["control"], "remove_card")
    for aid in ("rating_skip", "finish", "rating_finish"):
        if ui.find(aid).get("found"):
            ui.tap(aid, wait_for)
            break
    ui.ask("show", name="menu")
    if ui.find("finish").get("found"):
        ui.tap("finish", wait_for)
    wait_for(lambda: ui.state()["session"] == "idle", timeout=60, what="the session ended")
    return journey


def has_text(ui: KioskUI, fragment: str) -> Callable[[], bool]:
    return lambda: any(fragment in t for t in ui.texts())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-taps-"))
    (work / "clips").mkdir()
    clip = FaceClips(work / "clips")["blink"]   # the card holder blinking (built once, ~10 s)
    platform = start_platform(work)
    try:
        camera = SimulatorProcess("camera", "--video", str(clip), "--tcp", "127.0.0.1:0")
    except BaseException:
        platform.stop()
        raise
    profile = simulated_profile(work, platform.endpoints["url"])
    data = yaml.safe_load(profile.read_text("utf-8"))
    data["devices"]["camera"] = {"driver": "opencv", "settings": {"source": camera.endpoints["url"]}}
    data["devices"]["licence_printer"] = LICENCE_PRINTER
    data["face"] = QUICK_FACE
    profile.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    order_no = file_fee_order(platform.endpoints["url"], work)
    results: list[Journey] = []
    with Xvfb(1920, 1080) as display:
        env = {**os.environ, "DISPLAY": display.display, "KIVY_HOME": str(work / "kivy"), "KIVY_NO_ARGS": "1",
               "KIVY_NO_FILELOG": "1", "KIVY_LOG_MODE": "PYTHON"}
        kiosk = ManagedProcess([sys.executable, "-m", "screens.cli", "run", "--profile", str(profile), "--windowed",
                                "--automation", "127.0.0.1:0"], "kiosk", start_timeout=90, env=env)
        ui = KioskUI(kiosk, display.display, work / "shots")
        try:
            pad = wait_for(lambda: ui.ask("simulators").get("payment_pad"), timeout=60, what="the payment pad")
            send_command(pad["control"], "set_timing", card_s=0.3, pin_s=0.5, host_s=0.3)

            def progress(c: CountingUI) -> None:
                c.tap("tile_my_applications")
                c.tap("application_0")

            results.append(run_journey(ui, "progress", progress, has_text(ui, "办件编号：")))

            def certificate(c: CountingUI) -> None:
                c.tap("tile_certificates")
                c.tap("cert_0")
                c.tap("cert_print")

            results.append(run_journey(ui, "print a certificate", certificate, has_text(ui, "打印完成")))

            def book(c: CountingUI) -> None:
                c.tap("tile_appointment")
                c.tap(ui.top_most("service_", wait_for))    # the list's first entry: the most used at the kiosk's hall
                c.tap("offer_0")                   # the earliest free time

            results.append(run_journey(ui, "book", book, has_text(ui, "预约成功")))

            def pay(c: CountingUI) -> None:
                c.tap("tile_pay")
                found = wait_for(lambda: next((b["aid"] for b in ui.ask("buttons")["buttons"]
                                               if b["aid"].startswith("order_") and order_no[-6:] in b["text"]),
                                              None) or ("pay_card" if ui.find("pay_card")["found"] else None),
                                 timeout=30, what="the pending order")
                if found != "pay_card":
                    c.tap(found)
                c.tap("pay_card")

            if order_no:
                results.append(run_journey(ui, "pay", pay, has_text(ui, "缴费成功")))
            else:
                results.append(Journey("pay", note="skipped: no fee-bearing service could be filed for the card"))
        finally:
            kiosk.stop(timeout=20)
            camera.stop()
            platform.stop()
    print(f"{'journey':<22}{'taps from menu':>16}{'card → result':>16}{'of which face':>15}  goal ≤ {GOAL_TAPS}")
    for j in results:
        verdict = "ok" if j.taps <= GOAL_TAPS and not j.note else "MISSED"
        print(f"{j.name:<22}{j.taps:>16}{j.seconds:>15.1f}s{j.face_s:>14.1f}s  {verdict}  "
              f"({' → '.join(j.steps)}){'  ' + j.note if j.note else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
