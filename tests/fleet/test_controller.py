"""The fleet controller as operators run it (``fleet-controller serve``), fed by real agents through mosquitto, on
SQLite and on PostgreSQL: latest state, filters, alerts that open, de-duplicate, get acknowledged and clear by
themselves, the time series, remote commands with results, and the REST API's contract."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_state_filters_alerts_ack_and_history(db_url: str, start_controller: Any, start_agents: Any,
                                              wait_for: Any) -> None:
    controller = start_controller("--offline-after", "1", db=db_url)
    agents = start_agents(3, "KSK-T-", "--poll", "0.2")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 3, 15, what="three kiosks online")
    kiosk = controller.kiosk("KSK-T-0002")
    assert kiosk["district"] == "蚌山区" and kiosk["state"] == "ok" and kiosk["online"]
    assert {d["kind"]: d["paper"] for d in kiosk["devices"]} == {"idcard": None, "receipt_printer": "ok"}
    assert [k["kiosk_id"] for k in controller.get("/api/v1/kiosks", district="蚌山区")] == ["KSK-T-0002"]
    assert [k["kiosk_id"] for k in controller.get("/api/v1/kiosks", q="张公山")] == ["KSK-T-0003"]
    assert controller.get("/api/v1/districts") == sorted(["龙子湖区", "蚌山区", "禹会区"])

    agents.cmd("set_paper", kiosk="KSK-T-0002", state="out")
    alert = wait_for(lambda: controller.alerts(kiosk_id="KSK-T-0002"), 5, what="the paper-out alert")[0]
    assert (alert["rule"], alert["device"], alert["severity"], alert["status"]) == \
        ("paper_out", "receipt_printer", "critical", "open")
    assert [k["kiosk_id"] for k in controller.get("/api/v1/kiosks", state="fault")] == ["KSK-T-0002"]
    assert controller.get("/api/v1/kiosks", state="fault")[0]["paper"] == "out"
    # the condition keeps being reported (every change and heartbeat says paper out): still one alert
    for _ in range(3):
        agents.cmd("serve_citizen", kiosk="KSK-T-0002")
    wait_for(lambda: controller.kiosk("KSK-T-0002")["counters"].get("sessions") == 3, 5, what="the sessions")
    assert len(controller.alerts(status="all", kiosk_id="KSK-T-0002")) == 1

    acked = controller.post(f"/api/v1/alerts/{alert['id']}/ack")
    assert acked.status_code == 200 and acked.json()["acked_by"] == "admin" and acked.json()["status"] == "open"
    agents.cmd("set_paper", kiosk="KSK-T-0002", state="full")
    cleared = wait_for(lambda: [a for a in controller.alerts(status="cleared") if a["id"] == alert["id"]], 5,
                       what="the alert to clear by itself")[0]
    assert cleared["cleared_at"] >= cleared["opened_at"] and cleared["acked_by"] == "admin"
    assert controller.kiosk("KSK-T-0002")["state"] == "ok"

    history = controller.get("/api/v1/kiosks/KSK-T-0002/history", hours=1)
    assert sum(v for _t, v in history["sessions_per_hour"]) == 3
    assert [v for _t, v in history["paper"]][-3:] == [2, 0, 2]  # ok → out → ok
    events = controller.get("/api/v1/kiosks/KSK-T-0002/events")
    assert [(e["code"], e["active"]) for e in events][:2] == [("paper_out", False), ("paper_out", True)]


def test_remote_commands_with_results_and_queueing_for_an_offline_kiosk(start_controller: Any, start_agents: Any,
                                                                        wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(2, "KSK-C-")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 2, 15, what="two kiosks online")

    def finished(command_id: str) -> dict | None:
        c = controller.get(f"/api/v1/commands/{command_id}")
        return c if c["status"] in ("succeeded", "failed", "rejected") else None

    r = controller.post("/api/v1/kiosks/KSK-C-0001/commands", {"name": "out_of_service"})
    assert r.status_code == 202 and r.json()["status"] == "sent"
    done = wait_for(lambda: finished(r.json()["id"]), 5, what="the command result")
    assert (done["status"], done["detail"], done["created_by"]) == ("succeeded", "out of service", "admin")
    assert done["accepted_at"] and done["finished_at"] >= done["accepted_at"]
    wait_for(lambda: controller.kiosk("KSK-C-0001")["service"] == "out_of_service", 5, what="the service mode")
    assert agents.cmd("stats", kiosk="KSK-C-0001")["service"] == "out_of_service"

    r = controller.post("/api/v1/kiosks/KSK-C-0001/commands",
                        {"name": "show_announcement", "args": {"text": "今日 17:00 起系统维护"}})
    wait_for(lambda: finished(r.json()["id"]), 5, what="the announcement")
    wait_for(lambda: controller.kiosk("KSK-C-0001")["announcement"] == "今日 17:00 起系统维护", 5,
             what="the announcement in the kiosk's state")
    bad = controller.post("/api/v1/kiosks/KSK-C-0001/commands", {"name": "format_disk"})
    assert bad.status_code == 422
    pii = controller.post("/api/v1/kiosks/KSK-C-0001/commands",
                          {"name": "show_announcement", "args": {"text": "请 340302195803172018 到窗口"}})
    assert pii.status_code == 422
    failed = controller.post("/api/v1/kiosks/KSK-C-0001/commands",
                             {"name": "push_profile", "args": {"profile": "not a profile"}})
    assert wait_for(lambda: finished(failed.json()["id"]), 5, what="the push result")["status"] == "failed"

    # offline: the command waits (queued) and is delivered when the kiosk is back
    agents.cmd("stop_agent", kiosk="KSK-C-0002")
    wait_for(lambda: not controller.kiosk("KSK-C-0002")["online"], 5, what="the kiosk to go offline")
    r = controller.post("/api/v1/kiosks/KSK-C-0002/commands", {"name": "restart_app"})
    assert r.json()["status"] == "queued"
    agents.cmd("start_agent", kiosk="KSK-C-0002")
    done = wait_for(lambda: finished(r.json()["id"]), 10, what="the queued command to run")
    assert done["status"] == "succeeded" and agents.cmd("stats", kiosk="KSK-C-0002")["restarts"] == 1
    names = [c["name"] for c in controller.get("/api/v1/kiosks/KSK-C-0001/commands")]
    assert names == ["push_profile", "show_announcement", "out_of_service"]


def test_expired_commands_are_marked(start_controller: Any, start_agents: Any, wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(1, "KSK-E-")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 1, 15, what="the kiosk online")
    agents.cmd("stop_agent", kiosk="KSK-E-0001")
    wait_for(lambda: not controller.kiosk("KSK-E-0001")["online"], 5, what="the kiosk offline")
    r = controller.post("/api/v1/kiosks/KSK-E-0001/commands", {"name": "back_in_service", "ttl_s": 5})
    assert r.json()["status"] == "queued"
    expired = wait_for(lambda: controller.get(f"/api/v1/commands/{r.json()['id']}")["status"] == "expired", 10,
                       what="the command to expire")
    assert expired


def test_api_needs_a_login_and_its_openapi_contract_is_committed(start_controller: Any) -> None:
    controller = start_controller()
    anonymous = httpx.get(controller.url + "/api/v1/kiosks")
    assert anonymous.status_code == 401
    wrong = httpx.post(controller.url + "/api/v1/auth/token", json={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401
    # with the dashboard's cookie, state-changing API calls also need the CSRF header
    cookies = {"fleet_session": controller.token}
    assert httpx.post(controller.url + "/api/v1/alerts/1/ack", cookies=cookies).status_code == 403
    assert httpx.get(controller.url + "/healthz").json()["broker_connected"] is True
    spec = httpx.get(controller.url + "/api/v1/openapi.json").json()
    committed = json.loads((ROOT / "fleet" / "controller" / "openapi.json").read_text("utf-8"))
    assert spec == committed, "API changed: regenerate with `fleet-controller openapi > fleet/controller/openapi.json`"
    assert {"/api/v1/kiosks", "/api/v1/kiosks/{kiosk_id}/history", "/api/v1/alerts/{alert_id}/ack",
            "/api/v1/kiosks/{kiosk_id}/commands", "/api/v1/stats"} <= set(spec["paths"])
