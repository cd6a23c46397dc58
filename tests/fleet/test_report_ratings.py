"""Ratings and the per-service funnel end to end: a real kiosk core (simulated devices, the real
platform, the real broker) goes through four sessions; the controller's report counts them right per service, per
screen of each service and per star; the ★1–2 ratings (with the citizen's comment) reach the responsible
department's queue on the platform through the kiosk's own rating use-case and outbox, and go assigned → noted →
closed, an overdue one flagged; the comment never reaches the fleet."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from typing import Any

import httpx

from kiosk.session import RatingTarget

HPF = "蚌埠市住房公积金管理中心"   # the department of hpf-withdrawal (service_platform/seed/catalogue.yaml)
QUEUE = "/api/v1/staff/rating-followups"


def rate(core: Any, stars: int, tags: list[str], comment: str | None) -> dict[str, Any]:
    """The rating screen's call: the kiosk's rating use-case (outbox → platform), waited for."""
    done = threading.Event()
    got: dict[str, Any] = {}

    def ok(result: Any) -> None:
        got["result"] = result
        done.set()

    def failed(exc: BaseException) -> None:
        got["error"] = exc
        done.set()

    core.journey.step("rating")
    core.submit_rating(stars, tags, comment, on_result=ok, on_error=failed)
    assert done.wait(30), "the rating was not answered"
    assert "error" not in got, got
    assert got["result"]["queued"] is False, got   # sent to the platform now, not kept in the outbox
    return got["result"]


def test_kiosk_ratings_reach_the_reports_and_the_department_queue(kiosk, start_controller, observer, wait_for,
                                                                  platform_server) -> None:
    controller = start_controller()
    core = kiosk
    # the controller knows the kiosk (and its district) before the first citizen: journeys count for its district
    wait_for(lambda: (controller.kiosk(core.kiosk_id) or {}).get("district"), 30, what="the kiosk's birth")
    marker = uuid.uuid4().hex[:10]
    comments = {1: f"打印的须知缺了一页 c1-{marker}", 2: f"排队太久 c2-{marker}"}
    notice = RatingTarget("service", "hpf-withdrawal", "print_notice")
    # 1. card: face check, menu, guide → detail → print the notice; rated ★1 with a comment
    core.devices.simulators["idcard"].control("place_card", identity="zhang")
    wait_for(lambda: core.session.citizen, what="the citizen identified")
    for screen in ("face_check", "menu", "guide", "guide_detail", "print_confirm"):
        core.journey.step(screen)
    core.complete_action(notice)
    rate(core, 1, ["unclear_guidance"], comments[1])
    core.rating_finished(False)
    # 2. no card: progress read on screen, rated ★2 with a comment
    core.start_anonymous()
    for screen in ("menu", "progress"):
        core.journey.step(screen)
    core.complete_action(RatingTarget("service", "hpf-withdrawal", "query_progress"))
    rate(core, 2, ["等待时间长"], comments[2])   # the tag as the rating screen shows it: a code in the journey
    core.rating_finished(False)
    # 3. no card: the application's notice, then its form, then the idle timeout
    core.start_anonymous()
    for screen in ("menu", "apply_notice", "apply_form"):
        core.journey.step(screen)
    core.end_session("timeout")
    # 4. no card: a guide read, rated ★5
    core.start_anonymous()
    for screen in ("menu", "guide"):
        core.journey.step(screen)
    core.complete_action(notice)
    rate(core, 5, ["fast"], None)
    core.rating_finished(False)

    report = wait_for(lambda: (lambda r: r if r["totals"]["sessions"] >= 4 else None)(
        controller.get("/api/v1/reports/journeys", kiosk=core.kiosk_id)), 30, what="four sessions reported")
    t = report["totals"]
    assert (t["sessions"], t["completed"], t["timed_out"]) == (4, 3, 1)
    services = {s["service"]: s for s in report["services"]}
    assert {k: (s["started"], s["completed"]) for k, s in services.items()} == {
        "guide": (2, 1), "print": (1, 1), "progress": (1, 1), "apply": (1, 0)}
    assert services["apply"]["timed_out"] == 1
    # per-service funnels: the screens each service went through, and where it was left
    flow = {f["step"]: (f["reached"], f["dropped"]) for f in services["apply"]["flow"]}
    assert flow == {"apply_notice": (1, 0), "apply_form": (1, 1), "done": (0, 0)}
    flow = {f["step"]: (f["reached"], f["dropped"]) for f in services["guide"]["flow"]}
    assert flow == {"guide": (2, 0), "guide_detail": (1, 1), "done": (1, 0)}   # session 1 went on to print
    # the session funnels (card / no card)
    assert [f["reached"] for f in report["funnel"]] == [1, 1, 1, 1, 1, 1]
    anon = {f["step"]: (f["reached"], f["dropped"]) for f in report["funnel_anonymous"]}
    assert anon["attract"] == (3, 0) and anon["service"] == (3, 1) and anon["done"] == (2, 0)
    # ratings: per star, per service, tags
    r = report["ratings"]
    assert r["rated"] == 3 and r["stars"] == {"1": 1, "2": 1, "3": 0, "4": 0, "5": 1} and r["low"] == 2
    assert {tg["tag"] for tg in r["tags"]} == {"unclear_guidance", "long_wait", "fast"}
    per = {k: s["ratings"]["stars"] for k, s in services.items() if s["ratings"]["rated"]}
    assert per == {"print": {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0}, "progress": {"1": 0, "2": 1, "3": 0, "4": 0,
                   "5": 0}, "guide": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}}
    # per district (fleet-wide) and per kiosk (its district)
    fleet_wide = controller.get("/api/v1/reports/journeys")
    [place] = fleet_wide["ratings_by"]
    assert place["kind"] == "district" and place["rated"] == 3 and place["low"] == 2
    district = controller.get("/api/v1/kiosks/" + core.kiosk_id)["district"]
    by_kiosk = controller.get("/api/v1/reports/journeys", district=district)["ratings_by"]
    assert [(p["place"], p["rated"]) for p in by_kiosk] == [(core.kiosk_id, 3)]
    # the comments went to the platform only: never in a fleet message
    for _topic, payload in observer.messages:
        assert marker.encode() not in payload

    # 差评整改 on the platform: both ★1–2 ratings in the department's queue, with their comments
    out = subprocess.run([sys.executable, "-m", "service_platform.cli", "staff", "add", "--db",
                          f"sqlite:///{platform_server.db_path}", "--name", f"hpf-{marker}", "--department", HPF],
                         capture_output=True, check=True, timeout=60)
    staff = {"Authorization": f"Bearer {json.loads(out.stdout)['token']}"}
    with httpx.Client(base_url=platform_server.url, timeout=10) as public:
        items = public.get(QUEUE, headers=staff, params={"limit": 200}).json()["items"]
        mine = {i["stars"]: i for i in items if i["comment"] and marker in i["comment"]}
        assert set(mine) == {1, 2}, items
        one, two = mine[1], mine[2]
        assert one["comment"] == comments[1] and one["tags"] == ["unclear_guidance"] and one["status"] == "open"
        assert one["service_code"] == "hpf-withdrawal" and not one["overdue"]
        url = f"{QUEUE}/{one['id']}"
        step = public.patch(url, headers=staff, json={"assignee": "王芳"}).json()
        assert step["status"] == "assigned" and step["assignee"] == "王芳"
        step = public.patch(url, headers=staff, json={"action_taken": "须知已补全并回访群众"}).json()
        assert step["status"] == "assigned" and step["action_taken"] == "须知已补全并回访群众"
        step = public.patch(url, headers=staff, json={"close": True}).json()
        assert step["status"] == "closed" and step["closed_at"] and not step["overdue"]
        # the ★2 one left open past its due date: flagged overdue
        [(due,)] = platform_server.query("SELECT due_at FROM rating_followups WHERE id = ?", two["id"])
        platform_server.query("UPDATE rating_followups SET due_at = ? WHERE id = ?", "2020" + str(due)[4:], two["id"])
        late = public.get(QUEUE, headers=staff, params={"overdue": "true", "limit": 200}).json()
        assert two["id"] in {i["id"] for i in late["items"]} and late["overdue"] >= 1
        assert all(i["overdue"] for i in late["items"])
        assert one["id"] not in {i["id"] for i in late["items"]}   # closed: never overdue
