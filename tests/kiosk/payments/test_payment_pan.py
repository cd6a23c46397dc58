"""PAN never in clear, end to end: a pad that sends the whole card number (``set_card send=full``) pays an order
through the real driver, the payment service, the journal and the real platform, and the full number is nowhere
afterwards — not in the journal's files on disk (database, WAL), not in the logs, not on the platform."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from kiosk.payments.journal import PaymentJournal, PaymentState

pytestmark = pytest.mark.usefixtures("face_verified")

FULL_PAN = "6217000010012345678"
MASKED = "621700*********5678"


def test_a_full_pan_from_the_pad_never_reaches_the_journal_logs_or_platform(
        platform: Any, journal: PaymentJournal, pad_sim: Any, make_kit: Any, new_order: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    pad_sim.control("set_card", pan=FULL_PAN, send="full")
    kit = make_kit(pad_sim)
    order = new_order()
    with caplog.at_level(logging.DEBUG):
        outcome = kit.service.pay(order, "card")
    assert outcome.status == "paid"
    assert pad_sim.control("ledger")["ledger"][order.order_no]["pan_sent"] == FULL_PAN   # it was on the wire
    assert outcome.record.card_masked == MASKED                                          # what the voucher prints
    assert platform.payment_order(order.order_no).card_masked == MASKED
    assert [r.card_masked for r in journal.for_order(order.order_no)] == [MASKED]
    files = [p for p in Path(journal.path).parent.iterdir() if p.name.startswith(Path(journal.path).name)]
    assert files
    for path in files:                                  # the database file, its WAL and shared memory
        raw = path.read_bytes()
        assert FULL_PAN.encode() not in raw and FULL_PAN.encode("utf-16-le") not in raw, path.name
    texts = [caplog.text, repr(outcome), str(kit.events)]
    for text in texts:
        assert FULL_PAN not in text and FULL_PAN[6:15] not in text


def test_the_journal_masks_a_full_pan_even_if_a_terminal_passed_one(journal: PaymentJournal) -> None:
    record = journal.create(order_no="P1", amount_fen=100, channel="card")
    journal.transition(record.id, PaymentState.STARTED)
    record = journal.transition(record.id, PaymentState.APPROVED, card_masked=FULL_PAN, txn_ref="R1")
    assert record.card_masked == MASKED
    for path in Path(journal.path).parent.iterdir():
        assert FULL_PAN.encode() not in path.read_bytes()
