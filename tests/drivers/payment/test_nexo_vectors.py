"""Known-answer vectors for the nexo Sale-to-POI layer: a PaymentRequest/PaymentResponse pair written out by hand from
the public description (nexo Sale-to-POI 3.0 as the terminal APIs document it, docs/protocols/nexo.md) — not produced
by our encoder. The decoder must parse them; the encoder must reproduce the request key by key; a hostile POI's full
card number is masked at parsing."""
from __future__ import annotations

import json
import logging
import time
import uuid
from decimal import Decimal
from typing import Any, Callable

import pytest

from drivers.payment import nexo
from drivers.payment.base import TxnStatus
from drivers.payment.nexo_pad import parse_payment_response, parse_status_response

PAYMENT_REQUEST = """{
  "SaleToPOIRequest": {
    "MessageHeader": {
      "ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "Payment", "MessageType": "Request",
      "ServiceID": "0207111104", "SaleID": "KSK-340302-0001", "POIID": "SIMPOI-0001"
    },
    "PaymentRequest": {
      "SaleData": {"SaleTransactionID": {"TransactionID": "PO20240501000123", "TimeStamp": "2024-05-01T10:15:30.123+08:00"}},
      "PaymentTransaction": {"AmountsReq": {"Currency": "CNY", "RequestedAmount": 1234.50}}
    }
  }
}"""

PAYMENT_RESPONSE = """{
  "SaleToPOIResponse": {
    "MessageHeader": {
      "ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": "Payment", "MessageType": "Response",
      "ServiceID": "0207111104", "SaleID": "KSK-340302-0001", "POIID": "SIMPOI-0001"
    },
    "PaymentResponse": {
      "Response": {"Result": "Success", "AdditionalResponse": "paymentMethod=unionpay_card"},
      "SaleData": {"SaleTransactionID": {"TransactionID": "PO20240501000123", "TimeStamp": "2024-05-01T10:15:30.123+08:00"}},
      "POIData": {"POITransactionID": {"TransactionID": "8816001234567890", "TimeStamp": "2024-05-01T10:15:41.000+08:00"}},
      "PaymentResult": {
        "PaymentType": "Normal",
        "AmountsResp": {"Currency": "CNY", "AuthorizedAmount": 1234.50},
        "PaymentInstrumentData": {"PaymentInstrumentType": "Card", "CardData": {"MaskedPan": "6217000010012345678"}},
        "PaymentAcquirerData": {"AcquirerPOIID": "SIMPOI-0001",
                                "AcquirerTransactionID": {"TransactionID": "ACQ0000042", "TimeStamp": "2024-05-01T10:15:40.000+08:00"}}
      }
    }
  }
}"""

DECLINED = """{"SaleToPOIResponse": {"MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service",
  "MessageCategory": "Payment", "MessageType": "Response", "ServiceID": "0207111104", "SaleID": "K", "POIID": "P"},
  "PaymentResponse": {"Response": {"Result": "Failure", "ErrorCondition": "Refusal",
  "AdditionalResponse": "reason=51"}, "SaleData": {"SaleTransactionID": {"TransactionID": "PO1",
  "TimeStamp": "2024-05-01T10:15:30+08:00"}}}}}"""

IN_PROGRESS = """{"SaleToPOIResponse": {"MessageHeader": {"ProtocolVersion": "3.0", "MessageClass": "Service",
  "MessageCategory": "TransactionStatus", "MessageType": "Response", "ServiceID": "S1", "SaleID": "K", "POIID": "P"},
  "TransactionStatusResponse": {"Response": {"Result": "Failure", "ErrorCondition": "InProgress",
  "AdditionalResponse": "message=Uncompleted%20transaction"}}}}"""

FULL_PAN = "6217000010012345678"


def test_the_decoder_parses_the_hand_written_response_and_masks_the_pan() -> None:
    message = nexo.decode(PAYMENT_RESPONSE.encode("utf-8"))
    head = nexo.header(message)
    assert (head["MessageClass"], head["MessageCategory"], head["MessageType"]) == ("Service", "Payment", "Response")
    part = nexo.body(message, "PaymentResponse")
    assert part["PaymentResult"]["PaymentInstrumentData"]["CardData"]["MaskedPan"] == "621700*********5678"
    assert FULL_PAN not in json.dumps(message, default=str)
    result, poi_txn = parse_payment_response(part, "?")
    assert result.status is TxnStatus.APPROVED and result.order_id == "PO20240501000123"
    assert result.amount_fen == 123450 and result.ref == "ACQ0000042" and result.txn_id == "8816001234567890"
    assert result.card_masked == "621700*********5678" and result.method == "unionpay_card"
    assert poi_txn == {"TransactionID": "8816001234567890", "TimeStamp": "2024-05-01T10:15:41.000+08:00"}


def test_the_encoder_reproduces_the_hand_written_request_key_by_key() -> None:
    ours = nexo.payment_request("PO20240501000123", 123450, "KSK-340302-0001", "SIMPOI-0001",
                                now="2024-05-01T10:15:30.123+08:00", service_id="0207111104")
    expected = json.loads(PAYMENT_REQUEST, parse_float=Decimal)
    produced = json.loads(nexo.encode(ours), parse_float=Decimal)
    assert produced == expected
    text = nexo.encode(ours).decode("utf-8")
    assert '"RequestedAmount":1234.50' in text            # 2 decimals on the wire, no float digits


@pytest.mark.parametrize("fen, amount", [(1, "0.01"), (10, "0.10"), (123450, "1234.50"), (999999999, "9999999.99")])
def test_amounts_convert_exactly(fen: int, amount: str) -> None:
    assert nexo.fen_to_amount(fen) == Decimal(amount) and str(nexo.fen_to_amount(fen)) == amount
    assert nexo.amount_to_fen(Decimal(amount)) == fen and nexo.amount_to_fen(amount) == fen
    with pytest.raises(nexo.NexoError):
        nexo.amount_to_fen("0.001")


def test_failures_and_in_progress_map_to_statuses() -> None:
    declined, _ = parse_payment_response(nexo.body(nexo.decode(DECLINED), "PaymentResponse"), "PO1")
    assert (declined.status, declined.reason) == (TxnStatus.DECLINED, "51")
    pending, _, _ = parse_status_response(nexo.body(nexo.decode(IN_PROGRESS), "TransactionStatusResponse"), "PO1")
    assert pending.status is TxnStatus.PENDING


def test_the_in_doubt_query_references_the_payment_by_its_order() -> None:
    query = nexo.transaction_status_request("PO20240501000123", "K", "P", service_id="S2")
    ref = query["SaleToPOIRequest"]["TransactionStatusRequest"]["MessageReference"]
    assert ref == {"MessageCategory": "Payment", "ServiceID": nexo.service_id_for("PO20240501000123"),
                   "SaleID": "K", "POIID": "P"}
    assert len(nexo.service_id_for("PO20240501000123")) == 10
    assert nexo.header(query)["MessageCategory"] == "TransactionStatus"
    abort = nexo.abort_request("PO20240501000123", "K", "P")
    assert abort["SaleToPOIRequest"]["AbortRequest"]["MessageReference"] == ref


def test_junk_is_refused_without_quoting_it() -> None:
    for junk in (b"", b"[]", b'{"SaleToPOIResponse": {}}', b"PAN=" + FULL_PAN.encode()):
        with pytest.raises(nexo.NexoError) as err:
            nexo.decode(junk)
        assert FULL_PAN not in str(err.value)


@pytest.mark.parametrize("driver", ["nexo_tcp", "nexo_serial"])
def test_a_hostile_poi_sending_the_full_pan_never_gets_it_past_the_driver(
        driver: str, nexo_sim: Any, make_driver: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    nexo_sim.control("set_card", pan=FULL_PAN, send="full")
    pad = make_driver(driver, nexo_sim.endpoints)
    order = "T" + uuid.uuid4().hex[:15].upper()
    with caplog.at_level(logging.DEBUG):
        txn = pad.start(order, 100)
        deadline = time.monotonic() + 5
        result = pad.wait(txn, 0.5)
        while result.status is TxnStatus.PENDING and time.monotonic() < deadline:
            result = pad.wait(txn, 0.5)
        queried = pad.query(order)
        logging.getLogger("test").debug("result %r query %r", result, queried)
    assert nexo_sim.control("ledger")["ledger"][order]["pan_sent"] == FULL_PAN     # on the wire in full …
    assert result.status is TxnStatus.APPROVED
    assert result.card_masked == "621700*********5678" and queried.card_masked == "621700*********5678"
    for text in (repr(result), repr(queried), repr(pad._poi_txn), caplog.text):   # … and only masked past the driver
        assert FULL_PAN not in text and FULL_PAN[6:15] not in text
