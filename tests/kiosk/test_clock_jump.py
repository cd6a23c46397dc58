"""A wall-clock step (NTP correcting the clock by hours, back or forward) breaks no idle timeout and reorders no
journal on the kiosk: timeouts run on ``time.monotonic``; journals keep the order in which entries were written (a
sequence / rowid), whatever their wall-clock timestamps say. The wall clock is moved by injection where the code
takes a clock, else by replacing ``time`` in the module under test only."""
from __future__ import annotations

import inspect
import time
import types
from pathlib import Path

import pytest

from kiosk import outbox as outbox_module
from kiosk.audit import AuditJournal
from kiosk.core import KioskCore
from kiosk.guide_cache import GuideCache
from kiosk.outbox import Outbox
from kiosk.payments.journal import PaymentJournal, PaymentState
from kiosk.print_journal import PrintJournal
from kiosk.session import Citizen, Session, State

HOURS = 3600.0


class WallClock:
    """A wall clock that NTP steps: ``step(-5 * HOURS)`` moves it five hours back at once."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001   # time goes on between two readings
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def test_session_and_core_time_their_timeouts_on_the_monotonic_clock() -> None:
    assert inspect.signature(Session.__init__).parameters["clock"].default is time.monotonic
    assert inspect.signature(KioskCore.__init__).parameters["clock"].default is time.monotonic


@pytest.mark.parametrize("jump", [-5 * HOURS, +5 * HOURS, -30 * 24 * HOURS])
def test_a_wall_clock_step_neither_ends_nor_extends_a_session(monkeypatch: pytest.MonkeyPatch, jump: float) -> None:
    wall = WallClock()
    monkeypatch.setattr(time, "time", wall)          # the system clock, as NTP would step it
    session = Session(idle_timeout_s=2.0, warning_s=1.0)   # default clock: time.monotonic
    events: list[str] = []
    session.subscribe(lambda name, payload: events.append(name))
    session.identify(Citizen(document=None, id_masked="3403**********0011"))
    started = time.monotonic()
    wall.step(jump)
    session.tick()
    assert session.state is State.IDENTIFIED and "warning" not in events and "ended" not in events
    assert session.seconds_left() > 2.0 - (time.monotonic() - started) - 0.05
    # …and the timeout still comes when the citizen has really been idle that long, whatever the wall clock did
    wall.step(-jump)
    deadline = started + 5.0
    while session.state is not State.IDLE and time.monotonic() < deadline:
        session.tick()
        time.sleep(0.05)
    assert events[-1] == "ended" and "warning" in events
    assert time.monotonic() - started >= 2.0


def test_print_journal_keeps_job_order_when_the_clock_steps_back(tmp_path: Path) -> None:
    wall = WallClock()
    journal = PrintJournal(tmp_path / "print.sqlite3", clock=wall)
    try:
        journal.create("receipt", "progress", "PJ-first")
        wall.step(-5 * HOURS)
        journal.create("receipt", "progress", "PJ-second")
        journal.mark_sent("PJ-second")
        wall.step(+10 * HOURS)
        journal.create("receipt", "progress", "PJ-third")
        assert [e.id for e in journal.pending()] == ["PJ-first", "PJ-second", "PJ-third"]
        assert [e.id for e in journal.jobs()] == ["PJ-first", "PJ-second", "PJ-third"]
        assert [s for s, _ in journal.history("PJ-second")] == ["queued", "sent"]
    finally:
        journal.close()


def test_payment_journal_keeps_record_order_when_the_clock_steps_back(tmp_path: Path) -> None:
    wall = WallClock()
    journal = PaymentJournal(tmp_path / "payments.sqlite3", clock=wall)
    try:
        first = journal.create(order_no="PO-1", amount_fen=1000, channel="card")
        wall.step(-5 * HOURS)                       # the second payment's created_at is now hours "before" the first
        second = journal.create(order_no="PO-2", amount_fen=1000, channel="card")
        journal.transition(second.id, PaymentState.STARTED)
        assert second.created_at < first.created_at
        assert [r.order_no for r in journal.unresolved()] == ["PO-1", "PO-2"]   # the reconciler's order
        assert [r.order_no for r in journal.all()] == ["PO-1", "PO-2"]
        assert journal.steps(second.id) == ["created", "started"]
    finally:
        journal.close()


def test_outbox_sends_oldest_first_when_the_clock_steps_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wall = WallClock()
    monkeypatch.setattr(outbox_module, "time", types.SimpleNamespace(time=wall, monotonic=time.monotonic,
                                                                     sleep=time.sleep))
    box = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key")
    try:
        a = box.put("rating", {"stars": 5})
        wall.step(-5 * HOURS)
        b = box.put("rating", {"stars": 4})
        assert b.created_at < a.created_at
        assert [i.id for i in box.items()] == [a.id, b.id]
        sent: list[int] = []
        box.register("rating", lambda payload, key, captured: sent.append(payload["stars"]) or {})
        box.drain()
        assert sent == [5, 4]
        assert box.by_key(b.idempotency_key).id == b.id
    finally:
        box.close()


def test_audit_journal_order_and_chain_survive_a_clock_step_back(tmp_path: Path) -> None:
    wall = WallClock()
    audit = AuditJournal(tmp_path / "audit.jsonl", "KSK-TEST", clock=wall)
    audit.record("session_start", "s1")
    wall.step(-5 * HOURS)
    audit.record("session_end", "s1", reason="timeout")
    wall.step(+10 * HOURS)
    audit.record("session_start", "s2")
    entries = list(audit.entries())
    assert [e["event"] for e in entries] == ["session_start", "session_end", "session_start"]
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    assert entries[1]["ts"] < entries[0]["ts"]      # wall time went back; the order did not
    assert audit.verify()


def test_guide_copy_taken_in_the_future_is_refreshed(tmp_path: Path) -> None:
    wall = WallClock()
    cache = GuideCache(tmp_path / "guides.sqlite3", clock=wall)

    class Platform:
        def catalogue(self) -> list[dict[str, str]]:
            return [{"code": "hukou-certificate", "name": "户籍证明", "category": "hukou"}]

        def service_detail_json(self, code: str) -> dict[str, str]:
            return {"code": code}

    try:
        cache.refresh(Platform())
        assert not cache.stale()
        wall.step(+2 * HOURS)
        assert not cache.stale()
        wall.step(-7 * HOURS)         # stepped back past the copy's date: its age is unknown → refresh once
        assert cache.stale()
        cache.refresh(Platform())
        assert not cache.stale()
    finally:
        cache.close()


def test_a_stuck_print_job_is_not_hidden_from_staff_by_a_clock_step_back(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.usecases.printing import PrintService, StaffDesk

    wall = WallClock()
    monkeypatch.setattr(time, "time", wall)
    journal = PrintJournal(tmp_path / "print.sqlite3", clock=wall)
    try:
        desk = StaffDesk(PrintService(journal), pin_hash="")
        journal.create("receipt", "progress", "PJ-stuck")
        journal.mark_sent("PJ-stuck")
        assert desk.count() == 0                    # being printed right now: not for staff
        wall.step(-5 * HOURS)                       # its stamp is now 5 h "in the future": age unknown
        assert desk.count() == 1
        wall.step(+10 * HOURS)
        assert desk.count() == 1
    finally:
        journal.close()
