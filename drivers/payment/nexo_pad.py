"""Payment pad drivers on nexo Sale-to-POI (``nexo.py``), on two transports. Profile examples::

    payment_pad:
      driver: nexo_tcp                 # an IP terminal's local terminal API: HTTP POST /nexo, JSON bodies
      settings: {url: "http://10.0.0.42:8080/nexo", poi_id: "P400-123456789", sale_id: KSK-340302-0001}

    payment_pad:
      driver: nexo_serial              # the same JSON inside STX LEN DATA ETX LRC frames with ACK/NAK (ecr.py)
      settings: {port: /dev/serial/by-id/usb-…, poi_id: "POI-0001"}

How the kiosk's operations map onto nexo (docs/protocols/nexo.md):

- ``start`` → Login (once per connection), then PaymentRequest; its response arrives when the citizen is done, so it
  is awaited in the background. Over HTTP the request is on the wire when ``start`` returns (connect errors raise
  :class:`LinkDown`); over serial when the pad has ACKed the frame.
- ``wait`` → the PaymentResponse; while none came, every ``keepalive_s`` a TransactionStatusRequest referencing the
  Payment (the terminal answers Failure/InProgress while it runs; our POI puts the steps so far in
  AdditionalResponse ``events=…``, which become ``card_detected``/``pin_entry_started`` events). A lost response
  (connection dropped, frame lost) is asked for at once with TransactionStatus — nexo's in-doubt query; when that
  cannot be asked either, ``wait`` returns ``unknown`` (query later).
- ``cancel`` → AbortRequest (no response in nexo): the aborted Payment answers, Failure/Aborted — or approved if the
  host had already decided.
- ``query`` → TransactionStatusRequest by the Payment's ServiceID, derived from the order id (SaleTransactionID).
- ``reverse`` → TransactionStatus (to learn the POITransactionID), then ReversalRequest of an approved payment
  (Abort first when it still runs).
- ``refund`` → PaymentRequest with PaymentType Refund and the original POITransactionID.
- ``status`` → DiagnosisRequest (POIStatus.GlobalStatus OK|Busy|…).

Card numbers are masked when the JSON is parsed (:func:`nexo.decode`), whatever the POI sent.
"""
from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from drivers.base import DeviceState, DeviceStatus, device_call, mask_card_number
from drivers.errors import NoDevice
from drivers.payment import ecr, nexo
from drivers.payment.base import PaymentMethod, PaymentPad, PaymentResult, TxnStatus
from drivers.payment.errors import LinkDown, TerminalBusy
from drivers.payment.serial_port import PORT_ERRORS as _PORT_ERRORS, SERIAL_SETTINGS, open_port, reader

log = logging.getLogger(__name__)

_COMMON_SETTINGS: dict[str, Any] = {
    "poi_id": {"type": "string", "minLength": 1, "description": "the terminal's POIID (MessageHeader.POIID)"},
    "sale_id": {"type": "string", "minLength": 1, "default": "GOVKIOSK",
                "description": "this kiosk's SaleID (MessageHeader.SaleID)"},
    "response_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 5.0,
                           "description": "how long a Login/TransactionStatus/Reversal/Diagnosis answer may take"},
    "payment_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 600, "default": 150.0,
                          "description": "how long a PaymentResponse may take (card, PIN, host)"},
    "keepalive_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 0.5,
                    "description": "TransactionStatus polling interval while a Payment runs"},
}

TCP_SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "nexo Sale-to-POI payment pad over HTTP (terminal API)",
    "type": "object",
    "required": ["url", "poi_id"],
    "properties": {"url": {"type": "string", "pattern": "^https?://", "description": "the terminal's nexo endpoint"},
                   **_COMMON_SETTINGS},
    "additionalProperties": False,
}

SERIAL_SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "nexo Sale-to-POI payment pad over serial (STX LEN DATA ETX LRC)",
    "type": "object",
    "required": ["port", "poi_id"],
    "properties": {
        **SERIAL_SETTINGS,
        **_COMMON_SETTINGS},
    "additionalProperties": False,
}


# --- mapping responses to results ---------------------------------------------------------------------------------

_DECLINED = {"Refusal", "UnavailableService", "InvalidCard", "NotAllowed", "WrongPIN", "PaymentRestriction",
             "NotFound"}
_CANCELLED = {"Aborted", "Cancel"}
#: sales whose POI transaction reference the pad keeps for a reversal or refund (memory stays flat over months)
POI_TXN_KEPT = 64
_EVENTS = ("card_detected", "pin_entry_started", "code_scanned", "processing")


class _Busy(Exception):
    pass


def _fen(value: Any) -> int:
    try:
        return nexo.amount_to_fen(value) if value is not None else 0
    except nexo.NexoError:
        return 0


def parse_payment_response(part: dict[str, Any], order_id: str) -> tuple[PaymentResult, dict[str, Any]]:
    """A PaymentResponse → (PaymentResult, POITransactionID {TransactionID, TimeStamp})."""
    result, error, extra = nexo.result_of(part)
    pres = part.get("PaymentResult") if isinstance(part.get("PaymentResult"), dict) else {}
    poi_txn = (part.get("POIData") or {}).get("POITransactionID") or {}
    sale_txn = (part.get("SaleData") or {}).get("SaleTransactionID") or {}
    card = ((pres.get("PaymentInstrumentData") or {}).get("CardData") or {}).get("MaskedPan", "")
    acquirer = (pres.get("PaymentAcquirerData") or {}).get("AcquirerTransactionID") or {}
    amount = _fen((pres.get("AmountsResp") or {}).get("AuthorizedAmount"))
    refund = pres.get("PaymentType") == "Refund"
    reason = extra.get("reason") or extra.get("refusalReason") or ""
    if result == "Success":
        status = TxnStatus.REFUNDED if refund else TxnStatus.APPROVED
    elif result == "Partial":
        status, reason = TxnStatus.APPROVED, reason or "partial"
    elif error == "Busy":
        status, reason = TxnStatus.DECLINED, "busy"
    elif error == "InProgress":
        status = TxnStatus.PENDING
    elif error in _CANCELLED:
        status = TxnStatus.CANCELLED
    elif error in _DECLINED:
        status = TxnStatus.DECLINED
    else:   # UnreachableHost, Timeout of the host, anything we do not know: only a later query can tell
        status = TxnStatus.UNKNOWN
    if status in (TxnStatus.CANCELLED, TxnStatus.DECLINED, TxnStatus.UNKNOWN) and not reason:
        reason = error[:1].lower() + error[1:] if error else "unknown"
    return PaymentResult(order_id=str(sale_txn.get("TransactionID") or order_id), status=status, amount_fen=amount,
                         method=extra.get("paymentMethod", "unionpay_card" if card else ""),
                         txn_id=str(poi_txn.get("TransactionID", "")), ref=str(acquirer.get("TransactionID", "")),
                         card_masked=mask_card_number(str(card)), reason=reason), dict(poi_txn)


def parse_status_response(part: dict[str, Any], order_id: str) -> tuple[PaymentResult, dict[str, Any], list[str]]:
    """A TransactionStatusResponse → (result, POITransactionID, events of a Payment still in progress)."""
    result, error, extra = nexo.result_of(part)
    if result != "Success":
        events = [e for e in extra.get("events", "").split(",") if e in _EVENTS]
        if error == "InProgress" or error == "Busy":
            return PaymentResult(order_id=order_id, status=TxnStatus.PENDING, reason=extra.get("reason", "")), {}, \
                events
        if error == "NotFound":
            return PaymentResult(order_id=order_id, status=TxnStatus.NOT_FOUND), {}, []
        return PaymentResult(order_id=order_id, status=TxnStatus.UNKNOWN, reason=error or "unknown"), {}, []
    repeated = part.get("RepeatedMessageResponse") or {}
    body = repeated.get("RepeatedResponseMessageBody") or repeated
    if isinstance(body.get("ReversalResponse"), dict):
        rev = body["ReversalResponse"]
        r, e, x = nexo.result_of(rev)
        poi_txn = (rev.get("POIData") or {}).get("POITransactionID") or {}
        status = TxnStatus.REVERSED if r == "Success" else TxnStatus.UNKNOWN
        return PaymentResult(order_id=order_id, status=status, amount_fen=_fen(rev.get("ReversedAmount")),
                             txn_id=str(poi_txn.get("TransactionID", "")), ref=x.get("acquirerReference", ""),
                             card_masked=x.get("maskedPan", ""), reason=x.get("reason", "")), dict(poi_txn), []
    if isinstance(body.get("PaymentResponse"), dict):
        res, poi_txn = parse_payment_response(body["PaymentResponse"], order_id)
        return res, poi_txn, []
    return PaymentResult(order_id=order_id, status=TxnStatus.UNKNOWN, reason="no_repeated_response"), {}, []


# --- transports -----------------------------------------------------------------------------------------------------

class Pending:
    """A request whose response comes later (a Payment)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def set(self, response: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.response, self.error = response, error
            self.done.set()


class Transport:
    def submit(self, message: dict[str, Any], timeout: float) -> Pending:
        """Put a request on the wire (LinkDown when it cannot be) and return its pending response."""
        raise NotImplementedError

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        pending = self.submit(message, timeout)
        if not pending.done.wait(timeout + 1.0):
            raise LinkDown(f"payment terminal sent no answer within {timeout} s")
        if pending.error is not None:
            raise pending.error if isinstance(pending.error, LinkDown) else LinkDown(str(pending.error))
        return pending.response

    def send_only(self, message: dict[str, Any]) -> None:
        """A request without a response (Abort)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class HttpTransport(Transport):
    """The terminal API's local HTTP transport: ``POST <url>`` with the SaleToPOIRequest, the SaleToPOIResponse in
    the answer's body (an empty body for Abort). One connection per request, so a TransactionStatus can be asked
    while a Payment's POST is still waiting."""

    def __init__(self, url: str, connect_timeout: float = 3.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (443 if self.https else 80)
        self.path = parts.path or "/nexo"
        self.connect_timeout = connect_timeout

    def _post(self, message: dict[str, Any], timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(timeout)
            conn.request("POST", self.path, body=nexo.encode(message),
                         headers={"Content-Type": "application/json"})
        except OSError as exc:
            conn.close()
            raise LinkDown(f"payment terminal {self.host}:{self.port} unreachable: {type(exc).__name__}") from exc
        return conn

    @staticmethod
    def _read(conn: http.client.HTTPConnection) -> dict[str, Any] | None:
        try:
            answer = conn.getresponse()
            data = answer.read(nexo.MAX_MESSAGE + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise LinkDown(f"payment terminal connection lost: {type(exc).__name__}") from exc
        finally:
            conn.close()
        if answer.status != 200:
            raise LinkDown(f"payment terminal answered HTTP {answer.status}")
        if not data.strip() or data.strip() == b"ok":
            return None
        try:
            return nexo.decode(data)
        except nexo.NexoError as exc:
            raise LinkDown(f"payment terminal sent an unreadable answer: {exc}") from exc

    def submit(self, message: dict[str, Any], timeout: float) -> Pending:
        conn = self._post(message, timeout)
        pending = Pending()

        def run() -> None:
            try:
                pending.set(self._read(conn))
            except LinkDown as exc:
                pending.set(error=exc)

        threading.Thread(target=run, name="nexo-http", daemon=True).start()
        return pending

    def send_only(self, message: dict[str, Any]) -> None:
        self._read(self._post(message, 5.0))


class FramedLink:
    """Full-duplex ACK/NAK framing (``ecr.py``'s STX LEN DATA ETX LRC) with a reader thread: good frames are ACKed
    and handed to ``on_data``; ``send`` waits for the peer's ACK, retransmitting on NAK or silence. Used by the
    serial driver and by the simulator's serial POI. ``read(timeout) -> bytes`` and ``write(bytes)`` are the port."""

    def __init__(self, read: Callable[[float], bytes | None], write: Callable[[bytes], Any],
                 on_data: Callable[[bytes], None], ack_timeout: float = ecr.ACK_TIMEOUT_S,
                 retries: int = ecr.RETRIES, max_data: int = nexo.MAX_MESSAGE) -> None:
        self._read, self._write, self.on_data = read, write, on_data
        self.ack_timeout, self.retries, self.max_data = ack_timeout, retries, max_data
        self.decoder = ecr.FrameDecoder(max_data)
        self.counters = {"sent": 0, "retransmitted": 0, "naks_sent": 0, "received": 0}
        self._write_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._answer: str | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._last_byte = 0.0
        self._thread = threading.Thread(target=self._loop, name="nexo-frames", daemon=True)
        self._thread.start()

    def write_raw(self, data: bytes) -> None:
        with self._write_lock:
            self._write(data)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self._read(0.05) or b""
            except Exception as exc:  # the port died: wake every sender
                self.error = exc
                with self._cond:
                    self._cond.notify_all()
                return
            now = time.monotonic()
            if self.decoder.in_frame and now - self._last_byte > ecr.INTER_BYTE_TIMEOUT_S:
                self.decoder.reset()
            if chunk:
                self._last_byte = now
            for kind, value in self.decoder.feed(chunk):
                if kind == "frame":
                    self.write_raw(bytes([ecr.ACK]))
                    self.counters["received"] += 1
                    try:
                        self.on_data(value)  # type: ignore[arg-type]
                    except Exception:
                        log.exception("nexo frame handler failed")
                elif kind == "bad":
                    self.counters["naks_sent"] += 1
                    self.write_raw(bytes([ecr.NAK]))
                else:
                    with self._cond:
                        self._answer = kind
                        self._cond.notify_all()

    def send(self, data: bytes) -> None:
        """Raises ecr.LinkTimeout after the retransmissions, OSError when the port failed."""
        frame = ecr.encode_frame(data, self.max_data)
        with self._send_lock:
            for attempt in range(self.retries + 1):
                if self.error is not None:
                    raise OSError(f"port failed: {type(self.error).__name__}")
                if attempt:
                    self.counters["retransmitted"] += 1
                with self._cond:
                    self._answer = None
                self.write_raw(frame)
                self.counters["sent"] += 1
                deadline = time.monotonic() + self.ack_timeout
                with self._cond:
                    while self._answer is None and self.error is None \
                            and (remaining := deadline - time.monotonic()) > 0:
                        self._cond.wait(remaining)
                    answer = self._answer
                if answer == "ack":
                    return
        raise ecr.LinkTimeout(f"no ACK after {self.retries + 1} transmissions")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)


class SerialTransport(Transport):
    """nexo JSON in ECR frames on a serial port; responses matched to requests by (MessageCategory, ServiceID)."""

    def __init__(self, port: str, baud: int, ack_timeout: float, retries: int) -> None:
        self.ser, self.port = open_port(port, baud), port
        self._waiting: dict[tuple[str, str], Pending] = {}
        self._lock = threading.Lock()
        self.link = FramedLink(reader(self.ser), self.ser.write, self._on_data, ack_timeout, retries)

    def _on_data(self, data: bytes) -> None:
        try:
            message = nexo.decode(data)
        except nexo.NexoError:
            return   # a well-framed message we cannot read: ACKed, ignored
        name, _ = nexo.root(message)
        head = nexo.header(message)
        if name != "SaleToPOIResponse":
            return   # a POI request (Display, Event…) is not part of our subset
        with self._lock:
            pending = self._waiting.pop((str(head.get("MessageCategory")), str(head.get("ServiceID"))), None)
        if pending is not None:
            pending.set(message)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.link.send(nexo.encode(message))
        except ecr.LinkTimeout as exc:
            raise LinkDown(str(exc)) from exc
        except _PORT_ERRORS as exc:
            raise LinkDown(f"payment pad port {self.port} failed: {type(exc).__name__}") from exc

    def submit(self, message: dict[str, Any], timeout: float) -> Pending:
        head = nexo.header(message)
        key = (str(head["MessageCategory"]), str(head["ServiceID"]))
        pending = Pending()
        with self._lock:
            self._waiting[key] = pending
        try:
            self._send(message)
        except LinkDown:
            with self._lock:
                self._waiting.pop(key, None)
            raise
        return pending

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        pending = self.submit(message, timeout)
        if not pending.done.wait(timeout):
            head = nexo.header(message)
            with self._lock:
                self._waiting.pop((str(head["MessageCategory"]), str(head["ServiceID"])), None)
            raise LinkDown(f"payment pad sent no {head['MessageCategory']} response within {timeout} s")
        return pending.response

    def send_only(self, message: dict[str, Any]) -> None:
        self._send(message)

    def close(self) -> None:
        self.link.close()
        try:
            self.ser.close()
        except Exception:
            pass


# --- the driver ---------------------------------------------------------------------------------------------------

@dataclass
class _Running:
    order_id: str
    pending: Pending
    events: list[str] = field(default_factory=list)
    last_poll: float = field(default_factory=time.monotonic)


class NexoPaymentPad(PaymentPad):
    """The kiosk's PaymentPad on nexo Sale-to-POI; subclasses choose the transport."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.poi_id: str = settings["poi_id"]
        self.sale_id: str = settings.get("sale_id", "GOVKIOSK")
        self.response_timeout = float(settings.get("response_timeout_s", 5.0))
        self.payment_timeout = float(settings.get("payment_timeout_s", 150.0))
        self.keepalive = float(settings.get("keepalive_s", 0.5))
        self.counters: dict[str, int] = {"sales": 0, "queries": 0, "errors": 0, "link_down": 0}
        self._transport: Transport | None = None
        self._logged_in = False
        self._running: dict[str, _Running] = {}
        #: the POI's transaction reference of recent sales (reversal and refund name it); the latest POI_TXN_KEPT
        #: only — an older sale is named by its transaction id alone, as after a restart
        self._poi_txn: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # transport -------------------------------------------------------------------------------------------------
    def _make_transport(self) -> Transport:
        raise NotImplementedError

    def _open(self) -> None:
        self._transport = self._make_transport()

    def _close(self) -> None:
        transport, self._transport, self._logged_in = self._transport, None, False
        if transport is not None:
            transport.close()

    def _ensure(self) -> Transport:
        if not self._opened:
            raise NoDevice("payment pad driver is not open")
        if self._transport is None:
            self._transport = self._make_transport()
        return self._transport

    def _link_down(self, exc: LinkDown) -> LinkDown:
        self.counters["link_down"] += 1
        self._logged_in = False
        return exc

    def _request(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        transport = self._ensure()
        if not self._logged_in and nexo.header(message)["MessageCategory"] != "Login":
            self._login(transport)
        try:
            answer = transport.request(message, timeout or self.response_timeout)
        except LinkDown as exc:
            raise self._link_down(exc) from exc
        if answer is None:
            raise LinkDown("payment terminal sent an empty answer")
        return answer

    def _login(self, transport: Transport) -> None:
        try:
            answer = transport.request(nexo.login_request(self.sale_id, self.poi_id), self.response_timeout)
        except LinkDown as exc:
            raise self._link_down(exc) from exc
        result, error, _ = nexo.result_of(nexo.body(answer or {"x": {"MessageHeader": {}}}, "LoginResponse"))
        if result != "Success":
            raise LinkDown(f"payment terminal refused the login ({error or 'no answer'})")
        self._logged_in = True

    # PaymentTerminal ----------------------------------------------------------------------------------------------
    @device_call
    def start(self, order_id: str, amount_fen: int, method: PaymentMethod | str = PaymentMethod.CARD, *,
              payment_code: str | None = None) -> str:
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        method = PaymentMethod(method).value
        running = self._running.get(order_id)
        if running is not None and not running.pending.done.is_set():
            return order_id   # already running: the same transaction, never a second charge
        transport = self._ensure()
        if not self._logged_in:
            self._login(transport)
        message = nexo.payment_request(order_id, amount_fen, self.sale_id, self.poi_id, method=method,
                                       payment_code=payment_code)
        try:
            pending = transport.submit(message, self.payment_timeout)
        except LinkDown as exc:
            raise self._link_down(exc) from exc
        self._running[order_id] = _Running(order_id, pending)
        self.counters["sales"] += 1
        return order_id

    def _emit(self, running: _Running, events: list[str]) -> None:
        for event in events:
            if event not in running.events:
                running.events.append(event)
                self._event(event, running.order_id)  # type: ignore[arg-type]

    def _from_pending(self, running: _Running) -> PaymentResult | None:
        """The Payment's own response when it came; None when it was lost (ask TransactionStatus)."""
        pending = running.pending
        if pending.error is not None or pending.response is None:
            return None
        part = nexo.body(pending.response, "PaymentResponse")
        result, poi_txn = parse_payment_response(part, running.order_id)
        self._keep_poi_txn(running.order_id, poi_txn)
        # steps the POI went through that no TransactionStatus poll saw (a quick sale): reported before its result
        self._emit(running, [e for e in nexo.result_of(part)[2].get("events", "").split(",") if e in _EVENTS])
        return result

    def _status(self, order_id: str) -> tuple[PaymentResult, list[str]]:
        self.counters["queries"] += 1
        answer = self._request(nexo.transaction_status_request(order_id, self.sale_id, self.poi_id))
        result, poi_txn, events = parse_status_response(nexo.body(answer, "TransactionStatusResponse"), order_id)
        if poi_txn:
            self._keep_poi_txn(order_id, poi_txn)
        return result, events

    def _keep_poi_txn(self, order_id: str, poi_txn: dict[str, Any]) -> None:
        self._poi_txn[order_id] = poi_txn
        self._poi_txn.move_to_end(order_id)
        while len(self._poi_txn) > POI_TXN_KEPT:
            self._poi_txn.popitem(last=False)

    def _final(self, order_id: str, result: PaymentResult) -> PaymentResult:
        self._running.pop(order_id, None)
        if result.status is TxnStatus.DECLINED and result.reason == "busy":
            raise TerminalBusy("another transaction is in progress on the pad")
        return result

    @device_call
    def wait(self, txn_id: str, timeout: float) -> PaymentResult:
        running = self._running.get(txn_id)
        if running is None:
            return self._query_locked(txn_id)
        deadline = time.monotonic() + timeout
        while True:
            if running.pending.done.is_set():
                result = self._from_pending(running)
                if result is not None:
                    return self._final(txn_id, result)
                try:   # the response was lost: nexo's in-doubt query
                    result, events = self._status(txn_id)
                except LinkDown:
                    log.warning("payment terminal link lost during a sale: result unknown")
                    self._running.pop(txn_id, None)
                    return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
                if result.status is not TxnStatus.PENDING:
                    return self._final(txn_id, result)
                self._emit(running, events)
                self._running.pop(txn_id, None)   # the POI still runs it but will never answer us: poll by query
                return result
            if time.monotonic() - running.last_poll >= self.keepalive:
                running.last_poll = time.monotonic()
                try:
                    result, events = self._status(txn_id)
                except LinkDown:
                    log.warning("payment terminal link lost during a sale: result unknown")
                    self._running.pop(txn_id, None)
                    return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
                self._emit(running, events)
                if result.status not in (TxnStatus.PENDING, TxnStatus.NOT_FOUND) and not running.pending.done.is_set():
                    return self._final(txn_id, result)   # finished, its response lost on the line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return PaymentResult(order_id=txn_id, status=TxnStatus.PENDING)
            running.pending.done.wait(min(remaining, 0.02, max(0.0, self.keepalive - (time.monotonic() -
                                                                                    running.last_poll))))

    @device_call
    def cancel(self, txn_id: str) -> PaymentResult:
        try:
            self._ensure().send_only(nexo.abort_request(txn_id, self.sale_id, self.poi_id))
        except LinkDown as exc:
            self._link_down(exc)
            return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
        running = self._running.get(txn_id)
        if running is not None and running.pending.done.wait(self.response_timeout):
            result = self._from_pending(running)
            if result is not None:
                self._running.pop(txn_id, None)
                return result
        try:
            result, _ = self._status(txn_id)
        except LinkDown:
            return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
        if result.status is not TxnStatus.PENDING:
            self._running.pop(txn_id, None)
        return result

    def _query_locked(self, order_id: str) -> PaymentResult:
        return self._status(order_id)[0]

    @device_call
    def query(self, order_id: str) -> PaymentResult:
        return self._query_locked(order_id)

    @device_call
    def reverse(self, order_id: str) -> PaymentResult:
        current = self._query_locked(order_id)
        if current.status is TxnStatus.PENDING:   # still running: stop it first
            current = self.cancel(order_id)
            if current.status is TxnStatus.PENDING:
                current = self._query_locked(order_id)
        if current.status is not TxnStatus.APPROVED:
            return current
        poi_txn = self._poi_txn.get(order_id) or {"TransactionID": current.txn_id, "TimeStamp": nexo.timestamp()}
        answer = self._request(nexo.reversal_request(self.sale_id, self.poi_id, poi_txn))
        part = nexo.body(answer, "ReversalResponse")
        result, error, extra = nexo.result_of(part)
        if result == "Success":
            return PaymentResult(order_id=order_id, status=TxnStatus.REVERSED,
                                 amount_fen=_fen(part.get("ReversedAmount")) or current.amount_fen,
                                 method=current.method, txn_id=current.txn_id, ref=current.ref,
                                 card_masked=current.card_masked)
        return PaymentResult(order_id=order_id, status=TxnStatus.UNKNOWN, txn_id=current.txn_id,
                             reason=extra.get("reason") or error or "reversal_failed")

    @device_call
    def refund(self, order_id: str, amount_fen: int) -> PaymentResult:
        current = self._query_locked(order_id)
        if current.status is not TxnStatus.APPROVED:
            return PaymentResult(order_id=order_id, status=TxnStatus.DECLINED if current.status is not
                                 TxnStatus.NOT_FOUND else TxnStatus.NOT_FOUND, reason="refund")
        poi_txn = self._poi_txn.get(order_id) or {"TransactionID": current.txn_id, "TimeStamp": nexo.timestamp()}
        answer = self._request(nexo.refund_request(order_id, amount_fen, self.sale_id, self.poi_id, poi_txn),
                               self.payment_timeout)
        result, _ = parse_payment_response(nexo.body(answer, "PaymentResponse"), order_id)
        if result.status is TxnStatus.DECLINED:
            return PaymentResult(order_id=order_id, status=TxnStatus.DECLINED, reason="refund")
        return result

    def status(self) -> DeviceStatus:
        with self._lock:
            def snap(state: DeviceState, code: str | None = None, detail: str = "",
                     extra: dict[str, Any] | None = None) -> DeviceStatus:
                return DeviceStatus(kind=self.KIND, device=state, error_code=code, detail=detail,
                                    counters=dict(self.counters),
                                    extra={"endpoint": self._endpoint(), "protocol": "nexo 3.0", **(extra or {})})

            if not self._opened:
                return snap(DeviceState.NO_DEVICE, detail="driver not open")
            try:
                answer = self._request(nexo.diagnosis_request(self.sale_id, self.poi_id))
            except NoDevice as exc:
                return snap(DeviceState.NO_DEVICE, exc.code, str(exc))
            except LinkDown as exc:
                return snap(DeviceState.OFFLINE, exc.code, str(exc))
            part = nexo.body(answer, "DiagnosisResponse")
            global_status = str((part.get("POIStatus") or {}).get("GlobalStatus", ""))
            if global_status not in ("OK", "Busy"):
                return snap(DeviceState.HARDWARE_ERROR, "poi_" + (global_status.lower() or "unknown"),
                            f"POI status {global_status}")
            # a pad in the middle of a sale is online: it answers, it is just busy with the citizen
            return snap(DeviceState.ONLINE, extra={"state": "busy" if global_status == "Busy" else "idle",
                                                   "poi_id": self.poi_id})

    def _endpoint(self) -> str:
        return ""


class NexoTcpPaymentPad(NexoPaymentPad):
    SETTINGS_SCHEMA = TCP_SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.url: str = settings["url"]

    def _make_transport(self) -> Transport:
        return HttpTransport(self.url)

    def _endpoint(self) -> str:
        return self.url


class NexoSerialPaymentPad(NexoPaymentPad):
    SETTINGS_SCHEMA = SERIAL_SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.port: str = settings["port"]
        self.baud = int(settings.get("baud", 115200))
        self.ack_timeout = float(settings.get("ack_timeout_s", ecr.ACK_TIMEOUT_S))
        self.retries = int(settings.get("retries", ecr.RETRIES))

    def _make_transport(self) -> Transport:
        return SerialTransport(self.port, self.baud, self.ack_timeout, self.retries)

    def _endpoint(self) -> str:
        return self.port

    @property
    def _link(self) -> FramedLink | None:
        transport = self._transport
        return transport.link if isinstance(transport, SerialTransport) else None
