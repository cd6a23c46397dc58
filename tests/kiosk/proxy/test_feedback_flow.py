"""Complaints and questions through the kiosk core and the real platform: anonymous or linked to the session, one
reference per text whatever the retries, a receipt with the reference and its QR, the state queried like an
application number; the text never reaches the audit journal or the log. A rated comment goes with the rating."""
from __future__ import annotations

import logging

import httpx
import pytest

from kiosk.session import RatingTarget
from kiosk.usecases.feedback import FeedbackTextInvalid, is_reference

TEXT = "自助机打印的回执字太小 secret-kiosk-text-9090"


def test_complaints_questions_and_rated_comments(kiosk, call, platform_server, wait_for, caplog,
                                                face_verified_later):
    caplog.set_level(logging.DEBUG)
    kiosk.core.start_anonymous()
    flow = kiosk.core.feedback
    filed = call(flow.send, "complaint", TEXT, "senior-card")
    assert is_reference(filed.reference) and filed.reference in filed.message and filed.print_error is None
    again = call(flow.send, "complaint", TEXT, "senior-card")       # a retry of the same text: the same reference
    assert again.reference == filed.reference
    rows = platform_server.query("SELECT kind, service_code, text, citizen_session_id FROM feedback "
                                 "WHERE reference = ?", filed.reference)
    assert rows == [("complaint", "senior-card", TEXT, None)]
    receipt = wait_for(lambda: next((r for r in reversed(kiosk.receipts()) if filed.reference in r["text"]), None),
                       what="the feedback receipt")
    assert receipt["qr"] == [kiosk.core.public_urls.feedback(filed.reference)]
    assert httpx.get(receipt["qr"][0], timeout=10).status_code == 200, "the printed QR opens its verify page"
    assert TEXT not in receipt["text"]
    progress = call(kiosk.core.query_progress, filed.reference)       # like an application number
    assert progress.number == filed.reference and progress.status == "received" and progress.status_only
    with pytest.raises(FeedbackTextInvalid):
        flow.send_now("consultation", "   ")
    kiosk.core.flush_audit()
    audit = kiosk.core.audit.path.read_text("utf-8")
    assert "feedback_filed" in audit and TEXT not in audit and TEXT not in caplog.text
    kiosk.core.end_session("finished")

    # with the citizen's session: a question linked to it, and a bad rating carrying a typed comment
    face_verified_later()
    kiosk.identify("zhang")
    filed = call(kiosk.core.feedback.send, "consultation", "老年卡能否代办？")
    rows = platform_server.query("SELECT citizen_session_id IS NOT NULL FROM feedback WHERE reference = ?",
                                 filed.reference)
    assert rows == [(1,)]
    # a ★1–2 rating carries the comment typed on the keyboard to the platform (and the staff queue)
    kiosk.core.complete_action(RatingTarget("service", "senior-card", "guide"))
    call(kiosk.core.submit_rating, 1, ["等待时间长"], "排队太久了")
    rows = platform_server.query("SELECT r.stars, r.comment, f.status FROM ratings r JOIN rating_followups f "
                                 "ON f.rating_id = r.id WHERE r.target_id = 'senior-card' ORDER BY r.id DESC")
    assert rows[0] == (1, "排队太久了", "open")
