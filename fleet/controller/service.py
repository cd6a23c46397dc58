"""The fleet controller's runtime: MQTT ingest through a shared subscription, batched storage, alert rules, the
sweeper (offline detection, sequence audit, command delivery and expiry, retention) and signed remote commands.

Threads: paho's network loop (parses whole receive buffers of PUBLISH packets, :mod:`fleet.controller.ingest`, and
puts the raw messages on a queue, nothing else), ``fleet-ingest`` (parses, validates,
batches, writes one transaction per flush, evaluates rules for the kiosks that moved, then acknowledges the MQTT
messages — at-least-once end to end, stored once thanks to the unique (kiosk, mid)), ``fleet-sweeper`` (the periodic
jobs; only the controller holding the ``sweeper`` lease runs them, so several controllers can share one database).
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson
import paho.mqtt.client as mqtt

from fleet import protocol as P
from fleet.controller import rules as R
from fleet.controller.audit import SequenceAuditor
from fleet.controller.ingest import PublishItem, make_ingest_client
from fleet.controller.store import Batch, Store
from fleet.mqtt import BrokerConfig
from fleet.signing import CommandSigner

log = logging.getLogger("fleet.controller")
#: the help request a kiosk's assistance alarm names (kiosk/assistance.py): its acknowledgement names it back
_ASSISTANCE_REQUEST_RE = re.compile(r"\(request ([0-9a-f]{8,32})\)")

def _transient(exc: BaseException) -> bool:
    """The database is unavailable or busy (retry the same batch later) — as opposed to refusing what the batch
    holds (a value out of range, a constraint, a driver that cannot convert a value: split the batch)."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                        sa_exc.DisconnectionError, sqlite3.OperationalError, sqlite3.InterfaceError, OSError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


_loads = orjson.loads  # bytes → objects; invalid UTF-8, trailing data, NaN and > 64-bit integers are errors
_TOPIC_CACHE_MAX = 100_000
_NO_HOST = (None, (None, None, None, None), False)  # host JSON, its time-series columns, disk low
REWRITE_S = 30.0
#: controllers heartbeating this recently still count for the sequence audit: one that stalled (a long pause, all
#: controllers frozen together) is waited for instead of its backlog being taken for lost; one that died is only
#: waited for until the audit's fallback (``audit_fallback_ms`` after the message), so a wide window costs nothing
ALIVE_WINDOW_MS = 60_000
SUBSCRIPTIONS = ("birth", "death", "data", "alarm", "journey", "cmd-result/+")
#: dead letters kept per flush (the rest are counted only) and how much of each payload is kept
DEAD_LETTERS_PER_FLUSH = 50
DEAD_LETTER_PREVIEW = 256
ALARM_RULE = {"paper_out": "paper_out", "paper_near_end": "paper_near_end", "device_fault": "device_fault",
              "device_offline": "device_fault"}


@dataclass
class ControllerConfig:
    broker: str = "mqtt://127.0.0.1:1883"
    db: str | None = None
    signing_key: Any = None
    controller_id: str = ""
    share_group: str = "controllers"
    username: str = "fleet-controller"
    flush_interval_s: float = 0.25
    max_batch: int = 20000
    #: messages waiting between the MQTT thread and the writer; when full the MQTT thread stops reading the socket
    #: (back-pressure: TCP holds the messages at the broker, nothing is dropped or acknowledged unstored)
    inbox_max: int = 100_000
    sweep_interval_s: float = 0.5
    lease_ttl_s: float = 3.0
    audit_fallback_ms: int = 10_000
    retention_days: int = 30
    command_ttl_s: float = 300.0
    command_timeout_s: float = 120.0
    rules: R.RuleConfig = field(default_factory=R.RuleConfig)
    state_topic: str = P.CONTROLLER_STATE_TOPIC


@dataclass(frozen=True, slots=True)
class _DeviceSet:
    """A kiosk's last ``devices`` object and what it makes: device rows without mid and times (per kind), the
    time-series columns (paper code, pages, cards read, devices in fault), the kinds in an unusual state."""

    models: dict[str, Any]
    rows: dict[str, tuple]
    sample: tuple[int | None, int | None, int | None, int]
    unusual: frozenset[str]


class FleetController:
    def __init__(self, config: ControllerConfig, store: Store | None = None) -> None:
        self.config = config
        self.id = config.controller_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.store = store or Store(config.db)
        self.store.create_schema()
        self.signer = CommandSigner(config.signing_key, issuer=f"controller:{self.id}") if config.signing_key else None
        self.broker = BrokerConfig.from_url(config.broker).with_username(config.username)
        self.started_at = P.now_ms()
        self.stats: dict[str, Any] = {"received": 0, "processed": 0, "stored": 0, "duplicates": 0, "malformed": 0,
                                      "malformed_by_reason": {}, "flushes": 0, "db_errors": 0, "gaps": 0,
                                      "rebirths_requested": 0, "forged_results": 0, "connects": 0,
                                      "dead_letters": 0, "dead_letters_not_kept": 0, "store_rejected": 0,
                                      "poison_batches": 0, "rule_errors": 0, "inbox_full": 0}
        self._last_store_error: BaseException | None = None
        self._inbox: deque[tuple[bytes | str, bytes, int, int, int, int]] = deque()
        self._state_topic_b = config.state_topic.encode()
        self._topics: dict[bytes | str, tuple[str, str, str | None]] = {}
        self._kiosk_devices: dict[str, _DeviceSet] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._generation = 0
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._device_cache: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._model_cache: dict[tuple[str, str], tuple[Any, tuple]] = {}
        self._written: dict[tuple[str, str], tuple[tuple, float]] = {}
        self._json_cache: dict[tuple[str, str], tuple[Any, str]] = {}
        self._open_alert_kiosks: set[str] = set()
        self._open_alerts_loaded = 0.0
        self._auditor = SequenceAuditor(config.audit_fallback_ms)
        self._audit_cursor: int | None = None
        self._is_leader = False
        self._reassert_state = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_malformed_log = 0.0
        self._rule_lock = threading.Lock()
        self.processed_event = threading.Condition()

    # lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> "FleetController":
        # QoS 1 acknowledged once in the database
        client = make_ingest_client(self.broker, f"fleet-controller-{self.id}"[:64], manual_ack=True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 5)
        client.will_set(self.config.state_topic, self._state_payload(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish_batch = self._on_publish_batch  # the fast path (MQTT 3.1.1, QoS 0/1, whole buffers)
        client.on_raw_publish = self._on_raw_publish  # single packets paho read itself
        client.on_subscribe = lambda *_a: self._subscribed.set()
        client.read_gate = self._inbox_full
        self._client = client
        client.connect_async(self.broker.host, self.broker.port, keepalive=20)
        client.loop_start()
        for name, target in (("fleet-ingest", self._ingest_loop), ("fleet-sweeper", self._sweep_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        client = self._client
        if client is not None:
            if client.is_connected():
                try:
                    client.publish(self.config.state_topic, self._state_payload(False), qos=1,
                                   retain=True).wait_for_publish(2)
                except (RuntimeError, ValueError):
                    pass
            client.disconnect()
            client.loop_stop()
        if self._is_leader:
            self.store.release_lease("sweeper", self.id)
        self.store.dispose()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Connected to the broker and subscribed (messages published from now on reach this controller)."""
        return self._connected.wait(timeout) and self._subscribed.wait(max(0.1, timeout))

    def _state_payload(self, online: bool) -> bytes:
        return P.dumps({"online": online, "controller_id": self.id, "ts": P.now_ms()})

    # MQTT callbacks (paho's thread: keep them short) -----------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.warning("broker refused the controller: %s", rc)
            return
        self._generation += 1
        self.stats["connects"] += 1
        group = self.config.share_group
        subs = [(f"$share/{group}/{P.TOPIC_ROOT}/+/{s}", 1) for s in SUBSCRIPTIONS]
        subs.append((self.config.state_topic, 1))
        client.subscribe(subs)
        client.publish(self.config.state_topic, self._state_payload(True), qos=1, retain=True)
        self._connected.set()
        log.info("controller %s connected to %s", self.id, self.broker.address)

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping.is_set():
            log.warning("controller lost the broker (%s); reconnecting", rc)

    def _inbox_full(self) -> bool:
        """Asked by the MQTT thread before it reads the socket: True pauses reading (see :class:`BulkIngestClient`)."""
        if len(self._inbox) < self.config.inbox_max:
            return False
        self.stats["inbox_full"] += 1
        return True

    def _on_publish_batch(self, items: list[PublishItem]) -> None:
        recv = int(time.time() * 1000)
        gen = self._generation
        state = self._state_topic_b
        out = [(topic, payload, mid, qos, recv, gen) for topic, payload, mid, qos in items if topic != state]
        if len(out) != len(items):
            for topic, payload, mid, qos in items:
                if topic == state:
                    self._on_raw_publish(topic, payload, mid, qos)
        self._inbox.extend(out)
        self.stats["received"] += len(out)

    def _on_raw_publish(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        topic, payload = bytes(topic), bytes(payload)  # paho's packet buffer is a bytearray (unhashable, mutable)
        if topic == self._state_topic_b:
            self._on_state(payload)
            if qos and self._client is not None:
                self._client.ack_many([mid])  # type: ignore[attr-defined]
            return
        self._inbox.append((topic, payload, mid, qos, int(time.time() * 1000), self._generation))
        self.stats["received"] += 1

    def _on_state(self, payload: bytes) -> None:
        try:
            state = json.loads(payload)
            if not state.get("online") and state.get("controller_id") != self.id:
                self._reassert_state.set()
        except (ValueError, AttributeError):
            pass

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == self.config.state_topic:
            try:
                state = json.loads(msg.payload)
                if not state.get("online") and state.get("controller_id") != self.id:
                    self._reassert_state.set()
            except (ValueError, AttributeError):
                pass
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        self._inbox.append((topic, msg.payload, msg.mid, msg.qos, P.now_ms(), self._generation))
        self.stats["received"] += 1

    # ingest ----------------------------------------------------------------------------------------------------
    def _malformed(self, reason: str, topic: bytes | str) -> None:
        self.stats["malformed"] += 1
        by = self.stats["malformed_by_reason"]
        by[reason] = by.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last_malformed_log > 5:
            self._last_malformed_log = now
            name = topic.decode("utf-8", "replace") if isinstance(topic, bytes) else topic
            log.warning("dropped malformed message on %s: %s (%d so far)", name[:120], reason,
                        self.stats["malformed"])

    def _ingest_loop(self) -> None:
        cfg = self.config
        inbox = self._inbox
        while not self._stopping.is_set():
            deadline = time.monotonic() + cfg.flush_interval_s
            batch = Batch()
            items: list[tuple[bytes | str, bytes, int]] = []
            acks: list[tuple[int, int, int]] = []
            count = 0
            while count < cfg.max_batch:
                try:
                    item = inbox.popleft()
                except IndexError:
                    if time.monotonic() >= deadline or self._stopping.is_set():
                        break
                    time.sleep(0.005)
                    continue
                count += 1
                topic, raw, mid, qos, recv, gen = item
                if qos:
                    acks.append((mid, qos, gen))
                self._take(batch, items, topic, raw, recv)
            if count:
                if not self._flush(batch, count, items):
                    continue  # stopping before the batch was stored: not acknowledged (the broker redelivers)
                client = self._client
                if client is not None:
                    generation = self._generation
                    client.ack_many([mid for mid, qos, gen in acks if qos == 1 and gen == generation])  # type: ignore[attr-defined]

    def _take(self, batch: Batch, items: list[tuple[bytes | str, bytes, int]], topic: bytes | str, raw: bytes,
              recv: int) -> None:
        """One message into the batch (and into ``items``, what a split re-reads); a refused one is dead-lettered."""
        try:
            self._process(batch, topic, raw, recv)
        except P.PayloadError as exc:
            self._dead_letter(batch, exc.reason, topic, raw, recv)
            return
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop the ingest
            self._dead_letter(batch, f"invalid:{type(exc).__name__}", topic, raw, recv)
            return
        items.append((topic, raw, recv))

    def _dead_letter(self, batch: Batch, reason: str, topic: bytes | str, raw: bytes, recv: int) -> None:
        """Count a refused message and keep a short, scrubbed record of it for operators (at most
        :data:`DEAD_LETTERS_PER_FLUSH` per flush: a flood of garbage is counted, not stored)."""
        self._malformed(reason, topic)
        self.stats["dead_letters"] += 1
        if len(batch.dead_letters) >= DEAD_LETTERS_PER_FLUSH:
            self.stats["dead_letters_not_kept"] += 1
            return
        name = topic.decode("utf-8", "replace") if isinstance(topic, (bytes, bytearray)) else str(topic)
        parts = name.split("/")
        kiosk_id = parts[2] if len(parts) > 2 and P.KIOSK_ID_RE.match(parts[2]) else ""
        preview = bytes(raw[:DEAD_LETTER_PREVIEW]).decode("utf-8", "replace")
        batch.dead_letters.append({
            "kiosk_id": kiosk_id, "topic": P.scrub_text(name, 200), "reason": reason[:60], "received_at": recv,
            "size": len(raw), "payload": P.scrub_text(preview, DEAD_LETTER_PREVIEW), "controller": self.id[:80]})

    def _flush(self, batch: Batch, count: int, items: list[tuple[bytes | str, bytes, int]] | None = None) -> bool:
        """Store a batch; True once stored (then its messages may be acknowledged), False when stopping first.

        A batch the database refuses for a reason other than being unavailable (a value it cannot write) is split in
        halves, recursively, so the good messages are stored and the bad one ends in ``dead_letters``: never retried
        forever. An unavailable database (connection lost, locked, restarting) is waited for: the batch is kept."""
        outcome = self._store(batch)
        if outcome == "poison":
            self.stats["poison_batches"] += 1
            outcome = self._split(list(items or ()), list(batch.dead_letters))
        if outcome == "stopped":
            return False
        self.stats["processed"] += count
        self.stats["flushes"] += 1
        with self.processed_event:
            self.processed_event.notify_all()
        return True

    def _split(self, items: list[tuple[bytes | str, bytes, int]], dead: list[dict[str, Any]]) -> str:
        # the refused write named device rows and states this controller now wrongly believes written
        self._written.clear()
        self._device_cache.clear()
        if len(items) <= 1:
            batch = Batch(dead_letters=dead)
            for topic, raw, recv in items:
                again = Batch()
                self._take(again, [], topic, raw, recv)
                outcome = self._store(again)  # a second try on its own (a conflict with another controller)
                if outcome == "stopped":
                    return outcome
                if outcome == "ok":
                    continue
                error = self._last_store_error
                self._dead_letter(batch, f"store_rejected:{type(error).__name__}", topic, raw, recv)
            if batch.dead_letters and self._store(batch) == "poison":
                log.error("could not even store %d dead letters; dropped them", len(batch.dead_letters))
            return "ok"
        half = len(items) // 2
        for part, part_dead in ((items[:half], dead), (items[half:], [])):
            batch = Batch(dead_letters=part_dead)
            kept: list[tuple[bytes | str, bytes, int]] = []
            for topic, raw, recv in part:
                self._take(batch, kept, topic, raw, recv)
            outcome = self._store(batch)
            if outcome == "poison":
                outcome = self._split(kept, list(batch.dead_letters))
            if outcome == "stopped":
                return outcome
        return "ok"

    def _store(self, batch: Batch) -> str:
        """Write one batch: "ok", "poison" (refused for a reason other than the database being unavailable — see
        :func:`_transient`) or "stopped" (the controller stops while the database is away)."""
        delay = 0.5
        while True:
            try:
                self._settle(batch)
                now = P.now_ms()
                if batch.samples or batch.births or batch.deaths or batch.results or batch.devices or \
                        batch.dead_letters or batch.journeys:
                    result = self.store.write_batch(batch, self.id, now)
                    self.stats["stored"] += result["stored"]
                    self.stats["duplicates"] += result["duplicates"]
                    self.stats["forged_results"] += result["forged"]
                    if result["forged"]:
                        log.warning("%d command result(s) for commands no controller issued (forged commands "
                                    "rejected by kiosks)", result["forged"])
                if batch.audit_heads:
                    for kiosk_id, detail in self.store.record_audit_heads(batch.audit_heads, now).items():
                        log.warning("audit chain of %s broken: %s", kiosk_id, detail)
                        batch.candidates.add(kiosk_id)
                    batch.audit_heads.clear()
                break
            except Exception as exc:  # noqa: BLE001 - the database is down or busy: keep the batch, retry
                if not _transient(exc):
                    self._last_store_error = exc
                    self.stats["store_rejected"] += 1
                    log.warning("the database refused a batch of %d messages (%s: %s); splitting it",
                                len(batch), type(exc).__name__, str(exc)[:200])
                    return "poison"
                self.stats["db_errors"] += 1
                log.exception("storing a batch of %d messages failed; retrying in %.1f s", len(batch), delay)
                if self._stopping.wait(delay):
                    return "stopped"
                delay = min(5.0, delay * 2)
        # the alert rules for the kiosks that moved (stored already: a failure here never re-writes the batch)
        delay = 0.5
        while True:
            try:
                self._evaluate(self._candidates(batch), P.now_ms(), batch.alarm_hits)
                return "ok"
            except Exception as exc:  # noqa: BLE001
                if not _transient(exc):
                    self.stats["rule_errors"] += 1
                    log.exception("evaluating the alert rules after a flush failed")
                    return "ok"
                self.stats["db_errors"] += 1
                if self._stopping.wait(delay):
                    return "ok"  # stored: may be acknowledged; the sweeper evaluates again after a restart
                delay = min(5.0, delay * 2)

    def _parse_topic(self, topic: bytes | str) -> tuple[str, str, str | None]:
        parsed = self._topics.get(topic)
        if parsed is not None:
            return parsed
        try:
            name = topic.decode("utf-8") if isinstance(topic, bytes) else topic
        except UnicodeDecodeError:
            raise P.PayloadError("bad_topic") from None
        parsed = P.parse_topic(name)
        if parsed is None:
            raise P.PayloadError("bad_topic")
        if parsed[2] is None:  # one per kiosk and kind (command results carry an id each: not kept)
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _process(self, batch: Batch, topic: bytes | str, raw: bytes, recv: int) -> None:
        kiosk_id, kind, command_id = self._parse_topic(topic)
        if len(raw) > P.MAX_PAYLOAD_BYTES:
            raise P.PayloadError("too_large")
        try:
            payload = _loads(raw)
        except (ValueError, TypeError):
            raise P.PayloadError("not_json") from None
        P.check_envelope(kind, kiosk_id, payload, recv)
        # everything that can still refuse the message comes before the batch is touched
        if kind == "death":
            batch.deaths.append((kiosk_id, payload["bdSeq"], recv, str(payload.get("reason") or "will")[:40]))
            batch.candidates.add(kiosk_id)
            return
        mid, bd, seq = payload["mid"], payload["bdSeq"], payload["seq"]
        if kind == "cmd-result" and payload.get("command_id") != command_id:
            raise P.PayloadError("command_id_mismatch")
        if kind == "journey":  # anonymous journeys: aggregated into hourly/daily buckets (fleet/controller/reports.py)
            seen = batch.kiosk_seen.get(kiosk_id)
            if seen is None:
                batch.kiosk_seen[kiosk_id] = [recv, mid]
            else:
                seen[0], seen[1] = max(seen[0], recv), max(seen[1], mid)
            batch.journeys.append((kiosk_id, mid, payload["ts"], recv, payload["sessions"]))
            batch.log_seq(kiosk_id, bd, seq, "J", recv)
            return
        if kind != "cmd-result":
            devices = payload.get("devices") or {}
            dset = self._kiosk_devices.get(kiosk_id)
            if dset is None or dset.models != devices:  # most messages repeat the kiosk's last device set
                dset = self._kiosk_devices[kiosk_id] = self._device_set(kiosk_id, devices)
            host = payload.get("host")
            _host_json, host_metrics, disk_low = self._host(kiosk_id, host) if type(host) is dict else _NO_HOST
        seen = batch.kiosk_seen.get(kiosk_id)
        if seen is None:
            batch.kiosk_seen[kiosk_id] = [recv, mid]
        else:
            seen[0] = max(seen[0], recv)
            seen[1] = max(seen[1], mid)
        if kind == "cmd-result":
            batch.results.append({"command_id": command_id, "kiosk_id": kiosk_id, "status": payload["status"],
                                  "reason": P.scrub_text(payload.get("reason") or "", 200),
                                  "data": payload.get("data") if isinstance(payload.get("data"), dict) else {},
                                  "recv": recv})
            batch.log_seq(kiosk_id, bd, seq, "R", recv)
            return
        rows8 = dset.rows
        paper, pages, cards, faults = dset.sample
        reason = payload.get("reason")
        kc = "B" if kind == "birth" else ("A" if kind == "alarm" else ("H" if reason == "heartbeat" else "D"))
        counters = payload.get("counters")
        sessions = counters.get("sessions") if type(counters) is dict else None
        ts = payload["ts"]
        if abs(ts - recv) > 172_800_000 and not payload.get("historical"):
            ts = recv  # a kiosk clock far off: file it under the controller's time
        batch.samples.append((kiosk_id, ts, recv, mid, bd, seq, kc, paper,
                              sessions if type(sessions) is int else None, pages, cards,
                              faults if kc in ("B", "H") else None, *host_metrics))
        batch.log_seq(kiosk_id, bd, seq, kc, recv)
        audit_head = payload.get("audit_head")
        if audit_head is not None and not payload.get("historical"):  # checked by check_envelope
            batch.audit_heads.setdefault(kiosk_id, []).append((mid, audit_head))
        if kind == "birth":
            ident = payload.get("identity") if isinstance(payload.get("identity"), dict) else {}
            cmds = payload.get("commands") if isinstance(payload.get("commands"), list) else []
            prev = batch.births.get(kiosk_id)
            if prev is None or prev["mid"] < mid:
                batch.births[kiosk_id] = {
                    "mid": mid, "ts": payload["ts"], "bdSeq": bd, "recv": recv,
                    "name": str(ident.get("name", ""))[:120], "district": str(ident.get("district", ""))[:60],
                    "location": str(ident.get("location", ""))[:200],
                    "app_version": str(ident.get("app_version", ""))[:40],
                    "profile_hash": str(ident.get("profile_hash", ""))[:80],
                    "agent_version": str(ident.get("agent_version", ""))[:20],
                    "heartbeat_s": float(payload.get("heartbeat_s") or 30.0),
                    "commands": json.dumps([str(c)[:40] for c in cmds][:20]),
                    "service": payload.get("service") if payload.get("service") in P.SERVICE_MODES else "in_service",
                    "announcement": P.scrub_text(payload["announcement"], 200) if payload.get("announcement") else None,
                    "host": json.dumps(host if isinstance(host, dict) else {}),
                    "counters": json.dumps(counters if isinstance(counters, dict) else {}),
                    "devices": {k: {"state": r[2], "paper": r[3], "error_code": r[4], "error_text": r[5],
                                    "counters": r[6], "xfs": r[7]} for k, r in rows8.items()},
                }
            mono = time.monotonic()
            for k, r in rows8.items():
                self._device_cache[(kiosk_id, k)] = (r[2], r[3], r[4])
                self._written[(kiosk_id, k)] = (r, mono)
            batch.candidates.add(kiosk_id)
            return
        historical = bool(payload.get("historical"))
        if not historical:
            # sent from the kiosk's outbox after the broker was unreachable (historical): history (time series,
            # events), never latest state — the birth that came before it already carried the newer state.
            # Latest state is settled once per kiosk and flush (:meth:`_settle`): only the newest message counts.
            if disk_low:
                batch.candidates.add(kiosk_id)
            latest = batch.latest.get(kiosk_id)
            if latest is None:
                latest = batch.latest[kiosk_id] = [[[dset, mid, recv]], None]
            else:
                run = latest[0][-1]
                if run[0] is dset:  # the same device set as the kiosk's message before: keep the newest
                    if mid > run[1]:
                        run[1], run[2] = mid, recv
                else:
                    latest[0].append([dset, mid, recv])
            service, announcement = payload.get("service"), payload.get("announcement")
            if service in P.SERVICE_MODES or announcement or isinstance(counters, dict) or type(host) is dict:
                src = latest[1]
                if src is None or src[0] < mid:
                    latest[1] = (mid, service, announcement, counters, host)
        if kind == "alarm":
            if not historical:
                batch.candidates.add(kiosk_id)
            for ev in payload.get("events") or []:
                if not isinstance(ev, dict):
                    continue
                code = str(ev.get("code", ""))[:40]
                severity = ev.get("severity") if ev.get("severity") in P.SEVERITIES else "warning"
                device = str(ev.get("device", ""))[:40]
                active = bool(ev.get("active"))
                text = P.scrub_text(ev.get("text") or "", 200)
                batch.events.append({"kiosk_id": kiosk_id, "ts": payload["ts"], "device": device, "code": code,
                                     "severity": severity, "active": active, "text": text})
                if device == R.APP_DEVICE and code:
                    self._app_alarm(batch, kiosk_id, code, active, severity, text, mid, payload["ts"], recv,
                                    historical)
                elif active and code in ALARM_RULE and not historical:
                    batch.alarm_hits.add((kiosk_id, ALARM_RULE[code], device))

    def _app_alarm(self, batch: Batch, kiosk_id: str, code: str, active: bool, severity: str, text: str, mid: int,
                   ts: int, recv: int, historical: bool) -> None:
        """An application alarm event (device ``app``) into the kiosk's alarm state (rule ``app_alarm``): an active
        event raises it — unless it is backlog from the outbox older than ``app_alarm_backlog_s`` (event log only) —
        an inactive one lowers it; the store keeps the newest per code by ``mid``."""
        if active and historical and recv - ts > self.config.rules.app_alarm_backlog_s * 1000:
            return
        key = (kiosk_id, code)
        prev = batch.app_alarms.get(key)
        if prev is None or prev[5] <= mid:
            batch.app_alarms[key] = (kiosk_id, code, active, severity, text, mid, ts)
        if active:
            batch.alarm_hits.add((kiosk_id, R.APP_RULE, code))
        batch.candidates.add(kiosk_id)

    def _settle(self, batch: Batch) -> None:
        """The latest state from this flush's messages (births aside), once per kiosk: device rows newest per device
        (by the kiosk's message number), the kiosk's fields from its newest message that has any; and which kiosks
        the alert rules must look at (a device state changed along the way, or is unusual)."""
        mono = time.monotonic()
        written = self._written
        device_cache = self._device_cache
        candidates = batch.candidates
        for kiosk_id, (runs, src) in batch.latest.items():
            alerted = kiosk_id in self._open_alert_kiosks
            # device sets in arrival order (a run: consecutive messages with the same set, and the newest of them)
            newest: dict[str, tuple[int, int, tuple, bool]] = {}
            for dset, mid, recv in runs:
                for k, row in dset.rows.items():
                    key = (kiosk_id, k)
                    sig = (row[2], row[3], row[4])
                    unusual = k in dset.unusual
                    if unusual or device_cache.get(key) != sig:
                        candidates.add(kiosk_id)
                        device_cache[key] = sig
                    cur = newest.get(k)
                    if cur is None or cur[0] < mid:
                        newest[k] = (mid, recv, row, unusual)
            for k, (mid, recv, row, unusual) in newest.items():
                key = (kiosk_id, k)
                # a device row unchanged since this controller last wrote it is not written again — for at most
                # REWRITE_S, so that another controller's write of an older state is overwritten in bounded time
                # (at once for anything an alert looks at: unusual states and kiosks with open alerts)
                last = written.get(key)
                if last is not None and mono - last[1] < REWRITE_S and not unusual and not alerted and \
                        (last[0] is row or last[0] == row):
                    continue
                batch.devices[key] = row + (mid, recv, recv)
                written[key] = (row, mono)
            if src is not None:  # the kiosk's own fields, from its newest message carrying any
                mid, service, announcement, counters, host = src
                fields: dict[str, Any] = {"mid": mid}
                if service in P.SERVICE_MODES:
                    fields["service"] = service
                if announcement:
                    fields["announcement"] = P.scrub_text(announcement, 200)
                if isinstance(counters, dict):
                    fields["counters"] = self._json(kiosk_id, "counters", counters)
                if type(host) is dict:
                    fields["host"] = self._host(kiosk_id, host)[0]
                batch.kiosk_fields[kiosk_id] = fields
        batch.latest.clear()

    def _json(self, kiosk_id: str, name: str, value: Any) -> str:
        cached = self._json_cache.get((kiosk_id, name))
        if cached is not None and cached[0] == value:
            return cached[1]
        text = json.dumps(value, ensure_ascii=False)
        self._json_cache[(kiosk_id, name)] = (value, text)
        return text

    def _device_set(self, kiosk_id: str, devices: dict[str, Any]) -> "_DeviceSet":
        """What a message's ``devices`` make: the device rows, the time-series columns, which are unusual."""
        models = self._model_cache
        rows: dict[str, tuple] = {}
        unusual: set[str] = set()
        paper = pages = cards = None
        faults = 0
        for k, m in devices.items():
            cached = models.get((kiosk_id, k))
            if cached is None or cached[0] != m:
                P.check_device_model(k, m)
                cached = models[(kiosk_id, k)] = (m, *self._device_row(kiosk_id, k, m))
            row = rows[k] = cached[1]
            if row[2] != "ok" or row[3] not in (None, "ok"):
                unusual.add(k)
            d_paper, d_pages, d_cards, d_fault = cached[2]
            if d_paper is not None:
                paper = d_paper if paper is None else min(paper, d_paper)
            if d_pages is not None:
                pages = (pages or 0) + d_pages
            if d_cards is not None:
                cards = (cards or 0) + d_cards
            faults += d_fault
        if pages is not None:
            pages = min(pages, P.MAX_COUNTER)  # summed over devices: keep within the INTEGER column
        if cards is not None:
            cards = min(cards, P.MAX_COUNTER)
        return _DeviceSet(devices, rows, (paper, pages, cards, faults), frozenset(unusual))

    @staticmethod
    def _device_row(kiosk_id: str, kind: str, m: Mapping[str, Any]) -> tuple[tuple, tuple]:
        """The device row without mid and times — (kiosk, kind, state, paper, error_code, error_text, counters
        JSON, xfs) — and what it adds to a time-series sample: (paper code, pages, cards read, in fault)."""
        supplies = m.get("supplies") if isinstance(m.get("supplies"), dict) else {}
        paper = supplies.get("paper")
        if paper not in P.PAPER_LEVELS:
            paper = None
        counters = m.get("counters") if isinstance(m.get("counters"), dict) else {}
        error_code = m.get("error_code")
        text = m.get("error_text")
        row = (kiosk_id, str(kind)[:40], m["state"], paper, str(error_code)[:40] if error_code else None,
               P.scrub_text(text, 200) if text else "",
               json.dumps({str(k)[:40]: v for k, v in counters.items() if type(v) is int}),
               str(m.get("xfs"))[:20] if m.get("xfs") else None)
        pages, cards = counters.get("pages"), counters.get("cards_read")
        contrib = (P.PAPER_CODE.get(paper) if paper else None, pages if type(pages) is int else None,
                   cards if type(cards) is int else None, 1 if m["state"] in ("fault", "offline") else 0)
        return row, contrib

    def _host(self, kiosk_id: str, host: dict[str, Any]) -> tuple[str, tuple, bool]:
        cached = self._json_cache.get((kiosk_id, "host"))
        if cached is not None and cached[0] == host:
            return cached[1]
        P.check_host(host)

        def num(v: Any) -> float | None:
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        pct, mb = host.get("disk_free_pct"), host.get("disk_free_mb")
        rules = self.config.rules
        disk_low = (isinstance(pct, (int, float)) and pct < rules.disk_low_pct) or \
            (isinstance(mb, (int, float)) and mb < rules.disk_low_mb)
        value = (json.dumps(host, ensure_ascii=False),
                 (num(host.get("cpu_temp_c")), num(pct), num(host.get("mem_used_pct")),
                  num(host.get("platform_latency_ms"))), bool(disk_low))
        self._json_cache[(kiosk_id, "host")] = (host, value)
        return value

    def _candidates(self, batch: Batch) -> set[str]:
        now = time.monotonic()
        if now - self._open_alerts_loaded > 1.0:
            self._open_alert_kiosks = self.store.open_alert_kiosks()
            self._open_alerts_loaded = now
        touched = set(batch.kiosk_seen) | {d[0] for d in batch.deaths}
        return batch.candidates | (touched & self._open_alert_kiosks)

    def _evaluate(self, kiosk_ids: set[str], now: int, hits: set[tuple[str, str, str]] | None = None) -> int:
        """Re-evaluate the alert rules for these kiosks; returns how many alerts opened or cleared."""
        if not kiosk_ids:
            return 0
        changes = 0
        with self._rule_lock, self.store.engine.begin() as conn:
            krows, drows, arows = self.store.load_for_rules(conn, sorted(kiosk_ids))
            breaks = self.store.audit_breaks(conn, sorted(kiosk_ids))
            app_alarms = self.store.active_app_alarms(conn, sorted(kiosk_ids))
            for kiosk_id, krow in krows.items():
                open_alerts = arows.get(kiosk_id, {})
                desired = R.desired_alerts(krow, drows.get(kiosk_id, []), open_alerts, now, self.config.rules,
                                           audit_break=breaks.get(kiosk_id), app_alarms=app_alarms.get(kiosk_id, ()))
                kiosk_hits = {(r, d) for (k, r, d) in (hits or ()) if k == kiosk_id}
                opened, cleared, refreshed = R.diff(kiosk_id, desired, open_alerts, kiosk_hits)
                state = R.kiosk_state(krow, drows.get(kiosk_id, []))
                if opened or cleared or refreshed or state != krow.state:
                    self.store.apply_alert_changes(conn, kiosk_id, opened, cleared, refreshed,
                                                   state if state != krow.state else None, now)
                for a in opened:
                    log.info("alert opened: %s %s %s (%s)", kiosk_id, a["rule"], a["device"], a["severity"])
                changes += len(opened) + len(cleared)
                if desired:
                    self._open_alert_kiosks.add(kiosk_id)
                else:
                    self._open_alert_kiosks.discard(kiosk_id)
        return changes

    # sweeper ---------------------------------------------------------------------------------------------------
    def _sweep_loop(self) -> None:
        cfg = self.config
        last_heartbeat = last_stale = last_retention = 0.0
        while not self._stopping.wait(cfg.sweep_interval_s):
            mono = time.monotonic()
            now = P.now_ms()
            try:
                if self._reassert_state.is_set() and self._client is not None and self._connected.is_set():
                    self._reassert_state.clear()
                    self._client.publish(cfg.state_topic, self._state_payload(True), qos=1, retain=True)
                if mono - last_heartbeat >= 2.0:
                    last_heartbeat = mono
                    self.store.controller_heartbeat(self.id, self.started_at, self.public_stats(), now)
                leader = self.store.acquire_lease("sweeper", self.id, int(cfg.lease_ttl_s * 1000), now)
                if leader != self._is_leader:
                    log.info("controller %s %s the sweeper lease", self.id, "holds" if leader else "lost")
                    self._auditor.reset()
                    self._audit_cursor = None
                self._is_leader = leader
                if not leader:
                    continue
                candidates: set[str] = set()
                if mono - last_stale >= 1.0:
                    last_stale = mono
                    stale = self.store.stale_kiosks(now)
                    if stale:
                        self.store.mark_offline(stale, now, "heartbeat_missed")
                        candidates.update(stale)
                    candidates.update(self.store.offline_kiosks_without_alert(
                        now - int(cfg.rules.offline_after_s * 1000)))
                self._audit(now, candidates)
                self._evaluate(candidates, now)
                self._deliver_commands(now)
                if mono - last_retention >= 3600 or last_retention == 0.0:
                    last_retention = mono
                    cutoff = now - cfg.retention_days * 86_400_000
                    dropped = self.store.drop_partitions_before(cutoff)
                    if dropped:
                        log.info("retention: dropped %s", ", ".join(dropped))
                    self.store.prune_events(cutoff)
                    from fleet.controller.reports import prune as prune_journeys

                    prune_journeys(self.store, now)
                    self.store.prune_dead_letters(cutoff)
                    self.store.prune_sessions(cutoff)  # ended operator sessions, kept as long as the events
                self.store.prune_seq_log(now - 120_000)
            except Exception:  # noqa: BLE001 - the sweeper must keep running (database restarts, …)
                log.exception("sweeper run failed")

    def _audit(self, now: int, candidates: set[str]) -> None:
        since = (self._audit_cursor if self._audit_cursor is not None else now - 5_000) - 5_000
        rows = self.store.seq_log_since(since)
        if rows:
            self._audit_cursor = max(r[1] for r in rows)
        entries = self._auditor.feed_rows(rows, now)
        alive = self.store.alive_controllers(now - ALIVE_WINDOW_MS) | {self.id}
        gaps = self._auditor.audit(entries, now, alive, self.store.kiosk_sessions)
        for kiosk_id, detail in gaps:
            self.stats["gaps"] += 1
            log.warning("sequence gap from %s: %s; requesting a rebirth", kiosk_id, detail)
            self.store.set_gap(kiosk_id, detail)
            candidates.add(kiosk_id)
            if self.signer is not None and self.store.recent_command(kiosk_id, "rebirth", now - 5_000) is None:
                self.stats["rebirths_requested"] += 1
                self.create_command(kiosk_id, "rebirth", {}, ttl_s=60, created_by="sequence-audit")

    # commands --------------------------------------------------------------------------------------------------
    def acknowledge_alert(self, alert_id: int, username: str) -> bool:
        """An operator acknowledges an alert (once). A citizen's help request (app alarm ``assistance_requested``) is
        answered on the kiosk too: the signed command ``assistance_acknowledged`` ("someone is coming"), queued like
        any command while the kiosk is unreachable, for a few minutes."""
        from fleet.controller.rules import APP_RULE, ASSISTANCE_CODE

        alert = self.store.alert(alert_id)
        done = self.store.ack_alert(alert_id, username, P.now_ms())
        if done and alert is not None and alert["rule"] == APP_RULE and alert.get("device") == ASSISTANCE_CODE \
                and self.signer is not None:
            named = _ASSISTANCE_REQUEST_RE.search(alert.get("detail") or "")
            args: dict[str, Any] = {"alert_id": alert_id, **({"request": named.group(1)} if named else {})}
            try:
                self.create_command(alert["kiosk_id"], "assistance_acknowledged", args, ttl_s=600,
                                    created_by=username)
            except Exception as exc:  # noqa: BLE001 - the acknowledgement stands; the operator sees no command
                log.warning("assistance acknowledgement not sent to %s: %s", alert["kiosk_id"], type(exc).__name__)
        return done

    def create_command(self, kiosk_id: str, name: str, args: Mapping[str, Any] | None = None,
                       ttl_s: float | None = None, created_by: str = "operator") -> dict[str, Any]:
        if self.signer is None:
            raise RuntimeError("this controller has no command-signing key (--signing-key)")
        if name not in P.COMMANDS:
            raise ValueError(f"unknown command {name!r}")
        now = P.now_ms()
        ttl = ttl_s if ttl_s is not None else self.config.command_ttl_s
        command_id = uuid.uuid4().hex
        row = {"id": command_id, "kiosk_id": kiosk_id, "name": name,
               "args": json.dumps(dict(args or {}), ensure_ascii=False), "status": "queued", "detail": "",
               "data": "{}", "created_by": created_by, "created_at": now, "expires_at": now + int(ttl * 1000),
               "updated_at": now}
        self.store.insert_command(row)
        kiosk = self.store.kiosk(kiosk_id)
        if kiosk and self._reachable(kiosk, now):
            self._send(self.store.command(command_id), now)
        from fleet.controller.store import command_dict

        return command_dict(self.store.command(command_id))

    @staticmethod
    def _reachable(kiosk: Mapping[str, Any], now: int) -> bool:
        """Online, or heard from lately (data without a birth: the kiosk is connected, its birth was missed)."""
        if kiosk["online"]:
            return True
        recent = max(10.0, 3 * float(kiosk.get("heartbeat_s") or 30)) * 1000
        return bool(kiosk.get("last_seen")) and now - kiosk["last_seen"] < recent and \
            (kiosk.get("offline_since") is None or kiosk["last_seen"] > kiosk["offline_since"])

    def _send(self, row: Any, now: int) -> bool:
        client = self._client
        if client is None or not self._connected.is_set() or self.signer is None:
            return False
        ttl_s = (row.expires_at - row.created_at) / 1000.0
        _cmd, payload = self.signer.sign(row.kiosk_id, row.name, json.loads(row.args or "{}"), ttl_s=ttl_s,
                                         command_id=row.id, issued_at=row.created_at)
        info = client.publish(P.topic(row.kiosk_id, "cmd", row.id), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.store.update_command(row.id, only_if=("queued", "sent"), status="sent", sent_at=now, updated_at=now)
        return True

    def _deliver_commands(self, now: int) -> None:
        rows = self.store.commands_in(("queued", "sent", "delivered"))
        if not rows:
            return
        sessions = {k["kiosk_id"]: k for k in (self.store.kiosk(r.kiosk_id) for r in {r.kiosk_id: r for r in rows}.values()) if k}
        for row in rows:
            if row.status in ("queued", "sent") and now > row.expires_at:
                self.store.update_command(row.id, only_if=("queued", "sent"), status="expired", updated_at=now,
                                          detail="not delivered before it expired")
                continue
            if row.status == "delivered":
                if now > (row.accepted_at or now) + self.config.command_timeout_s * 1000:
                    self.store.update_command(row.id, only_if=("delivered",), status="timed_out", updated_at=now,
                                              detail="no result from the kiosk")
                continue
            kiosk = sessions.get(row.kiosk_id)
            if not kiosk or not self._reachable(kiosk, now):
                continue
            if row.status == "queued" or (row.sent_at or 0) < (kiosk["born_at"] or 0):
                self._send(row, now)

    # stats -----------------------------------------------------------------------------------------------------
    def public_stats(self) -> dict[str, Any]:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.stats.items()}
        out["queue"] = len(self._inbox)
        out["queue_max"] = self.config.inbox_max
        out["leader"] = self._is_leader
        out["connected"] = self._connected.is_set()
        return out
