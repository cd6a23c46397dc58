"""The controller's storage: SQLite by default (one file, WAL, batched commits) or PostgreSQL given a URL — the same
SQL for both (SQLAlchemy Core for the schema and queries; plain DB-API ``executemany`` on the ingest path).

Tables
  kiosks      latest state per kiosk (identity, online/offline with bdSeq, service mode, counters, host health)
  devices     latest state per kiosk and device (guarded by the kiosk's message number ``mid``: newest wins)
  samples_dYYYYMMDD  the health time series, one table per UTC day; retention drops whole days
              (unique per kiosk and ``mid``: an outbox replay or a QoS 1 redelivery is stored once)
  events      alarm events and security events (rejected commands) — the fault history
  alerts      open/cleared alerts; at most one open per (kiosk, rule, device) through a unique ``open_key``
  commands    remote commands and their lifecycle
  operators   dashboard users (scrypt password hashes, role viewer · operator · admin, disabled mark)
  operator_sessions  server-side sessions (SHA-256 of the token, last use, expiry, revocation, client address)
  login_failures     failed logins, for throttling per user name and per client address
  leases      which controller runs the periodic jobs (sweeper, sequence audit)
  controllers each controller process's ingest counters
  audit_heads each kiosk's newest audit chain head (seq, hash, epoch; guarded by ``mid``) and whether it ever went
              backwards (rule ``audit_chain_broken``)
  app_alarms  each kiosk's application alarms (device ``app``) by code: active or not, severity, text (guarded by
              ``mid``: newest wins) — rule ``app_alarm``
  seq_log     per-flush (kiosk, bdSeq, seq) runs for the cross-controller sequence audit (kept two minutes)
  settings    shared secrets (the dashboard's CSRF key) and settings (``report_settings``: opening hours)
  journey_seen / journey_hourly / journey_daily / journey_area_daily / journey_kiosk_ratings  anonymous journeys,
              aggregated at ingest (fleet/controller/reports.py)

All times are integer milliseconds since the epoch (UTC).
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import orjson
from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, String,
                        Table, Text, and_, create_engine, delete, event, func, insert, inspect, or_, select, text,
                        update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

DEFAULT_DB = Path("var") / "fleet" / "fleet.db"
SAMPLE_PREFIX = "samples_d"

metadata = MetaData()

kiosks = Table(
    "kiosks", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("district", Text, nullable=False, default=""),
    Column("location", Text, nullable=False, default=""),
    Column("app_version", String(40), nullable=False, default=""),
    Column("profile_hash", String(80), nullable=False, default=""),
    Column("agent_version", String(20), nullable=False, default=""),
    Column("heartbeat_s", Float, nullable=False, default=30.0),
    Column("commands", Text, nullable=False, default="[]"),
    Column("service", String(20), nullable=False, default="in_service"),
    Column("announcement", Text),
    Column("online", Boolean, nullable=False, default=False),
    Column("state", String(12), nullable=False, default="offline"),
    Column("bd_seq", Integer, nullable=False, default=-1),
    Column("birth_mid", BigInteger, nullable=False, default=-1),
    Column("birth_ts", BigInteger, nullable=False, default=0),
    Column("kiosk_mid", BigInteger, nullable=False, default=-1),
    Column("last_mid", BigInteger, nullable=False, default=-1),
    Column("first_seen", BigInteger, nullable=False, default=0),
    Column("last_seen", BigInteger, nullable=False, default=0),
    Column("born_at", BigInteger),
    Column("offline_since", BigInteger),
    Column("offline_reason", String(40)),
    Column("host", Text, nullable=False, default="{}"),
    Column("counters", Text, nullable=False, default="{}"),
    Column("gap_open", Boolean, nullable=False, default=False),
    Column("gap_detail", Text),
)
Index("kiosks_district", kiosks.c.district)

devices = Table(
    "devices", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("paper", String(10)),
    Column("error_code", String(40)),
    Column("error_text", Text),
    Column("counters", Text, nullable=False, default="{}"),
    Column("xfs", String(20)),
    Column("mid", BigInteger, nullable=False),
    Column("changed_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("device", String(40), nullable=False, default=""),
    Column("code", String(40), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("text", Text, nullable=False, default=""),
)
Index("events_kiosk_ts", events.c.kiosk_id, events.c.ts)
Index("events_ts", events.c.ts)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("rule", String(30), nullable=False),
    Column("device", String(40), nullable=False, default=""),
    Column("severity", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("open_key", String(160), unique=True),
    Column("detail", Text, nullable=False, default=""),
    Column("opened_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("cleared_at", BigInteger),
    Column("hits", Integer, nullable=False, default=1),
    Column("acked_by", String(64)),
    Column("acked_at", BigInteger),
)
Index("alerts_status", alerts.c.status, alerts.c.opened_at)
Index("alerts_kiosk", alerts.c.kiosk_id, alerts.c.opened_at)

audit_heads = Table(
    "audit_heads", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("mid", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("epoch", Integer, nullable=False, default=0),
    Column("updated_at", BigInteger, nullable=False),
    Column("broken", Boolean, nullable=False, default=False),
    Column("detail", Text),
    Column("broken_at", BigInteger),
)

#: application alarms per kiosk and code (rule ``app_alarm``): the newest event by the kiosk's message number; an
#: acknowledged one-shot alarm is set inactive (its ``mid`` kept, so a redelivery of the same event does not reopen it)
app_alarms = Table(
    "app_alarms", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("severity", String(10), nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("mid", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

commands = Table(
    "commands", metadata,
    Column("id", String(64), primary_key=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("name", String(40), nullable=False),
    Column("args", Text, nullable=False, default="{}"),
    Column("status", String(12), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("data", Text, nullable=False, default="{}"),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    Column("accepted_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)
Index("commands_kiosk", commands.c.kiosk_id, commands.c.created_at)
Index("commands_status", commands.c.status)

operators = Table(
    "operators", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("display_name", Text, nullable=False, default=""),
    Column("role", String(20), nullable=False, default="operator"),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
)

# server-side dashboard/API sessions (fleet.controller.auth): only the token's SHA-256 is kept
operator_sessions = Table(
    "operator_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("kind", String(10), nullable=False, default="cookie"),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("revoked_reason", String(40)),
    Column("client_addr", String(64), nullable=False, default=""),
)
Index("operator_sessions_user", operator_sessions.c.username)

# failed logins, for throttling per user name and per client address (kept twice the window)
login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("username", String(64), nullable=False),
    Column("client_addr", String(64), nullable=False),
)
Index("login_failures_user", login_failures.c.username, login_failures.c.ts)
Index("login_failures_addr", login_failures.c.client_addr, login_failures.c.ts)

leases = Table(
    "leases", metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(80), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

controllers = Table(
    "controllers", metadata,
    Column("id", String(80), primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("stats", Text, nullable=False, default="{}"),
)

seq_log = Table(
    "seq_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ingested_at", BigInteger, nullable=False),
    Column("controller", String(80), nullable=False),
    Column("entries", Text, nullable=False),
)
Index("seq_log_ingested", seq_log.c.ingested_at)

settings = Table(
    "settings", metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

#: messages the ingest refused (malformed, out of bounds, or a value the store could not write): kept for operators,
#: never retried. ``payload`` is the start of the message, scrubbed like any free text (payloads carry no personal
#: data by design; the scrub is the last line of defence for a misbehaving sender)
dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kiosk_id", String(64), nullable=False, default=""),
    Column("topic", String(200), nullable=False, default=""),
    Column("reason", String(60), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("size", Integer, nullable=False, default=0),
    Column("payload", Text, nullable=False, default=""),
    Column("controller", String(80), nullable=False, default=""),
)
Index("dead_letters_received", dead_letters.c.received_at)
DEAD_LETTERS_KEPT = 10_000

#: anonymous journeys (topic ``journey``), aggregated at ingest (fleet/controller/reports.py) — never kept raw.
#: ``journey_seen``: which journey messages were counted (an outbox replay or a redelivery counts once);
#: ``journey_hourly``: per UTC hour, kiosk, service ('' for the whole session), metric and key (a screen, a funnel
#: step, an outcome, a duration bin): a count and a sum of seconds; ``journey_daily``: the same per CST day and
#: scope ``k:<kiosk>``; ``journey_area_daily``: per CST day for ``d:<district>`` (the kiosk's district when counted)
#: and ``*`` (the fleet) — what the report pages read, so a page over 90 days reads a few thousand rows whatever the
#: fleet's size. The areas have their own small table (a few hundred rows a day) whose primary key carries the counts
#: on PostgreSQL: kept apart from the kiosks' rows, live upserts cannot scatter a district's rows over the pages of
#: every kiosk's (fleet/controller/reports_schema.py moves them out of ``journey_daily`` of older databases).
journey_seen = Table(
    "journey_seen", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("mid", BigInteger, primary_key=True),
    Column("recv", BigInteger, nullable=False),
)
Index("journey_seen_recv", journey_seen.c.recv)
journey_hourly = Table(
    "journey_hourly", metadata,
    Column("hour", BigInteger, primary_key=True),
    Column("kiosk_id", String(64), primary_key=True),
    Column("service", String(40), primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("n", BigInteger, nullable=False, default=0),
    Column("total", Float, nullable=False, default=0.0),
)
journey_daily = Table(
    "journey_daily", metadata,
    Column("scope", String(80), primary_key=True),
    Column("day", BigInteger, primary_key=True),
    Column("service", String(40), primary_key=True),
    Column("metric", String(16), primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("n", BigInteger, nullable=False, default=0),
    Column("total", Float, nullable=False, default=0.0),
)
journey_area_daily = Table(
    "journey_area_daily", metadata,
    Column("scope", String(80), nullable=False),
    Column("day", BigInteger, nullable=False),
    Column("service", String(40), nullable=False),
    Column("metric", String(16), nullable=False),
    Column("key", String(40), nullable=False),
    Column("n", BigInteger, nullable=False, default=0),
    Column("total", Float, nullable=False, default=0.0),
    PrimaryKeyConstraint("scope", "day", "service", "metric", "key", name="journey_area_daily_pkey",
                         postgresql_include=["n", "total"]),
)
#: ratings per kiosk and CST day, by the kiosk's district (``journey_daily`` holds them per scope): what the reports
#: read for "ratings per kiosk of a district" — one row per kiosk and day (service '' = all), counts per star; under
#: district '*' the same per district of the fleet (``kiosk_id`` holds the district's name). On PostgreSQL the
#: primary key carries the counts (``INCLUDE``): a district's 90 days are read by an index-only scan instead of one
#: heap page per row (fleet/controller/reports_schema.py migrates older databases)
journey_kiosk_ratings = Table(
    "journey_kiosk_ratings", metadata,
    Column("district", Text, nullable=False),
    Column("service", String(40), nullable=False),
    Column("day", BigInteger, nullable=False),
    Column("kiosk_id", String(64), nullable=False),
    *(Column(f"s{i}", BigInteger, nullable=False, default=0) for i in range(1, 6)),
    PrimaryKeyConstraint("district", "service", "day", "kiosk_id", name="journey_kiosk_ratings_pkey",
                         postgresql_include=[f"s{i}" for i in range(1, 6)]),
)

SEVERITY_RANK = {"info": 0, "warning": 1, "major": 2, "critical": 3}
COMMAND_RANK = {"queued": 0, "sent": 1, "delivered": 2, "succeeded": 3, "failed": 3, "rejected": 3,
                "timed_out": 3, "expired": 3}
FINAL_COMMAND_STATES = ("succeeded", "failed", "rejected", "timed_out", "expired")


def normalize_db_url(db: str | Path | None) -> str:
    """A SQLAlchemy URL or a file path (→ SQLite); ``postgresql://`` uses psycopg 3."""
    text_ = str(db if db is not None else DEFAULT_DB)
    if text_.startswith("postgres://"):
        text_ = "postgresql://" + text_[len("postgres://"):]
    if text_.startswith("postgresql://"):
        return "postgresql+psycopg://" + text_[len("postgresql://"):]
    if "://" in text_:
        return text_
    return f"sqlite:///{Path(text_).expanduser().resolve()}"


_DAYS: dict[int, str] = {}


def day_of(ts_ms: int) -> str:
    day = ts_ms // 86_400_000
    name = _DAYS.get(day)
    if name is None:
        name = _DAYS[day] = dt.datetime.fromtimestamp(day * 86400, dt.timezone.utc).strftime("%Y%m%d")
    return name


def days_between(since_ms: int, until_ms: int) -> list[str]:
    start = dt.datetime.fromtimestamp(since_ms / 1000, dt.timezone.utc).date()
    end = dt.datetime.fromtimestamp(until_ms / 1000, dt.timezone.utc).date()
    out = []
    while start <= end:
        out.append(start.strftime("%Y%m%d"))
        start += dt.timedelta(days=1)
    return out


SAMPLE_COLUMNS = ("kiosk_id", "ts", "recv", "mid", "bd_seq", "seq", "kind", "paper", "sessions", "pages", "cards",
                  "faults", "cpu_temp", "disk_free_pct", "mem_used_pct", "latency_ms")


@dataclass
class Batch:
    """What one flush of the ingest writes, in one transaction."""

    samples: list[tuple] = field(default_factory=list)
    births: dict[str, dict[str, Any]] = field(default_factory=dict)
    kiosk_seen: dict[str, list[int]] = field(default_factory=dict)      # kiosk → [last_seen, last_mid]
    kiosk_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # kiosk → {mid, service, …}
    deaths: list[tuple[str, int, int, str]] = field(default_factory=list)  # kiosk, bdSeq, recv, reason
    devices: dict[tuple[str, str], tuple] = field(default_factory=dict)   # (kiosk, kind) → row, newest mid
    events: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    seq_entries: list[list[Any]] = field(default_factory=list)  # runs: [kiosk, bdSeq, seq, kind, recv, count]
    seq_runs: dict[str, list[Any]] = field(default_factory=dict)   # kiosk → its last run in seq_entries
    candidates: set[str] = field(default_factory=set)
    alarm_hits: set[tuple[str, str, str]] = field(default_factory=set)    # (kiosk, rule, device) re-reported
    # (kiosk, code) → (kiosk, code, active, severity, text, mid, ts): the newest application alarm event per code
    app_alarms: dict[tuple[str, str], tuple] = field(default_factory=dict)
    audit_heads: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)  # kiosk → [(mid, head)]
    # kiosk → [[device set, newest mid, its recv] per run of messages, (mid, service, announcement, counters, host)
    # of the newest message with kiosk fields]: what the controller settles latest state from before writing
    latest: dict[str, list[Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)  # rows for the dead_letters table
    journeys: list[tuple[str, int, int, int, list[Any]]] = field(default_factory=list)  # kiosk, mid, ts, recv, sessions

    def __len__(self) -> int:
        return len(self.samples) + len(self.deaths) + len(self.results) + len(self.journeys)

    def log_seq(self, kiosk_id: str, bd: int, seq: int, kind: str, recv: int) -> None:
        """Log a message's (bdSeq, seq) for the sequence audit: consecutive seqs of one kiosk in this batch make one
        run ``[kiosk, bdSeq, first seq, first kind, first recv, count]`` (a birth always starts a new run)."""
        run = self.seq_runs.get(kiosk_id)
        if run is not None and kind != "B" and run[1] == bd and (run[2] + run[5]) & 255 == seq:
            run[5] += 1
            return
        run = self.seq_runs[kiosk_id] = [kiosk_id, bd, seq, kind, recv, 1]
        self.seq_entries.append(run)


class Store:
    def __init__(self, url: str | Path | None = None, pool_size: int = 5) -> None:
        self.url = normalize_db_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
            else:
                path = self.url.split("sqlite:///", 1)[-1].split("?", 1)[0]
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        self.ph = "?" if self.is_sqlite else "%s"
        self.greatest = "MAX" if self.is_sqlite else "GREATEST"
        self._partitions: set[str] = set()
        self._part_lock = threading.Lock()
        self._known_kiosks: set[str] = set()
        self._sql_cache: dict[str, str] = {}

    # schema ----------------------------------------------------------------------------------------------------
    def create_schema(self) -> None:
        from fleet.controller.reports_schema import migrate as migrate_reports

        metadata.create_all(self.engine)
        self._add_missing_columns()
        migrate_reports(self)
        self.refresh_partitions()

    def _add_missing_columns(self) -> None:
        """Columns added since a database was created (create_all adds tables, not columns)."""
        have = {c["name"] for c in inspect(self.engine).get_columns("operators")}
        if "disabled_at" not in have:
            try:
                with self.engine.begin() as conn:
                    conn.execute(text("ALTER TABLE operators ADD COLUMN disabled_at BIGINT"))
            except Exception:  # noqa: BLE001 - another controller added it first
                pass

    def refresh_partitions(self) -> set[str]:
        names = {n for n in inspect(self.engine).get_table_names() if n.startswith(SAMPLE_PREFIX)}
        with self._part_lock:
            self._partitions = names
        return names

    def partitions(self) -> list[str]:
        with self._part_lock:
            return sorted(self._partitions)

    def _ensure_partition(self, day: str) -> str:
        name = SAMPLE_PREFIX + day
        if name in self._partitions:
            return name
        real = "REAL"
        ddl = (f"CREATE TABLE IF NOT EXISTS {name} (kiosk_id VARCHAR(64) NOT NULL, ts BIGINT NOT NULL, "
               f"recv BIGINT NOT NULL, mid BIGINT NOT NULL, bd_seq SMALLINT NOT NULL, seq SMALLINT NOT NULL, "
               f"kind CHAR(1) NOT NULL, paper SMALLINT, sessions INTEGER, pages INTEGER, cards INTEGER, "
               f"faults SMALLINT, cpu_temp {real}, disk_free_pct {real}, mem_used_pct {real}, latency_ms {real}, "
               f"PRIMARY KEY (kiosk_id, mid))")
        # another controller may create the same day at the same moment: do it in its own transaction
        with self.engine.begin() as ddl_conn:
            ddl_conn.exec_driver_sql(ddl)
        with self._part_lock:
            self._partitions.add(name)
        return name

    def drop_partitions_before(self, cutoff_ms: int) -> list[str]:
        """Retention: drop whole days older than the cutoff's day."""
        cutoff = SAMPLE_PREFIX + day_of(cutoff_ms)
        dropped = []
        for name in sorted(self.refresh_partitions()):
            if name < cutoff:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
                dropped.append(name)
        if dropped:
            with self._part_lock:
                self._partitions -= set(dropped)
        return dropped

    def _sql(self, key: str, template: str) -> str:
        sql = self._sql_cache.get(key)
        if sql is None:
            sql = template.replace("?", self.ph).replace("GREATEST", self.greatest)
            self._sql_cache[key] = sql
        return sql

    # ingest ----------------------------------------------------------------------------------------------------
    def write_batch(self, batch: Batch, controller_id: str, now: int) -> dict[str, int]:
        """Write one flush in one transaction; returns {"stored": n, "duplicates": n}."""
        try:
            return self._write_batch(batch, controller_id, now)
        except Exception:
            self._known_kiosks.clear()  # the cache may name rows that were rolled back
            raise

    def _write_batch(self, batch: Batch, controller_id: str, now: int) -> dict[str, int]:
        stored = 0
        by_day: dict[str, list[tuple]] = {}
        for row in batch.samples:
            by_day.setdefault(day_of(row[1]), []).append(row)
        # new day tables first, each in its own transaction: never while this batch holds SQLite's write lock
        names = {day: self._ensure_partition(day) for day in by_day}
        with self.engine.begin() as conn:
            for day, rows in by_day.items():
                name = names[day]
                cols = ",".join(SAMPLE_COLUMNS)
                marks = ",".join([self.ph] * len(SAMPLE_COLUMNS))
                if self.is_sqlite:
                    cur = conn.exec_driver_sql(f"INSERT OR IGNORE INTO {name} ({cols}) VALUES ({marks})", rows)
                    stored += max(cur.rowcount, 0)
                else:
                    stored += self._copy_samples(conn, name, rows, again=len(by_day) > 1)
            self._ensure_kiosks(conn, set(batch.kiosk_seen) | {d[0] for d in batch.deaths}, now)
            # rows in kiosk order: controllers sharing a PostgreSQL database then lock them in the same order
            # (arrival order differs between controllers and made their transactions deadlock)
            for kiosk_id, birth in sorted(batch.births.items()):
                self._apply_birth(conn, kiosk_id, birth)
            if batch.kiosk_seen:
                # one statement per kiosk: liveness always, its own fields only from a newer message
                sql = self._sql("kupdate", (
                    "UPDATE kiosks SET last_seen = GREATEST(last_seen, ?), last_mid = GREATEST(last_mid, ?), "
                    "service = CASE WHEN kiosk_mid < ? THEN COALESCE(?, service) ELSE service END, "
                    "announcement = CASE WHEN kiosk_mid < ? THEN COALESCE(?, announcement) ELSE announcement END, "
                    "counters = CASE WHEN kiosk_mid < ? THEN COALESCE(?, counters) ELSE counters END, "
                    "host = CASE WHEN kiosk_mid < ? THEN COALESCE(?, host) ELSE host END, "
                    "kiosk_mid = GREATEST(kiosk_mid, ?) WHERE kiosk_id = ?"))
                rows_k = []
                for k, (seen_at, seen_mid) in sorted(batch.kiosk_seen.items()):
                    f = batch.kiosk_fields.get(k) or {}
                    fm = f.get("mid", -1)
                    rows_k.append((seen_at, seen_mid, fm, f.get("service"), fm, f.get("announcement"), fm,
                                   f.get("counters"), fm, f.get("host"), fm, k))
                conn.exec_driver_sql(sql, rows_k)
            if batch.devices:
                conn.exec_driver_sql(self._sql("devices", (
                    "INSERT INTO devices (kiosk_id, kind, state, paper, error_code, error_text, counters, xfs, mid, "
                    "changed_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (kiosk_id, kind) DO UPDATE "
                    "SET state = excluded.state, paper = excluded.paper, error_code = excluded.error_code, "
                    "error_text = excluded.error_text, counters = excluded.counters, xfs = excluded.xfs, "
                    "mid = excluded.mid, updated_at = excluded.updated_at, changed_at = CASE WHEN "
                    "devices.state = excluded.state AND COALESCE(devices.paper, '') = COALESCE(excluded.paper, '') "
                    "AND COALESCE(devices.error_code, '') = COALESCE(excluded.error_code, '') "
                    "THEN devices.changed_at ELSE excluded.changed_at END WHERE excluded.mid > devices.mid")),
                    [batch.devices[key] for key in sorted(batch.devices)])
            for kiosk_id, bd, recv, reason in batch.deaths:
                conn.execute(update(kiosks).where(and_(kiosks.c.kiosk_id == kiosk_id, kiosks.c.bd_seq == bd,
                                                       kiosks.c.online.is_(True)))
                             .values(online=False, state="offline", offline_since=recv, offline_reason=reason))
            if batch.events:
                conn.execute(insert(events), batch.events)
            if batch.app_alarms:
                conn.exec_driver_sql(self._sql("app_alarms", (
                    "INSERT INTO app_alarms (kiosk_id, code, active, severity, text, mid, ts, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (kiosk_id, code) DO UPDATE SET active = excluded.active, "
                    "severity = excluded.severity, text = excluded.text, mid = excluded.mid, ts = excluded.ts, "
                    "updated_at = excluded.updated_at WHERE excluded.mid > app_alarms.mid")),
                    [(*batch.app_alarms[key], now) for key in sorted(batch.app_alarms)])
            forged = []
            for result in batch.results:
                if not self._apply_result(conn, result) and result["status"] == "rejected":
                    forged.append({"kiosk_id": result["kiosk_id"], "ts": result["recv"], "device": "",
                                   "code": "command_rejected", "severity": "critical", "active": True,
                                   "text": f"kiosk rejected command {result['command_id'][:64]} not issued by a "
                                           f"controller: {result.get('reason') or ''}"})
            if forged:
                conn.execute(insert(events), forged)
            if batch.dead_letters:
                conn.execute(insert(dead_letters), batch.dead_letters)
            if batch.journeys:
                from fleet.controller.reports import forget_district, write_journeys

                for kiosk_id in batch.births:  # a birth may have moved the kiosk to another district
                    forget_district(self, kiosk_id)
                stored += write_journeys(self, conn, batch.journeys)
            if batch.seq_entries:
                conn.execute(insert(seq_log).values(ingested_at=now, controller=controller_id,
                                                    entries=orjson.dumps(batch.seq_entries).decode()))
        return {"stored": stored, "duplicates": len(batch.samples) + len(batch.journeys) - stored,
                "forged": len(forged)}

    @staticmethod
    def _copy_samples(conn: Connection, name: str, rows: list[tuple], again: bool = False) -> int:
        """PostgreSQL: COPY the rows into a temporary table (emptied at commit), then one INSERT … SELECT that skips
        what is stored already (a redelivery, an outbox replay); returns how many were new. ``again``: another day
        of this batch may have used the table in this transaction."""
        cols = ",".join(SAMPLE_COLUMNS)
        with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS samples_in (LIKE {name}) ON COMMIT DELETE ROWS")
            if again:
                cur.execute("DELETE FROM samples_in")
            with cur.copy(f"COPY samples_in ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM samples_in ON CONFLICT DO NOTHING")
            return max(cur.rowcount, 0)

    def _ensure_kiosks(self, conn: Connection, ids: Iterable[str], now: int) -> None:
        """A row for every kiosk heard from (data may arrive before its birth, e.g. after a controller restart)."""
        missing = sorted(k for k in ids if k not in self._known_kiosks)
        if not missing:
            return
        sql = self._sql("newkiosk", (
            ("INSERT OR IGNORE" if self.is_sqlite else "INSERT") +
            " INTO kiosks (kiosk_id, first_seen, last_seen, name, district, location, app_version, profile_hash, "
            "agent_version, heartbeat_s, commands, service, online, state, bd_seq, birth_mid, birth_ts, kiosk_mid, "
            "last_mid, host, counters, gap_open) VALUES (?, ?, ?, '', '', '', '', '', '', 30, '[]', 'in_service', "
            "false, 'offline', -1, -1, 0, -1, -1, '{}', '{}', false)" +
            ("" if self.is_sqlite else " ON CONFLICT DO NOTHING")))
        for chunk in _chunks(missing, 500):
            have = {r[0] for r in conn.execute(select(kiosks.c.kiosk_id).where(kiosks.c.kiosk_id.in_(chunk)))}
            new = [(k, now, now) for k in chunk if k not in have]
            if new:
                conn.exec_driver_sql(sql, new)
        self._known_kiosks.update(missing)

    def _apply_birth(self, conn: Connection, kiosk_id: str, b: Mapping[str, Any]) -> None:
        values = {k: b[k] for k in ("name", "district", "location", "app_version", "profile_hash", "agent_version",
                                    "heartbeat_s", "commands", "service", "announcement", "host", "counters")}
        res = conn.execute(
            update(kiosks).where(and_(kiosks.c.kiosk_id == kiosk_id,
                                      or_(kiosks.c.birth_mid < b["mid"], kiosks.c.birth_ts < b["ts"])))
            .values(**values, online=True, bd_seq=b["bdSeq"], birth_mid=b["mid"], birth_ts=b["ts"],
                    kiosk_mid=b["mid"], born_at=b["recv"], offline_since=None, offline_reason=None,
                    gap_open=False, gap_detail=None, state="ok"))
        if res.rowcount == 0:
            return  # an older birth than the one already applied
        conn.execute(delete(devices).where(and_(devices.c.kiosk_id == kiosk_id,
                                                devices.c.kind.notin_(list(b["devices"]) or [""]))))
        for kind, row in b["devices"].items():
            existing = conn.execute(select(devices.c.state, devices.c.paper, devices.c.error_code,
                                           devices.c.changed_at)
                                    .where(and_(devices.c.kiosk_id == kiosk_id, devices.c.kind == kind))).first()
            changed_at = b["recv"]
            if existing is not None and (existing.state, existing.paper, existing.error_code) == \
                    (row["state"], row["paper"], row["error_code"]):
                changed_at = existing.changed_at
            values = {"state": row["state"], "paper": row["paper"], "error_code": row["error_code"],
                      "error_text": row["error_text"], "counters": row["counters"], "xfs": row["xfs"],
                      "mid": b["mid"], "changed_at": changed_at, "updated_at": b["recv"]}
            if existing is None:
                conn.execute(insert(devices).values(kiosk_id=kiosk_id, kind=kind, **values))
            else:
                conn.execute(update(devices).where(and_(devices.c.kiosk_id == kiosk_id, devices.c.kind == kind))
                             .values(**values))

    def _apply_result(self, conn: Connection, r: Mapping[str, Any]) -> bool:
        """Apply a command result; False when no controller issued that command (to this kiosk)."""
        status = {"accepted": "delivered", "done": "succeeded", "failed": "failed", "rejected": "rejected"}[r["status"]]
        row = conn.execute(select(commands.c.status, commands.c.kiosk_id).where(commands.c.id == r["command_id"])
                           ).first()
        if row is None or row.kiosk_id != r["kiosk_id"]:
            return False
        if COMMAND_RANK[status] <= COMMAND_RANK.get(row.status, 0) and row.status != "timed_out":
            return True
        values: dict[str, Any] = {"status": status, "updated_at": r["recv"]}
        if status == "delivered":
            values["accepted_at"] = r["recv"]
        else:
            values["finished_at"] = r["recv"]
            values["detail"] = r.get("reason") or ""
            values["data"] = json.dumps(r.get("data") or {}, ensure_ascii=False)
        conn.execute(update(commands).where(commands.c.id == r["command_id"]).values(**values))
        return True

    def known_command_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(commands.c.id).where(commands.c.id.in_(list(ids))))}

    # rules support ---------------------------------------------------------------------------------------------
    def open_alert_kiosks(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(alerts.c.kiosk_id).where(alerts.c.status == "open").distinct())}

    def load_for_rules(self, conn: Connection, kiosk_ids: Sequence[str]) -> tuple[dict, dict, dict]:
        """kiosk rows, device rows and open alerts for the given kiosks."""
        krows: dict[str, Any] = {}
        drows: dict[str, list[Any]] = {}
        arows: dict[str, dict[tuple[str, str], Any]] = {}
        for chunk in _chunks(list(kiosk_ids), 500):
            for r in conn.execute(select(kiosks).where(kiosks.c.kiosk_id.in_(chunk))):
                krows[r.kiosk_id] = r
            for r in conn.execute(select(devices).where(devices.c.kiosk_id.in_(chunk))):
                drows.setdefault(r.kiosk_id, []).append(r)
            for r in conn.execute(select(alerts).where(and_(alerts.c.kiosk_id.in_(chunk), alerts.c.status == "open"))):
                arows.setdefault(r.kiosk_id, {})[(r.rule, r.device)] = r
        return krows, drows, arows

    def apply_alert_changes(self, conn: Connection, kiosk_id: str, opened: list[dict[str, Any]],
                            cleared: list[str], refreshed: list[dict[str, Any]], state: str | None, now: int) -> None:
        for a in opened:
            values = {"kiosk_id": kiosk_id, "rule": a["rule"], "device": a["device"], "severity": a["severity"],
                      "status": "open", "open_key": a["open_key"], "detail": a["detail"], "opened_at": now,
                      "last_seen_at": now, "hits": a.get("hits", 1)}
            if self.is_sqlite:
                conn.execute(insert(alerts).prefix_with("OR IGNORE").values(**values))
            else:
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                conn.execute(pg_insert(alerts).values(**values).on_conflict_do_nothing())
        for key in cleared:
            conn.execute(update(alerts).where(alerts.c.open_key == key)
                         .values(status="cleared", cleared_at=now, open_key=None, last_seen_at=now))
        for a in refreshed:
            conn.execute(update(alerts).where(alerts.c.open_key == a["open_key"])
                         .values(severity=a["severity"], detail=a["detail"], last_seen_at=now,
                                 hits=alerts.c.hits + a.get("hits", 0)))
        if state is not None:
            conn.execute(update(kiosks).where(and_(kiosks.c.kiosk_id == kiosk_id, kiosks.c.state != state))
                         .values(state=state))

    def record_audit_heads(self, heads: Mapping[str, Sequence[tuple[int, Mapping[str, Any]]]], now: int
                           ) -> dict[str, str]:
        """Compare each kiosk's audit chain heads (in message order, only messages newer than the stored one) with
        the stored head and store the newest; returns ``{kiosk: detail}`` for heads that went backwards now. A
        higher ``epoch`` is a declared chain restart (the kiosk alarms it itself): it clears an earlier break."""
        from fleet.controller.rules import audit_head_regression

        found: dict[str, str] = {}
        with self.engine.begin() as conn:
            for kiosk_id, items in heads.items():
                row = conn.execute(select(audit_heads).where(audit_heads.c.kiosk_id == kiosk_id)
                                   .with_for_update()).first()
                state = dict(row._mapping) if row is not None else None
                for mid, head in sorted(items, key=lambda item: item[0]):
                    if state is not None and mid <= state["mid"]:
                        continue
                    if state is None:
                        state = {"kiosk_id": kiosk_id, "broken": False, "detail": None, "broken_at": None}
                    elif head["epoch"] > state["epoch"]:
                        state.update(broken=False, detail=None, broken_at=None)
                    else:
                        detail = audit_head_regression(state, head)
                        if detail:
                            state.update(broken=True, detail=detail, broken_at=now)
                            found[kiosk_id] = detail
                    state.update(mid=mid, seq=head["seq"], hash=head["hash"], epoch=head["epoch"], updated_at=now)
                if state is None:
                    continue
                if row is None:
                    if self.is_sqlite:
                        conn.execute(insert(audit_heads).prefix_with("OR IGNORE").values(**state))
                    else:
                        from sqlalchemy.dialects.postgresql import insert as pg_insert

                        conn.execute(pg_insert(audit_heads).values(**state).on_conflict_do_nothing())
                else:
                    conn.execute(update(audit_heads).where(audit_heads.c.kiosk_id == kiosk_id)
                                 .values(**{k: v for k, v in state.items() if k != "kiosk_id"}))
        return found

    def audit_breaks(self, conn: Connection, kiosk_ids: Sequence[str]) -> dict[str, str]:
        """``{kiosk: detail}`` of the given kiosks whose audit chain head went backwards (not since restarted)."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(kiosk_ids), 500):
            for r in conn.execute(select(audit_heads.c.kiosk_id, audit_heads.c.detail)
                                  .where(and_(audit_heads.c.kiosk_id.in_(chunk), audit_heads.c.broken.is_(True)))):
                out[r.kiosk_id] = r.detail or "audit chain head went backwards"
        return out

    def active_app_alarms(self, conn: Connection, kiosk_ids: Sequence[str]) -> dict[str, list[Any]]:
        """``{kiosk: [app_alarms rows]}`` of the given kiosks' active application alarms."""
        out: dict[str, list[Any]] = {}
        for chunk in _chunks(list(kiosk_ids), 500):
            for r in conn.execute(select(app_alarms).where(and_(app_alarms.c.kiosk_id.in_(chunk),
                                                                app_alarms.c.active.is_(True)))):
                out.setdefault(r.kiosk_id, []).append(r)
        return out

    def audit_head(self, kiosk_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_heads).where(audit_heads.c.kiosk_id == kiosk_id)).first()
        return dict(row._mapping) if row is not None else None

    def set_gap(self, kiosk_id: str, detail: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(kiosks).where(kiosks.c.kiosk_id == kiosk_id).values(gap_open=True, gap_detail=detail))

    # leases and controllers ------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_ms: int, now: int) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(leases).where(and_(leases.c.name == name,
                                                         or_(leases.c.holder == holder, leases.c.expires_at < now)))
                               .values(holder=holder, expires_at=now + ttl_ms))
            if res.rowcount:
                return True
            exists = conn.execute(select(leases.c.holder).where(leases.c.name == name)).first()
            if exists is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now + ttl_ms))
            return True
        except Exception:  # noqa: BLE001 - another controller inserted it first
            return False

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(leases).where(and_(leases.c.name == name, leases.c.holder == holder)))

    def lease_holder(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).first()
        return row.holder if row else None

    def controller_heartbeat(self, controller_id: str, started_at: int, stats: Mapping[str, Any], now: int) -> None:
        with self.engine.begin() as conn:
            res = conn.execute(update(controllers).where(controllers.c.id == controller_id)
                               .values(heartbeat_at=now, stats=json.dumps(stats)))
            if res.rowcount == 0:
                conn.execute(insert(controllers).values(id=controller_id, started_at=started_at, heartbeat_at=now,
                                                        stats=json.dumps(stats)))

    def controller_stats(self, since_ms: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(controllers).where(controllers.c.heartbeat_at >= since_ms)
                                .order_by(controllers.c.started_at)).all()
        return [{"id": r.id, "started_at": r.started_at, "heartbeat_at": r.heartbeat_at, **json.loads(r.stats)}
                for r in rows]

    def setting(self, name: str, factory: Any = None) -> str:
        """A shared setting, created once by whichever controller asks first."""
        with self.engine.begin() as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.name == name)).first()
            if row:
                return row.value
        value = factory() if factory else secrets.token_hex(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(settings).values(name=name, value=value))
        except Exception:  # noqa: BLE001 - lost the race: read the winner's
            pass
        with self.engine.connect() as conn:
            return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()

    # sequence audit --------------------------------------------------------------------------------------------
    def seq_log_since(self, since_ms: int) -> list[tuple[int, int, str, list[list[Any]]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(seq_log.c.id, seq_log.c.ingested_at, seq_log.c.controller, seq_log.c.entries)
                                .where(seq_log.c.ingested_at >= since_ms).order_by(seq_log.c.id)).all()
        return [(r.id, r.ingested_at, r.controller, orjson.loads(r.entries)) for r in rows]

    def alive_controllers(self, since_ms: int) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(controllers.c.id).where(controllers.c.heartbeat_at >= since_ms))}

    def prune_seq_log(self, before_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(seq_log).where(seq_log.c.ingested_at < before_ms))

    def kiosk_sessions(self, kiosk_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        out: dict[str, tuple[int, bool]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(kiosk_ids), 500):
                for r in conn.execute(select(kiosks.c.kiosk_id, kiosks.c.bd_seq, kiosks.c.online)
                                      .where(kiosks.c.kiosk_id.in_(chunk))):
                    out[r.kiosk_id] = (r.bd_seq, bool(r.online))
        return out

    # sweeper queries -------------------------------------------------------------------------------------------
    def stale_kiosks(self, now: int, grace_factor: float = 3.0) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(kiosks.c.kiosk_id, kiosks.c.last_seen, kiosks.c.heartbeat_s)
                                .where(kiosks.c.online.is_(True))).all()
        return [r.kiosk_id for r in rows if now - r.last_seen > max(5.0, r.heartbeat_s * grace_factor) * 1000]

    def mark_offline(self, kiosk_ids: Sequence[str], now: int, reason: str) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(list(kiosk_ids), 500):
                conn.execute(update(kiosks).where(and_(kiosks.c.kiosk_id.in_(chunk), kiosks.c.online.is_(True)))
                             .values(online=False, state="offline", offline_since=now, offline_reason=reason))

    def offline_kiosks_without_alert(self, older_than: int) -> list[str]:
        with self.engine.connect() as conn:
            have = select(alerts.c.kiosk_id).where(and_(alerts.c.status == "open", alerts.c.rule == "kiosk_offline"))
            rows = conn.execute(select(kiosks.c.kiosk_id).where(and_(
                kiosks.c.online.is_(False), kiosks.c.offline_since.is_not(None),
                kiosks.c.offline_since <= older_than, kiosks.c.kiosk_id.notin_(have)))).all()
        return [r.kiosk_id for r in rows]

    # dead letters -----------------------------------------------------------------------------------------------
    def dead_letter_list(self, limit: int = 100, kiosk_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        q = select(dead_letters).where(dead_letters.c.received_at >= since)
        if kiosk_id:
            q = q.where(dead_letters.c.kiosk_id == kiosk_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(dead_letters.c.id.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

    def dead_letter_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())

    def prune_dead_letters(self, before_ms: int, keep: int = DEAD_LETTERS_KEPT) -> None:
        """Retention like the events, and never more than ``keep`` rows (a flood of garbage stays bounded)."""
        with self.engine.begin() as conn:
            conn.execute(delete(dead_letters).where(dead_letters.c.received_at < before_ms))
            floor = conn.execute(select(dead_letters.c.id).order_by(dead_letters.c.id.desc()).offset(keep).limit(1)
                                 ).scalar()
            if floor is not None:
                conn.execute(delete(dead_letters).where(dead_letters.c.id <= floor))

    def prune_events(self, before_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(events).where(events.c.ts < before_ms))
            conn.execute(delete(app_alarms).where(and_(app_alarms.c.active.is_(False),
                                                       app_alarms.c.updated_at < before_ms)))
            conn.execute(delete(alerts).where(and_(alerts.c.status == "cleared", alerts.c.cleared_at < before_ms)))
            conn.execute(delete(commands).where(and_(commands.c.status.in_(FINAL_COMMAND_STATES),
                                                     commands.c.updated_at < before_ms)))

    # commands --------------------------------------------------------------------------------------------------
    def insert_command(self, row: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(commands).values(**row))

    def update_command(self, command_id: str, only_if: Sequence[str] | None = None, **values: Any) -> bool:
        cond = commands.c.id == command_id
        if only_if:
            cond = and_(cond, commands.c.status.in_(list(only_if)))
        with self.engine.begin() as conn:
            return conn.execute(update(commands).where(cond).values(**values)).rowcount > 0

    def commands_in(self, statuses: Sequence[str]) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(commands).where(commands.c.status.in_(list(statuses)))
                                .order_by(commands.c.created_at)).all()

    def command(self, command_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(commands).where(commands.c.id == command_id)).first()

    def recent_command(self, kiosk_id: str, name: str, since: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(commands).where(and_(commands.c.kiosk_id == kiosk_id, commands.c.name == name,
                                                            commands.c.created_at >= since))).first()

    # operators -------------------------------------------------------------------------------------------------
    def operator(self, username: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(operators).where(operators.c.username == username)).first()

    def upsert_operator(self, username: str, password_hash: str, display_name: str, role: str, now: int) -> bool:
        """Create an operator, or set an existing one's password, name and role (which revokes its sessions).
        Returns True when it was created."""
        with self.engine.begin() as conn:
            res = conn.execute(update(operators).where(operators.c.username == username)
                               .values(password_hash=password_hash, display_name=display_name, role=role))
            if res.rowcount == 0:
                conn.execute(insert(operators).values(username=username, password_hash=password_hash,
                                                      display_name=display_name, role=role, created_at=now))
                return True
            conn.execute(update(operator_sessions).where(and_(
                operator_sessions.c.username == username, operator_sessions.c.revoked_at.is_(None)))
                .values(revoked_at=now, revoked_reason="password_changed"))
            return False

    def operator_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(operators)).scalar_one()

    def active_admin_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(operators).where(
                and_(operators.c.role == "admin", operators.c.disabled_at.is_(None)))).scalar_one()

    def list_operators(self, now: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            live = dict(conn.execute(
                select(operator_sessions.c.username, func.count()).where(and_(
                    operator_sessions.c.revoked_at.is_(None), operator_sessions.c.expires_at > now))
                .group_by(operator_sessions.c.username)).all())
            rows = conn.execute(select(operators).order_by(operators.c.username)).all()
        return [{"username": r.username, "display_name": r.display_name, "role": r.role,
                 "disabled": r.disabled_at is not None, "disabled_at": r.disabled_at, "created_at": r.created_at,
                 "sessions": int(live.get(r.username, 0))} for r in rows]

    def set_operator(self, username: str, now: int, role: str | None = None, disabled: bool | None = None,
                     password_hash: str | None = None, display_name: str | None = None) -> tuple[bool, int]:
        """Change an operator; a changed role, disabling or a new password revokes its sessions in the same
        transaction. Returns (found, sessions revoked)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(operators).where(operators.c.username == username)).first()
            if row is None:
                return False, 0
            values: dict[str, Any] = {}
            reasons = []
            if role is not None and role != row.role:
                values["role"] = role
                reasons.append("role_changed")
            if disabled is not None and disabled != (row.disabled_at is not None):
                values["disabled_at"] = now if disabled else None
                if disabled:
                    reasons.append("disabled")
            if password_hash is not None:
                values["password_hash"] = password_hash
                reasons.append("password_changed")
            if display_name is not None:
                values["display_name"] = display_name
            if values:
                conn.execute(update(operators).where(operators.c.username == username).values(**values))
            revoked = 0
            if reasons:
                revoked = conn.execute(update(operator_sessions).where(and_(
                    operator_sessions.c.username == username, operator_sessions.c.revoked_at.is_(None)))
                    .values(revoked_at=now, revoked_reason=reasons[0])).rowcount
            return True, revoked

    # sessions and login throttling (fleet.controller.auth) ------------------------------------------------------
    def create_session(self, token_hash: str, username: str, kind: str, now: int, expires_at: int,
                       client_addr: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(operator_sessions).values(token_hash=token_hash, username=username, kind=kind,
                                                          created_at=now, last_seen_at=now, expires_at=expires_at,
                                                          client_addr=client_addr))

    def session(self, token_hash: str) -> Any:
        """The session with its operator's role and disabled mark (None role: the operator is gone)."""
        s, o = operator_sessions, operators
        with self.engine.connect() as conn:
            return conn.execute(
                select(s.c.username, s.c.kind, s.c.created_at, s.c.last_seen_at, s.c.expires_at, s.c.revoked_at,
                       o.c.role, o.c.disabled_at)
                .select_from(s.outerjoin(o, o.c.username == s.c.username))
                .where(s.c.token_hash == token_hash)).first()

    def touch_session(self, token_hash: str, now: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(operator_sessions).where(operator_sessions.c.token_hash == token_hash)
                         .values(last_seen_at=now))

    def revoke_session(self, token_hash: str, now: int, reason: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(operator_sessions).where(and_(
                operator_sessions.c.token_hash == token_hash, operator_sessions.c.revoked_at.is_(None)))
                .values(revoked_at=now, revoked_reason=reason)).rowcount > 0

    def revoke_sessions(self, username: str, now: int, reason: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(update(operator_sessions).where(and_(
                operator_sessions.c.username == username, operator_sessions.c.revoked_at.is_(None)))
                .values(revoked_at=now, revoked_reason=reason)).rowcount

    def operator_sessions(self, username: str, now: int) -> list[dict[str, Any]]:
        """An operator's sessions that have not ended (newest first); no token hashes."""
        s = operator_sessions
        with self.engine.connect() as conn:
            rows = conn.execute(select(s).where(and_(s.c.username == username, s.c.revoked_at.is_(None),
                                                     s.c.expires_at > now)).order_by(s.c.created_at.desc())).all()
        return [{"kind": r.kind, "created_at": r.created_at, "last_seen_at": r.last_seen_at,
                 "expires_at": r.expires_at, "client_addr": r.client_addr} for r in rows]

    def record_login_failure(self, username: str, client_addr: str, now: int, prune_before: int | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(login_failures).values(ts=now, username=username, client_addr=client_addr))
            if prune_before is not None:
                conn.execute(delete(login_failures).where(login_failures.c.ts < prune_before))

    def login_failures(self, since: int, username: str | None = None, addr: str | None = None) -> list[int]:
        f = login_failures
        cond = f.c.username == username if username is not None else f.c.client_addr == addr
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(f.c.ts).where(and_(cond, f.c.ts > since)))]

    def prune_sessions(self, before: int) -> int:
        """Forget sessions that ended (expired or revoked) before ``before``."""
        s = operator_sessions
        with self.engine.begin() as conn:
            return conn.execute(delete(s).where(or_(s.c.expires_at < before, s.c.revoked_at < before))).rowcount

    # reads for the API and the dashboard ----------------------------------------------------------------------
    def list_kiosks(self, district: str | None = None, state: str | None = None, q: str | None = None,
                    online: bool | None = None) -> list[dict[str, Any]]:
        stmt = select(kiosks)
        if district:
            stmt = stmt.where(kiosks.c.district == district)
        if state:
            stmt = stmt.where(kiosks.c.state == state)
        if online is not None:
            stmt = stmt.where(kiosks.c.online.is_(online))
        if q:
            like = f"%{q}%"
            stmt = stmt.where(or_(kiosks.c.kiosk_id.like(like), kiosks.c.name.like(like),
                                  kiosks.c.location.like(like)))
        stmt = stmt.order_by(kiosks.c.kiosk_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            ids = [r.kiosk_id for r in rows]
            open_counts: dict[str, int] = {}
            paper: dict[str, str] = {}
            for chunk in _chunks(ids, 500):
                for r in conn.execute(select(alerts.c.kiosk_id, func.count()).where(and_(
                        alerts.c.kiosk_id.in_(chunk), alerts.c.status == "open")).group_by(alerts.c.kiosk_id)):
                    open_counts[r[0]] = r[1]
                for r in conn.execute(select(devices.c.kiosk_id, devices.c.paper).where(and_(
                        devices.c.kiosk_id.in_(chunk), devices.c.paper.is_not(None)))):
                    paper[r.kiosk_id] = _worse_paper(paper.get(r.kiosk_id), r.paper)
        return [{**kiosk_dict(r), "open_alerts": open_counts.get(r.kiosk_id, 0), "paper": paper.get(r.kiosk_id)}
                for r in rows]

    def districts(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(kiosks.c.district).where(kiosks.c.district != "")
                                               .distinct().order_by(kiosks.c.district))]

    def kiosk(self, kiosk_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(kiosks).where(kiosks.c.kiosk_id == kiosk_id)).first()
            if row is None:
                return None
            devs = conn.execute(select(devices).where(devices.c.kiosk_id == kiosk_id).order_by(devices.c.kind)).all()
        return {**kiosk_dict(row), "devices": [device_dict(d) for d in devs]}

    def alerts(self, status: str | None = "open", kiosk_id: str | None = None, severity: str | None = None,
               limit: int = 500) -> list[dict[str, Any]]:
        stmt = select(alerts, kiosks.c.name, kiosks.c.district).select_from(
            alerts.outerjoin(kiosks, alerts.c.kiosk_id == kiosks.c.kiosk_id))
        if status and status != "all":
            stmt = stmt.where(alerts.c.status == status)
        if kiosk_id:
            stmt = stmt.where(alerts.c.kiosk_id == kiosk_id)
        if severity:
            stmt = stmt.where(alerts.c.severity == severity)
        stmt = stmt.order_by(alerts.c.status.desc(), alerts.c.opened_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [alert_dict(r) for r in conn.execute(stmt).all()]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = None
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts, kiosks.c.name, kiosks.c.district).select_from(
                alerts.outerjoin(kiosks, alerts.c.kiosk_id == kiosks.c.kiosk_id)).where(alerts.c.id == alert_id)).first()
        return alert_dict(rows) if rows else None

    def ack_alert(self, alert_id: int, username: str, now: int) -> bool:
        """Acknowledge an alert (once). A one-shot application alarm (:func:`rules.closes_on_ack`) is closed by it too:
        the alert is cleared and the kiosk's alarm of that code set inactive (a later event opens a new alert)."""
        from fleet.controller.rules import closes_on_ack

        with self.engine.begin() as conn:
            row = conn.execute(select(alerts.c.kiosk_id, alerts.c.rule, alerts.c.device, alerts.c.status)
                               .where(alerts.c.id == alert_id)).first()
            if row is None:
                return False
            closes = row.status == "open" and closes_on_ack(row.rule, row.device)
            values: dict[str, Any] = {"acked_by": username, "acked_at": now}
            if closes:
                values.update(status="cleared", cleared_at=now, open_key=None, last_seen_at=now)
            done = conn.execute(update(alerts).where(and_(alerts.c.id == alert_id, alerts.c.acked_at.is_(None)))
                                .values(**values)).rowcount > 0
            if done and closes:
                conn.execute(update(app_alarms).where(and_(app_alarms.c.kiosk_id == row.kiosk_id,
                                                           app_alarms.c.code == row.device,
                                                           app_alarms.c.active.is_(True)))
                             .values(active=False, updated_at=now))
            return done

    def kiosk_commands(self, kiosk_id: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(commands).where(commands.c.kiosk_id == kiosk_id)
                                .order_by(commands.c.created_at.desc()).limit(limit)).all()
        return [command_dict(r) for r in rows]

    def kiosk_events(self, kiosk_id: str, limit: int = 50, since: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events).where(and_(events.c.kiosk_id == kiosk_id, events.c.ts >= since))
                                .order_by(events.c.ts.desc(), events.c.id.desc()).limit(limit)).all()
        return [{"ts": r.ts, "device": r.device, "code": r.code, "severity": r.severity, "active": bool(r.active),
                 "text": r.text} for r in rows]

    def samples(self, kiosk_id: str, since: int, until: int, columns: Sequence[str]) -> list[tuple]:
        for c in columns:
            if c not in SAMPLE_COLUMNS:
                raise ValueError(c)
        parts = [SAMPLE_PREFIX + d for d in days_between(since, until)]
        existing = set(self.partitions())
        out: list[tuple] = []
        with self.engine.connect() as conn:
            for name in parts:
                if name not in existing:
                    continue
                out += conn.exec_driver_sql(
                    f"SELECT ts, {', '.join(columns)} FROM {name} WHERE kiosk_id = {self.ph} AND ts >= {self.ph} "
                    f"AND ts < {self.ph} ORDER BY ts", (kiosk_id, since, until)).all()
        out.sort(key=lambda r: r[0])
        return out

    def fault_events(self, kiosk_id: str, since: int) -> list[tuple[int, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.ts, events.c.device, events.c.code).where(and_(
                events.c.kiosk_id == kiosk_id, events.c.ts >= since, events.c.active.is_(True),
                events.c.severity.in_(["critical", "major"])))).all()
        return [(r.ts, r.device, r.code) for r in rows]

    def sample_totals(self) -> dict[str, int]:
        """Rows and distinct (kiosk, mid) over every partition (the bench's duplicate check)."""
        rows = distinct = 0
        with self.engine.connect() as conn:
            for name in self.refresh_partitions():
                rows += conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name}").scalar_one()
                distinct += conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM (SELECT DISTINCT kiosk_id, mid FROM {name}) d").scalar_one()
        return {"rows": rows, "distinct": distinct}

    def summary(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(kiosks)).scalar_one()
            online = conn.execute(select(func.count()).select_from(kiosks).where(kiosks.c.online.is_(True))
                                  ).scalar_one()
            by_state = dict(conn.execute(select(kiosks.c.state, func.count()).group_by(kiosks.c.state)).all())
            by_sev = dict(conn.execute(select(alerts.c.severity, func.count()).where(alerts.c.status == "open")
                                       .group_by(alerts.c.severity)).all())
            unacked = conn.execute(select(func.count()).select_from(alerts).where(and_(
                alerts.c.status == "open", alerts.c.acked_at.is_(None)))).scalar_one()
            oos = conn.execute(select(func.count()).select_from(kiosks).where(
                kiosks.c.service == "out_of_service")).scalar_one()
            dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        return {"kiosks": total, "online": online, "offline": total - online, "by_state": by_state,
                "open_alerts": sum(by_sev.values()), "open_by_severity": by_sev, "unacknowledged": unacked,
                "out_of_service": oos, "dead_letters": dead}

    def dispose(self) -> None:
        self.engine.dispose()


# --- row → dict ----------------------------------------------------------------------------------------------------

def _worse_paper(a: str | None, b: str | None) -> str | None:
    order = {"out": 0, "near-end": 1, "ok": 2}
    if a is None:
        return b
    if b is None:
        return a
    return a if order.get(a, 3) <= order.get(b, 3) else b


def kiosk_dict(r: Any) -> dict[str, Any]:
    return {"kiosk_id": r.kiosk_id, "name": r.name, "district": r.district, "location": r.location,
            "app_version": r.app_version, "profile_hash": r.profile_hash, "agent_version": r.agent_version,
            "online": bool(r.online), "state": r.state, "service": r.service, "announcement": r.announcement,
            "bd_seq": r.bd_seq, "heartbeat_s": r.heartbeat_s, "commands": json.loads(r.commands or "[]"),
            "last_seen": r.last_seen or None, "born_at": r.born_at, "offline_since": r.offline_since,
            "offline_reason": r.offline_reason, "host": json.loads(r.host or "{}"),
            "counters": json.loads(r.counters or "{}"), "gap_open": bool(r.gap_open)}


def device_dict(r: Any) -> dict[str, Any]:
    return {"kind": r.kind, "state": r.state, "paper": r.paper, "error_code": r.error_code,
            "error_text": r.error_text or "", "counters": json.loads(r.counters or "{}"), "xfs": r.xfs,
            "changed_at": r.changed_at, "updated_at": r.updated_at}


def alert_dict(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {"id": m["id"], "kiosk_id": m["kiosk_id"], "kiosk_name": m.get("name") or "",
            "district": m.get("district") or "", "rule": m["rule"], "device": m["device"] or None,
            "severity": m["severity"], "status": m["status"], "detail": m["detail"], "opened_at": m["opened_at"],
            "last_seen_at": m["last_seen_at"], "cleared_at": m["cleared_at"], "hits": m["hits"],
            "acked_by": m["acked_by"], "acked_at": m["acked_at"]}


def command_dict(r: Any) -> dict[str, Any]:
    return {"id": r.id, "kiosk_id": r.kiosk_id, "name": r.name, "args": json.loads(r.args or "{}"),
            "status": r.status, "detail": r.detail, "data": json.loads(r.data or "{}"), "created_by": r.created_by,
            "created_at": r.created_at, "expires_at": r.expires_at, "sent_at": r.sent_at,
            "accepted_at": r.accepted_at, "finished_at": r.finished_at, "updated_at": r.updated_at}


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = ["Batch", "Store", "normalize_db_url", "text"]
