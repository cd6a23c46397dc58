"""Anonymous journeys: a kiosk core's sessions → topic ``journey`` (through the agent's outbox) → the real
broker → the controller's hourly/daily buckets → the reports API, CSV export and page (headless Chromium); no
personal data in any journey payload; small cells suppressed in exports; a bad journey payload dead-lettered; a
redelivered journey message counted once."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from fleet import protocol as P
from fleet.agent import FleetAgent
from fleet.agent.virtual import VirtualKiosk
from fleet.controller import reports as R
from kiosk.journey import JourneyRecorder
from kiosk.session import RatingTarget

ROOT = Path(__file__).resolve().parents[2]
ZHANG = ("张明华", "张*华", "340302195803172018", "3403**********2018")
APPLICATION = "SQ-2026-123456789"
ENVELOPE_NUMBERS = ("ts", "mid", "seq", "bdSeq", "v", "kiosk_id")  # the kiosk's own id, time, numbers


def journey_texts(payload: dict[str, Any]) -> str:
    """Every string of a journey payload but its envelope (kiosk id): keys, session ids, screen names, codes — what
    must hold no run of 6 digits (the numbers are durations, bounded by the protocol; ``ts``/``mid`` are the
    envelope's)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                out.append(str(k))
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            out.append(v)
    walk({k: v for k, v in payload.items() if k not in ENVELOPE_NUMBERS})
    return " ".join(out)


def assert_anonymous(payloads: list[bytes]) -> None:
    assert payloads
    for raw in payloads:
        text = raw.decode("utf-8")
        for personal in (*ZHANG, APPLICATION):
            assert personal not in text, "personal data in a journey payload"
        payload = json.loads(raw)
        assert not re.search(r"\d{6,}", journey_texts(payload)), journey_texts(payload)
        for s in payload["sessions"]:
            assert set(s) <= {"sid", "start_s", "dur_s", "outcome", "at", "err", "steps", "services", "ratings"}
            for _code, stars, tags in s.get("ratings", []):   # stars and suggested tag codes only, never a comment
                assert 1 <= stars <= 5 and all(re.fullmatch(r"[a-z][a-z0-9_]*", t) for t in tags)
            assert re.fullmatch(r"[a-z]{12}", s["sid"])


def test_kiosk_core_sessions_reach_the_funnel_and_service_tables(kiosk, start_controller, observer, wait_for):
    controller = start_controller()
    core = kiosk
    # 1. a citizen with a card: face check, menu, progress read on screen → completed, rated, finished
    core.devices.simulators["idcard"].control("place_card", identity="zhang")
    wait_for(lambda: core.session.citizen, what="the citizen identified")
    platform_session_id = core.session.data.id
    for screen in ("face_check", "menu", "progress"):
        core.journey.step(screen)   # what the shell does on every screen change
    core.complete_action(RatingTarget("application", APPLICATION, "query_progress"))
    core.journey.step("rating")
    core.rating_finished(False)
    # 2. without a card: menu → guide → guide detail, then "finish" without completing anything → abandoned
    core.start_anonymous()
    for screen in ("menu", "guide", "guide_detail"):
        core.journey.step(screen)
    core.end_session("finished")
    # 3. without a card: menu, then the idle timeout
    core.start_anonymous()
    core.journey.step("menu")
    core.end_session("timeout")

    report = wait_for(lambda: (lambda r: r if r["totals"]["sessions"] >= 3 else None)(
        controller.get("/api/v1/reports/journeys", kiosk=core.kiosk_id)), 30, what="three sessions reported")
    t = report["totals"]
    assert (t["sessions"], t["completed"], t["abandoned"], t["timed_out"], t["error"]) == (3, 1, 1, 1, 0)
    funnel = {f["step"]: (f["reached"], f["dropped"]) for f in report["funnel"]}
    assert funnel == {"attract": (1, 0), "card": (1, 0), "face": (1, 0), "menu": (1, 0), "service": (1, 0),
                      "done": (1, 0)}
    anon = {f["step"]: (f["reached"], f["dropped"]) for f in report["funnel_anonymous"]}
    assert anon["attract"] == (2, 0) and anon["menu"] == (2, 1) and anon["service"] == (1, 1)
    services = {s["service"]: s for s in report["services"]}
    assert services["progress"]["started"] == services["progress"]["completed"] == 1
    assert services["guide"]["started"] == services["guide"]["abandoned"] == 1
    assert services["guide"]["completed"] == 0
    assert {e["screen"]: e["count"] for e in report["exits"]} == {"guide_detail": 1, "menu": 1}
    assert {s["screen"]: s["timeouts"] for s in report["screens"]}["menu"] == 1
    # the district and fleet scopes counted the same sessions
    fleet_wide = controller.get("/api/v1/reports/journeys")
    assert fleet_wide["totals"]["sessions"] == 3
    # nothing personal, and a session id of its own (not the kiosk's, which the platform and the audit know)
    journeys = [p for t_, p in observer.messages if t_.endswith("/journey")]
    assert_anonymous(journeys)
    sids = {s["sid"] for raw in journeys for s in json.loads(raw)["sessions"]}
    assert len(sids) == 3 and platform_session_id not in sids


#: the screens of each service, in order (what kiosk/journey.py reports per service)
FLOWS = {"print": ["guide", "guide_detail", "print_confirm"], "pay": ["payment"], "progress": ["progress"],
         "apply": ["apply_notice", "apply_form", "payment"]}


def session(outcome: str, service: str | None, start_s: float, at: str = "menu", card: bool = True,
            secs: float = 40.0, err: str | None = None, depth: int = 99,
            rating: tuple[int, list[str]] | None = None) -> dict[str, Any]:
    """One journey record as a kiosk sends it; a service not completed stops after ``depth`` of its screens."""
    steps = [["attract", 2.0]] + ([["card", 3.0], ["face", 6.0]] if card else []) + [["menu", 5.0]]
    services = []
    if service:
        flow = FLOWS.get(service, [service])
        screens = flow if outcome == "completed" else flow[:max(1, min(depth, len(flow)))]
        steps += [[sc, round(secs / len(screens), 1)] for sc in screens]
        services.append([service, outcome, secs, screens])
    if outcome == "completed":
        steps.append(["done", 0.0])
    else:
        steps[-1][0] = at if not service else steps[-1][0]
    record = {"sid": "".join(chr(97 + (int(start_s * 7 + i * 3) % 26)) for i in range(12)), "start_s": start_s,
              "dur_s": 16.0 + secs, "outcome": outcome, "at": "done" if outcome == "completed" else steps[-1][0],
              "err": err, "steps": steps, "services": services}
    if rating:
        record["ratings"] = [[service or "other", rating[0], rating[1]]]
    return record


def rating_of(n: int) -> tuple[int, list[str]]:
    stars = (5, 5, 4, 1, 5, 3, 2, 5, 4)[n % 9]
    return stars, (["long_wait", "complicated"][n % 2:n % 2 + 1] if stars <= 2 else
                   ["fast"] if stars == 5 else [])


def test_reports_csv_dead_letter_duplicates_and_page(broker, keys, start_controller, observer, kiosk_client,
                                                     chromium, output_dir, wait_for):
    controller = start_controller()
    agents, kiosks = [], []
    try:
        for i in range(3):
            vk = VirtualKiosk(f"KSK-340302-{i + 1:04d}", i)
            agent = FleetAgent(vk.kiosk_id, broker.url, vk.statuses, verify_key=keys[1], identity=vk.identity(),
                               app_source=vk.app, heartbeat_s=5, poll_s=0.2)
            kiosks.append(vk)
            agents.append(agent)
        # the first kiosk's journeys are queued before its agent ever connects: they wait in the disk outbox
        day = 86_400.0
        first = [session("completed", "print", 3600 + k * 60) for k in range(7)] + \
                [session("completed", "pay", 7200 + k * 60) for k in range(2)] + \
                [session("timed_out", "pay", 9000, secs=120)] + \
                [session("error", "apply", 9100, err="platform_unavailable")]
        assert agents[0].report_journeys(first) == len(first)
        assert agents[0].pending() >= 1
        for a in agents:
            a.start()
        wait_for(lambda: controller.get("/api/v1/summary")["online"] == 3, 20, what="three kiosks online")
        # a fortnight of journeys for a chart with days (sent by the kiosks like any others)
        for i, a in enumerate(agents):
            history = []
            for d in range(14):
                n = 3 + (d * 5 + i * 3) % 9
                for k in range(n):
                    outcome = ("completed", "completed", "completed", "abandoned", "timed_out")[(d + k + i) % 5]
                    history.append(session(outcome, ("print", "pay", "progress", "apply")[(k + i) % 4],
                                           d * day + 3 * 3600 + k * 300, at=("face", "menu")[k % 2],
                                           card=(k + d) % 3 != 0, secs=30 + (k * 37) % 200, depth=1 + k % 3,
                                           rating=rating_of(d + k + i) if outcome == "completed" else None))
            a.report_journeys(history)
        total = len(first) + sum(3 + (d * 5 + i * 3) % 9 for i in range(3) for d in range(14))
        wait_for(lambda: controller.get("/api/v1/reports/journeys", since=_day(-20))["totals"]["sessions"] == total,
                 30, what="every session counted")
        # the first kiosk's first batch alone (a scope of its own: kiosk, and the day it started)
        only = [p for t_, p in observer.messages if t_ == "fleet/v1/KSK-340302-0001/journey"]
        assert_anonymous([p for _t, p in observer.messages if _t.endswith("/journey")])

        # a redelivered journey message (same kiosk, same mid) counts once
        before = controller.get("/api/v1/reports/journeys", kiosk="KSK-340302-0001", since=_day(-20))["totals"]
        client = kiosk_client(broker, "KSK-340302-0001", "replayer")
        client.publish("fleet/v1/KSK-340302-0001/journey", only[0], qos=1).wait_for_publish(5)
        # a bad journey payload (a service code with a number in it) is dead-lettered, not counted
        bad = json.loads(only[0])
        bad["mid"] += 10_000_000
        bad["sessions"][0]["services"] = [["print340302195803172018", "completed", 3.0]]
        client.publish("fleet/v1/KSK-340302-0001/journey", P.dumps(bad), qos=1).wait_for_publish(5)
        dead = wait_for(lambda: [d for d in controller.get("/api/v1/dead-letters")
                                 if d["reason"] == "bad_journey"], 15, what="the bad journey dead-lettered")
        assert "340302195803172018" not in json.dumps(dead)
        wait_for(lambda: controller.stats()["duplicates"] >= 1, 10, what="the redelivery seen as a duplicate")
        after = controller.get("/api/v1/reports/journeys", kiosk="KSK-340302-0001", since=_day(-20))["totals"]
        assert after == before

        # the first batch: per service, counted right
        today = controller.get("/api/v1/reports/journeys", kiosk="KSK-340302-0001", since=_day(-20),
                               service="pay")
        pay = {s["service"]: s for s in today["services"]}["pay"]
        assert pay["completed"] >= 2 and pay["timed_out"] >= 1

        # CSV: counts from 1 to 4 shown as <5, 0 and ≥ 5 as they are
        resp = controller.api.get("/api/v1/reports/export.csv", params={"section": "services", "since": _day(-20),
                                                                         "until": _day(0), "kiosk": "KSK-340302-0003",
                                                                         "service": "apply"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        rows = [line.split(",") for line in resp.text.lstrip("\ufeff").strip().splitlines()]
        assert rows[0][:3] == ["service", "started", "completed"]
        report = controller.get("/api/v1/reports/journeys", kiosk="KSK-340302-0003", since=_day(-20),
                                service="apply")
        apply_ = {s["service"]: s for s in report["services"]}["apply"]
        for col, value in zip(rows[0], rows[1]):
            if col in ("started", "completed", "abandoned", "timed_out", "error", "out_of_service"):
                n = apply_[col]
                assert value == ("<5" if 0 < n < 5 else str(n)), (col, n, value)
        csv_all = controller.api.get("/api/v1/reports/export.csv", params={"section": "days", "since": _day(-20),
                                                                           "kiosk": "KSK-340302-0001"})
        cells = [c for line in csv_all.text.splitlines()[1:] for c in line.split(",")[1:]]
        assert "<5" in cells and not any(c in {"1", "2", "3", "4"} for c in cells), cells
        assert controller.api.get("/api/v1/reports/export.csv", params={"section": "availability"}).status_code == 200
        # the new tables (ratings, their tags, per district, the per-service funnel) under the same rule
        one = controller.get("/api/v1/reports/journeys", kiosk="KSK-340302-0001", since=_day(-20))
        want = {s_["service"]: s_["ratings"] for s_ in one["services"] if s_["ratings"]["rated"]}
        seen_small = False
        for section in ("ratings", "rating_tags", "ratings_by", "service_funnel"):
            got = controller.api.get("/api/v1/reports/export.csv", params={
                "section": section, "since": _day(-20), "kiosk": "KSK-340302-0001" if section != "ratings_by" else ""})
            assert got.status_code == 200, (section, got.text)
            table = list(csv.DictReader(io.StringIO(got.text.lstrip("\ufeff"))))
            assert table, section
            for row in table:
                for col in set(row) & R.COUNT_FIELDS:
                    assert row[col] not in {"1", "2", "3", "4"}, (section, col, row)
                    seen_small |= row[col] == "<5"
                if section == "ratings" and row["service"] != "*":
                    r_ = want[row["service"]]
                    assert [row[f"s{k}"] for k in "12345"] == [str(R.small(r_["stars"][k])) for k in "12345"]
                    assert row["low_pct"] == ("" if 0 < r_["low"] < 5 or r_["rated"] < 5 else str(r_["low_pct"]))
        assert seen_small
        assert controller.api.get("/api/v1/reports/journeys", params={"since": "yesterday"}).status_code == 422
        for window in ({"since": _day(0), "until": _day(-1)}, {"since": _day(-400), "until": _day(0)}):
            for path in ("/api/v1/reports/journeys", "/api/v1/reports/availability", "/api/v1/reports/export.csv"):
                assert controller.api.get(path, params=window).status_code == 422, (path, window)

        # paper forecast and device availability from the kiosks' own reports
        kiosks[1].set_paper("low")
        kiosks[2].set_device("idcard", "hardware_error", error_code="sam_failed", detail="SAM self-test failed")
        agents[1].notify_changed()
        agents[2].notify_changed()
        paper = wait_for(lambda: controller.get("/api/v1/reports/paper")["kiosks"], 15, what="a paper forecast row")
        assert paper[0]["kiosk_id"] == "KSK-340302-0002" and paper[0]["paper"] == "near-end"
        avail = wait_for(lambda: [a for a in controller.get("/api/v1/reports/availability", since=_day(0))
                                  if a["open_fault"]], 15, what="the idcard fault in the availability")
        assert avail[0]["kiosk_id"] == "KSK-340302-0003" and avail[0]["device"] == "idcard"
        assert avail[0]["faults"] == 1   # still open: it counts as down up to now

        # the reports page in a browser
        d = chromium
        d.get(controller.url + "/login?next=/reports")
        from selenium.webdriver.common.by import By

        d.find_element(By.NAME, "username").send_keys("admin")
        d.find_element(By.NAME, "password").send_keys(os.environ.get("FLEET_ADMIN_PASSWORD", "test-operator-password"))
        d.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait_for(lambda: "/reports" in d.current_url, 5, what="the reports page")
        d.get(controller.url + f"/reports?since={_day(-13)}")
        assert d.find_element(By.ID, "t-sessions").text.strip() != "0"
        services = d.execute_script("return Array.from(document.querySelectorAll('#service-table tbody tr'))"
                                    ".map(r => r.getAttribute('data-service'))")
        assert {"print", "pay", "progress", "apply"} <= set(services)
        assert len(d.find_elements(By.CSS_SELECTOR, "#funnel svg rect")) == 6
        assert d.find_elements(By.CSS_SELECTOR, "svg rect title")
        # ratings (stars, per service, per district) and the per-service funnels
        assert len(d.find_elements(By.CSS_SELECTOR, "#stars svg rect")) == 5
        rated = d.execute_script("return Array.from(document.querySelectorAll('#rating-table tbody tr'))"
                                 ".map(r => r.getAttribute('data-service'))")
        assert {"print", "pay", "progress", "apply"} <= set(rated)
        assert len(d.find_elements(By.CSS_SELECTOR, "#rating-place-table tbody tr")) == 3   # three districts
        flows = d.execute_script("return Array.from(document.querySelectorAll('#service-funnels figure.flow'))"
                                 ".map(f => [f.getAttribute('data-service'), f.querySelectorAll('svg rect').length])")
        assert dict(flows)["apply"] == 4 and dict(flows)["print"] == 4   # its screens + done
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1440, "height": int(d.execute_script("return Math.max(document.body.scrollHeight, 900)")),
            "deviceScaleFactor": 1, "mobile": False})
        shot = output_dir / "fleet-reports.png"
        d.save_screenshot(str(shot))
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        parts = [output_dir / "fleet-reports-funnels.png", output_dir / "fleet-reports-ratings.png"]
        d.find_element(By.ID, "service-funnels").screenshot(str(parts[0]))
        d.find_element(By.ID, "ratings").screenshot(str(parts[1]))
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            for png in (shot, *parts):
                shutil.copy(png, ROOT / "docs" / "screenshots" / png.name)
        # filtered by district: only that district's kiosk
        d.get(controller.url + f"/reports?since={_day(-13)}&district={kiosks[1].district}")
        assert int(d.find_element(By.ID, "t-sessions").text) < total
    finally:
        for a in agents:
            a.stop()


def _day(offset: int) -> str:
    return R.day_label(R.cst_day(P.now_ms()) + offset * R.DAY)


# --- units -------------------------------------------------------------------------------------------------------------

def test_recorder_keeps_only_names_and_durations() -> None:
    now = [100.0]
    rec = JourneyRecorder(clock=lambda: now[0])
    rec.start()
    now[0] += 2
    rec.identified()
    rec.step("menu")
    rec.step("apply_form", service_code="340302195803172018")   # never a number as a service code
    rec.step("张明华")                                           # nor anything but a screen name
    now[0] += 30
    rec.error("platform_unavailable")
    rec.end("finished")
    [record] = rec.drain()
    assert record["outcome"] == "error" and record["err"] == "platform_unavailable"
    assert [s[0] for s in record["steps"]] == ["attract", "card", "menu", "apply_form"]
    assert record["services"] == [["apply", "error", 30.0, ["apply_form"]]]
    P.check_journey({"sessions": [record]})
    assert "3403" not in json.dumps(record, ensure_ascii=False) and "张" not in json.dumps(record, ensure_ascii=False)


def test_ratings_keep_only_stars_and_tag_codes() -> None:
    rec = JourneyRecorder(clock=lambda: 0.0)
    rec.start()
    rec.step("menu")
    rec.step("progress")
    rec.completed()
    rec.step("rating")
    rec.rated(2, ["long_wait", "张三 13800000000", "x1234567", "Long_Wait", "等待时间长", "complicated",
                  "Too many materials"])   # the rating screen's texts (zh, en) become the platform's codes
    rec.rated(9, ["fast"])          # not a star: dropped
    rec.end("finished")
    [record] = rec.drain()
    assert record["ratings"] == [["progress", 2, ["long_wait", "complicated", "too_many_materials"]]]
    assert record["services"] == [["progress", "completed", 0.0, ["progress"]]]
    P.check_journey({"sessions": [record]})
    rows = R.session_rows(record)
    assert ("progress", "rating", "2", 1, 2.0) in rows and ("", "rtag", "long_wait", 1, 0.0) in rows
    assert ("progress", "reach", "progress", 1, 0.0) in rows


@pytest.mark.parametrize("bad", [
    {"ratings": [["print", 6, []]]}, {"ratings": [["print", 2, ["张三"]]]}, {"ratings": [["print", 2, ["a1234567"]]]},
    {"ratings": [["print", 2, [], "comment"]]}, {"ratings": [["print", True, []]]},
    {"services": [["print", "completed", 1.0, ["Menu"]]]}, {"services": [["print", "completed", 1.0, "menu"]]},
    {"sid": "ABCDEFGHIJKL"}, {"sid": "abcdef123456"}, {"outcome": "won"}, {"start_s": -1}, {"dur_s": 1e9},
    {"steps": [["menu", 1.0, "x"]]}, {"steps": [["Menu!", 1.0]]}, {"services": [["svc123456", "completed", 1.0]]},
    {"err": "e1234567"}, {"name": "张明华"}, {"steps": [["menu", 1.0]] * 65},
])
def test_bad_journeys_are_refused(bad: dict[str, Any]) -> None:
    good = {"sid": "abcdefghijkl", "start_s": 1.0, "dur_s": 2.0, "outcome": "completed", "at": "done", "err": None,
            "steps": [["menu", 1.0]], "services": [["print", "completed", 1.0]]}
    P.check_journey({"sessions": [good]})
    with pytest.raises(P.PayloadError):
        P.check_journey({"sessions": [{**good, **bad}]})
    with pytest.raises(P.PayloadError):
        P.check_journey({"sessions": []})


def test_small_cells() -> None:
    assert [R.small(n) for n in (0, 1, 4, 5, 17)] == [0, "<5", "<5", 5, 17]
