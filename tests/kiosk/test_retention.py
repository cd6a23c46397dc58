"""Kiosk retention and leftovers (README "Retention"), with settable clocks, no sleeping: closed print jobs and
resolved payments go after the profile's days (open ones stay), the profile's retention section, the private
session temp folder swept at start, escpos's capability cache under data_dir."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from device_profiles.loader import ProfileError, load_profile
from kiosk import housekeeping
from kiosk.payments.journal import PaymentJournal, PaymentState
from kiosk.print_journal import PrintJournal

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def test_payment_journal_keeps_unresolved_and_drops_old_resolved(tmp_path: Path) -> None:
    clock = Clock()
    journal = PaymentJournal(tmp_path / "payments.sqlite3", clock=clock)
    done = journal.create(order_no="PO1", amount_fen=100, channel="card")
    journal.transition(done.id, PaymentState.CANCELLED)
    stuck = journal.create(order_no="PO2", amount_fen=100, channel="card")
    journal.transition(stuck.id, PaymentState.STARTED)        # in doubt: the reconciler needs it
    clock.now += 91 * DAY
    recent = journal.create(order_no="PO3", amount_fen=100, channel="card")
    journal.transition(recent.id, PaymentState.CANCELLED)
    assert journal.purge(90 * DAY) == 1
    assert sorted(r.order_no for r in journal.all()) == ["PO2", "PO3"]
    assert journal.steps(done.id) == []
    journal.close()


def test_print_journal_keeps_open_jobs_and_drops_old_finished(tmp_path: Path) -> None:
    clock = Clock()
    journal = PrintJournal(tmp_path / "print.sqlite3", clock=clock)
    journal.create("receipt", "progress", "J1")
    journal.mark_sent("J1")
    journal.mark_done("J1")
    journal.create("receipt", "progress", "J2")               # never finished: staff must see it
    clock.now += 31 * DAY
    assert journal.purge(30 * DAY) == 1
    assert [e.id for e in journal.jobs()] == ["J2"]
    journal.close()


def test_profile_retention_section(make_profile) -> None:
    profile = load_profile(make_profile(), environ={})
    assert (profile.retention.print_journal_days, profile.retention.payment_journal_days,
            profile.retention.outbox_days, profile.retention.audit_days) == (30.0, 90.0, 30.0, 365.0)
    profile = load_profile(make_profile(retention={"payment_journal_days": 180, "audit_days": 730}), environ={})
    assert profile.retention.payment_journal_days == 180.0 and profile.retention.audit_days == 730.0
    with pytest.raises(ProfileError):
        load_profile(make_profile(retention={"print_journal_days": 0}), environ={})
    with pytest.raises(ProfileError):
        load_profile(make_profile(retention={"forever": 1}), environ={})


def test_session_temp_files_live_in_a_private_folder_swept_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    root = housekeeping.private_temp_root(data_dir)
    assert root == data_dir / "tmp" and stat.S_IMODE(root.stat().st_mode) == 0o700
    (root / "kiosk-session-x").mkdir()
    (root / "kiosk-session-x" / "licence.pdf").write_bytes(b"%PDF")
    (root / "stray").write_text("x")
    os.chmod(root, 0o755)                                    # someone loosened it
    again = housekeeping.private_temp_root(data_dir)          # the next start
    assert list(again.iterdir()) == [] and stat.S_IMODE(again.stat().st_mode) == 0o700


def test_core_sessions_use_the_private_folder(make_profile) -> None:
    from kiosk.core import KioskCore

    profile = load_profile(make_profile(), environ={})
    data_dir = Path(profile.kiosk.data_dir)
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    (data_dir / "tmp" / "left-by-a-crash").write_text("x")
    core = KioskCore(profile)
    try:
        assert not (data_dir / "tmp" / "left-by-a-crash").exists()
        core.session.start_anonymous()
        folder = core.session.temp_dir()
        assert folder.parent == (data_dir / "tmp") and folder.exists()
        assert Path(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"]) == (data_dir / "cache" / "escpos").resolve()
    finally:
        core.outbox.close()
        core.print_journal.close()
        core.payments.close()
        core.guide_cache.close()


def test_escpos_cache_is_set_from_the_profile_before_the_import(make_profile, tmp_path: Path) -> None:
    """`kiosk run` reads kiosk.data_dir before loading the profile (which imports escpos); in a fresh process the
    capability pickle is written under data_dir, 0700, and nothing lands in the temp folder."""
    import subprocess
    import sys

    profile_path = make_profile()
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
    env["TMPDIR"] = str(tmp_path / "tmp")
    code = ("import sys; from kiosk.housekeeping import use_private_escpos_cache_for as f; f(sys.argv[1]); "
            "from device_profiles.loader import load_profile; load_profile(sys.argv[1], environ={}); "
            "import escpos.capabilities as c, os; print(os.environ['ESCPOS_CAPABILITIES_PICKLE_DIR'])")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(profile_path)], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip().splitlines()[-1])
    data_dir = Path(load_profile(profile_path, environ={}).kiosk.data_dir)
    assert folder == (data_dir / "cache" / "escpos").resolve()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and any(folder.glob("*.capabilities.pickle"))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_core_purges_hourly_while_idle_not_only_at_start(make_harness, clock, wait_for) -> None:
    """A kiosk whose profile sets no nightly restart lives for months in one process: the journals' retention runs
    again every hour of the core's clock, while nobody is being served."""
    import sqlite3

    from kiosk.core import RETENTION_INTERVAL_S

    h = make_harness()
    core = h.core
    for job in ("OLD", "NEW"):
        core.print_journal.create("receipt", "progress", job)
        core.print_journal.mark_sent(job)
        core.print_journal.mark_done(job)
    with sqlite3.connect(Path(core.profile.kiosk.data_dir) / "print-journal.sqlite3") as db:   # finished 31 days ago
        db.execute("UPDATE jobs SET updated_at = updated_at - ? WHERE id = 'OLD'", (31 * DAY,))
    jobs = lambda: sorted(e.id for e in core.print_journal.jobs())  # noqa: E731

    before = core._last_retention
    clock.advance(RETENTION_INTERVAL_S + 1)
    core.session.start_anonymous()              # a citizen at the kiosk when the hour is up: no housekeeping now
    core.tick()
    assert core._last_retention == before and jobs() == ["NEW", "OLD"], "nothing purged while a citizen is served"
    core.end_session("finished")
    core.tick()
    wait_for(lambda: jobs() == ["NEW"], timeout=10, what="the 31-day-old job purged, the new one kept")
    clock.advance(60)
    core.tick()                                 # not again within the hour
    assert core._last_retention == clock() - 60
