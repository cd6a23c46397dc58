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
from typing import Any

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
