"""The audit journal unattended for months: durable entries, torn tails quarantined, a keyed chain that survives
rotation, the verifier (module and `kiosk audit-verify`), a lost key made loud, a lost outbox key made loud, and the
retention of rotated files. (Tail deletion seen by the controller: tests/fleet/test_audit_chain_fleet.py.)"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import audit as audit_mod
from kiosk.audit import AuditJournal, verify_dir
from kiosk.outbox import Outbox, OutboxKeyError

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


class Clock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:   # a fixed moment, local day boundaries apart
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_every_entry_is_fsynced_before_record_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl", "KSK-1")
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(audit_mod.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    for i in range(3):
        before = len(synced)
        journal.record("step", n=i)
        assert len(synced) > before     # the entry's own fsync happened inside record()
    assert [e["seq"] for e in journal.entries()] == [1, 2, 3]


def test_the_key_is_private_and_entries_carry_a_mac(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl", "KSK-1")
    journal.record("identified", "s1", note="id 340302195803172018")
    assert stat.S_IMODE((tmp_path / "audit.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600
    entry = lines(tmp_path / "audit.jsonl")[0]
    assert entry["seq"] == 1 and entry["epoch"] == 0 and entry["prev"] == audit_mod.GENESIS and len(entry["mac"]) == 64
    assert "340302195803172018" not in (tmp_path / "audit.jsonl").read_text("utf-8")
    assert journal.head() == {"seq": 1, "hash": entry["mac"], "epoch": 0}


def test_a_torn_last_line_is_quarantined_and_the_chain_continues(tmp_path: Path, caplog) -> None:
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(path, "KSK-1")
    journal.record("session_start", "s1")
    journal.record("identified", "s1", id="3403**********2018")
    whole = path.read_bytes()
    # power lost in the middle of the third write: half a line, no newline
    path.write_bytes(whole + b'{"event": "printed", "kiosk": "KSK-1", "prev": "ab')
    with caplog.at_level(logging.ERROR, logger="kiosk.audit"):
        again = AuditJournal(path, "KSK-1")
    assert "torn last line" in caplog.text
    assert again.torn_count == 1
    torn = tmp_path / "audit.jsonl.1.torn"
    assert torn.read_bytes() == b'{"event": "printed", "kiosk": "KSK-1", "prev": "ab'
    again.record("printed", "s1", job="PJ1")
    entries = lines(path)                              # every line whole JSON: nothing glued to the torn part
    assert [e["event"] for e in entries] == ["session_start", "identified", "audit_torn_tail", "printed"]
    assert entries[2]["file"] == "audit.jsonl.1.torn" and entries[2]["count"] == 1
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    report = verify_dir(tmp_path)
    assert report.ok, report.problems
    assert report.head["seq"] == 4
    # a second torn tail gets its own file (a counter), never overwriting the first
    path.write_bytes(path.read_bytes() + b'{"ts": 1')
    assert AuditJournal(path, "KSK-1").torn_count == 1
    assert (tmp_path / "audit.jsonl.2.torn").read_bytes() == b'{"ts": 1'


def test_a_whole_but_garbled_last_line_is_quarantined_too(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditJournal(path, "KSK-1").record("a")
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\x00\n")   # zero-filled block after a crash
    journal = AuditJournal(path, "KSK-1")
    assert journal.torn_count == 1
    journal.record("b")
    assert verify_dir(tmp_path).ok


def test_the_verifier_finds_one_tampered_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(path, "KSK-1")
    for i in range(5):
        journal.record("printed", f"s{i}", job=f"PJ{i}")
    assert verify_dir(tmp_path).ok and journal.verify()
    raw = path.read_text("utf-8").splitlines()
    entry = json.loads(raw[2])
    entry["job"] = "PJ-forged"                          # edited in place: its MAC no longer matches
    raw[2] = json.dumps(entry, ensure_ascii=False, sort_keys=True)
    path.write_text("\n".join(raw) + "\n", "utf-8")
    report = verify_dir(tmp_path)
    assert not report.ok
    assert any("audit.jsonl:3: MAC does not match" in p for p in report.problems), report.problems
    # removing an entry in the middle breaks the link and the sequence
    del raw[3]
    path.write_text("\n".join(raw) + "\n", "utf-8")
    problems = verify_dir(tmp_path).problems
    assert any("link broken" in p for p in problems) and any("seq 5 after 3" in p for p in problems)
    # another key (recomputing the MACs without the kiosk's key) does not verify either
    assert not verify_dir(tmp_path, os.urandom(32)).ok


def test_the_cli_verifies_a_folder(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "audit.jsonl", "KSK-1")
    journal.record("kiosk_start")
    journal.record("kiosk_stop")
    run = subprocess.run([sys.executable, "-m", "screens.cli", "audit-verify", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["head"]["seq"] == 2
    (tmp_path / "audit.jsonl").write_text((tmp_path / "audit.jsonl").read_text("utf-8").replace("kiosk_stop", "x"))
    run = subprocess.run([sys.executable, "-m", "screens.cli", "audit-verify", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and not json.loads(run.stdout)["ok"]


def test_rotation_by_size_and_by_day_keeps_one_chain(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(path, "KSK-1", max_bytes=1200, clock=clock)
    for i in range(12):                                # size: a new file every few entries
        journal.record("printed", f"s{i}", job=f"PJ{i}")
        clock.now += 60
    clock.now += DAY                                   # the next day: a new file even though small
    journal.record("kiosk_start")
    files = journal.files()
    assert len(files) >= 4 and files[-1] == path
    assert all(p.name.startswith("audit-") for p in files[:-1])
    assert lines(path)[0]["event"] == "kiosk_start"    # the day's first entry opened the new file
    # the first entry of each file links to the last entry of the one before
    for before, after in zip(files, files[1:]):
        assert lines(after)[0]["prev"] == lines(before)[-1]["mac"]
    report = verify_dir(tmp_path)
    assert report.ok, report.problems
    assert report.entries == 13 and report.head["seq"] == 13 and report.first_seq == 1
    # reopening continues from the newest file
    again = AuditJournal(path, "KSK-1", max_bytes=1200, clock=clock)
    assert again.head() == journal.head()
    # retention: rotated files older than the limit go; the chain still verifies from the first one left
    for p in files[:2]:
        os.utime(p, (clock.now - 400 * DAY, clock.now - 400 * DAY))
    removed = again.prune(365)
    assert removed == [files[0].name, files[1].name]
    report = verify_dir(tmp_path)
    assert report.ok and report.first_seq > 1


def test_a_missing_key_is_loud_and_starts_a_declared_new_segment(tmp_path: Path, caplog) -> None:
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(path, "KSK-1")
    journal.record("a")
    journal.record("b")
    old_head = journal.head()
    (tmp_path / "audit.key").unlink()
    with caplog.at_level(logging.CRITICAL, logger="kiosk.audit"):
        again = AuditJournal(path, "KSK-1")
    assert "AUDIT CHAIN BREAK (key_missing)" in caplog.text
    assert again.chain_break is not None and again.chain_break.reason == "key_missing"
    assert again.chain_break.previous == old_head
    brk = lines(path)[-1]
    assert brk["event"] == "audit_chain_break" and brk["reason"] == "key_missing"
    assert brk["epoch"] == 1 and brk["seq"] == 3 and brk["prev_seq"] == 2
    assert again.head()["epoch"] == 1
    again.record("c")
    report = verify_dir(tmp_path)
    assert report.ok and report.unverifiable == 2 and report.breaks[0]["reason"] == "key_missing"
    # a different key file (replaced) is caught the same way
    (tmp_path / "audit.key").unlink()
    fd = os.open(tmp_path / "audit.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    third = AuditJournal(path, "KSK-1")
    assert third.chain_break is not None and third.chain_break.reason == "key_mismatch"
    assert third.head()["epoch"] == 2
    # no files yet: a first start makes a key quietly
    fresh = AuditJournal(tmp_path / "other" / "audit.jsonl", "KSK-1")
    assert fresh.chain_break is None


def test_legacy_unkeyed_entries_are_continued(tmp_path: Path) -> None:
    """A journal written before the key (SHA-256 chain) is continued: its hash chain and the link into the keyed
    part both check out."""
    import hashlib

    path = tmp_path / "audit.jsonl"
    prev = audit_mod.GENESIS
    out = []
    for event in ("kiosk_start", "session_start"):
        line = json.dumps({"ts": 1.0, "kiosk": "KSK-1", "event": event, "session": None, "prev": prev},
                          sort_keys=True).encode()
        out.append(line)
        prev = hashlib.sha256(line).hexdigest()
    path.write_bytes(b"\n".join(out) + b"\n")
    journal = AuditJournal(path, "KSK-1")
    assert journal.chain_break is None                 # no keyed entries before: nothing to lose
    entry = journal.record("identified")
    assert entry["prev"] == prev and entry["seq"] == 3
    assert verify_dir(tmp_path).ok


def test_a_missing_outbox_key_with_sealed_rows_is_a_loud_error(tmp_path: Path, caplog) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key")
    box.put("rating", {"stars": 5})
    box.close()
    (tmp_path / "outbox.key").unlink()
    with caplog.at_level(logging.CRITICAL, logger="kiosk.outbox"), pytest.raises(OutboxKeyError):
        Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key")
    assert "refusing to create a new key" in caplog.text
    assert not (tmp_path / "outbox.key").exists()      # no silently new key
    # an empty outbox (or none) gets its key quietly
    Outbox(tmp_path / "fresh.sqlite3", tmp_path / "fresh.key").close()
    assert (tmp_path / "fresh.key").exists()


def test_the_core_moves_a_keyless_outbox_aside_and_alarms(make_profile, tmp_path: Path, caplog) -> None:
    from device_profiles.loader import load_profile
    from kiosk.core import KioskCore

    profile = load_profile(make_profile(), environ={})
    data_dir = Path(profile.kiosk.data_dir)
    box = Outbox(data_dir / "outbox.sqlite3", data_dir / "outbox.key")
    box.put("rating", {"stars": 4})
    box.close()
    (data_dir / "outbox.key").unlink()
    with caplog.at_level(logging.CRITICAL):
        core = KioskCore(profile)
    try:
        assert ("outbox_key_missing", "critical") in [(c, s) for c, s, _ in core.startup_alarms]
        assert list(data_dir.glob("outbox.sqlite3.keyless-*"))
        assert "outbox key" in caplog.text and "missing" in caplog.text
        assert [e for e in core.audit.entries() if e["event"] == "outbox_key_missing"]
        assert core.outbox.items(("pending", "sending")) == []   # a new, empty outbox: citizens are served
    finally:
        core.outbox.close()
        core.print_journal.close()
        core.payments.close()
        core.guide_cache.close()
