"""The print journal on its own: states and transitions, durability settings, what is kept and for how long, reprint
bookkeeping, and that no personal data goes in."""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from kiosk.print_journal import InvalidTransition, PrintJournal, UnknownJob

ZHANG_ID = "340302195803172018"




@pytest.fixture
def journal(tmp_path: Path, clock):
    with PrintJournal(tmp_path / "print-journal.sqlite3", clock=clock) as j:
        yield j


def payload(text: str = "张*华") -> dict:
    return {"job_id": "x", "title": "progress", "blocks": [{"type": "text", "text": text, "bold": False,
                                                             "size": "normal", "align": "left"}]}


def test_a_job_goes_queued_sent_done_and_keeps_its_history(journal: PrintJournal, clock) -> None:
    created = journal.create("receipt", "progress", "PJ1", summary="办件进度回执", payload=payload())
    assert (created.state, created.attempts, created.reprint_of, created.root_id) == ("queued", 0, None, "PJ1")
    assert created.payload == payload() and not created.may_have_printed

    clock.now += 1
    sent = journal.mark_sent("PJ1")
    assert (sent.state, sent.attempts, sent.may_have_printed) == ("sent", 1, True)
    done = journal.mark_done("PJ1", bytes_sent=812, paper="low")

    assert (done.state, done.bytes_sent, done.paper, done.finished) == ("done", 812, "low", True)
    assert done.payload is None                                       # nothing kept once it printed
    assert done.created_at == created.created_at and done.updated_at == created.created_at + 1
    assert journal.history("PJ1") == [("queued", None), ("sent", None), ("done", None)]
    assert journal.pending() == []
    assert journal.counts() == {"queued": 0, "sent": 0, "done": 1, "failed": 0, "pending": 0, "reprints": 0}


def test_transitions_that_make_no_sense_are_refused(journal: PrintJournal) -> None:
    journal.create("receipt", "progress", "PJ1")
    with pytest.raises(InvalidTransition):
        journal.mark_done("PJ1")                                      # never sent
    journal.mark_sent("PJ1")
    with pytest.raises(InvalidTransition):
        journal.mark_sent("PJ1")
    journal.mark_done("PJ1")
    with pytest.raises(InvalidTransition):
        journal.mark_failed("PJ1", "paper_out")
    with pytest.raises(InvalidTransition):
        journal.close_job("PJ1", "dismissed")
    with pytest.raises(UnknownJob):
        journal.mark_sent("nope")
    with pytest.raises(ValueError):
        journal.create("poster", "x", "PJ2")
    with pytest.raises(sqlite3.IntegrityError):
        journal.create("receipt", "progress", "PJ1")                  # ids are unique
    # a licence found completed on the print server after it was recorded as failed
    journal.create("licence", "business_licence", "PJ3")
    journal.mark_sent("PJ3", device_job=17)
    journal.mark_failed("PJ3", "timeout", device_job=17)
    assert journal.mark_done("PJ3", pages=2).state == "done"


def test_the_journal_is_durable_and_survives_reopening(tmp_path: Path, clock) -> None:
    path = tmp_path / "j.sqlite3"
    journal = PrintJournal(path, clock=clock)
    journal.create("receipt", "progress", "PJ1", payload=payload())
    journal.mark_sent("PJ1")
    journal.create("receipt", "queue_ticket", "PJ2")
    sync = journal._db.execute("PRAGMA synchronous").fetchone()[0]
    journal.close()

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sync == 2                                                  # FULL: fsync on every commit
    with PrintJournal(path, clock=clock) as reopened:
        assert [(e.id, e.state) for e in reopened.pending()] == [("PJ1", "sent"), ("PJ2", "queued")]
        assert reopened.get("PJ1").payload == payload()


def test_listeners_hear_each_change_after_it_is_committed(journal: PrintJournal, tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    def listener(entry) -> None:
        other = sqlite3.connect(journal.path)                         # another connection sees it already
        state = other.execute("SELECT state FROM jobs WHERE id = ?", (entry.id,)).fetchone()[0]
        other.close()
        seen.append((entry.state, state))

    journal.subscribe(listener)
    journal.create("receipt", "progress", "PJ1")
    journal.mark_sent("PJ1")
    journal.mark_failed("PJ1", "paper_out", bytes_sent=120)

    assert seen == [("queued", "queued"), ("sent", "sent"), ("failed", "failed")]


def test_what_is_pending_and_what_is_settled(journal: PrintJournal) -> None:
    journal.create("receipt", "progress", "refused")
    journal.mark_failed("refused", "paper_out", bytes_sent=0, close="not_printed")   # refused up front
    journal.create("receipt", "progress", "half")
    journal.mark_sent("half")
    journal.mark_failed("half", "paper_out", bytes_sent=300)                         # paper ran out mid-job
    journal.create("licence", "business_licence", "lic", payload={"options": {}, "document_ref": "D1"})
    journal.mark_sent("lic")
    journal.create("receipt", "queue_ticket", "left")
    journal.mark_sent("left")
    journal.close_job("left", "dismissed:staff-07")

    assert [e.id for e in journal.pending()] == ["half", "lic"]
    assert [e.id for e in journal.pending("licence")] == ["lic"]
    refused, half = journal.get("refused"), journal.get("half")
    assert (refused.finished, refused.may_have_printed, refused.payload) == (True, False, None)
    assert (half.finished, half.may_have_printed, half.reason, half.bytes_sent) == (False, True, "paper_out", 300)
    assert journal.get("left").closed == "dismissed:staff-07" and journal.get("left").payload is None
    assert journal.counts()["pending"] == 2


def test_reprints_close_the_original_and_are_counted_per_document(journal: PrintJournal) -> None:
    journal.create("licence", "business_licence", "L1", payload={"options": {}, "document_ref": "D1"})
    journal.mark_sent("L1", device_job=5)
    journal.mark_failed("L1", "paper_out", device_job=5)
    r1 = journal.create("licence", "business_licence", "L2", reprint_of="L1", is_reprint=True,
                        authorised_by="staff-07")
    journal.mark_sent("L2")
    journal.mark_failed("L2", "paper_jammed", device_job=6)
    journal.create("licence", "business_licence", "L3", reprint_of="L2", is_reprint=True, authorised_by="staff-07")
    journal.mark_sent("L3")
    journal.mark_done("L3", pages=2)

    assert (r1.root_id, r1.reprint_of, r1.authorised_by) == ("L1", "L1", "staff-07")
    assert journal.get("L1").closed == "reprinted:L2" and journal.get("L2").closed == "reprinted:L3"
    assert journal.reprint_count("L1") == journal.reprint_count("L3") == 2
    assert journal.pending() == []
    assert journal.counts()["reprints"] == 2
    assert ("failed", "reprinted:L2") in journal.history("L1")


def test_old_finished_jobs_are_purged_and_open_ones_kept(journal: PrintJournal, clock) -> None:
    journal.create("receipt", "progress", "old-done")
    journal.mark_sent("old-done")
    journal.mark_done("old-done")
    journal.create("receipt", "progress", "old-open")
    journal.mark_sent("old-open")
    clock.now += 40 * 86400
    journal.create("receipt", "progress", "new-done")
    journal.mark_sent("new-done")
    journal.mark_done("new-done")

    assert journal.purge(30 * 86400) == 1
    assert [e.id for e in journal.jobs()] == ["old-open", "new-done"]
    assert journal.history("old-done") == []


def test_no_personal_data_is_stored_or_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.sqlite3"
    caplog.set_level(logging.DEBUG)
    with PrintJournal(path) as journal:
        journal.create("receipt", "transaction_receipt", "PJ1", summary=f"受理回执 {ZHANG_ID}",
                       payload=payload(f"证件号码：{ZHANG_ID}"))
        journal.mark_sent("PJ1")
        journal.mark_failed("PJ1", "paper_out", detail=f"printer said {ZHANG_ID}")
        entry = journal.get("PJ1")

    assert entry.summary == "受理回执 3403**********2018"
    assert entry.payload["blocks"][0]["text"] == "证件号码：3403**********2018"
    assert entry.detail == "printer said 3403**********2018"
    for file in tmp_path.iterdir():                                   # the database, its WAL: nowhere in clear
        assert ZHANG_ID.encode() not in file.read_bytes()
    assert ZHANG_ID not in caplog.text and "masked" in caplog.text   # the warning names the job, not the data


def test_concurrent_workers_each_get_their_job_recorded(journal: PrintJournal) -> None:
    def worker(n: int) -> None:
        for i in range(20):
            job = f"W{n}-{i}"
            journal.create("receipt", "queue_ticket", job)
            journal.mark_sent(job)
            journal.mark_done(job)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert journal.counts()["done"] == 80 and journal.pending() == []
