"""Fleet reports benchmark: report page and API latency over 90 days of journeys from 2,000 kiosks, and the
ingest rate of journey messages into the hourly/daily buckets.

1. Buckets written directly (no 90 days of MQTT): every kiosk × day gets the daily buckets of a day of sessions
   (one of 24 day profiles, each aggregated from 20–60 random sessions by the controller's own
   ``fleet.controller.reports.session_rows``), plus its district's and the fleet's rows (``journey_area_daily``);
   hourly buckets for the last ``--hourly-days`` days (the reports read the daily tables; the hourly one is kept 35
   days). Each day's rows are written in random order, as a day of live upserts from every kiosk leaves them (one
   district's or kiosk's rows on as many heap pages), then ``VACUUM ANALYZE`` (what autovacuum has done to 90 days).
2. A live burst: a real ``fleet-controller serve`` on that database is paused (SIGSTOP) while ``--burst`` journey
   messages (20 sessions each) from 200 kiosk connections queue at mosquitto, then resumed: the rate at which it
   drains them (messages and sessions per second, and its CPU per message) is the journey ingest rate.
3. Latency: the reports page and API (fleet, district, kiosk, service filters; 7, 30 and 90 days; CSV export),
   ``--requests`` each, p50/p95/max in ms (target p95 < 300 ms).

    .venv/bin/python bench/fleet_reports.py [--kiosks 2000] [--days 90] [--pg] [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from drivers.sim.process import ManagedProcess  # noqa: E402
from fleet import protocol as P  # noqa: E402
from fleet.agent.virtual import DISTRICTS  # noqa: E402
from fleet.broker import Mosquitto  # noqa: E402
from fleet.controller import reports as R  # noqa: E402
from fleet.controller.store import Store  # noqa: E402
from fleet.signing import generate_keypair  # noqa: E402

PY = sys.executable
PASSWORD = "bench-password"
SERVICES = ("print", "progress", "pay", "apply", "booking", "certificates", "delivery", "guide")
#: each service's screens in order (kiosk/journey.py reports them per service: the per-service funnel)
FLOWS = {"print": ["guide", "guide_detail", "print_confirm"], "progress": ["progress"], "pay": ["payment"],
         "apply": ["apply_notice", "apply_form", "payment"], "booking": ["appointment"],
         "certificates": ["certificates"], "delivery": ["delivery"], "guide": ["guide", "guide_detail"]}
TAGS = {1: ["long_wait", "complicated", "device_fault"], 2: ["unclear_guidance", "too_many_materials"], 3: [],
        4: ["easy_to_use"], 5: ["fast", "one_visit", "clear_guidance"]}


def random_session(rng: random.Random, start_s: float = 60.0) -> dict[str, Any]:
    card = rng.random() < 0.7
    steps: list[list[Any]] = [["attract", round(rng.uniform(1, 8), 1)]]
    if card:
        steps += [["card", round(rng.uniform(2, 10), 1)], ["face", round(rng.uniform(3, 20), 1)]]
    steps.append(["menu", round(rng.uniform(3, 30), 1)])
    outcome = rng.choices(["completed", "abandoned", "timed_out", "error", "out_of_service"], [70, 15, 10, 4, 1])[0]
    services = []
    if outcome != "abandoned" or rng.random() < 0.6:
        svc = rng.choice(SERVICES[:4] if rng.random() < 0.8 else SERVICES[4:])
        secs = round(rng.lognormvariate(4.2, 0.6), 1)
        flow = FLOWS[svc]
        screens = flow if outcome == "completed" else flow[:rng.randint(1, len(flow))]
        steps += [[sc, round(secs / len(screens), 1)] for sc in screens]
        services.append([svc, outcome, secs, screens])
    if outcome == "completed" and not services:
        outcome = "abandoned"
    ratings = []
    if outcome == "completed":
        steps.append(["done", 0.0])
        if rng.random() < 0.5:
            stars = rng.choices([1, 2, 3, 4, 5], [4, 4, 8, 24, 60])[0]
            ratings.append([services[0][0], stars, rng.sample(TAGS[stars], min(len(TAGS[stars]), rng.randint(0, 2)))])
    sid = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
    out = {"sid": sid, "start_s": start_s, "dur_s": round(sum(s[1] for s in steps), 1), "outcome": outcome,
           "at": "done" if outcome == "completed" else steps[-1][0],
           "err": "platform_unavailable" if outcome == "error" else None, "steps": steps, "services": services}
    if ratings:
        out["ratings"] = ratings
    return out


def day_profiles(rng: random.Random, n: int = 24) -> list[dict[tuple[str, str, str], list[float]]]:
    out = []
    for _ in range(n):
        acc: dict[tuple[str, str, str], list[float]] = {}
        for _s in range(rng.randint(20, 60)):
            for service, metric, key, k, secs in R.session_rows(random_session(rng)):
                a = acc.setdefault((service, metric, key), [0, 0.0])
                a[0] += k
                a[1] += secs
        out.append(acc)
    return out


def fill(store: Store, kiosks: list[tuple[str, str]], days: int, hourly_days: int, rng: random.Random) -> int:
    """The daily (and recent hourly) buckets of ``days`` days for every kiosk; returns the rows written."""
    profiles = day_profiles(rng)
    today = R.cst_day(P.now_ms())
    rows = 0
    conn = store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cols = "scope, day, service, metric, key, n, total"
        for d in range(days):
            day = today - d * R.DAY
            batch: list[tuple] = []
            district_acc: dict[tuple, list[float]] = {}
            hourly: list[tuple] = []
            rated: list[tuple] = []
            district_rated: dict[tuple, list[int]] = {}
            for kiosk_id, district in kiosks:
                prof = profiles[rng.randrange(len(profiles))]
                stars: dict[str, list[int]] = {}
                for (service, metric, key), (n, secs) in prof.items():
                    batch.append(("k:" + kiosk_id, day, service, metric, key, int(n), round(secs, 1)))
                    if metric == "rating":
                        stars.setdefault(service, [0] * 5)[int(key) - 1] += int(n)
                    for scope in ("d:" + district, "*"):
                        a = district_acc.setdefault((scope, day, service, metric, key), [0, 0.0])
                        a[0] += n
                        a[1] += secs
                rated += [(district, service, day, kiosk_id, *v) for service, v in stars.items()]
                for service, v in stars.items():
                    acc_r = district_rated.setdefault(("*", service, day, district), [0] * 5)
                    for i in range(5):
                        acc_r[i] += v[i]
                if d < hourly_days:
                    hour0 = day + 9 * R.HOUR - 8 * R.HOUR  # 09:00 CST onwards (stored by UTC hour)
                    for (service, metric, key), (n, secs) in prof.items():
                        h = hour0 + rng.randrange(9) * R.HOUR
                        hourly.append((h, kiosk_id, service, metric, key, int(n), round(secs, 1)))
            area = [(*k, int(v[0]), round(v[1], 1)) for k, v in district_acc.items()]
            for table, data in (("journey_daily", batch), ("journey_area_daily", area)):
                rng.shuffle(data)
                _write(store, cur, table, cols, data)
                rows += len(data)
            rated += [(*k, *v) for k, v in district_rated.items()]
            rng.shuffle(rated)
            if rated:
                _write(store, cur, "journey_kiosk_ratings", "district, service, day, kiosk_id, s1, s2, s3, s4, s5",
                       rated)
                rows += len(rated)
            if hourly:
                _write(store, cur, "journey_hourly", "hour, kiosk_id, service, metric, key, n, total", hourly)
                rows += len(hourly)
            conn.commit()
        conn.commit()
    finally:
        conn.close()
    return rows


def _write(store: Store, cur: Any, table: str, cols: str, rows: list[tuple]) -> None:
    if store.is_sqlite:
        marks = ",".join("?" * len(rows[0]))
        cur.executemany(f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({marks})", rows)
        return
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed_kiosks(store: Store, count: int) -> list[tuple[str, str]]:
    from sqlalchemy import insert

    from fleet.controller.store import devices, kiosks as kiosks_t

    now = P.now_ms()
    out = []
    krows, drows = [], []
    for i in range(count):
        kiosk_id = f"SW-{i + 1:05d}"
        district = DISTRICTS[i % len(DISTRICTS)][0]
        out.append((kiosk_id, district))
        krows.append({"kiosk_id": kiosk_id, "name": f"终端 {i + 1}", "district": district, "first_seen": now,
                      "last_seen": now})
        for kind in ("idcard", "receipt_printer"):
            paper = ("near-end" if i % 97 == 0 else "ok") if kind == "receipt_printer" else None
            drows.append({"kiosk_id": kiosk_id, "kind": kind, "state": "ok", "paper": paper, "mid": 0,
                          "changed_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(insert(kiosks_t), krows)
        conn.execute(insert(devices), drows)
    return out


class Controller:
    def __init__(self, broker: str, db: str, key: Path) -> None:
        self.proc = ManagedProcess([PY, "-m", "fleet.controller.cli", "serve", "--broker", broker, "--db", db,
                                    "--http", "127.0.0.1:0", "--signing-key", str(key), "--controller-id", "bench-r",
                                    "--log-level", "warning", "--demo"], "controller", start_timeout=60,
                                   env={"FLEET_ADMIN_PASSWORD": PASSWORD}, cwd=str(ROOT))
        self.url = "http://" + self.proc.endpoints["http"]
        self.http = httpx.Client(base_url=self.url, timeout=60)
        token = self.http.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        self.http.headers["Authorization"] = "Bearer " + token["access_token"]

    def stats(self) -> dict[str, Any]:
        try:
            return self.http.get("/api/v1/stats").json()["this"]
        except httpx.TransportError:   # a kept-alive connection the paused server dropped meanwhile: once more
            return self.http.get("/api/v1/stats").json()["this"]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.http.close()
        self.proc.stop(10)


def burst(broker: Mosquitto, controller: Controller, kiosks: list[tuple[str, str]], messages: int,
          rng: random.Random) -> dict[str, Any]:
    """Pause the controller, queue ``messages`` journey messages (20 sessions each) at the broker, resume: the
    drain rate."""
    senders = [k for k, _d in kiosks[:200]]
    clients = []
    for kiosk_id in senders:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{kiosk_id}")
        c.username_pw_set(kiosk_id)
        c.max_inflight_messages_set(1000)
        c.connect(broker.host, broker.port)
        c.loop_start()
        clients.append(c)
    sessions = [[random_session(rng, 30.0 + i) for i in range(20)] for _ in range(16)]
    before = controller.stats()["processed"]
    os.kill(controller.proc.pid, signal.SIGSTOP)
    infos = []
    mid0 = P.now_ms() * 1000
    now = P.now_ms()
    for i in range(messages):
        j = i % len(clients)
        payload = {"v": 1, "kiosk_id": senders[j], "ts": now, "bdSeq": 0, "seq": (i // len(clients)) % 256,
                   "mid": mid0 + i, "sessions": sessions[i % len(sessions)]}
        infos.append(clients[j].publish(f"fleet/v1/{senders[j]}/journey", P.dumps(payload), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    time.sleep(0.5)
    cpu0, t0 = controller.cpu_seconds(), time.monotonic()
    os.kill(controller.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 300
    while controller.stats()["processed"] - before < messages:
        if time.monotonic() > deadline:
            raise SystemExit("bench: the journey burst did not drain")
        time.sleep(0.05)
    wall, cpu = time.monotonic() - t0, controller.cpu_seconds() - cpu0
    for c in clients:
        c.loop_stop()
        c.disconnect()
    stats = controller.stats()
    return {"messages": messages, "sessions": messages * 20, "drain_s": round(wall, 2),
            "msg_s": round(messages / wall), "sessions_s": round(messages * 20 / wall),
            "cpu_us_per_msg": round(cpu / messages * 1e6, 1), "msg_per_cpu_s": round(messages / max(cpu, 1e-9)),
            "dead_letters": stats.get("dead_letters", 0)}


def latency(controller: Controller, kiosks: list[tuple[str, str]], requests: int) -> dict[str, Any]:
    today = R.cst_day(P.now_ms())
    label = R.day_label
    k, d = kiosks[len(kiosks) // 2]
    cases = {
        "page fleet 90 d": ("/reports", {"since": label(today - 89 * R.DAY)}),
        "page district 30 d": ("/reports", {"since": label(today - 29 * R.DAY), "district": d}),
        "page district 90 d": ("/reports", {"since": label(today - 89 * R.DAY), "district": d}),
        "page kiosk 90 d": ("/reports", {"since": label(today - 89 * R.DAY), "kiosk": k}),
        "api fleet 90 d": ("/api/v1/reports/journeys", {"since": label(today - 89 * R.DAY)}),
        "api fleet 90 d service": ("/api/v1/reports/journeys", {"since": label(today - 89 * R.DAY),
                                                                "service": "print"}),
        "api district 7 d": ("/api/v1/reports/journeys", {"since": label(today - 6 * R.DAY), "district": d}),
        "api kiosk 90 d": ("/api/v1/reports/journeys", {"since": label(today - 89 * R.DAY), "kiosk": k}),
        "csv services 90 d": ("/api/v1/reports/export.csv", {"since": label(today - 89 * R.DAY),
                                                             "section": "services"}),
        "csv ratings by district 90 d": ("/api/v1/reports/export.csv", {"since": label(today - 89 * R.DAY),
                                                                        "section": "ratings_by"}),
        "api availability 30 d": ("/api/v1/reports/availability", {"since": label(today - 29 * R.DAY)}),
    }
    out = {}
    for name, (path, params) in cases.items():
        controller.http.get(path, params=params).raise_for_status()  # warm
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            r = controller.http.get(path, params=params)
            times.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        times.sort()
        out[name] = {"p50_ms": round(statistics.median(times), 1),
                     "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
                     "max_ms": round(times[-1], 1)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--hourly-days", type=int, default=2)
    parser.add_argument("--burst", type=int, default=20000, help="journey messages (20 sessions each) in the burst")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg", action="store_true", help="run against a throw-away PostgreSQL")
    parser.add_argument("--db", help="database URL to use instead (an empty PostgreSQL database)")
    parser.add_argument("--quick", action="store_true", help="small run: 200 kiosks, 14 days, 2,000 messages")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        for name, full, small in (("kiosks", 2000, 200), ("days", 90, 14), ("burst", 20000, 2000),
                                  ("requests", 40, 15)):
            if getattr(args, name) == full:  # sizes given on the command line win
                setattr(args, name, small)
    rng = random.Random(16)
    pg = None
    with tempfile.TemporaryDirectory(prefix="fleet-reports-bench-") as tmp:
        work = Path(tmp)
        broker = controller = None
        try:
            if args.pg:
                from fleet.controller.tempdb import TempPostgres

                pg = TempPostgres().start()
                db = pg.url
            else:
                db = args.db or str(work / "fleet.db")
            store = Store(db)
            store.create_schema()
            kiosks = seed_kiosks(store, args.kiosks)
            t0 = time.monotonic()
            if not store.is_sqlite:   # COPY into unindexed tables, the primary keys built after (rows are unique)
                with store.engine.begin() as conn:
                    for table in ("journey_daily", "journey_area_daily", "journey_hourly", "journey_kiosk_ratings"):
                        conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            rows = fill(store, kiosks, args.days, args.hourly_days, rng)
            if not store.is_sqlite:
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("ALTER TABLE journey_daily ADD PRIMARY KEY (scope, day, service, metric, key)")
                    conn.exec_driver_sql("ALTER TABLE journey_area_daily ADD CONSTRAINT journey_area_daily_pkey "
                                         "PRIMARY KEY (scope, day, service, metric, key) INCLUDE (n, total)")
                    conn.exec_driver_sql("ALTER TABLE journey_hourly ADD PRIMARY KEY "
                                         "(hour, kiosk_id, service, metric, key)")
                    conn.exec_driver_sql("ALTER TABLE journey_kiosk_ratings ADD CONSTRAINT journey_kiosk_ratings_pkey "
                                         "PRIMARY KEY (district, service, day, kiosk_id) INCLUDE (s1, s2, s3, s4, s5)")
            fill_s = time.monotonic() - t0
            if not store.is_sqlite:   # what autovacuum did to 90 days of buckets (visibility map: index-only scans)
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            store.dispose()
            print(f"fleet_reports: {rows:,} bucket rows for {args.kiosks} kiosks × {args.days} days in {fill_s:.0f} s",
                  file=sys.stderr)
            broker = Mosquitto(work / "broker", max_queued_messages=2_000_000, anonymous=True).start()
            key, _pub = generate_keypair(work / "keys")
            controller = Controller(broker.url, db, key)
            ingest = burst(broker, controller, kiosks, args.burst, rng)
            print(f"fleet_reports: burst {json.dumps(ingest)}", file=sys.stderr)
            lat = latency(controller, kiosks, args.requests)
        finally:
            if controller is not None:
                controller.stop()
            if broker is not None:
                broker.stop()
            if pg is not None:
                pg.stop()
    result = {"kiosks": args.kiosks, "days": args.days, "bucket_rows": rows, "fill_s": round(fill_s, 1),
              "db": "PostgreSQL" if args.pg else ("given" if args.db else "SQLite"), "ingest": ingest,
              "latency": lat}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"fleet reports — {args.kiosks} kiosks × {args.days} days of journeys ({rows:,} bucket rows), "
          f"{result['db']}, {os.cpu_count()} cores")
    print(f"  journey ingest (drain of {ingest['messages']:,} messages × 20 sessions): {ingest['msg_s']:,} msg/s "
          f"= {ingest['sessions_s']:,} sessions/s wall, {ingest['cpu_us_per_msg']} µs controller CPU per message")
    worst = max(v["p95_ms"] for v in lat.values())
    for name, v in lat.items():
        print(f"  {name:<26} p50 {v['p50_ms']:>7} ms  p95 {v['p95_ms']:>7} ms  max {v['max_ms']:>7} ms")
    print(f"  worst p95 {worst} ms (target < 300 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
