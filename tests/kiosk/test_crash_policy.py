"""Exception safety without Kivy: the crash policy (count, window, out-of-service decision), the recovery steps
(log without personal data, session ended and wiped, fleet alarm, out of service after repeated crashes), and worker
exceptions that nobody handles reaching the same path."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from kiosk.errors import PlatformUnavailable
from kiosk.lifecycle import CRASH_LOOP_REASON, CrashPolicy, CrashRecovery, describe_exception
from kiosk.workers import Workers

ID = "110101199003077777"   # made up, valid-looking: it must never reach the log


def _raise_with_personal_data() -> None:
    name = "张三丰"  # a local variable holding personal data
    raise RuntimeError(f"boom for {name} {ID}")


def _caught() -> BaseException:
    try:
        _raise_with_personal_data()
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


# --- policy -----------------------------------------------------------------------------------------------------------
def test_three_within_five_minutes_takes_the_kiosk_out(clock) -> None:
    policy = CrashPolicy(limit=3, window_s=300, clock=clock)
    assert policy.record().out_of_service is False
    clock.advance(100)
    assert policy.record().count == 2
    clock.advance(100)
    decision = policy.record()
    assert decision.out_of_service and decision.count == 3
    # decided: counting starts again (an operator who brings the kiosk back gets a fresh window)
    assert policy.recent() == 0
    assert policy.record().out_of_service is False


def test_crashes_spread_beyond_the_window_never_take_it_out(clock) -> None:
    policy = CrashPolicy(limit=3, window_s=300, clock=clock)
    for _ in range(20):
        assert policy.record().out_of_service is False
        clock.advance(151)   # at most two within any 300 s
    assert policy.total == 20


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CrashPolicy(limit=0)
    with pytest.raises(ValueError):
        CrashPolicy(window_s=0)


# --- what is logged ---------------------------------------------------------------------------------------------------
def test_description_has_type_and_stack_but_no_message() -> None:
    text = describe_exception(_caught())
    assert "builtins.RuntimeError" in text
    assert "_raise_with_personal_data" in text and "test_crash_policy.py" in text
    assert ID not in text and "张三丰" not in text and "boom" not in text


def test_description_follows_the_cause() -> None:
    try:
        try:
            _raise_with_personal_data()
        except RuntimeError as inner:
            raise KeyError(ID) from inner
    except KeyError as exc:
        text = describe_exception(exc)
    assert "builtins.KeyError" in text and "builtins.RuntimeError" in text and ID not in text


# --- recovery ---------------------------------------------------------------------------------------------------------
class FakeFleet:
    def __init__(self) -> None:
        self.alarms: list[tuple[str, str, str]] = []

    def alarm(self, code: str, severity: str, text: str = "") -> None:
        self.alarms.append((code, severity, text))


class FakeCore:
    def __init__(self) -> None:
        self.ended: list[str] = []
        self.maintenance: str | None = None
        self.audited: list[tuple[str, dict[str, Any]]] = []
        self.fleet = FakeFleet()

    def end_session(self, reason: str) -> None:
        self.ended.append(reason)

    def set_maintenance(self, reason: str | None) -> None:
        self.maintenance = reason

    def audit(self, event: str, session_id: str | None = None, **fields: Any) -> None:
        self.audited.append((event, fields))


def test_recovery_ends_session_alarms_and_logs_safely(clock, caplog) -> None:
    core = FakeCore()
    recovery = CrashRecovery(core, CrashPolicy(3, 300, clock=clock), clock=clock)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="kiosk.lifecycle"):
        decision = recovery.handle(_caught(), "ui")
    assert not decision.out_of_service
    assert core.ended == ["error"]
    assert core.fleet.alarms == [("app_exception", "major", "RuntimeError in ui")]
    assert core.audited == [("crash", {"where": "ui", "type": "RuntimeError", "count": 1})]
    assert core.maintenance is None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "_raise_with_personal_data" in logged
    assert ID not in logged and "张三丰" not in logged


def test_third_crash_in_the_window_is_out_of_service_with_a_critical_alarm(clock) -> None:
    core = FakeCore()
    recovery = CrashRecovery(core, CrashPolicy(3, 300, clock=clock), clock=clock)  # type: ignore[arg-type]
    for _ in range(3):
        clock.advance(20)   # beyond the quiet interval: each one alarmed
        decision = recovery.handle(_caught(), "ui")
    assert decision.out_of_service and core.maintenance == CRASH_LOOP_REASON
    assert core.ended == ["error"] * 3
    assert [a[0] for a in core.fleet.alarms] == ["app_exception"] * 3 + ["crash_loop"]
    assert core.fleet.alarms[-1][1] == "critical"


def test_a_flood_logs_one_stack_and_one_alarm_per_interval(clock, caplog) -> None:
    core = FakeCore()
    recovery = CrashRecovery(core, CrashPolicy(1000, 300, clock=clock), clock=clock)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="kiosk.lifecycle"):
        for _ in range(50):   # the same broken callback, frame after frame
            recovery.handle(_caught(), "ui")
            clock.advance(0.02)
    assert len(core.fleet.alarms) == 1
    assert sum("_raise_with_personal_data" in r.getMessage() for r in caplog.records) == 1
    assert len(core.ended) == 50


def test_a_failing_step_does_not_stop_the_others(clock) -> None:
    core = FakeCore()

    def broken(reason: str) -> None:
        raise OSError("disk gone")

    core.end_session = broken  # type: ignore[method-assign]
    recovery = CrashRecovery(core, CrashPolicy(1, 300, clock=clock), clock=clock)  # type: ignore[arg-type]
    decision = recovery.handle(_caught(), "ui")   # never raises
    assert decision.out_of_service and core.maintenance == CRASH_LOOP_REASON
    assert [a[0] for a in core.fleet.alarms] == ["app_exception", "crash_loop"]


# --- workers ----------------------------------------------------------------------------------------------------------
def test_unhandled_worker_exception_reaches_the_handler() -> None:
    workers = Workers()
    got: list[tuple[BaseException, str]] = []
    done = threading.Event()
    workers.unhandled = lambda exc, where: (got.append((exc, where)), done.set())
    try:
        workers.submit(_raise_with_personal_data)
        assert done.wait(5)
    finally:
        workers.shutdown()
    assert isinstance(got[0][0], RuntimeError) and got[0][1] == "worker task _raise_with_personal_data"


def test_without_a_handler_a_worker_exception_is_logged_with_its_stack(caplog) -> None:
    workers = Workers()
    try:
        with caplog.at_level(logging.ERROR, logger="kiosk.workers"):
            workers.submit(_raise_with_personal_data).exception(5)
            workers.shutdown()   # the done callback has run
    finally:
        workers.shutdown()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "_raise_with_personal_data" in logged and "RuntimeError" in logged and ID not in logged


def test_expected_errors_and_handled_ones_are_not_crashes() -> None:
    workers = Workers()
    crashes: list[Any] = []
    handled = threading.Event()
    workers.unhandled = lambda exc, where: crashes.append(where)

    def platform_down() -> None:
        raise PlatformUnavailable()

    try:
        workers.submit(platform_down).exception(5)
        workers.submit(_raise_with_personal_data, on_error=lambda exc: handled.set())
        assert handled.wait(5)   # its own callback shows the error
    finally:
        workers.shutdown()
    assert crashes == []


# --- the fleet alarm path ---------------------------------------------------------------------------------------------
def test_fleet_agent_queues_an_app_alarm(tmp_path: Path) -> None:
    from fleet.agent import FleetAgent
    from fleet.signing import generate_keypair

    _private, public = generate_keypair(tmp_path)
    agent = FleetAgent("KSK-T-0042", "mqtt://127.0.0.1:9", dict, verify_key=public,
                       outbox_path=tmp_path / "outbox.sqlite3")   # not started: the alarm waits in the outbox
    try:
        agent.report_alarm("app", "crash_loop", "critical", f"3 exceptions for {ID}")
        rows = agent.outbox.peek()
    finally:
        agent.outbox.close()
    assert [r.kind for r in rows] == ["alarm"]
    event = rows[0].payload["events"][0]
    assert event["device"] == "app" and event["code"] == "crash_loop" and event["severity"] == "critical"
    assert event["active"] is True and ID not in event["text"]


# --- a real core ------------------------------------------------------------------------------------------------------
def test_real_core_session_is_wiped_and_kiosk_goes_out_of_service(make_harness, wait_for) -> None:
    harness = make_harness()
    core = harness.core
    recovery = CrashRecovery(core.context, CrashPolicy(2, 300))
    harness.identify("zhang")
    temp_dir = core.session.data.temp_dir
    recovery.handle(_caught(), "ui")
    ended = harness.next_event("ended")
    assert ended["reason"] == "error"
    assert core.session.citizen is None and not core.session.active
    if temp_dir is not None:
        assert not Path(temp_dir).exists()
    recovery.handle(_caught(), "worker task x")
    assert core.availability.maintenance == CRASH_LOOP_REASON and core.availability.out_of_service
    core.set_maintenance(None)   # the operator's back_in_service
    assert not core.availability.maintenance
