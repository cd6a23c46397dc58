"""nexo Sale-to-POI (protocol version 3.0, ISO 20022 based) message layer, JSON as IP terminals' terminal APIs carry it.

The subset, its sources and our choices are written down in ``docs/protocols/nexo.md``. In short::

    SaleToPOIRequest  {MessageHeader, LoginRequest | PaymentRequest | TransactionStatusRequest | ReversalRequest
                       | AbortRequest | DiagnosisRequest}
    SaleToPOIResponse {MessageHeader, LoginResponse | PaymentResponse | TransactionStatusResponse | ReversalResponse
                       | DiagnosisResponse}                    (Abort has no response: the aborted Payment answers)

Amounts: integer fen in our code, a JSON number with 2 decimals in CNY on the wire, converted with :mod:`decimal`
(never through float). The Payment's ``ServiceID`` is derived from the order id (:func:`service_id_for`), so a
TransactionStatus for an order can be asked after a restart, knowing only the order id (the SaleTransactionID).

PAN rule: :func:`decode` — the one place the kiosk side parses a POI's message — masks every card-number field
(``MaskedPan``, ``PAN``, …) to first 6 / last 4 before the message exists as an object.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.parse
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from drivers.base import mask_card_number

PROTOCOL_VERSION = "3.0"
CURRENCY = "CNY"
#: a JSON body larger than this is not a nexo message of our subset (serial frames use it as their maximum)
MAX_MESSAGE = 16_384
#: keys whose value is (or may be) a card number: masked when a message is decoded
PAN_KEYS = frozenset({"MaskedPan", "PAN", "Pan", "PrimaryAccountNumber", "CardNumber"})
SERVICE_CATEGORIES = ("Login", "Payment", "TransactionStatus", "Reversal", "Abort")
DEVICE_CATEGORIES = ("Diagnosis",)


class NexoError(ValueError):
    """Bytes that are not a nexo message of our subset."""


# --- amounts ----------------------------------------------------------------------------------------------------

def fen_to_amount(fen: int) -> Decimal:
    """1234 → Decimal('12.34'), exactly."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amount in fen must be an int")
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def amount_to_fen(amount: Any) -> int:
    """Decimal('12.34') / '12.34' / 12 → 1234; refuses fractions of a fen and floats that are not exact."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except (InvalidOperation, ValueError) as exc:
        raise NexoError(f"amount {amount!r} is not a number") from exc
    fen = value * 100
    if fen != fen.to_integral_value():
        raise NexoError(f"amount {amount!r} has more than 2 decimals")
    return int(fen)


# --- ids and time ------------------------------------------------------------------------------------------------

_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def service_id_for(order_id: str) -> str:
    """The Payment's ServiceID (≤ 10 characters) derived from the order id: the same order always has the same one,
    so the driver can reference it in TransactionStatus/Abort after a restart. 10 base-36 characters of SHA-256."""
    n = int.from_bytes(hashlib.sha256(order_id.encode("utf-8")).digest()[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, 36)
        out += _B36[r]
    return out


def new_service_id() -> str:
    """A fresh ServiceID for a message pair that is not a Payment (≤ 10 alphanumeric characters)."""
    return "S" + base64.b32encode(secrets.token_bytes(5)).decode("ascii")[:9]


def timestamp(now: datetime | None = None) -> str:
    """ISODateTime as the terminal APIs write it: ``2024-05-01T10:15:30.123+08:00``."""
    now = now or datetime.now(timezone.utc).astimezone()
    return now.isoformat(timespec="milliseconds")


# --- JSON --------------------------------------------------------------------------------------------------------

_DEC = "__nexo_decimal__"
_DEC_RE = re.compile(r'"' + _DEC + r'(-?\d+(?:\.\d+)?)"')


def _prepare(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _DEC + format(value, "f")
    if isinstance(value, float):
        raise TypeError("nexo amounts are Decimal, never float")
    if isinstance(value, Mapping):
        return {k: _prepare(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_prepare(v) for v in value]
    return value


def encode(message: Mapping[str, Any]) -> bytes:
    """A message → UTF-8 JSON; Decimal amounts are written as JSON numbers with their exact digits (12.30)."""
    text = json.dumps(_prepare(message), ensure_ascii=False, separators=(",", ":"))
    return _DEC_RE.sub(r"\1", text).encode("utf-8")


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (mask_card_number(str(v)) if k in PAN_KEYS and isinstance(v, (str, int)) else _mask(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def decode(data: bytes | str) -> dict[str, Any]:
    """JSON → dict (numbers with decimals as Decimal), every card number masked; NexoError when it is not a
    SaleToPOIRequest/Response with a MessageHeader. Never quotes the input (it may hold a card number)."""
    try:
        obj = json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NexoError("not JSON") from exc
    if not isinstance(obj, dict) or len(obj) != 1:
        raise NexoError("not one SaleToPOIRequest/SaleToPOIResponse object")
    (root, body), = obj.items()
    if root not in ("SaleToPOIRequest", "SaleToPOIResponse") or not isinstance(body, dict) \
            or not isinstance(body.get("MessageHeader"), dict):
        raise NexoError("no SaleToPOIRequest/SaleToPOIResponse with a MessageHeader")
    return _mask(obj)


def root(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """("SaleToPOIRequest"|"SaleToPOIResponse", its body)."""
    (name, body), = message.items()
    return name, body


def header(message: Mapping[str, Any]) -> dict[str, Any]:
    return root(message)[1]["MessageHeader"]


def body(message: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The ``<Category><Request|Response>`` part, e.g. ``body(msg, "PaymentResponse")`` ({} when absent)."""
    part = root(message)[1].get(kind)
    return part if isinstance(part, dict) else {}


def redacted(message: Mapping[str, Any]) -> str:
    """For logs: payment codes hidden, card numbers masked."""
    text = json.dumps(_mask(_prepare(message)), ensure_ascii=False)
    return re.sub(r"paymentCode(=|%3D)[0-9A-Za-z]+", r"paymentCode\1***", text)


# --- building ----------------------------------------------------------------------------------------------------

def make_header(category: str, message_type: str, service_id: str, sale_id: str, poi_id: str,
                message_class: str | None = None) -> dict[str, Any]:
    return {"ProtocolVersion": PROTOCOL_VERSION,
            "MessageClass": message_class or ("Device" if category in DEVICE_CATEGORIES else "Service"),
            "MessageCategory": category, "MessageType": message_type, "ServiceID": service_id,
            "SaleID": sale_id, "POIID": poi_id}


def request(category: str, service_id: str, sale_id: str, poi_id: str, content: Mapping[str, Any]) -> dict[str, Any]:
    return {"SaleToPOIRequest": {"MessageHeader": make_header(category, "Request", service_id, sale_id, poi_id),
                                 f"{category}Request": dict(content)}}


def response(request_header: Mapping[str, Any], content: Mapping[str, Any],
             category: str | None = None) -> dict[str, Any]:
    """The response to a request: its header with MessageType Response."""
    head = {**request_header, "MessageType": "Response"}
    cat = category or head["MessageCategory"]
    return {"SaleToPOIResponse": {"MessageHeader": head, f"{cat}Response": dict(content)}}


def login_request(sale_id: str, poi_id: str, service_id: str | None = None, now: str | None = None,
                  software_version: str = "1.0") -> dict[str, Any]:
    return request("Login", service_id or new_service_id(), sale_id, poi_id, {
        "DateTime": now or timestamp(),
        "SaleSoftware": {"ManufacturerID": "govkiosk", "ApplicationName": "govkiosk",
                         "SoftwareVersion": software_version, "CertificationCode": "none"},
        "SaleTerminalData": {"TerminalEnvironment": "Unattended",
                             "SaleCapabilities": ["CustomerDisplay", "PrinterReceipt"]},
        "OperatorLanguage": "zh"})


def payment_request(order_id: str, amount_fen: int, sale_id: str, poi_id: str, *, method: str = "unionpay_card",
                    payment_code: str | None = None, now: str | None = None,
                    service_id: str | None = None) -> dict[str, Any]:
    sale_data: dict[str, Any] = {"SaleTransactionID": {"TransactionID": order_id, "TimeStamp": now or timestamp()}}
    if method != "unionpay_card" or payment_code:
        extra = {"paymentMethod": method, **({"paymentCode": payment_code} if payment_code else {})}
        sale_data["SaleToAcquirerData"] = urllib.parse.urlencode(extra)
    return request("Payment", service_id or service_id_for(order_id), sale_id, poi_id, {
        "SaleData": sale_data,
        "PaymentTransaction": {"AmountsReq": {"Currency": CURRENCY, "RequestedAmount": fen_to_amount(amount_fen)}}})


def refund_request(order_id: str, amount_fen: int, sale_id: str, poi_id: str, original_poi_txn: Mapping[str, Any],
                   now: str | None = None, service_id: str | None = None) -> dict[str, Any]:
    """A referenced refund: a PaymentRequest with PaymentData.PaymentType Refund and the original POI transaction."""
    return request("Payment", service_id or new_service_id(), sale_id, poi_id, {
        "SaleData": {"SaleTransactionID": {"TransactionID": order_id, "TimeStamp": now or timestamp()}},
        "PaymentTransaction": {"AmountsReq": {"Currency": CURRENCY, "RequestedAmount": fen_to_amount(amount_fen)},
                               "OriginalPOITransaction": {"POITransactionID": dict(original_poi_txn)}},
        "PaymentData": {"PaymentType": "Refund"}})


def message_reference(category: str, service_id: str, sale_id: str, poi_id: str) -> dict[str, Any]:
    return {"MessageCategory": category, "ServiceID": service_id, "SaleID": sale_id, "POIID": poi_id}


def transaction_status_request(order_id: str, sale_id: str, poi_id: str,
                               service_id: str | None = None) -> dict[str, Any]:
    """The in-doubt query: the status of the Payment of this order (referenced by its derived ServiceID)."""
    return request("TransactionStatus", service_id or new_service_id(), sale_id, poi_id, {
        "MessageReference": message_reference("Payment", service_id_for(order_id), sale_id, poi_id)})


def abort_request(order_id: str, sale_id: str, poi_id: str, reason: str = "Cancelled by citizen",
                  service_id: str | None = None) -> dict[str, Any]:
    return request("Abort", service_id or new_service_id(), sale_id, poi_id, {
        "MessageReference": message_reference("Payment", service_id_for(order_id), sale_id, poi_id),
        "AbortReason": reason})


def reversal_request(sale_id: str, poi_id: str, original_poi_txn: Mapping[str, Any], reason: str = "MerchantCancel",
                     service_id: str | None = None) -> dict[str, Any]:
    return request("Reversal", service_id or new_service_id(), sale_id, poi_id, {
        "OriginalPOITransaction": {"POIID": poi_id, "POITransactionID": dict(original_poi_txn)},
        "ReversalReason": reason})


def diagnosis_request(sale_id: str, poi_id: str, service_id: str | None = None) -> dict[str, Any]:
    return request("Diagnosis", service_id or new_service_id(), sale_id, poi_id, {"HostDiagnosisFlag": False})


# --- reading responses ----------------------------------------------------------------------------------------------

def additional(response_part: Mapping[str, Any]) -> dict[str, str]:
    """Response.AdditionalResponse as key/values (terminal APIs URL-encode it)."""
    text = response_part.get("AdditionalResponse") or ""
    if not isinstance(text, str):
        return {}
    return {k: v for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True)}


def result_of(part: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(Result, ErrorCondition, AdditionalResponse as dict) of a …Response part."""
    resp = part.get("Response") if isinstance(part.get("Response"), dict) else {}
    return str(resp.get("Result", "")), str(resp.get("ErrorCondition", "")), additional(resp)


__all__ = ["PROTOCOL_VERSION", "CURRENCY", "NexoError", "fen_to_amount", "amount_to_fen", "service_id_for",
           "new_service_id", "timestamp", "encode", "decode", "root", "header", "body", "redacted", "make_header",
           "request", "response", "login_request", "payment_request", "refund_request", "transaction_status_request",
           "abort_request", "reversal_request", "diagnosis_request", "additional", "result_of", "message_reference"]
