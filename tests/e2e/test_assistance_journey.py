"""Consent and help, end to end: the real kiosk shell (Xvfb, X clicks) with a camera and its fleet link, mosquitto,
the ``fleet-controller serve`` process and its dashboard in headless Chromium.

A citizen places the card; the consent screen comes before any camera; they refuse and take another route (services
without identity). On the menu they tap Help in the control bar: the alarm reaches the controller's API and the
dashboard shows it on every page with a banner and a tone until the operator acknowledges it there; the kiosk then
says that someone is coming. The session reaches the controller's journey report (funnel, exits) and no payload the
kiosk published over the whole run holds the citizen's name, ID number or card data. One kiosk process for the whole
journey (test time)."""
from __future__ import annotations

import json
from typing import Any

from selenium.webdriver.common.by import By

from drivers.sim.control import send_command

from tests.e2e.conftest import start_with_camera
from tests.fleet.conftest import ADMIN_PASSWORD, broker, chromium, keys, observer, start_controller  # noqa: F401
from tests.fleet.test_journey_reports import ZHANG, assert_anonymous

ASSIST_TEXT = {"waiting": "已通知工作人员", "hall_closed": "不在工作时间", "coming": "马上就来"}


def help_status(ui: Any) -> str:
    found = ui.find("help_status")
    return found["text"] if found.get("found") else ""


def test_consent_refused_then_help_reaches_the_dashboard_and_comes_back(start_kiosk, camera_sim, broker, keys,
                                                                        start_controller, chromium, observer,
                                                                        tmp_path, output_dir, wait_for):
    controller = start_controller()
    ui = start_with_camera(start_kiosk, camera_sim,
                           fleet={"broker_url": broker.url, "verify_key": str(keys[1]), "heartbeat_s": 5})
    ui.wait_screen("attract", wait_for, timeout=30)
    kiosk_id = "KSK-340302-0001"
    wait_for(lambda: (lambda k: k and k["online"])(controller.kiosk(kiosk_id)), timeout=30, what="kiosk online")
    for aid in ("voice_repeat", "voice_quieter", "voice_louder", "voice_mute", "help"):
        assert ui.find(aid)["found"], f"{aid} on the attract screen's control bar"
    bar = ui.find("help")

    # the card: consent first — what is captured, why, nothing kept — and no camera before "agree"
    send_command(ui.simulators(wait_for)["idcard"]["control"], "place_card", identity="zhang")
    ui.wait_screen("face_consent", wait_for, timeout=30)
    texts = " ".join(ui.texts())
    assert "采集什么" in texts and "不保存" in texts and "张*华" in texts
    assert ui.find("help")["y"] == bar["y"], "the control bar stays in the same place"
    ui.screenshot("30-face-consent")
    ui.tap("consent_other", wait_for)
    ui.wait_text("摄像头不会打开", wait_for)
    assert ui.find("consent_route_staff_assistance")["found"]
    ui.screenshot("31-consent-refused")
    ui.tap("consent_route_continue_without_identity", wait_for)
    ui.wait_screen("menu", wait_for)
    assert not any("张*华" in t for t in ui.texts()), "the citizen goes on without identity"
    audit = tmp_path / "kiosk-data" / "audit.jsonl"
    entries = wait_for(lambda: [json.loads(line) for line in audit.read_text("utf-8").splitlines()
                                if '"face_consent"' in line or '"face_attempt"' in line], what="the decision audited")
    assert [(e["event"], e["decision"]) for e in entries] == [("face_consent", "refused")]

    # Help on the menu → the alarm on the controller's API
    ui.tap("help", wait_for)
    status = wait_for(lambda: (lambda t: t if any(v in t for v in (ASSIST_TEXT["waiting"], ASSIST_TEXT["hall_closed"]))
                               else None)(help_status(ui)), timeout=20, what="the help request sent")
    ui.screenshot("32-help-sent")
    alert = wait_for(lambda: [a for a in controller.alerts(kiosk_id=kiosk_id)
                              if a["device"] == "assistance_requested"], timeout=20, what="the alarm on the API")[0]
    assert alert["severity"] == "critical" and "screen menu" in alert["detail"]
    assert "张" not in json.dumps(alert, ensure_ascii=False)

    # the dashboard: a banner and a tone on every page until an operator acknowledges it
    d = chromium
    d.get(controller.url + "/login")
    d.find_element(By.NAME, "username").clear()
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: "/login" not in d.current_url, 10, what="logged in")
    for page in ("/", "/reports"):
        d.get(controller.url + page)
        wait_for(lambda: d.execute_script(
            "const b = document.getElementById('assist-banner'); return b && !b.hidden && "
            "b.querySelector('[data-assist]') && b.querySelector('[data-assist]').dataset.kiosk"), 10,
            what=f"the help banner on {page}") == kiosk_id
    banner = d.find_element(By.ID, "assist-banner").text
    assert "群众呼叫工作人员" in banner
    assert d.find_element(By.CSS_SELECTOR, "#assist-banner [data-screen='menu']").text == "菜单", "named for operators"
    sound = wait_for(lambda: (lambda s: s if s["beeps"] >= 2 else None)(
        d.execute_script("return window.fleetAssist")), 15, what="the tone repeating")
    assert sound["audio"] == "running", sound
    from tests.fleet.test_dashboard import shoot

    shoot(d, output_dir, "assistance-banner", full=False)
    d.find_element(By.CSS_SELECTOR, f"[data-assist-ack='{alert['id']}']").click()
    wait_for(lambda: d.execute_script("return document.getElementById('assist-banner').hidden"), 10,
             what="the banner gone after the acknowledgement")
    beeps = d.execute_script("return window.fleetAssist.beeps")
    acked = [a for a in controller.alerts(status="all", kiosk_id=kiosk_id) if a["id"] == alert["id"]][0]
    assert acked["acked_by"] == "admin" and acked["status"] == "cleared"

    # back on the kiosk: someone is coming
    wait_for(lambda: ASSIST_TEXT["coming"] in help_status(ui), timeout=20, what="someone is coming, on the kiosk")
    ui.screenshot("33-help-coming")
    assert d.execute_script("return window.fleetAssist.beeps") == beeps, "silent once acknowledged"
    ui.tap("help_close", wait_for)
    wait_for(lambda: not ui.find("help_status").get("found"), what="the panel closed")
    assert ui.state()["screen"] == "menu" and ui.find("help")["y"] == bar["y"]

    # out of service (an operator's command, once the citizen has finished): Help is still there, in the same place
    sent = controller.post(f"/api/v1/kiosks/{kiosk_id}/commands", {"name": "out_of_service", "args": {"reason": "t"}})
    assert sent.status_code == 202, sent.text
    ui.tap("finish", wait_for)
    ui.wait_screen("out_of_service", wait_for, timeout=20)
    assert ui.find("help")["y"] == bar["y"] and not ui.find("help")["disabled"]
    ui.tap("help", wait_for)
    wait_for(lambda: any(v in help_status(ui) for v in (ASSIST_TEXT["waiting"], ASSIST_TEXT["hall_closed"])),
             timeout=20, what="help asked from the out-of-service screen")
    ui.screenshot("34-out-of-service-help")
    wait_for(lambda: [a for a in controller.alerts(kiosk_id=kiosk_id) if a["device"] == "assistance_requested"
                      and "screen out_of_service" in a["detail"]], timeout=20, what="the second alarm")

    # the session (card, consent refused, menu, help, finished without a service) in the controller's journey report
    report = wait_for(lambda: (lambda r: r if r["totals"]["sessions"] >= 1 else None)(
        controller.get("/api/v1/reports/journeys", kiosk=kiosk_id)), 30, what="the session in the journey report")
    t = report["totals"]
    assert (t["sessions"], t["completed"], t["abandoned"]) == (1, 0, 1), t
    funnel = {f["step"]: (f["reached"], f["dropped"]) for f in report["funnel"]}   # sessions with a card
    assert funnel == {"attract": (1, 0), "card": (1, 0), "face": (1, 0), "menu": (1, 1), "service": (0, 0),
                      "done": (0, 0)}, "the consent screen is the face step; given up on the menu"
    assert all(f["reached"] == 0 for f in report["funnel_anonymous"])
    assert {e["screen"] for e in report["exits"]} == {"menu"}, "given up on the menu"
    # no payload of the whole run — telemetry, alarms, journeys — carries the citizen
    payloads = observer.all_payloads()
    assert any(b'"sessions"' in p for p in payloads)
    for raw in payloads:
        text = raw.decode("utf-8", "replace")
        assert not any(personal in text for personal in ZHANG), "personal data published"
    assert_anonymous([p for topic, p in observer.messages if topic.endswith("/journey")])
