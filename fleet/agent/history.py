"""Yesterday, replayed: publish a realistic day of a kiosk's history through the broker, as the kiosk itself would
have sent it (a session with its birth, heartbeats and alarms flagged historical, then a clean death).

For the demo and the dashboard's screenshots: the controller stores it through its normal ingest, so the history
charts have something to show. Sessions follow a government office's day (quiet at night, peaks mid-morning and
mid-afternoon), the paper runs low and out in the afternoon and is refilled, the card reader has one fault.
"""
from __future__ import annotations

import math
import random
import threading
from typing import Any

import paho.mqtt.client as mqtt

from fleet import protocol as P
from fleet.agent.virtual import VirtualKiosk
from fleet.mqtt import BrokerConfig, make_client

HOUR = 3_600_000


def _visits(hour_cst: float) -> float:
    """Citizens per hour at this time of day (China time)."""
    if hour_cst < 7.5 or hour_cst > 21:
        return 0.3
    return 2 + 14 * math.exp(-((hour_cst - 10) / 1.4) ** 2) + 11 * math.exp(-((hour_cst - 15) / 1.6) ** 2)


def day_of_history(kiosk: VirtualKiosk, until_ms: int, hours: float = 24.0, step_s: float = 600.0,
                   seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """[(message type, payload)] for the window before ``until_ms``: a birth, then data/alarm messages."""
    rnd = random.Random(seed)
    start = until_ms - int(hours * HOUR)
    bd = 200
    mid = (start - 60_000) * 1000
    seq = 0
    out: list[tuple[str, dict[str, Any]]] = []

    def nxt() -> tuple[int, int]:
        nonlocal mid, seq
        mid += 1
        seq = (seq + 1) % 256
        return mid, seq

    printer = {"state": "ok", "xfs": "online", "supplies": {"paper": "ok"}, "error_code": None, "error_text": "",
               "counters": {"pages": 0, "jobs_failed": 0}}
    reader = {"state": "ok", "xfs": "online", "error_code": None, "error_text": "", "counters": {"cards_read": 0}}
    out.append(("birth", {"v": 1, "kiosk_id": kiosk.kiosk_id, "ts": start, "seq": 0, "bdSeq": bd, "mid": mid,
                          "identity": {**kiosk.identity(), "agent_version": "1.0"}, "heartbeat_s": step_s,
                          "commands": ["rebirth", "self_test"], "devices": {"idcard": dict(reader),
                                                                            "receipt_printer": dict(printer)},
                          "host": {}, "service": "in_service", "counters": {"sessions": 0}}))
    sessions = pages = cards = 0.0
    paper = "ok"
    fault_at = start + int(hours * 0.55 * HOUR)
    t = start
    while t < until_ms:
        t += int(step_s * 1000)
        hour_cst = ((t / HOUR) + 8) % 24
        served = rnd.uniform(0.6, 1.4) * _visits(hour_cst) * step_s / 3600
        sessions += served
        pages += served * 1.3
        cards += served * 0.8
        printed = int(pages)
        # paper: near end at ~60 % of the window's pages, out at ~75 %, refilled 40 minutes later
        frac = (t - start) / (until_ms - start)
        new_paper = "near-end" if 0.58 <= frac < 0.72 else ("out" if 0.72 <= frac < 0.75 else "ok")
        events = []
        if new_paper != paper:
            if paper != "ok":
                events.append({"device": "receipt_printer", "code": f"paper_{paper.replace('-', '_')}",
                               "severity": "critical" if paper == "out" else "warning", "active": False})
            if new_paper != "ok":
                events.append({"device": "receipt_printer", "code": f"paper_{new_paper.replace('-', '_')}",
                               "severity": "critical" if new_paper == "out" else "warning", "active": True})
            paper = new_paper
        reader_state = "fault" if fault_at <= t < fault_at + int(step_s * 2000) else "ok"
        if reader_state != reader["state"]:
            events.append({"device": "idcard", "code": "device_fault", "severity": "critical",
                           "active": reader_state == "fault"})
        printer = {**printer, "state": {"ok": "ok", "near-end": "degraded", "out": "fault"}[paper],
                   "supplies": {"paper": paper}, "counters": {"pages": printed, "jobs_failed": 0},
                   "error_code": None if paper == "ok" else f"paper_{paper.replace('-', '_')}"}
        reader = {**reader, "state": reader_state, "error_code": "sam_failed" if reader_state == "fault" else None,
                  "counters": {"cards_read": int(cards)}}
        devices = {"idcard": reader, "receipt_printer": printer}
        if events:
            m, s = nxt()
            out.append(("alarm", {"v": 1, "kiosk_id": kiosk.kiosk_id, "ts": t, "events": events, "devices": devices,
                                  "mid": m, "seq": s, "bdSeq": bd, "historical": True}))
        m, s = nxt()
        host = {"uptime_s": int((t - start) / 1000) + 3600, "cpu_temp_c": round(46 + 6 * served / 3, 1),
                "disk_free_mb": 52000, "disk_free_pct": 61.5, "mem_used_pct": round(rnd.uniform(35, 42), 1),
                "platform_latency_ms": round(rnd.uniform(6, 14) + (25 if 9 <= hour_cst <= 11 else 0) *
                                             rnd.random(), 1)}
        out.append(("data", {"v": 1, "kiosk_id": kiosk.kiosk_id, "ts": t, "reason": "heartbeat", "devices": devices,
                             "host": host, "service": "in_service", "counters": {"sessions": int(sessions)},
                             "mid": m, "seq": s, "bdSeq": bd, "historical": True}))
    return out


def publish_history(broker_url: str, kiosk: VirtualKiosk, until_ms: int | None = None, hours: float = 24.0,
                    step_s: float = 600.0, timeout: float = 30.0) -> int:
    """Publish :func:`day_of_history` as the kiosk (its username, so the ACL allows it) and end that session with
    a clean death. Run it before the kiosk's agent starts. Returns the number of messages."""
    until_ms = until_ms or P.now_ms() - 60_000
    messages = day_of_history(kiosk, until_ms, hours, step_s)
    broker = BrokerConfig.from_url(broker_url).with_username(kiosk.kiosk_id)
    client = make_client(broker, f"{kiosk.kiosk_id}-history", protocol=mqtt.MQTTv311)  # credentials and TLS
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise TimeoutError("broker did not accept the history client")
        infos = [client.publish(P.topic(kiosk.kiosk_id, kind), P.dumps(payload), qos=1) for kind, payload in messages]
        infos.append(client.publish(P.topic(kiosk.kiosk_id, "death"), P.dumps(
            {"v": 1, "kiosk_id": kiosk.kiosk_id, "ts": until_ms, "bdSeq": 200, "reason": "shutdown"}), qos=1))
        for info in infos:
            info.wait_for_publish(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(infos)
