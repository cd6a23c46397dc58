"""Maintenance mode (kiosk/maintenance.py) on the kiosk core with real simulators and the real platform: a listed
technician's card + PIN opens it, a citizen's card is refused (and opens no citizen session), every step is audited
with the card masked, and while open the kiosk serves nobody."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiosk.maintenance import MaintenanceError
TECHNICIAN = ("chen", "520302199002144027")   # a synthetic identity listed as this kiosk's technician
CITIZEN = ("zhang", "340302195803172018")
PIN = "135790"


def test_technician_card_and_pin_open_maintenance_a_citizen_card_is_refused(make_harness: Any, list_technician: Any,
                                                                            call: Any) -> None:
    h = make_harness()
    core = h.core
    list_technician(core.kiosk_id, TECHNICIAN[1], PIN)
    reader = core.devices.simulators["idcard"]

    # a citizen's card while maintenance waits for a technician: refused, and no citizen session either
    core.maintenance.begin()
    reader.control("place_card", identity=CITIZEN[0])
    assert h.next_event("maintenance_refused")["code"] == "card_refused"
    assert core.maintenance.state == "refused" and core.session.citizen is None
    assert not core.availability.maintenance
    reader.control("remove_card")

    # the technician's card, then a wrong PIN, then the right one
    core.maintenance.begin()
    reader.control("place_card", identity=TECHNICIAN[0])
    while h.next_event("maintenance")["state"] != "pin":
        pass
    with pytest.raises(MaintenanceError) as wrong:
        call(core.maintenance.submit_pin, "000000")
    assert wrong.value.code == "pin_wrong" and core.maintenance.state == "pin"
    assert call(core.maintenance.submit_pin, PIN) is True
    assert core.maintenance.is_open
    h.next_event("availability")
    assert core.availability.maintenance == "technician" and core.availability.out_of_service
    assert core.session.citizen is None

    # in maintenance: devices with status and counters, a self-test, the reprint queue, then exit
    views = {v.kind: v for v in core.maintenance.devices()}
    assert views["receipt_printer"].state == "online" and views["receipt_printer"].required
    run = core.maintenance.self_test("internal")
    assert run.ok and set(run.results) >= {"idcard", "receipt_printer"}
    assert core.maintenance.reprint_queue() == []

    # switching to a profile on the kiosk: tried like a push (restart); protected settings need a signed push
    local = Path(core.profile.kiosk.data_dir) / "profiles" / "local"
    local.mkdir(parents=True)
    data = yaml.safe_load(Path(core.profile.source).read_text("utf-8"))
    (local / "longer.yaml").write_text(yaml.safe_dump(dict(data, session={**data["session"], "idle_timeout_s": 100}),
                                                      allow_unicode=True), "utf-8")
    (local / "demo.yaml").write_text(yaml.safe_dump(dict(data, kiosk={**data["kiosk"], "demo_controls": True}),
                                                    allow_unicode=True), "utf-8")
    (local / "other.yaml").write_text(yaml.safe_dump(dict(data, kiosk={**data["kiosk"], "id": "KSK-000000-0009"}),
                                                     allow_unicode=True), "utf-8")
    assert core.profile_updates.outcome == "first_start"
    assert core.maintenance.profiles() == ["demo.yaml", "longer.yaml", "other.yaml", "last-good.yaml"]
    with pytest.raises(MaintenanceError) as wrong_kiosk:
        core.maintenance.switch_profile("other.yaml")
    assert wrong_kiosk.value.code == "profile_wrong_kiosk"
    with pytest.raises(MaintenanceError) as protected:
        core.maintenance.switch_profile("demo.yaml")
    assert protected.value.code == "profile_protected"
    digest = core.maintenance.switch_profile("longer.yaml")
    assert h.next_event("restart_requested")["reason"] == "maintenance: profile switched"
    assert core.profile_updates.pending["digest"] == digest
    assert "idle_timeout_s: 100" in Path(core.profile.source).read_text("utf-8")
    core.maintenance.restart()
    assert h.next_event("restart_requested")["reason"] == "maintenance"
    core.maintenance.exit()
    assert core.maintenance.state == "closed" and core.availability.maintenance is None
    with pytest.raises(MaintenanceError):
        core.maintenance.devices()

    core.flush_audit()
    text = "".join(p.read_text("utf-8") for p in Path(core.profile.kiosk.data_dir).glob("audit*.jsonl"))
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = [e.get("event") for e in entries]
    for expected in ("maintenance_begin", "maintenance_refused", "maintenance_card_accepted", "maintenance_pin_wrong",
                     "maintenance_opened", "maintenance_devices_viewed", "self_test", "maintenance_self_test",
                     "maintenance_profile_switched", "maintenance_restart", "maintenance_closed"):
        assert expected in events, (expected, events)
    # each opening starts with no card: the refused citizen's masked number is not carried over to the next one
    assert [e["card"] for e in entries if e.get("event") == "maintenance_begin"] == ["", ""]
    refused = {e["code"] for e in entries if e.get("event") == "maintenance_profile_refused"}
    assert refused == {"profile_wrong_kiosk", "profile_protected"}
    assert TECHNICIAN[1] not in text and CITIZEN[1] not in text and PIN not in text
    opened = next(e for e in entries if e.get("event") == "maintenance_opened")
    assert opened["card"] == TECHNICIAN[1][:4] + "*" * 10 + TECHNICIAN[1][-4:]
