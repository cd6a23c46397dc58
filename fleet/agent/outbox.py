"""The agent's bounded on-disk queue (SQLite, WAL): every data, alarm and command-result message is written here
first and deleted only when the broker acknowledged it (PUBACK), so nothing is lost while the broker is unreachable
or across a restart of the kiosk. Rows are sent in insertion order.

"Newest state wins" when the queue is bounded: heartbeats coalesce (only the newest waits), and when the queue is full
the oldest rows go first — heartbeats, then data, then alarms and command results. The same file keeps the agent's
counters (``mid``, ``bdSeq``) and the ids of commands already run (so a replayed command is refused after a restart).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

#: eviction order when full: lower first
PRIORITY = {"heartbeat": 0, "data": 1, "journey": 2, "alarm": 2, "cmd-result": 3}


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str          # heartbeat | data | alarm | cmd-result
    topic_suffix: str  # "data", "alarm", "cmd-result/<id>"
    payload: dict[str, Any]
    created_ms: int
    mid: int


class Outbox:
    def __init__(self, path: str | os.PathLike[str] | None = None, max_rows: int = 10000) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL,
                coalesce_key TEXT, payload TEXT NOT NULL, created_ms INTEGER NOT NULL, mid INTEGER NOT NULL);
            CREATE UNIQUE INDEX IF NOT EXISTS outbox_coalesce ON outbox(coalesce_key) WHERE coalesce_key IS NOT NULL;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS seen_commands (id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
        """)
        self.dropped = 0

    # counters --------------------------------------------------------------------------------------------------
    def _bump(self, key: str, modulo: int | None = None) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            # mids start at the outbox's creation time (ms × 1000): a kiosk whose disk was replaced keeps counting
            # upwards, so its new messages are never mistaken for old ones (16 digits: never ID-number-like)
            value = int(time.time() * 1000) * 1000 if key == "mid" else 0
        else:
            value = row[0] + 1
        if modulo:
            value %= modulo
        self._db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, value))
        return value

    def next_mid(self) -> int:
        with self._lock:
            return self._bump("mid")

    def next_bdseq(self) -> int:
        """The next birth/death sequence (0–255), persisted so it keeps counting across restarts."""
        with self._lock:
            return self._bump("bdseq", 256)

    # queue -----------------------------------------------------------------------------------------------------
    def put(self, kind: str, topic_suffix: str, payload: Mapping[str, Any], created_ms: int,
            coalesce_key: str | None = None) -> int:
        """Queue a message; gives it the next ``mid`` (written into the payload). Returns the mid."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                mid = self._bump("mid")
                body = json.dumps({**payload, "mid": mid}, ensure_ascii=False, separators=(",", ":"))
                if coalesce_key is not None:
                    self._db.execute("DELETE FROM outbox WHERE coalesce_key=?", (coalesce_key,))
                self._db.execute("INSERT INTO outbox(kind, topic, coalesce_key, payload, created_ms, mid) "
                                 "VALUES(?,?,?,?,?,?)", (kind, topic_suffix, coalesce_key, body, created_ms, mid))
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return mid

    def _evict(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        excess = count - self.max_rows
        for kind in sorted(PRIORITY, key=PRIORITY.get):  # type: ignore[arg-type]
            if excess <= 0:
                return
            cur = self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind=? "
                                   "ORDER BY id LIMIT ?)", (kind, excess))
            excess -= cur.rowcount
            self.dropped += cur.rowcount

    def peek(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute("SELECT id, kind, topic, payload, created_ms, mid FROM outbox WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [OutboxRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def ack(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in row_ids])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    # commands already run ---------------------------------------------------------------------------------------
    def command_seen(self, command_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM seen_commands WHERE id=?", (command_id,)).fetchone() is not None

    def remember_command(self, command_id: str, expires_ms: int, now_ms: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO seen_commands(id, expires_ms) VALUES(?, ?)",
                             (command_id, expires_ms))
            self._db.execute("DELETE FROM seen_commands WHERE expires_ms < ?", (now_ms - 600_000,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SeenCommands:
    """``in`` adapter over the outbox's command ids, for :meth:`fleet.signing.CommandVerifier.verify`."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def __contains__(self, command_id: object) -> bool:
        return isinstance(command_id, str) and self.outbox.command_seen(command_id)
