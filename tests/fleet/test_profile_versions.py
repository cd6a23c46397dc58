"""Desired and reported profiles: an admin sets a kiosk's desired profile on the controller; the kiosk applies it
atomically, tries it at its next start (internal self-test) and rolls back to the last good profile when a required
device fails, reporting both outcomes; a technician's local change is reported as drift. Through a real broker,
controller and kiosk core; the test plays the supervisor that restarts the kiosk when it asks."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable

import yaml

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Supervisor:
    """Starts the kiosk core from its profile file and starts it again when it asks for a restart (systemd's
    Restart= in production)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.core: KioskCore | None = None
        self.restart_asked = False

    def start(self) -> KioskCore:
        self.restart_asked = False
        core = KioskCore(load_profile(self.path, environ={}))
        core.subscribe(lambda name, _p: setattr(self, "restart_asked", True) if name == "restart_requested" else None)
        core.start()
        self.core = core
        return core

    def restart(self) -> KioskCore:
        assert self.core is not None
        self.core.stop()
        return self.start()

    def stop(self) -> None:
        if self.core is not None:
            self.core.stop()


def test_push_that_breaks_a_required_device_rolls_back_and_both_reports_reach_the_controller(
        make_profile: Any, broker: Any, keys: tuple[Path, Path], start_controller: Any,
        wait_for: Callable[..., Any]) -> None:
    path = make_profile(fleet={"broker_url": broker.url, "verify_key": str(keys[1]), "heartbeat_s": 5})
    data = yaml.safe_load(path.read_text("utf-8"))
    for kind in ("qr_scanner", "licence_printer", "payment_pad"):   # not needed here: fewer simulators to start
        data["devices"].pop(kind, None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    original = path.read_text("utf-8")
    controller = start_controller()
    supervisor = Supervisor(path)
    try:
        core = supervisor.start()
        kiosk_id, first_digest = core.kiosk_id, core.profile.digest
        wait_for(lambda: (controller.kiosk(kiosk_id) or {}).get("profile_hash") == first_digest, timeout=20,
                 what="the kiosk's birth with its profile digest")
        assert wait_for(lambda: core.profile_updates.outcome, timeout=10) == "first_start"
        assert controller.get(f"/api/v1/kiosks/{kiosk_id}/profile")["status"] == "no_desired"

        def view() -> dict[str, Any]:
            return controller.get(f"/api/v1/kiosks/{kiosk_id}/profile")

        def put(text: str) -> dict[str, Any]:
            response = controller.api.put(f"/api/v1/kiosks/{kiosk_id}/profile", json={"profile": text})
            assert response.status_code == 202, response.text
            return response.json()

        # 1. a good profile: tried at the next start, applied, in sync
        good = dict(data, session={**data["session"], "idle_timeout_s": 120})
        good_text = yaml.safe_dump(good, allow_unicode=True)
        put(good_text)
        wait_for(lambda: supervisor.restart_asked, timeout=20, what="the kiosk asks to restart into the push")
        assert path.read_text("utf-8") == good_text
        core = supervisor.restart()
        assert wait_for(lambda: core.profile_updates.outcome, timeout=15) == "applied"
        good_digest = core.profile.digest
        wait_for(lambda: view()["status"] == "in_sync", timeout=20, what="desired == reported")

        # 2. a profile whose required receipt printer points at nothing: tried, failed, rolled back
        broken = yaml.safe_load(good_text)
        broken["devices"]["receipt_printer"].update(simulate=False, settings={
            "connection": "network", "host": "127.0.0.1", "port": free_port(), "profile": "TM-T88V",
            "paper_width_mm": 80})
        broken_text = yaml.safe_dump(broken, allow_unicode=True)
        pushed = put(broken_text)
        broken_digest = pushed["desired"]["digest"]
        assert broken_digest != good_digest
        wait_for(lambda: supervisor.restart_asked, timeout=20, what="the kiosk asks to restart into the push")
        assert path.read_text("utf-8") == broken_text          # applied atomically: the whole new file
        core = supervisor.restart()
        assert wait_for(lambda: core.profile_updates.outcome, timeout=20) == "rolled_back"
        assert path.read_text("utf-8") == good_text            # the last good profile is back
        wait_for(lambda: supervisor.restart_asked, timeout=10, what="a restart into the last good profile")
        core = supervisor.restart()
        assert core.profile.digest == good_digest
        assert wait_for(lambda: core.profile_updates.outcome, timeout=15) == "restored"

        def reported_both() -> dict[str, Any] | None:
            v = view()
            codes = {r["code"] for r in v["reports"]}
            return v if {"profile_trial_failed", "profile_rolled_back", "profile_restored"} <= codes and \
                v["reported"]["digest"] == good_digest else None

        final = wait_for(reported_both, timeout=20, what="both reports on the controller")
        assert final["status"] == "rolled_back"
        assert final["desired"]["digest"] == broken_digest
        failed = next(r for r in final["reports"] if r["code"] == "profile_trial_failed")
        assert "receipt_printer=" in failed["text"] and failed["severity"] == "major"
        # the operator sees what differs between desired and reported
        assert "-    simulate: false" in final["diff"] and "+    simulate: true" in final["diff"]
        page = controller.api.get(f"/kiosks/{kiosk_id}")   # the operators' dashboard shows the same
        assert page.status_code == 200 and 'data-status="rolled_back"' in page.text and broken_digest in page.text
        assert "配置已回退" in page.text
        alerts = controller.alerts(kiosk_id=kiosk_id)
        assert any(a["rule"] == "app_alarm" and a["device"] == "profile_rolled_back" for a in alerts), alerts

        # 3. a technician's local change: reported as drift
        local = yaml.safe_load(path.read_text("utf-8"))
        local["session"]["warning_s"] = 25
        path.write_text(yaml.safe_dump(local, allow_unicode=True), "utf-8")
        core = supervisor.restart()
        assert wait_for(lambda: core.profile_updates.outcome, timeout=15) == "drift"
        drift = wait_for(lambda: next((r for r in view()["reports"] if r["code"] == "profile_drift"), None),
                         timeout=20, what="the drift report")
        assert "session.warning_s" in drift["text"] and "25" not in drift["text"].split("fields:")[1].split(";")[0]
        assert original != path.read_text("utf-8")
    finally:
        supervisor.stop()
