"""A kiosk's history over a window, from the time series and the event log: sessions and pages per hour (from
counter deltas — a counter that goes down means the kiosk app restarted), paper level, faults per hour, platform
latency, CPU temperature and free disk."""
from __future__ import annotations

from typing import Any

from fleet.controller.store import Store
from fleet.protocol import now_ms

HOUR = 3_600_000


def _per_bucket(points: list[tuple[int, int]], since: int, until: int, bucket: int) -> list[tuple[int, float]]:
    start = since - since % bucket
    buckets = {start + i * bucket: 0.0 for i in range((until - start) // bucket + 1)}
    prev = None
    for ts, value in points:
        if prev is not None and ts >= since:
            delta = value - prev if value >= prev else value
            key = ts - ts % bucket
            if key in buckets:
                buckets[key] += delta
        prev = value
    return sorted(buckets.items())


def _downsample(points: list[tuple[int, float]], since: int, until: int, n: int = 240) -> list[tuple[int, float]]:
    if len(points) <= n:
        return points
    width = max(1, (until - since) // n)
    acc: dict[int, list[float]] = {}
    for ts, v in points:
        acc.setdefault(ts - (ts - since) % width, []).append(v)
    return [(ts, sum(vs) / len(vs)) for ts, vs in sorted(acc.items())]


def kiosk_history(store: Store, kiosk_id: str, hours: float = 24.0, until: int | None = None) -> dict[str, Any]:
    until = until or now_ms()
    since = until - int(hours * HOUR)
    rows = store.samples(kiosk_id, since - 6 * HOUR, until + 1,
                         ["sessions", "pages", "paper", "latency_ms", "cpu_temp", "disk_free_pct"])
    sessions = [(r[0], r[1]) for r in rows if r[1] is not None]
    pages = [(r[0], r[2]) for r in rows if r[2] is not None]
    paper_all = [(r[0], r[3]) for r in rows if r[3] is not None]
    paper: list[tuple[int, float]] = []
    before = [p for p in paper_all if p[0] < since]
    if before:
        paper.append((since, before[-1][1]))
    for ts, v in paper_all:
        if ts >= since and (not paper or paper[-1][1] != v):
            paper.append((ts, v))
    faults_per_hour = {}
    start = since - since % HOUR
    for i in range(int((until - start) // HOUR) + 1):
        faults_per_hour[start + i * HOUR] = 0.0
    for ts, _device, _code in store.fault_events(kiosk_id, since):
        key = ts - ts % HOUR
        if key in faults_per_hour:
            faults_per_hour[key] += 1
    series = lambda i: _downsample([(r[0], float(r[i])) for r in rows if r[i] is not None and r[0] >= since],  # noqa: E731
                                   since, until)
    return {"kiosk_id": kiosk_id, "since": since, "until": until, "bucket_ms": HOUR,
            "sessions_per_hour": _per_bucket(sessions, since, until, HOUR),
            "pages_per_hour": _per_bucket(pages, since, until, HOUR),
            "faults_per_hour": sorted(faults_per_hour.items()),
            "paper": paper,
            "latency_ms": series(4), "cpu_temp_c": series(5), "disk_free_pct": series(6)}
