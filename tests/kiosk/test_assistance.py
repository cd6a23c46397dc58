"""Help that reaches a person (kiosk/assistance.py), without Kivy: the request raises the fleet alarm (recorded at the
fleet link's alarm() interface), the hall's hours decide between "staff told" and the phone, an acknowledgement says
"someone is coming". The real platform's halls answer through the real client; the controller round trip is
tests/fleet/test_assistance.py, the whole journey tests/e2e/test_assistance_journey.py."""
from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any, Callable

import pytest

from kiosk.assistance import ALARM_CODE, HOTLINE, Assistance, AssistanceRequest
from kiosk.errors import PlatformUnavailable
from kiosk.platform_client import Hall, PlatformClient
from kiosk.workers import Workers

WALL = dt.datetime(2026, 12, 7, 21, 15, 3, tzinfo=dt.timezone(dt.timedelta(hours=8)))


class FleetAlarms:
    """The fleet link's ``alarm()`` as the use-case calls it: what was raised (or a failure to raise)."""

    def __init__(self, fail: bool = False) -> None:
        self.raised: list[tuple[str, str, str, bool]] = []
        self.fail = fail

    def alarm(self, code: str, severity: str, text: str = "", active: bool = True) -> None:
        if self.fail:
            raise OSError("agent outbox not writable")
        self.raised.append((code, severity, text, active))


def hall(open_now: bool | None, phone: str = "0552-12345678") -> Hall:
    return Hall.from_json({"code": "lzh-hall", "name": "龙子湖区政务服务中心", "phone": phone, "hours": "",
                           "queues": [], **({} if open_now is None else {"open_now": open_now}),
                           "next_open_at": "" if open_now is not False else "2026-12-08T09:00:00+08:00"})


class Harness:
    def __init__(self, halls: Callable[[], list[Any]], fleet: FleetAlarms | None, hall_code: str = "lzh-hall",
                 **kwargs: Any) -> None:
        self.workers = Workers()
        self.events: list[AssistanceRequest] = []
        self.audit: list[tuple[str, dict[str, Any]]] = []
        self.now = 100.0
        self.changed = threading.Event()
        self.fleet = fleet
        self.help = Assistance(hall_code, fleet=lambda: self.fleet, halls=halls, workers=self.workers,
                               emit=self._emit, audit=lambda event, session_id=None, **f: self.audit.append((event, f)),
                               clock=lambda: self.now, wall=lambda: WALL, **kwargs)

    def _emit(self, name: str, **payload: Any) -> None:
        assert name == "assistance"
        self.events.append(payload["request"])

    def states(self) -> list[str]:
        return [e.state for e in self.events]


@pytest.fixture
def harness() -> Any:
    made: list[Harness] = []

    def make(*args: Any, **kwargs: Any) -> Harness:
        h = Harness(*args, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.workers.shutdown()


def test_help_in_opening_hours_raises_the_alarm_then_someone_is_coming(harness, wait_for):
    fleet = FleetAlarms()
    h = harness(lambda: [hall(True)], fleet)
    req = h.help.request("Guide_Detail")
    assert req.state == "sending" and req.screen == "guide_detail" and req.open
    wait_for(lambda: h.states()[-1:] == ["waiting"], what="the request sent")
    assert fleet.raised == [(ALARM_CODE, "critical",
                             f"help requested (request {req.id}) on screen guide_detail at 2026-12-07 21:15:03; "
                             "hall open", True)]
    assert h.events[-1].hall.phone == "0552-12345678" and h.events[-1].hall.open_now is True
    assert h.help.acknowledged() is True
    assert h.states() == ["sending", "waiting", "coming"] and not h.help.current.open
    assert h.help.acknowledged() is False, "acknowledged once"
    assert [e for e, _ in h.audit] == ["assistance_requested", "assistance_acknowledged"]
    assert h.audit[0][1] == {"screen": "guide_detail", "request": req.id}
    h.help.dismiss()
    assert h.help.current is None


def test_an_acknowledgement_for_another_request_is_not_shown(harness, wait_for):
    """Staff acknowledged an earlier citizen's call (the command waited while the kiosk was unreachable): the citizen
    asking now is not told that someone is coming; the acknowledgement naming their request is shown."""
    h = harness(lambda: [hall(True)], FleetAlarms())
    req = h.help.request("menu")
    wait_for(lambda: h.states()[-1:] == ["waiting"], what="the request sent")
    assert h.help.acknowledged("0123456789ab") is False
    assert h.help.current.state == "waiting" and h.states() == ["sending", "waiting"]
    assert h.audit[-1] == ("assistance_ack_stale", {"request": req.id, "acknowledged": "0123456789ab"})
    assert h.help.acknowledged(req.id) is True and h.states()[-1] == "coming"


def test_hall_closed_gives_the_halls_phone_and_still_tells_the_fleet(harness, wait_for):
    fleet = FleetAlarms()
    h = harness(lambda: [hall(False)], fleet)
    h.help.request("menu")
    got = wait_for(lambda: h.events[-1] if h.events[-1].state != "sending" else None, what="the outcome")
    assert got.state == "hall_closed" and got.open
    assert got.hall.phone == "0552-12345678" and got.hall.next_open_at.startswith("2026-12-08T09:00")
    assert fleet.raised[0][2].endswith("hall closed")
    assert h.help.acknowledged() and h.states()[-1] == "coming", "an operator on duty may still answer"


@pytest.mark.parametrize("case", ["no_fleet", "alarm_fails", "no_hall", "platform_down", "hall_unknown"])
def test_when_nobody_can_be_told_the_citizen_gets_a_phone_number(harness, wait_for, case):
    def down() -> list[Any]:
        raise PlatformUnavailable("unreachable")

    halls = {"platform_down": down,
             "hall_unknown": lambda: [Hall.from_json({"code": "elsewhere", "name": "x", "queues": []})]}.get(
        case, lambda: [hall(True, phone="")])
    fleet = {"no_fleet": None, "alarm_fails": FleetAlarms(fail=True)}.get(case, FleetAlarms())
    h = harness(halls, fleet, hall_code="" if case == "no_hall" else "lzh-hall")
    h.help.request("out_of_service")
    got = wait_for(lambda: h.events[-1] if h.events[-1].state != "sending" else None, what="the outcome")
    assert got.hall.phone == HOTLINE, "the hall gave no phone, or is unknown: 12345"
    if case in ("no_fleet", "alarm_fails"):
        assert got.state == "not_sent"
    else:
        assert got.state == "waiting" and fleet.raised and fleet.raised[0][2].endswith(
            "hall open" if case not in ("no_hall", "platform_down", "hall_unknown") else "hall unknown")


def test_repeated_taps_show_the_same_request_until_it_may_be_sent_again(harness, wait_for):
    fleet = FleetAlarms()
    h = harness(lambda: [hall(True)], fleet, resend_after_s=60, expire_after_s=900)
    first = h.help.request("menu")
    wait_for(lambda: len(fleet.raised) == 1, what="one alarm")
    h.now += 30
    again = h.help.request("menu")
    assert again.id == first.id and again.state == "waiting"
    assert len(fleet.raised) == 1 and [e for e, _ in h.audit].count("assistance_requested") == 1
    h.now += 31
    third = h.help.request("menu")
    assert third.id != first.id
    wait_for(lambda: len(fleet.raised) == 2, what="raised again after a minute without an answer")
    h.now += 901
    assert h.help.current is None, "an unanswered request expires"
    assert h.help.acknowledged() is False


def test_an_acknowledgement_that_overtakes_the_send_is_kept(harness, wait_for):
    gate = threading.Event()

    def slow_halls() -> list[Any]:
        gate.wait(5)
        return [hall(True)]

    fleet = FleetAlarms()
    h = harness(slow_halls, fleet)
    h.help.request("payment")
    assert h.help.acknowledged()
    gate.set()
    wait_for(lambda: fleet.raised, what="the alarm raised after all")
    h.workers.shutdown()
    assert h.help.current.state == "coming" and h.states() == ["sending", "coming"]


def test_nothing_personal_in_the_alarm_or_the_audit(harness, wait_for):
    fleet = FleetAlarms()
    h = harness(lambda: [hall(True)], fleet)
    h.help.request("progress 340302195803172018 张明华")   # whatever a screen name could carry: reduced to [a-z_]
    wait_for(lambda: fleet.raised, what="the alarm")
    blob = json.dumps([fleet.raised, h.audit], ensure_ascii=False)
    assert "张明华" not in blob and "340302195803172018"[:10] not in blob


def test_the_platform_says_whether_the_kiosks_hall_is_open(platform_server, kiosk_auth, harness, wait_for):
    client = PlatformClient(platform_server.url, "KSK-340302-0001", kiosk_auth, 5.0, 1)
    try:
        halls = {h.code: h for h in client.halls()}
        assert {type(h.open_now) for h in halls.values()} == {bool}
        closed = [h for h in halls.values() if not h.open_now]
        assert all(h.next_open_at for h in closed), "a closed hall says when it opens"
        h = harness(client.halls, FleetAlarms())
        h.help.request("menu")
        got = wait_for(lambda: h.events[-1] if h.events[-1].state != "sending" else None, what="the outcome")
        assert got.state == ("waiting" if halls["lzh-hall"].open_now else "hall_closed")
        assert got.hall.name == halls["lzh-hall"].name and got.hall.phone == halls["lzh-hall"].phone
    finally:
        client.close()
