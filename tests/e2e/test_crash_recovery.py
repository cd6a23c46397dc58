"""Exception safety on the real shell: an exception raised inside a UI callback (injected through the loopback-only
automation endpoint) ends the citizen's session and returns to the attract screen with a "please start again"
notice; the process stays alive. An unhandled worker exception takes the same path. The third within the policy's
window takes the kiosk out of service — still alive, still answering."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_exception_in_a_callback_ends_the_session_and_the_shell_lives_on(start_kiosk, wait_for):
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    ui.simulators(wait_for)

    # a citizen is being served …
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)
    assert ui.state()["session"] != "idle"

    # … when a UI callback raises
    ui.ask("raise_in_ui")
    wait_for(lambda: ui.state()["recovered"] == 1, what="exception handled")
    ui.wait_screen("attract", wait_for)
    state = ui.state()
    assert state["session"] == "idle" and state["maintenance"] == ""
    notice = ui.wait_text("请重新开始", wait_for)
    assert "110101199003077777" not in notice
    ui.screenshot("crash-start-again")
    assert ui.proc.proc.poll() is None

    # the shell still works: a new citizen can start
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)

    # an unhandled worker exception takes the same path
    ui.ask("raise_in_worker")
    wait_for(lambda: ui.state()["recovered"] == 2, what="worker exception handled")
    ui.wait_screen("attract", wait_for)
    assert ui.state()["session"] == "idle"

    # the third within five minutes: out of service (and an alarm), still alive and answering
    ui.ask("raise_in_ui")
    wait_for(lambda: ui.state()["maintenance"] == "crash_loop", what="out of service after 3 exceptions")
    ui.wait_screen("out_of_service", wait_for)
    ui.screenshot("crash-loop-out-of-service")
    assert ui.proc.proc.poll() is None

    ui.proc.stop(timeout=15)
    assert ui.proc.proc.returncode == 0
