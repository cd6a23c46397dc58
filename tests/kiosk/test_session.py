from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.errors import InvalidSessionState
from kiosk.session import Citizen, RatingTarget, Session, State


class FakeDocument:
    name = "张明华"
    id_number = "340302195803172018"




@pytest.fixture
def session(clock, tmp_path: Path) -> tuple[Session, list[tuple[str, dict]]]:
    s = Session(idle_timeout_s=90, warning_s=20, clock=clock, temp_root=str(tmp_path))
    events: list[tuple[str, dict]] = []
    s.subscribe(lambda name, payload: events.append((name, payload)))
    return s, events


def names(events: list[tuple[str, dict]]) -> list[str]:
    return [n for n, _ in events]


def citizen() -> Citizen:
    return Citizen(document=FakeDocument(), name_masked="张*华", id_masked="3403**********2018")


def test_full_journey_states(session):
    s, events = session
    s.identify(citizen())
    assert s.state is State.IDENTIFIED
    s.begin_service()
    assert s.state is State.IN_SERVICE
    s.complete_action(RatingTarget("application", "SP1", "print_progress"))
    assert s.state is State.RATING
    s.rating_done(continue_service=False)
    assert s.state is State.IDLE
    assert names(events)[0] == "started"
    assert ("ended", {"session_id": events[0][1]["session_id"], "reason": "finished"}) in events


def test_warning_before_timeout_and_extend(session, clock):
    s, events = session
    s.start_anonymous()
    clock.now += 69
    s.tick()
    assert "warning" not in names(events)
    clock.now += 2  # 71 s idle: 19 s left, inside the 20 s warning
    s.tick()
    assert names(events).count("warning") == 1
    warning = dict(events)["warning"]
    assert 18 <= warning["seconds_left"] <= 20
    s.tick()
    assert names(events).count("warning") == 1, "the warning is raised once, not on every tick"
    s.extend()
    assert "warning_cleared" in names(events)
    clock.now += 80
    s.tick()
    assert s.state is State.IN_SERVICE, "extending restarted the idle timer"


def test_timeout_wipes_personal_data_and_temp_files(session, clock):
    s, events = session
    c = citizen()
    s.identify(c)
    s.data.scratch["applications"] = ["SP1"]
    temp = s.temp_dir()
    (temp / "form.pdf").write_bytes(b"%PDF")
    clock.now += 91
    s.tick()
    assert s.state is State.IDLE
    assert s.citizen is None
    assert c.document is None and c.platform_token == ""
    assert s.data.scratch == {}
    assert not temp.exists()
    assert dict(events)["ended"]["reason"] == "timeout"


def test_no_timeout_without_warning(session, clock):
    """WCAG 2.2.1: the session never ends by time without a warning first, even if ticks are sparse."""
    s, events = session
    s.start_anonymous()
    clock.now += 75
    s.tick()
    clock.now += 16
    s.tick()
    assert names(events).index("warning") < names(events).index("ended")


def test_second_card_mid_session_refused(session):
    s, _ = session
    s.identify(citizen())
    with pytest.raises(InvalidSessionState):
        s.identify(citizen())


def test_anonymous_session_can_identify(session):
    s, _ = session
    s.start_anonymous()
    s.identify(citizen())
    assert s.state is State.IDENTIFIED


def test_rating_without_action_refused(session):
    s, _ = session
    s.start_anonymous()
    with pytest.raises(InvalidSessionState):
        s.rating_done()


def test_warning_must_be_shorter_than_timeout():
    with pytest.raises(ValueError):
        Session(idle_timeout_s=10, warning_s=10)


def test_citizen_repr_has_no_personal_data():
    c = citizen()
    assert "张明华" not in repr(c) and "340302195803172018" not in repr(c)
