"""A citizen's help request through the real fleet path: the kiosk core's Help (kiosk/assistance.py) → its fleet link
and agent → mosquitto → the ``fleet-controller serve`` process opens a critical ``app_alarm`` alert
``assistance_requested``; an operator's acknowledgement closes it and sends the signed command
``assistance_acknowledged`` back, which the kiosk shows as "someone is coming". The dashboard side is
tests/e2e/test_assistance_journey.py (headless Chromium)."""
from __future__ import annotations

from typing import Any

import httpx


def assistance_alerts(controller: Any, kiosk_id: str, status: str = "open") -> list[dict[str, Any]]:
    return [a for a in controller.alerts(status=status, kiosk_id=kiosk_id)
            if a["rule"] == "app_alarm" and a["device"] == "assistance_requested"]


def test_help_reaches_the_controller_and_the_acknowledgement_comes_back(kiosk, start_controller, wait_for):
    controller = start_controller()
    kiosk_id = kiosk.kiosk_id
    wait_for(lambda: (lambda k: k and k["online"])(controller.kiosk(kiosk_id)), timeout=30, what="kiosk online")
    kiosk.devices.simulators["idcard"].control("place_card", identity="zhang")   # someone is being served
    wait_for(lambda: kiosk.session.citizen, what="the citizen identified")
    events: list[Any] = []
    kiosk.subscribe(lambda name, payload: events.append(payload["request"]) if name == "assistance" else None)

    request = kiosk.assistance.request("progress")
    sent = wait_for(lambda: next((r for r in events if r.id == request.id and r.state != "sending"), None),
                    timeout=15, what="the request sent")
    assert sent.state in ("waiting", "hall_closed"), sent   # the demo hall's hours decide which
    alert = wait_for(lambda: assistance_alerts(controller, kiosk_id), timeout=20, what="the help alert")[0]
    assert alert["severity"] == "critical" and alert["status"] == "open"
    assert "screen progress" in alert["detail"] and request.requested_at.strftime("%H:%M:%S") in alert["detail"]
    assert f"(request {request.id})" in alert["detail"]
    for personal in ("张明华", "张*华", "340302195803172018", "3403**********2018"):
        assert personal not in str(alert), "kiosk, screen and time only"

    # a viewer sees it but cannot acknowledge it (403, nothing sent to the kiosk)
    created = controller.post("/api/v1/operators", {"username": "watcher", "password": "watcher-password",
                                                    "role": "viewer"})
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=controller.url, timeout=10) as viewer:
        token = viewer.post("/api/v1/auth/token", json={"username": "watcher", "password": "watcher-password"})
        viewer.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        assert [a["id"] for a in viewer.get("/api/v1/alerts", params={"status": "open"}).json()
                if a["device"] == "assistance_requested"] == [alert["id"]]
        assert viewer.post(f"/api/v1/alerts/{alert['id']}/ack").status_code == 403
    assert assistance_alerts(controller, kiosk_id)[0]["acked_at"] is None
    assert not [c for c in controller.get(f"/api/v1/kiosks/{kiosk_id}/commands")
                if c["name"] == "assistance_acknowledged"], "nothing was sent to the kiosk"

    # the operator's acknowledgement closes it and tells the kiosk
    response = controller.post(f"/api/v1/alerts/{alert['id']}/ack")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cleared" and response.json()["acked_by"] == "admin"
    command = wait_for(lambda: next((c for c in controller.get(f"/api/v1/kiosks/{kiosk_id}/commands")
                                     if c["name"] == "assistance_acknowledged"), None), timeout=10,
                       what="the acknowledgement command")
    # it names the request the alert was raised for: a stale one cannot answer a later citizen (tests/kiosk)
    assert command["args"] == {"alert_id": alert["id"], "request": request.id} and command["created_by"] == "admin"
    wait_for(lambda: controller.get(f"/api/v1/commands/{command['id']}")["status"] == "succeeded", timeout=20,
             what="the command done on the kiosk")
    wait_for(lambda: kiosk.assistance.current is not None and kiosk.assistance.current.state == "coming",
             timeout=10, what="someone is coming, on the kiosk")
    assert events[-1].state == "coming" and events[-1].id == request.id
    assert assistance_alerts(controller, kiosk_id) == []
    # acknowledging again sends nothing more
    assert controller.post(f"/api/v1/alerts/{alert['id']}/ack").status_code == 200
    assert [c["name"] for c in controller.get(f"/api/v1/kiosks/{kiosk_id}/commands")].count(
        "assistance_acknowledged") == 1
    kiosk.flush_audit()
    audited = [e for e in kiosk.audit.entries() if e.get("event", "").startswith("assistance_")]
    assert [e["event"] for e in audited] == ["assistance_requested", "assistance_acknowledged"], audited
