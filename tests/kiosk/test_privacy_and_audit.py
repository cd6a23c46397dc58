from __future__ import annotations

import json
import logging

from kiosk.audit import AuditJournal
from kiosk.privacy import ScrubbingFilter, mask_id_number, scrub


def test_masks():
    assert mask_id_number("340302195803172018") == "3403**********2018"
    assert mask_id_number("35010219490822102X") == "3501**********102X"


def test_scrub_finds_id_numbers_in_text():
    assert scrub("card 340302195803172018 read") == "card 3403**********2018 read"
    assert scrub("order 12345") == "order 12345"


def test_log_filter_masks(caplog):
    logger = logging.getLogger("test.privacy")
    logger.addFilter(ScrubbingFilter())
    with caplog.at_level(logging.INFO, logger="test.privacy"):
        logger.info("read %s", "35010219490822102X")
    assert "35010219490822102X" not in caplog.text
    assert "3501**********102X" in caplog.text


def test_audit_is_chained_and_masks(tmp_path):
    journal = AuditJournal(tmp_path / "audit.jsonl", "KSK-1")
    journal.record("identified", "s1", note="id 340302195803172018")
    journal.record("printed", "s1", job="PJ1")
    raw = (tmp_path / "audit.jsonl").read_text("utf-8")
    assert "340302195803172018" not in raw
    assert journal.verify()
    # reopening continues the chain
    again = AuditJournal(tmp_path / "audit.jsonl", "KSK-1")
    again.record("session_end", "s1", reason="timeout")
    assert again.verify()
    assert [e["event"] for e in again.entries()] == ["identified", "printed", "session_end"]
    # an edited line breaks the chain
    lines = raw.splitlines()
    edited = json.loads(lines[0])
    edited["event"] = "tampered"
    (tmp_path / "audit.jsonl").write_text(json.dumps(edited) + "\n" + "\n".join(lines[1:]) + "\n", "utf-8")
    assert not AuditJournal(tmp_path / "audit.jsonl", "KSK-1").verify()


def test_workers_drop_late_tasks_after_shutdown():
    from kiosk.workers import Workers

    workers = Workers()
    workers.shutdown()
    results: list = []
    future = workers.submit(lambda: 1, on_result=results.append)
    assert future.cancelled() and results == []
