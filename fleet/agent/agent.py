"""The kiosk's fleet health agent.

Wiring it into the kiosk (a few lines; the agent never blocks the caller — it runs on its own threads)::

    from fleet.agent import FleetAgent, CommandResult, HostProbe, identity_from_profile

    agent = FleetAgent(
        profile.kiosk.id, "mqtts://broker:8883?ca=…&cert=…&key=…",
        status_source=core.devices.statuses,                 # {kind: drivers.base.DeviceStatus}
        verify_key="/etc/kiosk/command-signing.pub",         # the controllers' Ed25519 public key(s)
        identity=identity_from_profile(profile, app_version=__version__),
        app_source=lambda: {"service": "out_of_service" if core.availability.out_of_service else "in_service",
                            "counters": {"sessions": core.sessions_started}},
        host_probe=HostProbe(profile.kiosk.data_dir, profile.platform.url),
        command_handlers={"out_of_service": …, "back_in_service": …, "show_announcement": …,
                          "restart_app": …, "push_profile": …, "self_test": …},
        outbox_path=Path(profile.kiosk.data_dir) / "fleet-outbox.db",
    )
    agent.start()            # returns at once
    agent.notify_changed()   # after a print job, a card error, an availability change: publish now, not at the poll
    agent.stop()             # on shutdown: explicit death, then disconnect (bounded by its timeout)

Command handlers run on the agent's command thread (never the UI thread, never the network thread): marshal UI work
through the kiosk's dispatcher, and for ``restart_app`` schedule the restart and return, so the result is sent first.
A handler returns a :class:`CommandResult` (or True/False/None) and may raise (→ failed, with the exception's type).

Threads: ``fleet-monitor`` polls ``status_source`` every ``poll_s`` (or at once after ``notify_changed``) and queues a
data message for what changed and an alarm for new/cleared conditions, plus a heartbeat every ``heartbeat_s``;
``fleet-net`` connects (MQTT 5, falling back to 3.1.1), publishes the birth and drains the outbox in order, and
reconnects with exponential backoff; ``fleet-cmd`` verifies and runs commands. paho runs its own network loop thread
per connection.
"""
from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import paho.mqtt.client as mqtt

from fleet import protocol as P
from fleet.agent.outbox import Outbox, SeenCommands
from fleet.mqtt import BrokerConfig, make_client
from fleet.signing import CommandRejected, CommandVerifier

log = logging.getLogger("fleet.agent")
AGENT_VERSION = "1.0"


@dataclass(frozen=True)
class CommandResult:
    """What a command handler reports: ``ok`` (→ done) or not (→ failed), a short reason, small plain data."""

    ok: bool
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def done(cls, detail: str = "", **data: Any) -> "CommandResult":
        return cls(True, detail, data)

    @classmethod
    def failed(cls, detail: str, **data: Any) -> "CommandResult":
        return cls(False, detail, data)


CommandHandler = Callable[[Mapping[str, Any]], "CommandResult | bool | None"]


def identity_from_profile(profile: Any, app_version: str = "", language: str = "zh_CN") -> dict[str, Any]:
    """The birth's identity block from a kiosk ``Profile`` (duck-typed: ``profile.kiosk.{id,name,location,district}``
    and ``profile.digest``). Only facts about the kiosk: where it stands and what it runs."""
    kiosk = profile.kiosk

    def text(value: Any) -> str:
        if isinstance(value, Mapping):
            return str(value.get(language) or next(iter(value.values()), ""))
        return str(value or "")

    return {"name": text(getattr(kiosk, "name", "")), "location": text(getattr(kiosk, "location", "")),
            "district": text(getattr(kiosk, "district", "")), "app_version": app_version,
            "profile_hash": str(getattr(profile, "digest", "") or "")}


def _scrub(value: Any, depth: int = 0) -> Any:
    """Every string in a payload goes through :func:`fleet.protocol.scrub_text` (last line of defence)."""
    if isinstance(value, str):
        return P.scrub_text(value, 500)
    if isinstance(value, Mapping) and depth < 6:
        return {str(k): _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < 6:
        return [_scrub(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return P.scrub_text(repr(value), 100)


class FleetAgent:
    """Health agent for one kiosk. See the module docstring for the integration."""

    def __init__(self, kiosk_id: str, broker_url: str | BrokerConfig,
                 status_source: Callable[[], Mapping[str, Any]], *,
                 verify_key: Any,
                 identity: Mapping[str, Any] | None = None,
                 command_handlers: Mapping[str, CommandHandler] | None = None,
                 app_source: Callable[[], Mapping[str, Any]] | None = None,
                 host_probe: Callable[[], Mapping[str, Any]] | None = None,
                 outbox_path: str | Path | None = None,
                 heartbeat_s: float = 30.0,
                 poll_s: float = 5.0,
                 outbox_max: int = 10000,
                 protocol: str = "auto",
                 keepalive_s: int = 30,
                 reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 30.0,
                 rebirth_jitter_s: float = 2.0,
                 inflight_window: int = 32,
                 username: str | None = None) -> None:
        if not P.KIOSK_ID_RE.match(kiosk_id):
            raise ValueError(f"kiosk id {kiosk_id!r} is not usable as an MQTT topic level")
        self.kiosk_id = kiosk_id
        broker = broker_url if isinstance(broker_url, BrokerConfig) else BrokerConfig.from_url(broker_url)
        # the ACL gives each kiosk its own topics by username; with client certificates the broker uses the CN
        self.broker = broker.with_username(username or (None if broker.cert else kiosk_id))
        self.status_source = status_source
        self.verifier = CommandVerifier(kiosk_id, verify_key)
        self.identity = dict(identity or {})
        self.handlers: dict[str, CommandHandler] = dict(command_handlers or {})
        self.app_source = app_source
        self.host_probe = host_probe
        self.outbox = Outbox(outbox_path, outbox_max)
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.protocol = protocol
        self.keepalive_s = keepalive_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.rebirth_jitter_s = rebirth_jitter_s
        self.window = inflight_window

        self.stats: dict[str, int] = {"births": 0, "published": 0, "acked": 0, "connects": 0, "connect_failures": 0,
                                      "commands_run": 0, "commands_rejected": 0, "status_errors": 0}
        self._stopping = threading.Event()
        self._wake_monitor = threading.Event()
        self._cond = threading.Condition()
        self._acked: deque[int] = deque()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_ready = threading.Event()
        self._snap_lock = threading.Lock()
        self._last_devices: dict[str, dict[str, Any]] = {}
        self._last_alarms: dict[tuple[str, str], str] = {}
        self._last_app: dict[str, Any] = {}
        self._last_host: dict[str, Any] = {}
        self._rebirth_at: float | None = None
        self._controller_online: bool | None = None
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None
        self._bd_seq = 0
        self._seq = 0
        self._cmd_queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=1000)
        self._threads: list[threading.Thread] = []

    # public API ---------------------------------------------------------------------------------------------------
    def start(self) -> "FleetAgent":
        """Start the agent's threads and return at once."""
        if self._threads:
            return self
        for name, target in (("fleet-monitor", self._monitor_loop), ("fleet-net", self._net_loop),
                             ("fleet-cmd", self._command_loop)):
            t = threading.Thread(target=target, name=f"{name}-{self.kiosk_id}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def notify_changed(self) -> None:
        """Something may have changed (a print, a card error, availability): poll and publish now. Never blocks."""
        self._wake_monitor.set()

    def report_alarm(self, device: str, code: str, severity: str = "major", text: str = "",
                     active: bool = True) -> None:
        """An alarm event that no device state shows (the shell's crash handler: ``app``/``app_exception``,
        ``app``/``crash_loop``): queued in the outbox like device alarms and sent in order. Never blocks on the
        network; ``text`` is scrubbed and cut like every free text."""
        ts = P.now_ms()
        event = {"device": str(device)[:40], "code": str(code)[:40],
                 "severity": severity if severity in P.SEVERITIES else "warning", "active": bool(active),
                 "text": P.scrub_text(text, 200)}
        self.outbox.put("alarm", "alarm", _scrub({"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": ts,
                                                  "events": [event], "devices": {}}), ts)
        with self._cond:
            self._cond.notify_all()

    def report_journeys(self, sessions: Sequence[Mapping[str, Any]]) -> int:
        """Anonymous citizen journeys (:class:`kiosk.journey.JourneyRecorder` records; topic ``journey``): queued in
        the outbox in batches of at most :data:`fleet.protocol.MAX_JOURNEY_SESSIONS` and sent in order (kept on disk
        while the broker is away). Records that fail the protocol's checks are dropped here (logged), never sent.
        Returns how many were queued."""
        good = []
        for record in sessions:
            try:
                P.check_journey({"sessions": [record]})
            except P.PayloadError:
                log.warning("journey record refused by the protocol check; not sent")
                continue
            good.append(dict(record))
        batches: list[list[dict[str, Any]]] = []
        size = 0
        for record in good:   # at most MAX_JOURNEY_SESSIONS and half the payload limit per message
            n = len(P.dumps(record))
            if not batches or len(batches[-1]) >= P.MAX_JOURNEY_SESSIONS or size + n > P.MAX_PAYLOAD_BYTES // 2:
                batches.append([])
                size = 0
            batches[-1].append(record)
            size += n
        for batch in batches:
            ts = P.now_ms()
            self.outbox.put("journey", "journey", {"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": ts,
                                                   "sessions": batch}, ts)
        if good:
            with self._cond:
                self._cond.notify_all()
        return len(good)

    def request_rebirth(self) -> None:
        """Publish a full birth again on the current connection (what the controller's rebirth command does)."""
        with self._cond:
            self._rebirth_at = time.monotonic()
            self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Send the death explicitly (a clean DISCONNECT suppresses the Will), disconnect, stop the threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_monitor.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self._cmd_queue.put_nowait(None)
        except queue.Full:
            pass
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.outbox.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def bd_seq(self) -> int:
        return self._bd_seq

    def pending(self) -> int:
        """Messages waiting in the outbox (not yet acknowledged by the broker)."""
        return len(self.outbox)

    # monitor --------------------------------------------------------------------------------------------------------
    def _monitor_loop(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_s
        first = True
        while not self._stopping.is_set():
            now = time.monotonic()
            heartbeat = now >= next_heartbeat
            if heartbeat:
                next_heartbeat = now + self.heartbeat_s
            try:
                self._poll(heartbeat=heartbeat, first=first)
                first = False
            except Exception:  # noqa: BLE001 - the monitor must survive anything a source does
                log.exception("fleet agent poll failed")
            timeout = max(0.0, min(self.poll_s, next_heartbeat - time.monotonic()))
            self._wake_monitor.wait(timeout)
            self._wake_monitor.clear()

    def _collect_devices(self) -> dict[str, dict[str, Any]]:
        try:
            return P.device_models(self.status_source())
        except Exception as exc:  # noqa: BLE001
            self.stats["status_errors"] += 1
            log.warning("device status source failed: %s", type(exc).__name__)
            return dict(self._last_devices)

    def _collect_app(self) -> dict[str, Any]:
        if self.app_source is None:
            return {}
        try:
            raw = dict(self.app_source() or {})
        except Exception as exc:  # noqa: BLE001
            log.warning("app source failed: %s", type(exc).__name__)
            return dict(self._last_app)
        app: dict[str, Any] = {}
        if raw.get("service") in P.SERVICE_MODES:
            app["service"] = raw["service"]
        app["counters"] = P._counters(raw.get("counters") or {})
        if raw.get("announcement") is not None:
            app["announcement"] = P.scrub_text(raw["announcement"], 200)
        if P.audit_head_ok(raw.get("audit_head")):
            app["audit_head"] = dict(raw["audit_head"])
        return app

    def _collect_host(self) -> dict[str, Any]:
        if self.host_probe is None:
            return {}
        try:
            return {k: v for k, v in dict(self.host_probe()).items() if isinstance(v, (int, float, bool, type(None)))}
        except Exception as exc:  # noqa: BLE001
            log.warning("host probe failed: %s", type(exc).__name__)
            return dict(self._last_host)

    def _poll(self, heartbeat: bool, first: bool) -> None:
        devices = self._collect_devices()
        app = self._collect_app()
        host = self._collect_host() if (heartbeat or first) else self._last_host
        ts = P.now_ms()
        with self._snap_lock:
            self._snapshot = {"devices": devices, "app": app, "host": host, "ts": ts}
        self._snapshot_ready.set()
        if first:
            # the birth carries this state; changes are relative to it
            self._last_devices, self._last_app, self._last_host = devices, app, host
            self._last_alarms = P.alarm_conditions(devices)
            return
        changed = {k: m for k, m in devices.items() if self._last_devices.get(k) != m}
        for gone in set(self._last_devices) - set(devices):
            changed[gone] = {"state": "absent", "xfs": None, "error_code": "removed", "error_text": "",
                             "counters": {}}
        alarms = P.alarm_conditions(devices)
        events = [{"device": d, "code": c, "severity": s, "active": True}
                  for (d, c), s in alarms.items() if (d, c) not in self._last_alarms]
        events += [{"device": d, "code": c, "severity": s, "active": False}
                   for (d, c), s in self._last_alarms.items() if (d, c) not in alarms]
        base = {"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": ts}
        queued = False
        if changed or app != self._last_app:
            self.outbox.put("data", "data", _scrub({**base, "reason": "change", "devices": changed, **app}), ts)
            queued = True
        if events:
            affected = {e["device"] for e in events}
            self.outbox.put("alarm", "alarm", _scrub({**base, "events": events,
                                                      "devices": {k: devices.get(k, changed.get(k)) for k in affected
                                                                  if k in devices or k in changed}}), ts)
            queued = True
        if heartbeat:
            self.outbox.put("heartbeat", "data", _scrub({**base, "reason": "heartbeat", "devices": devices,
                                                         "host": host, **app}), ts, coalesce_key="heartbeat")
            queued = True
        self._last_devices, self._last_app, self._last_alarms = devices, app, alarms
        if heartbeat or first:
            self._last_host = host
        if queued:
            with self._cond:
                self._cond.notify_all()

    # network --------------------------------------------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _net_loop(self) -> None:
        backoff = self.reconnect_min_s
        use_v5 = self.protocol in ("auto", "v5")
        while not self._stopping.is_set():
            self._bd_seq = self.outbox.next_bdseq()
            connack: dict[str, Any] = {}
            got_connack = threading.Event()
            client = make_client(self.broker, self.kiosk_id, protocol=mqtt.MQTTv5 if use_v5 else mqtt.MQTTv311,
                                 connect_timeout=5.0)
            client.max_inflight_messages_set(self.window)
            client.max_queued_messages_set(0)
            will = P.dumps({"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": P.now_ms(),
                            "bdSeq": self._bd_seq, "reason": "will"})
            client.will_set(P.topic(self.kiosk_id, "death"), will, qos=1, retain=False)

            def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
                connack["rc"] = rc
                if not rc.is_failure:
                    c.subscribe([(P.topic(self.kiosk_id, "cmd", "+"), 1), (P.CONTROLLER_STATE_TOPIC, 1)])
                got_connack.set()

            def on_disconnect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
                self._connected.clear()
                got_connack.set()
                with self._cond:
                    self._cond.notify_all()

            def on_publish(c: mqtt.Client, _u: Any, mid: int, _rc: Any = None, _p: Any = None) -> None:
                self._acked.append(mid)
                with self._cond:
                    self._cond.notify_all()

            client.on_connect, client.on_disconnect = on_connect, on_disconnect
            client.on_publish, client.on_message = on_publish, self._on_message
            try:
                if use_v5:
                    client.connect(self.broker.host, self.broker.port, self.keepalive_s, clean_start=True)
                else:
                    client.connect(self.broker.host, self.broker.port, self.keepalive_s)
            except (OSError, ValueError) as exc:
                self.stats["connect_failures"] += 1
                log.info("broker %s unreachable (%s); retry in %.1f s", self.broker.address, type(exc).__name__,
                         backoff)
                self._sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(self.reconnect_max_s, backoff * 2)
                continue
            client.loop_start()
            got_connack.wait(10)
            rc = connack.get("rc")
            if rc is None or rc.is_failure:
                client.loop_stop()
                client.disconnect()
                self.stats["connect_failures"] += 1
                if rc is not None and use_v5 and self.protocol == "auto" and rc.value in (0x84, 1):
                    log.info("broker does not speak MQTT 5; using 3.1.1")
                    use_v5 = False
                    continue
                log.warning("broker refused the connection: %s; retry in %.1f s", rc, backoff)
                self._sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(self.reconnect_max_s, backoff * 2)
                continue
            self.stats["connects"] += 1
            self._connected.set()
            self._client = client
            started = time.monotonic()
            try:
                self._session(client)
            except Exception:  # noqa: BLE001
                log.exception("fleet agent session failed")
            finally:
                self._connected.clear()
                if self._stopping.is_set() and client.is_connected():
                    self._send_death(client)
                client.loop_stop()
                self._client = None
            if time.monotonic() - started > 10:
                backoff = self.reconnect_min_s
            if not self._stopping.is_set():
                log.info("disconnected from broker; reconnect in %.1f s", backoff)
                self._sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(self.reconnect_max_s, backoff * 2)

    def _send_death(self, client: mqtt.Client) -> None:
        payload = P.dumps({"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": P.now_ms(),
                           "bdSeq": self._bd_seq, "reason": "shutdown"})
        try:
            info = client.publish(P.topic(self.kiosk_id, "death"), payload, qos=1)
            info.wait_for_publish(2.0)
        except (RuntimeError, ValueError):
            pass
        client.disconnect()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def _birth_payload(self) -> bytes:
        with self._snap_lock:
            snap = dict(self._snapshot or {})
        commands = sorted(set(self.handlers) | {"rebirth", "self_test"})
        payload = {"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": P.now_ms(), "seq": 0,
                   "bdSeq": self._bd_seq, "mid": self.outbox.next_mid(),
                   "identity": {**self.identity, "agent_version": AGENT_VERSION},
                   "heartbeat_s": self.heartbeat_s, "commands": commands,
                   "devices": snap.get("devices", {}), "host": snap.get("host", {}), **snap.get("app", {})}
        return P.dumps(_scrub(payload))

    def _session(self, client: mqtt.Client) -> None:
        self._snapshot_ready.wait()
        inflight: dict[int, int] = {}
        last_sent = 0

        def birth() -> None:
            self._seq = 0
            client.publish(P.topic(self.kiosk_id, "birth"), self._birth_payload(), qos=1)
            self.stats["births"] += 1

        birth()
        session_start_ms = P.now_ms()
        self._acked.clear()
        while not self._stopping.is_set() and client.is_connected():
            while self._acked:
                row = inflight.pop(self._acked.popleft(), None)
                if row is not None:
                    self.outbox.ack([row])
                    self.stats["acked"] += 1
            if self._rebirth_at is not None and time.monotonic() >= self._rebirth_at:
                self._rebirth_at = None
                birth()
            if len(inflight) < self.window:
                for row in self.outbox.peek(last_sent, self.window - len(inflight)):
                    payload = dict(row.payload)
                    payload["seq"], payload["bdSeq"] = self._next_seq(), self._bd_seq
                    if row.created_ms < session_start_ms:
                        payload["historical"] = True
                    info = client.publish(f"{P.TOPIC_ROOT}/{self.kiosk_id}/{row.topic_suffix}", P.dumps(payload),
                                          qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                        return
                    inflight[info.mid] = row.id
                    last_sent = row.id
                    self.stats["published"] += 1
            with self._cond:
                if not self._acked and not self._stopping.is_set() and client.is_connected():
                    wait = 0.5
                    if self._rebirth_at is not None:
                        wait = max(0.0, min(wait, self._rebirth_at - time.monotonic()))
                    self._cond.wait(wait)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == P.CONTROLLER_STATE_TOPIC:
            try:
                online = bool(json.loads(msg.payload).get("online"))
            except (ValueError, AttributeError):
                return
            if online and self._controller_online is False:
                # a controller came (back) online: it may have missed our birth — send it again, spread out in time
                with self._cond:
                    self._rebirth_at = time.monotonic() + random.uniform(0, self.rebirth_jitter_s)
                    self._cond.notify_all()
            self._controller_online = online
            return
        parsed = P.parse_topic(msg.topic)
        if parsed is None or parsed[0] != self.kiosk_id or parsed[1] != "cmd" or not parsed[2]:
            return
        try:
            self._cmd_queue.put_nowait((parsed[2], bytes(msg.payload)))
        except queue.Full:
            log.warning("command queue full; dropping command %s", parsed[2][:64])

    # commands -------------------------------------------------------------------------------------------------------
    def _result(self, command_id: str, status: str, reason: str = "", data: Mapping[str, Any] | None = None) -> None:
        ts = P.now_ms()
        payload = {"v": P.PROTOCOL_VERSION, "kiosk_id": self.kiosk_id, "ts": ts, "command_id": command_id,
                   "status": status, "reason": reason, "data": dict(data or {})}
        self.outbox.put("cmd-result", f"cmd-result/{command_id}", _scrub(payload), ts)
        with self._cond:
            self._cond.notify_all()

    def _builtin(self, name: str) -> CommandHandler | None:
        if name == "rebirth":
            def rebirth(_args: Mapping[str, Any]) -> CommandResult:
                self.request_rebirth()
                return CommandResult.done("birth requested")
            return rebirth
        if name == "self_test":
            def self_test(_args: Mapping[str, Any]) -> CommandResult:
                devices = P.device_models(self.status_source())
                bad = sorted(k for k, m in devices.items() if m["state"] not in ("ok", "degraded"))
                self.notify_changed()
                states = {k: m["state"] for k, m in devices.items()}
                return CommandResult(not bad, "all devices usable" if not bad else "not usable: " + ", ".join(bad),
                                     {"devices": states})
            return self_test
        return None

    def _command_loop(self) -> None:
        seen = SeenCommands(self.outbox)
        while True:
            item = self._cmd_queue.get()
            if item is None or self._stopping.is_set():
                return
            command_id, payload = item
            try:
                cmd = self.verifier.verify(payload, command_id, seen=seen)
            except CommandRejected as exc:
                self.stats["commands_rejected"] += 1
                log.warning("rejected command %s (%s): %s", command_id[:64], exc.name or "?", exc.reason)
                self._result(command_id[:64], "rejected", exc.reason)
                continue
            self.outbox.remember_command(cmd.id, cmd.expires_at, P.now_ms())
            handler = self.handlers.get(cmd.name) or self._builtin(cmd.name)
            if handler is None:
                log.warning("rejected command %s (%s): unsupported", cmd.id, cmd.name)
                self._result(cmd.id, "rejected", "unsupported")
                continue
            log.info("running command %s (%s) from %s", cmd.id, cmd.name, cmd.issuer)
            self._result(cmd.id, "accepted")
            try:
                outcome = handler(dict(cmd.args))
                if outcome is None or outcome is True:
                    outcome = CommandResult.done()
                elif outcome is False:
                    outcome = CommandResult.failed("handler reported failure")
            except Exception as exc:  # noqa: BLE001 - a failing handler is a failed command, not a dead agent
                log.exception("command %s (%s) failed", cmd.id, cmd.name)
                outcome = CommandResult.failed(type(exc).__name__)
            self.stats["commands_run"] += 1
            self._result(cmd.id, "done" if outcome.ok else "failed", outcome.detail, outcome.data)
            self.notify_changed()


def verify_keys(paths: Sequence[str | Path]) -> list[bytes]:
    """Read PEM public keys (for ``verify_key=``) from files."""
    return [Path(p).read_bytes() for p in paths]
