"""The real payment pad driver: the ECR framed protocol of ``ecr.py`` over pyserial. Profile example::

    payment_pad:
      driver: ecr_serial
      settings: {port: /dev/serial/by-id/usb-…, baud: 115200}

Failure model: the port cannot be opened → NoDevice; no ACK after the retransmissions → :class:`LinkDown` from
``start``/``query``/``reverse``/``refund`` (for ``start`` it is raised only when the sale frame itself was never
ACKed: the pad did not take it). While waiting for a sale result the driver sends a status request after
``keepalive_s`` of silence; when that gets no ACK either, ``wait`` returns ``unknown`` (the pad may have charged the
card: query by order); when the pad answers that it is idle, its result was lost on the line and the driver queries
the order at once. One request at a time (the device lock).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import serial

from drivers.base import DeviceState, DeviceStatus, device_call, mask_card_number
from drivers.errors import NoDevice
from drivers.payment import ecr
from drivers.payment.base import PaymentMethod, PaymentPad, PaymentResult, TxnStatus
from drivers.payment.errors import LinkDown, TerminalBusy
from drivers.payment.serial_port import PORT_ERRORS as _PORT_ERRORS, SERIAL_SETTINGS, open_port, reader

log = logging.getLogger(__name__)

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ECR serial payment pad",
    "type": "object",
    "required": ["port"],
    "properties": {
        **SERIAL_SETTINGS,
        "response_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 5.0,
                               "description": "how long a query/reverse/refund/status answer may take"},
        "keepalive_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 2.0,
                        "description": "silence during a sale after which the driver checks the link"},
    },
    "additionalProperties": False,
}

_STATUS = {s.value: s for s in TxnStatus}


def result_from(msg: ecr.Message) -> PaymentResult:
    status = _STATUS.get(msg.get("ST"), TxnStatus.UNKNOWN)
    try:
        amount = int(msg.get("AMT") or 0)
    except ValueError:
        amount = 0
    return PaymentResult(order_id=msg.get("ORD"), status=status, amount_fen=amount, method=msg.get("MTH"),
                         txn_id=msg.get("TXN"), ref=msg.get("REF"), card_masked=mask_card_number(msg.get("PAN")),
                         reason=msg.get("RC"))


class EcrPaymentPad(PaymentPad):
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.port: str = settings["port"]
        self.baud = int(settings.get("baud", 115200))
        self.ack_timeout = float(settings.get("ack_timeout_s", ecr.ACK_TIMEOUT_S))
        self.retries = int(settings.get("retries", ecr.RETRIES))
        self.response_timeout = float(settings.get("response_timeout_s", 5.0))
        self.keepalive = float(settings.get("keepalive_s", 2.0))
        self.counters: dict[str, int] = {"sales": 0, "queries": 0, "errors": 0, "link_down": 0}
        self._ser: serial.SerialBase | None = None
        self._link: ecr.Link | None = None
        self._results: dict[str, PaymentResult] = {}   # sale results that arrived while doing something else
        self._serial_no = ""
        self._seq = 0

    # port -----------------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        ser, self._ser, self._link = self._ser, None, None
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass

    def _connect(self) -> ecr.Link:
        ser = self._ser = open_port(self.port, self.baud)
        self._link = ecr.Link(reader(ser), ser.write, ack_timeout=self.ack_timeout, retries=self.retries)
        return self._link

    def _ensure(self) -> ecr.Link:
        if self._link is not None:
            return self._link
        if not self._opened:
            raise NoDevice("payment pad driver is not open")
        return self._connect()

    def _port_failed(self, exc: BaseException) -> LinkDown:
        self._close()
        self.counters["link_down"] += 1
        return LinkDown(f"payment pad port {self.port} failed: {type(exc).__name__}")

    def _send(self, message: ecr.Message) -> ecr.Link:
        link = self._ensure()
        try:
            link.send(message)
        except ecr.LinkTimeout as exc:
            self.counters["link_down"] += 1
            raise LinkDown(str(exc)) from exc
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc) from exc
        return link

    def _receive(self, link: ecr.Link, timeout: float) -> ecr.Message | None:
        try:
            message = link.receive(timeout)
        except _PORT_ERRORS as exc:
            raise self._port_failed(exc) from exc
        if message is not None and message.type == "EV":
            evt = message.get("EVT")
            if evt in ("card_detected", "pin_entry_started", "code_scanned", "processing"):
                self._event(evt, message.get("ORD"))  # type: ignore[arg-type]
        elif message is not None and message.type == "RS":
            self._results[message.get("ORD")] = result_from(message)
        return message

    def _request(self, message: ecr.Message, answer: str, order: str | None) -> ecr.Message:
        """Send a request carrying a fresh SEQ and return the answer echoing it (a late duplicate answer of an
        earlier, retransmitted request is never taken for this one)."""
        self._seq = self._seq % 999_999 + 1
        seq = str(self._seq)
        link = self._send(ecr.Message(message.type, {**message.fields, "SEQ": seq}))
        deadline = time.monotonic() + self.response_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive(link, remaining)
            if reply is not None and reply.type == answer and reply.get("SEQ") == seq \
                    and (order is None or reply.get("ORD") == order):
                return reply
        raise LinkDown(f"payment pad sent no {answer} within {self.response_timeout} s")

    def _drop_stale(self, link: ecr.Link) -> None:
        """Forget query/status answers left from an earlier request (a retransmitted request is answered twice)."""
        link.inbox = [m for m in link.inbox if m.type in ("EV", "RS")]

    # PaymentTerminal ------------------------------------------------------------------------------------------------
    @device_call
    def start(self, order_id: str, amount_fen: int, method: PaymentMethod | str = PaymentMethod.CARD, *,
              payment_code: str | None = None) -> str:
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        method = PaymentMethod(method).value
        fields = {"ORD": order_id, "AMT": str(int(amount_fen)), "MTH": method}
        if payment_code:
            fields["CODE"] = payment_code
        self._results.pop(order_id, None)
        self._drop_stale(self._ensure())
        self._send(ecr.Message("SA", fields))
        self.counters["sales"] += 1
        return order_id

    @device_call
    def wait(self, txn_id: str, timeout: float) -> PaymentResult:
        if txn_id in self._results:
            return self._final(self._results.pop(txn_id))
        link = self._ensure()
        deadline = time.monotonic() + timeout
        last_heard = time.monotonic()
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive(link, min(remaining, 0.1))
            if txn_id in self._results:
                return self._final(self._results.pop(txn_id))
            if reply is not None:
                last_heard = time.monotonic()
            elif time.monotonic() - last_heard >= self.keepalive:
                try:
                    state = self._request(ecr.Message("ST"), "ST", None).get("STATE")
                    if state == "idle" and txn_id not in self._results:
                        # the pad finished but its result never reached us (lost on the line): ask for it
                        answer = result_from(self._request(ecr.Message("QY", {"ORD": txn_id}), "QR", txn_id))
                        if answer.status is not TxnStatus.PENDING:
                            return self._final(answer)
                except LinkDown:
                    log.warning("payment pad link lost during a sale: result unknown")
                    return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
                if txn_id in self._results:
                    return self._final(self._results.pop(txn_id))
                last_heard = time.monotonic()
        return PaymentResult(order_id=txn_id, status=TxnStatus.PENDING)

    def _final(self, result: PaymentResult) -> PaymentResult:
        if result.status is TxnStatus.DECLINED and result.reason == "busy":
            raise TerminalBusy("another transaction is in progress on the pad")
        return result

    @device_call
    def cancel(self, txn_id: str) -> PaymentResult:
        try:
            link = self._send(ecr.Message("CN", {"ORD": txn_id}))
        except LinkDown:
            return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="link_down")
        deadline = time.monotonic() + self.response_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self._receive(link, remaining)
            if txn_id in self._results:
                return self._results.pop(txn_id)
        return PaymentResult(order_id=txn_id, status=TxnStatus.UNKNOWN, reason="no_answer")

    @device_call
    def query(self, order_id: str) -> PaymentResult:
        self.counters["queries"] += 1
        self._drop_stale(self._ensure())
        return result_from(self._request(ecr.Message("QY", {"ORD": order_id}), "QR", order_id))

    @device_call
    def reverse(self, order_id: str) -> PaymentResult:
        self._drop_stale(self._ensure())
        return result_from(self._request(ecr.Message("RV", {"ORD": order_id}), "RR", order_id))

    @device_call
    def refund(self, order_id: str, amount_fen: int) -> PaymentResult:
        self._drop_stale(self._ensure())
        return result_from(self._request(ecr.Message("RF", {"ORD": order_id, "AMT": str(int(amount_fen))}), "RR",
                                         order_id))

    def status(self) -> DeviceStatus:
        with self._lock:
            def snap(state: DeviceState, code: str | None = None, detail: str = "",
                     extra: dict[str, Any] | None = None) -> DeviceStatus:
                return DeviceStatus(kind=self.KIND, device=state, error_code=code, detail=detail,
                                    counters=dict(self.counters), extra={"port": self.port, **(extra or {})})

            if not self._opened:
                return snap(DeviceState.NO_DEVICE, detail="driver not open")
            try:
                self._drop_stale(self._ensure())
                reply = self._request(ecr.Message("ST"), "ST", None)
            except NoDevice as exc:
                return snap(DeviceState.NO_DEVICE, exc.code, str(exc))
            except LinkDown as exc:
                return snap(DeviceState.OFFLINE, exc.code, str(exc))
            self._serial_no = reply.get("SN")
            # a pad in the middle of a sale is online: it answers, it is just busy with the citizen
            return snap(DeviceState.ONLINE, extra={"state": reply.get("STATE"), "serial": self._serial_no})
