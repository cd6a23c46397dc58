"""The operators' dashboard in headless Chromium (Debian's chromium + chromedriver, driven by Selenium): login, the
fleet table and its filters, the alert list with acknowledge, a kiosk's page with its devices and history charts, and
remote commands from buttons with their results. Screenshots go to test-output/<test>/ (and, with
UPDATE_SCREENSHOTS=1, to docs/screenshots/fleet-*.png)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from fleet.agent.history import publish_history
from fleet.agent.virtual import VirtualKiosk

from_root = Path(__file__).resolve().parents[2]
PASSWORD = "test-operator-password"


def shoot(driver: Any, out: Path, name: str, full: bool = True) -> Path:
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 900)") if full else 900
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1440, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
    path = out / f"fleet-{name}.png"
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, from_root / "docs" / "screenshots" / path.name)
    return path


def rows(driver: Any, table: str) -> list[str]:
    """The kiosk ids of a table's rows, read in one script call (a page reload between finding the rows and reading
    them would otherwise leave stale element references)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(r => r.getAttribute('data-kiosk'))",
        f"#{table} tbody tr[data-kiosk]")


def test_operator_dashboard(broker: Any, start_controller: Any, start_agents: Any, chromium: Any,
                            output_dir: Path, wait_for: Any) -> None:
    controller = start_controller("--offline-after", "2")
    # yesterday of kiosk 1, as it sent it, so the history charts have a day to show
    publish_history(broker.url, VirtualKiosk("KSK-340302-0001", 0))
    wait_for(lambda: controller.kiosk("KSK-340302-0001") and sum(
        v for _t, v in controller.get("/api/v1/kiosks/KSK-340302-0001/history")["sessions_per_hour"]) > 50, 15,
             what="the replayed history stored")
    agents = start_agents(6, "KSK-340302-", "--poll", "0.2")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 6, 15, what="six kiosks online")
    for _ in range(4):
        agents.cmd("serve_citizen", kiosk="KSK-340302-0001")
    agents.cmd("set_paper", kiosk="KSK-340302-0002", state="out")
    agents.cmd("set_paper", kiosk="KSK-340302-0003", state="low")
    agents.cmd("set_device", kiosk="KSK-340302-0005", kind="idcard", state="hardware_error",
               error_code="sam_failed", detail="SAM self-test failed")
    agents.cmd("stop_agent", kiosk="KSK-340302-0006")
    wait_for(lambda: {a["rule"] for a in controller.alerts()} >= {"paper_out", "paper_near_end", "device_fault",
                                                                  "kiosk_offline"}, 10, what="the alerts")
    d = chromium
    base = controller.url

    # login: a page asked for without a session goes to the login form; a wrong password is refused
    d.get(base + "/alerts")
    assert "/login" in d.current_url
    shoot(d, output_dir, "login", full=False)
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys("wrong")
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    assert "用户名或密码错误" in d.find_element(By.CSS_SELECTOR, ".flash.bad").text
    d.find_element(By.NAME, "username").clear()
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: d.current_url.endswith("/alerts"), 5, what="back to the page asked for")

    # fleet table with filters
    d.get(base + "/")
    assert len(rows(d, "fleet-table")) == 6
    tiles = d.execute_script(  # one atomic read: the page swaps its content every 10 s
        "const o = {}; document.querySelectorAll('.tile').forEach(t => "
        "{ o[t.querySelector('.t-label').innerText] = t.querySelector('.t-value').innerText; }); return o;")
    assert tiles["终端总数"] == "6" and tiles["在线"] == "5" and tiles["离线"] == "1" and tiles["故障"] == "2"
    shoot(d, output_dir, "overview")
    Select(d.find_element(By.NAME, "district")).select_by_value("蚌山区")
    d.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait_for(lambda: rows(d, "fleet-table") == ["KSK-340302-0002"], 5, what="the district filter")
    d.get(base + "/?state=fault")
    assert rows(d, "fleet-table") == ["KSK-340302-0002", "KSK-340302-0005"]
    d.get(base + "/?q=怀远")
    assert rows(d, "fleet-table") == ["KSK-340302-0005"]

    # alert list: acknowledge the paper-out alert with its button
    d.get(base + "/alerts")
    paper_row = d.find_element(By.CSS_SELECTOR, "#alert-table tr[data-rule='paper_out']")
    assert "KSK-340302-0002" in paper_row.text and "打印纸用尽" in paper_row.text
    paper_row.find_element(By.CSS_SELECTOR, "button[data-ack]").click()
    wait_for(lambda: "admin 已确认" in (d.execute_script(
        "const r = document.querySelector(\"#alert-table tr[data-rule='paper_out']\"); return r ? r.innerText : ''")),
             5, what="the acknowledgement shown")
    assert [a for a in controller.alerts() if a["rule"] == "paper_out"][0]["acked_by"] == "admin"
    shoot(d, output_dir, "alerts")

    # the map-free location list
    d.get(base + "/locations")
    assert len(d.find_elements(By.CSS_SELECTOR, ".district")) == 6
    shoot(d, output_dir, "locations")

    # a kiosk's page: devices, history charts from the time series, commands from buttons with their results
    d.get(base + "/kiosks/KSK-340302-0001")
    assert {r.get_attribute("data-device") for r in d.find_elements(By.CSS_SELECTOR, "#device-table tr[data-device]")} \
        == {"idcard", "receipt_printer"}
    charts = d.find_elements(By.CSS_SELECTOR, "figure svg.chart")
    assert len(charts) == 4
    assert len(charts[0].find_elements(By.CSS_SELECTOR, "rect.bar")) >= 12  # sessions per hour over the day
    assert charts[1].find_elements(By.CSS_SELECTOR, "circle.dot-bad")  # the afternoon the paper ran out
    assert charts[2].find_elements(By.CSS_SELECTOR, "rect.bar-bad")  # faults per hour
    assert charts[3].find_elements(By.CSS_SELECTOR, "path.line")  # latency to the platform
    d.find_element(By.CSS_SELECTOR, "button[data-command='out_of_service']").click()
    d.switch_to.alert.accept()  # "are you sure?"
    # read in one script call: until the form's redirect lands, the old page (without a flash) is still shown
    wait_for(lambda: "已下发「暂停服务」" in d.execute_script(
        "return Array.from(document.querySelectorAll('.flash')).map(e => e.innerText).join(' ')"), 5,
             what="the flash")

    def first_command_status() -> str | None:
        d.refresh()
        row = d.find_elements(By.CSS_SELECTOR, "#command-table tr[data-command-id]")
        return row[0].get_attribute("data-status") if row else None

    wait_for(lambda: first_command_status() == "succeeded", 10, what="the command to succeed")
    assert controller.kiosk("KSK-340302-0001")["service"] == "out_of_service"
    box = d.find_element(By.NAME, "text")
    box.send_keys("今日 17:00 起系统维护，请到一楼人工窗口办理")
    d.find_element(By.CSS_SELECTOR, "button[data-command='show_announcement']").click()
    wait_for(lambda: first_command_status() == "succeeded" and d.find_elements(
        By.CSS_SELECTOR, "#command-table tr[data-name='show_announcement']"), 10, what="the announcement")
    wait_for(lambda: "当前公告" in (d.refresh() or d.find_element(By.TAG_NAME, "main").text), 10,
             what="the announcement on the kiosk's page")
    d.find_element(By.CSS_SELECTOR, "button[data-command='back_in_service']").click()
    wait_for(lambda: controller.kiosk("KSK-340302-0001")["service"] == "in_service", 10, what="back in service")
    d.refresh()
    shoot(d, output_dir, "kiosk")
    # the live refresh swaps the page body in place (no full reload) and keeps working
    d.execute_script("document.getElementById('live').dataset.marker = 'kept';"
                     "document.getElementById('live').addEventListener('refreshed', () => window.__refreshed = 1);")
    d.execute_script("document.activeElement.blur()")
    wait_for(lambda: d.execute_script("return window.__refreshed === 1"), 15, what="a live refresh")
    assert d.execute_script("return document.getElementById('live').dataset.marker") == "kept"
    d.get(base + "/api")
    assert "/api/v1/kiosks/{kiosk_id}/commands" in d.find_element(By.TAG_NAME, "main").text

    # the admin's operators page: accounts, roles, live sessions (the role checks are in test_operator_security.py)
    d.get(base + "/operators")
    assert d.find_element(By.CSS_SELECTOR, "#operator-table tr[data-operator='admin']").get_attribute(
        "data-role") == "admin"
    shoot(d, output_dir, "operators", full=False)
