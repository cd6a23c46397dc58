"""Prometheus metrics of a controller (``GET /metrics``, exposition format, prometheus_client).

Computed at scrape time (a custom collector: nothing is added to the ingest path): the fleet-wide figures come from
the shared database (the same on every controller: kiosks online/offline per district, open alerts per severity,
dead letters kept, command durations), the ingest counters from this process (``controller`` label = its id).
Labels stay small and never name a citizen or a kiosk: ``district``, ``severity``, ``state``, ``controller``.

Access (api.py): a viewer session / bearer token, or the scrape token of ``serve --metrics-token-file FILE``
(``Authorization: Bearer <token>``); anonymous scrapes are 401.
"""
from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import and_, case, func, select

from fleet.controller.store import alerts, commands, dead_letters, kiosks

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: command issued → final result (seconds); commands wait for offline kiosks up to their expiry
COMMAND_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
FINISHED = ("succeeded", "failed", "rejected")
#: ingest counters of this process: stats key → (metric name, help)
COUNTERS = {
    "received": ("fleet_ingest_messages_received", "MQTT messages received by this controller"),
    "processed": ("fleet_ingest_messages_processed", "Messages validated and handed to the writer"),
    "stored": ("fleet_ingest_messages_stored", "Messages stored (time series rows)"),
    "duplicates": ("fleet_ingest_duplicates", "Messages already stored (redeliveries)"),
    "malformed": ("fleet_ingest_malformed", "Messages refused by validation"),
    "dead_letters": ("fleet_ingest_dead_letters", "Messages dead-lettered by this controller"),
    "db_errors": ("fleet_ingest_db_errors", "Database errors while writing (batch kept and retried)"),
    "flushes": ("fleet_ingest_flushes", "Write transactions"),
    "gaps": ("fleet_sequence_gaps", "Sequence gaps found (lost messages)"),
    "rebirths_requested": ("fleet_rebirths_requested", "Rebirth commands sent after a gap"),
}


class ControllerCollector:
    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        stats = c.public_stats()
        label = [c.id]
        for key, (name, doc) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=["controller"])
            family.add_metric(label, float(stats.get(key, 0) or 0))
            yield family
        queue = GaugeMetricFamily("fleet_ingest_queue", "Messages waiting between MQTT and the writer",
                                  labels=["controller"])
        queue.add_metric(label, float(stats.get("queue", 0)))
        yield queue
        up = GaugeMetricFamily("fleet_broker_connected", "1 when this controller is subscribed to the broker",
                               labels=["controller"])
        up.add_metric(label, 1.0 if stats.get("connected") else 0.0)
        yield up
        leader = GaugeMetricFamily("fleet_sweeper_leader", "1 when this controller holds the sweeper lease",
                                   labels=["controller"])
        leader.add_metric(label, 1.0 if stats.get("leader") else 0.0)
        yield leader
        yield from self._fleet(c.store)

    def _fleet(self, store: Any) -> Iterator[Metric]:
        with store.engine.connect() as conn:
            per_district = conn.execute(select(kiosks.c.district, kiosks.c.online, func.count())
                                        .group_by(kiosks.c.district, kiosks.c.online)).all()
            out_of_service = conn.execute(select(kiosks.c.district, func.count())
                                          .where(kiosks.c.service == "out_of_service")
                                          .group_by(kiosks.c.district)).all()
            by_severity = conn.execute(select(alerts.c.severity, func.count()).where(alerts.c.status == "open")
                                       .group_by(alerts.c.severity)).all()
            unacked = conn.execute(select(alerts.c.severity, func.count()).where(and_(
                alerts.c.status == "open", alerts.c.acked_at.is_(None))).group_by(alerts.c.severity)).all()
            kept = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
            took = commands.c.finished_at - commands.c.created_at
            finished = commands.c.status.in_(FINISHED) & commands.c.finished_at.is_not(None)
            row = conn.execute(select(
                func.count(), func.coalesce(func.sum(took), 0),
                *[func.coalesce(func.sum(case((took <= int(b * 1000), 1), else_=0)), 0) for b in COMMAND_BUCKETS]
            ).where(finished)).one()
            pending = conn.execute(select(commands.c.status, func.count())
                                   .where(commands.c.status.in_(("queued", "sent", "delivered")))
                                   .group_by(commands.c.status)).all()
        kiosk_family = GaugeMetricFamily("fleet_kiosks", "Kiosks known to the fleet, per district and state "
                                         "(online/offline)", labels=["district", "state"])
        counts: dict[tuple[str, str], int] = {}
        for district, online, n in per_district:
            key = (district or "unknown", "online" if online else "offline")
            counts[key] = counts.get(key, 0) + int(n)
        for district in {d for d, _ in counts}:
            for state in ("online", "offline"):
                kiosk_family.add_metric([district, state], float(counts.get((district, state), 0)))
        yield kiosk_family
        oos = GaugeMetricFamily("fleet_kiosks_out_of_service", "Kiosks out of service, per district",
                                labels=["district"])
        for district, n in out_of_service:
            oos.add_metric([district or "unknown"], float(n))
        yield oos
        open_alerts = GaugeMetricFamily("fleet_alerts_open", "Open alerts, per severity", labels=["severity"])
        have = dict(by_severity)
        for severity in sorted({"critical", "major", "minor", "warning", *have}):
            open_alerts.add_metric([severity], float(have.get(severity, 0)))
        yield open_alerts
        not_acked = GaugeMetricFamily("fleet_alerts_unacknowledged", "Open alerts nobody acknowledged yet, per "
                                      "severity", labels=["severity"])
        have = dict(unacked)
        for severity in sorted({"critical", "major", "minor", "warning", *have}):
            not_acked.add_metric([severity], float(have.get(severity, 0)))
        yield not_acked
        dead = GaugeMetricFamily("fleet_dead_letters_kept", "Dead letters kept in the database (all controllers; "
                                 "pruned with the events, at most 10,000)")
        dead.add_metric([], float(kept))
        yield dead
        count, total_ms, *cumulative = row
        histogram = HistogramMetricFamily("fleet_command_duration_seconds", "Command issued → final result "
                                          "(succeeded, failed, rejected) on the kiosk, all controllers")
        buckets = [(_le(b), float(n)) for b, n in zip(COMMAND_BUCKETS, cumulative)] + [("+Inf", float(count))]
        histogram.add_metric([], buckets, sum_value=float(total_ms) / 1000.0)
        yield histogram
        waiting = GaugeMetricFamily("fleet_commands_pending", "Commands not finished yet, per status",
                                    labels=["status"])
        have = dict(pending)
        for status in ("queued", "sent", "delivered"):
            waiting.add_metric([status], float(have.get(status, 0)))
        yield waiting


def _le(bound: float) -> str:
    return repr(float(bound))


def registry_for(controller: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(controller))  # type: ignore[arg-type]
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def load_token(path: str | os.PathLike[str] | None) -> str | None:
    """The scrape token (first line of the file, ≥ 16 characters), or None when not configured."""
    if not path:
        return None
    lines = Path(path).read_text(encoding="utf-8").strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise ValueError(f"{path}: the metrics token must have at least 16 characters")
    return token


def token_ok(expected: str | None, authorization: str | None) -> bool:
    if not expected or not authorization or not authorization.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode("utf-8"), expected.encode("utf-8"))
