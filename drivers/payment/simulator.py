"""``kiosk-sim payment-pad [--pty] [--control HOST:PORT]`` — a bank-card payment pad and its acquirer host.

It speaks the ECR framing of ``ecr.py`` (ACK/NAK, retransmission) on a pseudo-terminal, through the same codec the
driver uses. The first stdout line: ``{"kind": "payment-pad", "pty": "/dev/pts/7", "control": "127.0.0.1:40123"}``.

The pad keeps the acquirer's ledger (what the host really did per order), so a test can see that no order was charged
twice and that a result the kiosk never received still exists. Scenarios apply to the next sale (a queue; when it is
empty the default applies, ``approve`` unless changed)::

    scenario name=approve|decline|pin_timeout|user_cancel|card_timeout|hold|link_drop|unknown|user_paying
             [outcome=approved|declined] [resolve_s=2.0] [drop_s=3.0] [count=1] [default=true]
        approve      card detected → PIN entry → processing → approved (masked PAN, host reference)
        decline      … → declined (RC 51: insufficient funds)
        pin_timeout  card detected → PIN entry → nothing typed for ``pin_timeout_s`` → cancelled (pin_timeout)
        user_cancel  card detected → the citizen presses the pad's cancel key → cancelled
        card_timeout no card within ``card_timeout_s`` → cancelled;  hold: as card_timeout (for screen cancels)
        link_drop    card detected → PIN entry → the line goes dead (nothing ACKed or sent) while the host decides
                     ``outcome`` (default approved); back after ``drop_s`` or ``restore_link``
        unknown      … → the pad reports "unknown" (host timeout) although the host decided ``outcome``; only a
                     later query (QY) tells
        user_paying  payment codes: the wallet asks the citizen to confirm on the phone → pending; resolves to
                     ``outcome`` after ``resolve_s`` (absent: never — only a cancel ends it)
    set_timing card_s=0.3 pin_s=0.5 host_s=0.3 pin_timeout_s=5 card_timeout_s=20
    inject_fault kind=corrupt_next [n=1]  (the next n frames go out with a bad LRC: the driver NAKs, we retransmit)
    inject_fault kind=drop_ack [n=1]      (do not ACK the next n frames received: the driver retransmits)
    inject_fault kind=lose_result [n=1]   (the next n sale results are lost on the line; the ledger has them)
    set_card pan=6228480402564890018 send=masked|full
                 the card the citizen presents from now on, and how the pad reports its number: ``masked`` (first 6 /
                 last 4, as a well-behaved pad does) or ``full`` (the whole PAN on the wire, as a hostile or
                 misconfigured pad would: the driver must mask it before anything else sees it)
    restore_link · ledger · status · reset (forget the ledger and scenarios; the card back to the default, masked)
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from drivers.idcard.simulator import PtyLink
from drivers.payment import ecr
from drivers.payment.base import code_wallet, mask_pan
from drivers.sim.control import ControlServer

SCENARIOS = ("approve", "decline", "pin_timeout", "user_cancel", "card_timeout", "hold", "link_drop", "unknown",
             "user_paying")
DEFAULT_PAN = "6228480402564890018"   # a made-up number with a real BIN shape; only its mask ever leaves the pad


@dataclass
class LedgerEntry:
    """The host's truth for one order."""

    order: str
    amount_fen: int
    method: str
    status: str                 # pending | approved | declined | cancelled | reversed | refunded
    txn: str
    ref: str = ""
    pan_masked: str = ""
    pan_sent: str = ""          # the card number as it goes on the wire (full when ``set_card send=full``)
    reason: str = ""
    approvals: int = 0          # how many times money was taken for this order (must stay ≤ 1 net)
    net_fen: int = 0            # taken minus given back
    resolve_at: float | None = None
    resolve_to: str = "approved"


@dataclass
class Txn:
    """The sale in progress on the pad."""

    order: str
    steps: list[tuple[float, str, dict[str, Any]]]   # (due monotonic time, action, args)
    scenario: dict[str, Any] = field(default_factory=dict)
    host_decided: bool = False


class SimulatedPad:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ledger: dict[str, LedgerEntry] = {}
        self.queue: list[dict[str, Any]] = []
        self.default: dict[str, Any] = {"name": "approve"}
        self.timing = {"card_s": 0.3, "pin_s": 0.5, "host_s": 0.3, "pin_timeout_s": 5.0, "card_timeout_s": 20.0}
        self.txn: Txn | None = None
        self.dropped_until: float | None = None
        self.faults = {"corrupt_next": 0, "drop_ack": 0, "lose_result": 0}
        self.counter = 0
        self.counters = {"frames_in": 0, "sales": 0, "queries": 0, "reversals": 0}
        self.outbox: list[ecr.Message] = []
        self.card = {"pan": DEFAULT_PAN, "send": "masked"}

    # control ----------------------------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "set_timing": self.set_timing, "inject_fault": self.inject_fault,
                "restore_link": self.restore_link, "ledger": self.ledger_view, "status": self.status,
                "reset": self.reset, "set_card": self.set_card}

    def set_card(self, pan: str = DEFAULT_PAN, send: str = "masked") -> dict[str, Any]:
        pan = str(pan)
        if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
            raise ValueError("pan must be 12 to 19 digits")
        if send not in ("masked", "full"):
            raise ValueError("send must be masked or full")
        with self.lock:
            self.card = {"pan": pan, "send": send}
        return {"card": {"pan_masked": mask_pan(pan), "send": send}}

    def scenario(self, name: str, count: int = 1, default: bool = False, **params: Any) -> dict[str, Any]:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose one of {list(SCENARIOS)}")
        outcome = params.get("outcome", "approved")
        if outcome not in ("approved", "declined"):
            raise ValueError("outcome must be approved or declined")
        item = {"name": name, "outcome": outcome,
                **{k: float(params[k]) for k in ("resolve_s", "drop_s") if k in params}}
        with self.lock:
            if default:
                self.default = item
            else:
                self.queue.extend(dict(item) for _ in range(int(count)))
        return {"queued": len(self.queue), "default": self.default["name"]}

    def set_timing(self, **values: Any) -> dict[str, Any]:
        with self.lock:
            for key, value in values.items():
                if key not in self.timing:
                    raise ValueError(f"unknown timing {key!r}; choose from {sorted(self.timing)}")
                self.timing[key] = float(value)
        return {"timing": dict(self.timing)}

    def inject_fault(self, kind: str, n: int = 1) -> dict[str, Any]:
        if kind not in self.faults:
            raise ValueError(f"unknown fault {kind!r}; choose one of {sorted(self.faults)}")
        with self.lock:
            self.faults[kind] = int(n)
        return {"faults": dict(self.faults)}

    def restore_link(self) -> dict[str, Any]:
        with self.lock:
            self.dropped_until = None
        return {"link": "up"}

    def ledger_view(self) -> dict[str, Any]:
        with self.lock:
            self._resolve_pending()
            return {"ledger": {k: asdict(v) for k, v in self.ledger.items()}}

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"busy": self.txn is not None, "link": "down" if self._dropped() else "up",
                    "queued": [q["name"] for q in self.queue], "default": self.default["name"],
                    "counters": dict(self.counters), "timing": dict(self.timing)}

    def reset(self) -> dict[str, Any]:
        with self.lock:
            self.ledger.clear()
            self.queue.clear()
            self.default = {"name": "approve"}
            self.txn, self.dropped_until = None, None
            self.faults = {"corrupt_next": 0, "drop_ack": 0, "lose_result": 0}
            self.card = {"pan": DEFAULT_PAN, "send": "masked"}
        return {}

    # pad behaviour ----------------------------------------------------------------------------------------------
    def _dropped(self) -> bool:
        if self.dropped_until is None:
            return False
        if time.monotonic() >= self.dropped_until:
            self.dropped_until = None
            return False
        return True

    def _next_ids(self) -> tuple[str, str]:
        self.counter += 1
        return f"{self.counter:06d}", time.strftime("%y%m%d") + f"{self.counter:06d}"

    def _resolve_pending(self) -> None:
        now = time.monotonic()
        for entry in self.ledger.values():
            if entry.status == "pending" and entry.resolve_at is not None and now >= entry.resolve_at:
                self._decide(entry, entry.resolve_to)

    def _decide(self, entry: LedgerEntry, outcome: str) -> None:
        entry.resolve_at = None
        if outcome == "approved":
            entry.status, entry.ref = "approved", "SIM" + self._next_ids()[1]
            entry.approvals += 1
            entry.net_fen += entry.amount_fen
        else:
            entry.status, entry.reason = "declined", "51"

    def _result(self, kind: str, entry: LedgerEntry | None, order: str, status: str | None = None,
                reason: str | None = None) -> ecr.Message:
        if entry is None:
            return ecr.Message(kind, {"ORD": order, "ST": "not_found"})
        return ecr.Message(kind, {"ORD": order, "ST": status or entry.status, "RC": reason or entry.reason,
                                  "REF": entry.ref, "PAN": entry.pan_sent or entry.pan_masked, "TXN": entry.txn,
                                  "AMT": str(entry.amount_fen), "MTH": entry.method})

    def handle(self, msg: ecr.Message) -> None:
        """One request from the kiosk; replies go to ``self.outbox``, echoing its SEQ."""
        with self.lock:
            before = len(self.outbox)
            self._handle(msg)
            if msg.get("SEQ"):
                self.outbox[before:] = [ecr.Message(m.type, {**m.fields, "SEQ": msg.get("SEQ")})
                                        for m in self.outbox[before:]]

    def _handle(self, msg: ecr.Message) -> None:
        with self.lock:
            self._resolve_pending()
            order = msg.get("ORD")
            if msg.type == "ST":
                self.outbox.append(ecr.Message("ST", {"STATE": "busy" if self.txn else "idle",
                                                      "SN": "SIM-PAD-0001", "MODEL": "kiosk-sim payment-pad"}))
            elif msg.type == "SA":
                self._sale(msg)
            elif msg.type == "CN":
                self._cancel(order)
            elif msg.type == "QY":
                self.counters["queries"] += 1
                entry = self.ledger.get(order)
                busy = self.txn is not None and self.txn.order == order and entry is not None \
                    and entry.status == "pending"
                self.outbox.append(self._result("QR", entry, order, "pending" if busy else None))
            elif msg.type == "RV":
                self.counters["reversals"] += 1
                entry = self.ledger.get(order)
                if entry is not None and entry.status == "pending" and self.txn and self.txn.order == order:
                    self._finish_txn(entry, "cancelled", "reversed_in_progress")
                elif entry is not None and entry.status == "approved":
                    entry.status, entry.net_fen = "reversed", entry.net_fen - entry.amount_fen
                elif entry is not None and entry.status == "pending":
                    entry.status, entry.resolve_at, entry.reason = "cancelled", None, "reversed"
                self.outbox.append(self._result("RR", entry, order))
            elif msg.type == "RF":
                entry = self.ledger.get(order)
                amount = int(msg.get("AMT", "0") or 0)
                if entry is not None and entry.status == "approved" and 0 < amount <= entry.net_fen:
                    entry.net_fen -= amount
                    entry.status = "refunded" if entry.net_fen == 0 else entry.status
                    self.outbox.append(self._result("RR", entry, order, "refunded"))
                else:
                    self.outbox.append(self._result("RR", entry, order, "declined" if entry else None, "refund"))

    def _sale(self, msg: ecr.Message) -> None:
        order, method = msg.get("ORD"), msg.get("MTH") or "unionpay_card"
        try:
            amount = int(msg.get("AMT"))
        except ValueError:
            self.outbox.append(ecr.Message("RS", {"ORD": order, "ST": "declined", "RC": "bad_amount"}))
            return
        entry = self.ledger.get(order)
        if entry is not None and entry.status in ("pending", "approved"):
            if not (self.txn and self.txn.order == order):
                self.outbox.append(self._result("RS", entry, order))   # a repeat: the same answer, no new charge
            return
        if self.txn is not None:
            self.outbox.append(ecr.Message("RS", {"ORD": order, "ST": "declined", "RC": "busy"}))
            return
        self.counters["sales"] += 1
        scenario = self.queue.pop(0) if self.queue else dict(self.default)
        txn_no, _ = self._next_ids()
        card = method == "unionpay_card"
        pan = self.card["pan"]
        entry = LedgerEntry(order=order, amount_fen=amount, method=method, status="pending", txn=txn_no,
                            pan_masked=mask_pan(pan) if card else "",
                            pan_sent=(pan if self.card["send"] == "full" else mask_pan(pan)) if card else "",
                            approvals=entry.approvals if entry else 0, net_fen=entry.net_fen if entry else 0)
        self.ledger[order] = entry
        code = msg.get("CODE")
        if method != "unionpay_card" and code_wallet(code) is None:
            entry.status, entry.reason = "declined", "invalid_code"
            self.outbox.append(self._result("RS", entry, order))
            return
        t, now = self.timing, time.monotonic()
        name = scenario["name"]
        steps: list[tuple[float, str, dict[str, Any]]] = []
        if method == "unionpay_card":
            if name in ("card_timeout", "hold"):
                steps.append((now + t["card_timeout_s"], "finish", {"status": "cancelled", "reason": "card_timeout"}))
                self.txn = Txn(order, steps, scenario)
                return
            at = now + t["card_s"]
            steps.append((at, "event", {"EVT": "card_detected"}))
            if name == "user_cancel":
                steps.append((at + t["pin_s"], "finish", {"status": "cancelled", "reason": "user_cancel"}))
                self.txn = Txn(order, steps, scenario)
                return
            at += 0.01
            steps.append((at, "event", {"EVT": "pin_entry_started"}))
            if name == "pin_timeout":
                steps.append((at + t["pin_timeout_s"], "finish", {"status": "cancelled", "reason": "pin_timeout"}))
                self.txn = Txn(order, steps, scenario)
                return
            at += t["pin_s"]
        else:
            at = now + 0.01
        steps.append((at, "event", {"EVT": "processing"}))
        steps.append((at + 0.001, "host", {}))
        at += t["host_s"]
        if name == "link_drop":
            steps.insert(-1, (at - t["host_s"] + 0.0005, "drop", {}))
        steps.append((at, "report", {}))
        self.txn = Txn(order, steps, scenario)

    def _finish_txn(self, entry: LedgerEntry, status: str, reason: str = "") -> None:
        if entry.status == "pending":
            entry.status, entry.reason = status, reason
        self.txn = None

    def _cancel(self, order: str) -> None:
        entry = self.ledger.get(order)
        txn = self.txn
        if txn is not None and txn.order == order and entry is not None and not txn.host_decided:
            self._finish_txn(entry, "cancelled", "ecr_cancel")
        elif entry is not None and entry.status == "pending" and txn is None:
            entry.status, entry.resolve_at, entry.reason = "cancelled", None, "ecr_cancel"   # wallet order revoked
        elif txn is not None and txn.order == order:
            return   # too late: the host is deciding; the result follows
        self.outbox.append(self._result("RS", entry, order))

    def tick(self) -> None:
        """Run the steps of the sale in progress that are due."""
        with self.lock:
            self._resolve_pending()
            txn = self.txn
            if txn is None:
                return
            now = time.monotonic()
            entry = self.ledger[txn.order]
            while txn.steps and txn.steps[0][0] <= now and self.txn is txn:
                _, action, args = txn.steps.pop(0)
                scenario = txn.scenario
                if action == "event":
                    self.outbox.append(ecr.Message("EV", {"ORD": txn.order, **args}))
                elif action == "drop":
                    self.dropped_until = now + scenario.get("drop_s", 3600.0)
                elif action == "host":
                    txn.host_decided = True
                    name = scenario["name"]
                    if name == "decline":
                        self._decide(entry, "declined")
                    elif name == "user_paying":
                        if "resolve_s" in scenario:
                            entry.resolve_at, entry.resolve_to = now + scenario["resolve_s"], scenario["outcome"]
                    elif name in ("unknown", "link_drop"):
                        self._decide(entry, scenario["outcome"])
                    else:
                        self._decide(entry, "approved")
                elif action == "report":
                    name = scenario["name"]
                    if name == "unknown":
                        self.outbox.append(self._result("RS", entry, txn.order, "unknown", "host_timeout"))
                    elif name == "user_paying" and entry.status == "pending":
                        self.outbox.append(self._result("RS", entry, txn.order, "pending", "user_paying"))
                    else:
                        self.outbox.append(self._result("RS", entry, txn.order))
                    self.txn = None
                elif action == "finish":
                    self._finish_txn(entry, args["status"], args["reason"])
                    self.outbox.append(self._result("RS", entry, txn.order))


class FaultyLink(ecr.Link):
    """The pad's end of the link, with the injected link faults."""

    def __init__(self, pad: SimulatedPad, pty: PtyLink) -> None:
        self.pad, self.pty = pad, pty
        super().__init__(read=self._read_bytes, write=self._write_bytes, ack_timeout=0.5, retries=2)

    def _read_bytes(self, timeout: float) -> bytes:
        data = self.pty.read(timeout) or b""
        if data and self.pad._dropped():
            return b""   # the line is dead: what the kiosk sends is lost
        return data

    def _write_bytes(self, data: bytes) -> None:
        with self.pad.lock:
            if self.pad._dropped():
                return
            if data == bytes([ecr.ACK]) and self.pad.faults["drop_ack"] > 0:
                self.pad.faults["drop_ack"] -= 1
                return
            if len(data) > 1 and self.pad.faults["corrupt_next"] > 0:
                self.pad.faults["corrupt_next"] -= 1
                data = data[:-1] + bytes([data[-1] ^ 0x5A])
        self.pty.write(data)


def serve(pad: SimulatedPad, pty: PtyLink, stop: threading.Event) -> None:
    link = FaultyLink(pad, pty)
    while not stop.is_set():
        message = link.receive(0.01)
        if message is not None:
            pad.counters["frames_in"] += 1
            pad.handle(message)
        pad.tick()
        while pad.outbox:
            with pad.lock:
                out = pad.outbox.pop(0)
                dropped = pad._dropped()
                if out.type == "RS" and pad.faults["lose_result"] > 0:
                    pad.faults["lose_result"] -= 1
                    dropped = True
            if dropped:
                continue   # the line is dead: the kiosk never hears it (the ledger keeps the truth)
            try:
                link.send(out)
            except ecr.LinkTimeout:
                with pad.lock:   # nobody listening (kiosk gone): drop what is queued, the ledger keeps the truth
                    pad.outbox.clear()


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    if args.tcp or getattr(args, "protocol", "ecr") == "nexo":
        run_nexo(args, stop_event)
        return
    pad = SimulatedPad()
    control = ControlServer(pad.handlers(), *args.control).start()
    pty = PtyLink()
    try:
        print(json.dumps({"kind": "payment-pad", "pty": pty.path, "control": control.address}), flush=True)
        serve(pad, pty, stop_event)
    finally:
        pty.close()
        control.stop()
    sys.stdout.flush()


# --- nexo Sale-to-POI (docs/protocols/nexo.md) ------------------------------------------------------------------------
# The same pad and acquirer ledger, answering nexo JSON: over HTTP (``--tcp``: POST /nexo, as IP terminals' local
# terminal API) and/or in ECR frames on the pty (``--pty --protocol nexo``). Written from the public description, with
# its own JSON building (only the framing and the amount helpers are shared with the driver).

import http.server  # noqa: E402
import urllib.parse  # noqa: E402
from decimal import Decimal  # noqa: E402

from drivers.payment import nexo  # noqa: E402

POI_ID = "SIMPOI-0001"
_NEXO_ERROR = {"declined": "Refusal", "cancelled": "Aborted", "not_found": "NotFound", "pending": "InProgress",
               "unknown": "UnreachableHost"}


class NexoPOI:
    """A nexo POI in front of :class:`SimulatedPad`. Payments whose result is not immediate wait in ``sales``; the
    pump (``pump()``, called every few ms) runs the pad and answers them."""

    def __init__(self, pad: SimulatedPad, poi_id: str = POI_ID) -> None:
        self.pad, self.poi_id = pad, poi_id
        self.sales: dict[str, dict[str, Any]] = {}       # order → {"header", "sale_txn", "deliver", "events"}
        self.by_service: dict[str, str] = {}              # Payment ServiceID → order
        self.timestamps: dict[str, str] = {}              # POI transaction id → its timestamp

    # helpers ------------------------------------------------------------------------------------------------
    def _take(self, msg: ecr.Message) -> list[ecr.Message]:
        with self.pad.lock:
            before = len(self.pad.outbox)
            self.pad._handle(msg)
            new = self.pad.outbox[before:]
            del self.pad.outbox[before:]
            return new

    def _poi_txn(self, txn: str) -> dict[str, Any]:
        stamp = self.timestamps.setdefault(txn, nexo.timestamp())
        return {"TransactionID": txn, "TimeStamp": stamp}

    @staticmethod
    def _amount(fen: int) -> Decimal:
        return (Decimal(fen) / 100).quantize(Decimal("0.01"))

    def _payment_response(self, fields: dict[str, str], sale_txn: dict[str, Any], refund: bool = False,
                          events: list[str] | None = None) -> dict[str, Any]:
        st = fields.get("ST", "unknown")
        ok = st in ("approved", "refunded", "reversed") or (refund and st == "refunded")
        response: dict[str, Any] = {"Result": "Success" if ok else "Failure"}
        extra = {}
        if not ok:
            response["ErrorCondition"] = "Busy" if fields.get("RC") == "busy" else _NEXO_ERROR.get(st, "Refusal")
        if fields.get("RC"):
            extra["reason"] = fields["RC"]
        if fields.get("MTH"):
            extra["paymentMethod"] = fields["MTH"]
        if events:
            extra["events"] = ",".join(events)
        if extra:
            response["AdditionalResponse"] = urllib.parse.urlencode(extra)
        part: dict[str, Any] = {"Response": response, "SaleData": {"SaleTransactionID": sale_txn}}
        if fields.get("TXN"):
            part["POIData"] = {"POITransactionID": self._poi_txn(fields["TXN"])}
        if ok or fields.get("PAN"):
            result: dict[str, Any] = {"PaymentType": "Refund" if refund else "Normal"}
            if fields.get("AMT"):
                result["AmountsResp"] = {"Currency": "CNY", "AuthorizedAmount": self._amount(int(fields["AMT"]))}
            if fields.get("PAN"):
                result["PaymentInstrumentData"] = {"PaymentInstrumentType": "Card",
                                                   "CardData": {"MaskedPan": fields["PAN"]}}
            if fields.get("REF"):
                result["PaymentAcquirerData"] = {"AcquirerPOIID": self.poi_id,
                                                 "AcquirerTransactionID": {"TransactionID": fields["REF"],
                                                                           "TimeStamp": nexo.timestamp()}}
            part["PaymentResult"] = result
        return part

    def _sale_txn(self, order: str) -> dict[str, Any]:
        sale = self.sales.get(order)
        return sale["sale_txn"] if sale else {"TransactionID": order, "TimeStamp": nexo.timestamp()}

    # requests -----------------------------------------------------------------------------------------------------
    def handle(self, message: dict[str, Any], deliver: Callable[[dict[str, Any] | None], None]) -> None:
        """One SaleToPOIRequest; ``deliver(response)`` is called once (now or later), with None for no response
        (Abort)."""
        name, root_body = nexo.root(message)
        head = root_body["MessageHeader"]
        category = head.get("MessageCategory")
        req = root_body.get(f"{category}Request") or {}
        self.pad.counters["frames_in"] += 1
        with self.pad.lock:
            self.pad._resolve_pending()
            if name != "SaleToPOIRequest":
                deliver(None)
            elif category == "Login":
                deliver(nexo.response(head, {"Response": {"Result": "Success"}, "POISystemData": {
                    "DateTime": nexo.timestamp(), "POISoftware": {"ManufacturerID": "govkiosk",
                                                                  "ApplicationName": "kiosk-sim payment-pad",
                                                                  "SoftwareVersion": "1.0"},
                    "POIStatus": {"GlobalStatus": "OK"}}}))
            elif category == "Diagnosis":   # answered in the terminal's own name (a sale system may not know it)
                deliver(nexo.response({**head, "POIID": self.poi_id}, {
                    "Response": {"Result": "Success"}, "POIStatus": {"GlobalStatus": "Busy" if self.pad.txn else "OK"}}))
            elif category == "Payment":
                self._payment(head, req, deliver)
            elif category == "TransactionStatus":
                deliver(self._status(head, req))
            elif category == "Reversal":
                deliver(self._reversal(head, req))
            elif category == "Abort":
                ref = req.get("MessageReference") or {}
                order = self.by_service.get(str(ref.get("ServiceID")))
                if order is not None:
                    for out in self._take(ecr.Message("CN", {"ORD": order})):
                        self._route(out)
                deliver(None)
            else:
                deliver(nexo.response(head, {"Response": {"Result": "Failure", "ErrorCondition": "UnavailableService",
                                                          "AdditionalResponse": "message=not%20supported"}}))

    def _payment(self, head: dict[str, Any], req: dict[str, Any], deliver: Callable[[Any], None]) -> None:
        sale_txn = (req.get("SaleData") or {}).get("SaleTransactionID") or {}
        order = str(sale_txn.get("TransactionID", ""))
        extra = dict(urllib.parse.parse_qsl(str((req.get("SaleData") or {}).get("SaleToAcquirerData") or "")))
        trans = req.get("PaymentTransaction") or {}
        try:
            fen = nexo.amount_to_fen((trans.get("AmountsReq") or {}).get("RequestedAmount"))
        except nexo.NexoError:
            fen = -1
        if (req.get("PaymentData") or {}).get("PaymentType") == "Refund":
            original = str(((trans.get("OriginalPOITransaction") or {}).get("POITransactionID") or {})
                           .get("TransactionID", ""))
            found = next((o for o, e in self.pad.ledger.items() if e.txn == original), None)
            replies = self._take(ecr.Message("RF", {"ORD": found or order, "AMT": str(fen)}))
            fields = dict(replies[0].fields) if replies else {"ST": "not_found"}
            part = self._payment_response(fields, sale_txn, refund=True)
            if fields.get("ST") != "refunded":
                part["Response"] = {"Result": "Failure", "ErrorCondition": "Refusal",
                                    "AdditionalResponse": "reason=refund"}
            deliver(nexo.response(head, part))
            return
        self.by_service[str(head.get("ServiceID"))] = order
        previous = self.sales.get(order)
        if previous is not None and previous.get("deliver") is not None and self.pad.txn \
                and self.pad.txn.order == order:
            previous["deliver"] = deliver   # a repeat of the running sale: it answers the newest request
            previous["header"] = head
            return
        self.sales[order] = {"header": head, "sale_txn": sale_txn, "deliver": deliver, "events": []}
        fields = {"ORD": order, "AMT": str(fen) if fen > 0 else "x", "MTH": extra.get("paymentMethod",
                                                                                   "unionpay_card")}
        if extra.get("paymentCode"):
            fields["CODE"] = extra["paymentCode"]
        for out in self._take(ecr.Message("SA", fields)):
            self._route(out)

    def _route(self, out: ecr.Message) -> None:
        """A pad message produced now or by the pump: events are kept, results answer the waiting Payment."""
        order = out.get("ORD")
        sale = self.sales.get(order)
        if out.type == "EV":
            if sale is not None:
                sale["events"].append(out.get("EVT"))
            return
        if out.type != "RS" or sale is None or sale.get("deliver") is None:
            return
        deliver, sale["deliver"] = sale["deliver"], None
        if self.pad.faults["lose_result"] > 0:
            self.pad.faults["lose_result"] -= 1
            deliver("lost")
            return
        if self.pad._dropped():
            deliver("lost")
            return
        fields = dict(out.fields)
        if fields.get("ST") == "pending" and fields.get("RC") == "user_paying":
            fields["ST"] = "pending"
        deliver(nexo.response(sale["header"], self._payment_response(fields, sale["sale_txn"],
                                                                     events=list(sale["events"]))))

    def _status(self, head: dict[str, Any], req: dict[str, Any]) -> dict[str, Any]:
        ref = req.get("MessageReference") or {}
        order = self.by_service.get(str(ref.get("ServiceID")))
        if order is None:   # a restarted sale system asks by the ServiceID derived from the order id
            order = next((o for o in self.pad.ledger if nexo.service_id_for(o) == ref.get("ServiceID")), None)
        self.pad.counters["queries"] += 1
        entry = self.pad.ledger.get(order) if order else None
        if entry is None:
            return nexo.response(head, {"Response": {"Result": "Failure", "ErrorCondition": "NotFound"}})
        busy = self.pad.txn is not None and self.pad.txn.order == order and entry.status == "pending"
        sale = self.sales.get(order) or {}
        if busy or entry.status == "pending":
            extra = {"message": "Uncompleted transaction", "events": ",".join(sale.get("events", []))}
            if entry.resolve_at is not None or (not busy and entry.method != "unionpay_card"):
                extra["reason"] = "user_paying"
            return nexo.response(head, {"Response": {"Result": "Failure", "ErrorCondition": "InProgress",
                                                     "AdditionalResponse": urllib.parse.urlencode(extra)}})
        fields = dict(self.pad._result("QR", entry, order).fields)
        pay_head = dict(sale.get("header") or nexo.make_header("Payment", "Response", nexo.service_id_for(order),
                                                               head.get("SaleID", ""), self.poi_id))
        pay_head["MessageType"] = "Response"
        if entry.status == "reversed":
            rev_head = {**pay_head, "MessageCategory": "Reversal"}
            body = {"MessageHeader": rev_head, "ReversalResponse": {
                "Response": {"Result": "Success", "AdditionalResponse": urllib.parse.urlencode(
                    {"acquirerReference": entry.ref, "maskedPan": entry.pan_sent or entry.pan_masked})},
                "POIData": {"POITransactionID": self._poi_txn(entry.txn)},
                "ReversedAmount": self._amount(entry.amount_fen)}}
        else:
            refunded = entry.status == "refunded"
            body = {"MessageHeader": pay_head,
                    "PaymentResponse": self._payment_response(fields, self._sale_txn(order), refund=refunded)}
        return nexo.response(head, {"Response": {"Result": "Success"},
                                    "RepeatedMessageResponse": {"MessageHeader": body["MessageHeader"],
                                                                "RepeatedResponseMessageBody": {
                                                                    k: v for k, v in body.items()
                                                                    if k != "MessageHeader"}}})

    def _reversal(self, head: dict[str, Any], req: dict[str, Any]) -> dict[str, Any]:
        original = str((((req.get("OriginalPOITransaction") or {}).get("POITransactionID")) or {})
                       .get("TransactionID", ""))
        order = next((o for o, e in self.pad.ledger.items() if e.txn == original), None)
        if order is None:
            return nexo.response(head, {"Response": {"Result": "Failure", "ErrorCondition": "NotFound"}})
        self.pad.counters["reversals"] += 1
        replies = self._take(ecr.Message("RV", {"ORD": order}))
        entry = self.pad.ledger[order]
        ok = bool(replies) and replies[0].get("ST") == "reversed"
        part: dict[str, Any] = {"Response": {"Result": "Success"} if ok else {
            "Result": "Failure", "ErrorCondition": "Refusal",
            "AdditionalResponse": urllib.parse.urlencode({"reason": entry.status})},
            "POIData": {"POITransactionID": self._poi_txn(entry.txn)}}
        if ok:
            part["ReversedAmount"] = self._amount(entry.amount_fen)
        return nexo.response(head, part)

    def pump(self) -> None:
        self.pad.tick()
        with self.pad.lock:
            outs, self.pad.outbox[:] = list(self.pad.outbox), []
            for out in outs:
                self._route(out)


class _NexoHttpHandler(http.server.BaseHTTPRequestHandler):
    poi: NexoPOI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — quiet
        pass

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def do_POST(self) -> None:  # noqa: N802
        pad = self.poi.pad
        if self.path.split("?")[0] != "/nexo":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(min(length, nexo.MAX_MESSAGE + 1))
        with pad.lock:
            dropped = pad._dropped()
        if dropped:
            self._drop()   # the line is dead: the request is lost, nothing comes back
            return
        try:
            message = nexo.decode(data)
        except nexo.NexoError:
            self.send_error(400, "not a nexo message")
            return
        box: list[Any] = []
        done = threading.Event()

        def deliver(answer: Any) -> None:
            box.append(answer)
            done.set()

        self.poi.handle(message, deliver)
        while not done.wait(0.05):
            if self.server_stop.is_set():  # type: ignore[attr-defined]
                self._drop()
                return
        answer = box[0]
        with pad.lock:
            dropped = pad._dropped()
        if answer == "lost" or dropped:
            self._drop()
            return
        body = nexo.encode(answer) if answer is not None else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_nexo_serial(poi: NexoPOI, pty: PtyLink, stop: threading.Event) -> None:
    """nexo JSON in ECR frames on the pty, with the pad's link faults (dead line, lost ACKs, corrupt frames)."""
    pad = poi.pad
    inbox: list[bytes] = []
    cond = threading.Condition()

    def read(timeout: float) -> bytes:
        data = pty.read(timeout) or b""
        if data and pad._dropped():
            return b""
        return data

    def write(data: bytes) -> None:
        with pad.lock:
            if pad._dropped():
                return
            if data == bytes([ecr.ACK]) and pad.faults["drop_ack"] > 0:
                pad.faults["drop_ack"] -= 1
                return
            if len(data) > 1 and pad.faults["corrupt_next"] > 0:
                pad.faults["corrupt_next"] -= 1
                data = data[:-1] + bytes([data[-1] ^ 0x5A])
        pty.write(data)

    def on_data(data: bytes) -> None:
        with cond:
            inbox.append(data)
            cond.notify()

    from drivers.payment.nexo_pad import FramedLink

    link = FramedLink(read, write, on_data, ack_timeout=0.5, retries=2)

    def send(answer: Any) -> None:
        if answer is None or answer == "lost":
            return
        try:
            link.send(nexo.encode(answer))
        except (ecr.LinkTimeout, OSError):
            pass   # nobody listening: the ledger keeps the truth

    outgoing: list[Any] = []
    out_cond = threading.Condition()

    def deliver(answer: Any) -> None:   # never send from the pad's lock or the reader thread: queue it
        with out_cond:
            outgoing.append(answer)
            out_cond.notify()

    def sender() -> None:
        while not stop.is_set():
            with out_cond:
                while not outgoing and not stop.is_set():
                    out_cond.wait(0.1)
                items = outgoing[:]
                outgoing.clear()
            for item in items:
                send(item)

    threading.Thread(target=sender, name="nexo-sender", daemon=True).start()
    try:
        while not stop.is_set():
            with cond:
                if not inbox:
                    cond.wait(0.01)
                items = inbox[:]
                inbox.clear()
            for data in items:
                try:
                    message = nexo.decode(data)
                except nexo.NexoError:
                    continue
                poi.handle(message, deliver)
            poi.pump()
    finally:
        link.close()


def run_nexo(args: argparse.Namespace, stop_event: threading.Event) -> None:
    pad = SimulatedPad()
    poi = NexoPOI(pad)
    control = ControlServer(pad.handlers(), *args.control).start()
    endpoints: dict[str, Any] = {"kind": "payment-pad", "protocol": "nexo", "poiid": poi.poi_id,
                                 "control": control.address}
    server = None
    pty = None
    threads: list[threading.Thread] = []
    if args.tcp:
        handler = type("Handler", (_NexoHttpHandler,), {"poi": poi, "server_stop": stop_event})
        server = http.server.ThreadingHTTPServer(args.tcp, handler)
        server.daemon_threads = True
        host, port = server.server_address[:2]
        endpoints.update({"tcp": f"{host}:{port}", "url": f"http://{host}:{port}/nexo"})
        threads.append(threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True))
    if args.pty:
        pty = PtyLink()
        endpoints["pty"] = pty.path
        threads.append(threading.Thread(target=serve_nexo_serial, args=(poi, pty, stop_event), daemon=True))
    elif args.tcp:
        def pumping() -> None:
            while not stop_event.is_set():
                poi.pump()
                time.sleep(0.005)
        threads.append(threading.Thread(target=pumping, daemon=True))
    try:
        print(json.dumps(endpoints), flush=True)
        for t in threads:
            t.start()
        stop_event.wait()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        for t in threads:
            t.join(1.0)
        if pty is not None:
            pty.close()
        control.stop()
    sys.stdout.flush()
