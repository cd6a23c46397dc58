"""The kiosk core with its fleet link, against a real broker and a real controller: the operator sees the kiosk and
its devices, a printer running out of paper raises an alert, and signed commands reach the kiosk and act on it."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def command(controller, kiosk_id: str, name: str, wait_for, **args: Any) -> dict[str, Any]:
    response = controller.post(f"/api/v1/kiosks/{kiosk_id}/commands", {"name": name, "args": args})
    assert response.status_code == 202, response.text
    command_id = response.json()["id"]
    return wait_for(lambda: (lambda c: c if c["status"] in ("succeeded", "failed", "rejected") else None)(
        controller.get(f"/api/v1/commands/{command_id}")), timeout=20, what=f"command {name} answered")


def test_operator_sees_the_kiosk_alerts_and_commands_it(kiosk, start_controller, wait_for):
    controller = start_controller()
    kiosk_id = kiosk.kiosk_id
    kiosk.devices.simulators["idcard"].control("place_card", identity="zhang")  # a citizen is being served
    wait_for(lambda: kiosk.session.citizen, what="the citizen identified")
    # the controller started after the kiosk's birth: it asks for a rebirth and then knows the kiosk whole
    seen = wait_for(lambda: (lambda k: k if k and k["online"] else None)(controller.kiosk(kiosk_id)), timeout=30,
                    what="the kiosk online at the controller")
    states = {d["kind"]: d["state"] for d in seen["devices"]}
    assert set(states) == set(kiosk.devices.statuses())  # every device of the profile, as the kiosk sees it
    assert states["idcard"] == states["receipt_printer"] == "ok"
    assert seen["name"] == kiosk.profile.kiosk.name["zh_CN"]
    everything = str(seen) + str(controller.get(f"/api/v1/kiosks/{kiosk_id}/events"))
    for personal in ("张明华", "张*华", "340302195803172018", "3403**********2018"):
        assert personal not in everything, "no personal data reaches the fleet"

    # paper out on the (simulated) printer → an alert at the controller
    kiosk.devices.simulators["receipt_printer"].control("set_paper", state="out")
    kiosk.check_health()
    wait_for(lambda: [a for a in controller.alerts() if a.get("kiosk_id") == kiosk_id and "paper" in str(a)],
             timeout=20, what="a paper alert for this kiosk")

    # signed commands act on the kiosk
    result = command(controller, kiosk_id, "out_of_service", wait_for, reason="printer maintenance")
    assert result["status"] == "succeeded", result
    wait_for(lambda: kiosk.availability.maintenance, what="the kiosk in maintenance")
    result = command(controller, kiosk_id, "show_announcement", wait_for, text="今晚22点系统维护")
    assert result["status"] == "succeeded"
    wait_for(lambda: kiosk.announcement == {"zh_CN": "今晚22点系统维护"}, what="the announcement")
    result = command(controller, kiosk_id, "back_in_service", wait_for)
    assert result["status"] == "succeeded"
    wait_for(lambda: kiosk.availability.maintenance is None, what="back in service")


def test_a_pushed_profile_is_validated_before_it_replaces_the_current_one(kiosk, start_controller, wait_for):
    controller = start_controller()
    wait_for(lambda: controller.kiosk(kiosk.kiosk_id), timeout=20, what="the kiosk's birth")
    before = Path(kiosk.profile.source).read_text("utf-8")
    result = command(controller, kiosk.kiosk_id, "push_profile", wait_for, profile="kiosk: [not, a, profile]")
    assert result["status"] == "failed"
    assert Path(kiosk.profile.source).read_text("utf-8") == before, "a bad profile never replaces the good one"
