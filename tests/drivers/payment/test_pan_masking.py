"""PAN never in clear (PCI DSS 3.4): a pad that sends the whole card number is masked by the driver at the point of
parsing, so the driver's result, its messages and its logs only ever hold first 6 / last 4."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable

import pytest

from drivers.base import mask_card_number
from drivers.payment import ecr
from drivers.payment.base import PaymentResult, TxnStatus
from drivers.payment.ecr_pad import EcrPaymentPad, result_from

FULL_PAN = "6217000010012345678"          # 19 digits, made up (a China Construction Bank BIN shape)
MASKED = "621700*********5678"


@pytest.mark.parametrize("given, shown", [
    ("6217000010012345678", "621700*********5678"),       # a full 19-digit PAN
    ("4111111111111111", "411111******1111"),             # 16 digits
    ("4111 1111 1111 1111", "411111******1111"),          # with the separators some pads print
    ("621700*********5678", "621700*********5678"),       # already masked by the pad: kept
    ("621700XXXXXXXXX5678", "621700*********5678"),       # masked with X: normalised to stars
    ("****5678", "****5678"),                             # last 4 only
    ("6217000*********678", "*******************"),       # 7 leading digits: more than allowed, nothing kept
    ("62170000100123*5678", "*******************"),       # 14 digits in clear: refused
    ("PAN6217000010012345678", "**********************"), # junk: nothing passes
    ("", ""),
])
def test_mask_card_number(given: str, shown: str) -> None:
    assert mask_card_number(given) == shown


def test_a_pad_message_with_a_full_pan_is_masked_when_it_is_decoded() -> None:
    # RS<FS>ORD=A1<FS>ST=approved<FS>PAN=6217000010012345678, written out byte by byte
    data = (b"RS" + b"\x1c" + b"ORD=A1" + b"\x1c" + b"ST=approved" + b"\x1c" + b"PAN=" + FULL_PAN.encode())
    message = ecr.Message.decode(data)
    assert message.get("PAN") == MASKED
    assert FULL_PAN not in repr(message)
    result = result_from(message)
    assert result.card_masked == MASKED and FULL_PAN not in repr(result)


def test_a_message_built_with_a_full_pan_never_shows_it_in_its_repr() -> None:
    assert FULL_PAN not in repr(ecr.Message("RS", {"ORD": "1", "PAN": FULL_PAN}))


def test_every_payment_result_masks_its_card_number() -> None:
    result = PaymentResult(order_id="A", status=TxnStatus.APPROVED, card_masked=FULL_PAN)
    assert result.card_masked == MASKED


def test_a_hostile_pad_sending_the_full_pan_never_gets_it_past_the_driver(
        pad_sim: Any, make_pad: Callable[..., EcrPaymentPad], caplog: pytest.LogCaptureFixture) -> None:
    pad_sim.control("set_card", pan=FULL_PAN, send="full")
    pad = make_pad(pad_sim.endpoints["pty"])
    order = "T" + uuid.uuid4().hex[:15].upper()
    with caplog.at_level(logging.DEBUG):
        txn = pad.start(order, 100)
        deadline = time.monotonic() + 5
        result = pad.wait(txn, 0.5)
        while result.status is TxnStatus.PENDING and time.monotonic() < deadline:
            result = pad.wait(txn, 0.5)
        queried = pad.query(order)
        logging.getLogger("test").debug("result %r query %r inbox %r", result, queried, pad._link.inbox)
    # the pad really put the whole number on the wire …
    assert pad_sim.control("ledger")["ledger"][order]["pan_sent"] == FULL_PAN
    # … and only its mask left the driver
    assert result.status is TxnStatus.APPROVED
    assert result.card_masked == MASKED and queried.card_masked == MASKED
    for text in (repr(result), repr(queried), str(pad._results), repr(pad._link.inbox), caplog.text):
        assert FULL_PAN not in text
        assert FULL_PAN[6:15] not in text   # not even the hidden middle digits
