"""The payment journal (SQLite): every payment is recorded before money can move, and every step after it.

    created → started → approved | declined | cancelled | unknown
    approved → confirmed (the platform booked it) | reversing → reversed (the platform refused it: money returned)
    unknown → approved | declined | cancelled | unknown (still in doubt) | reversing

``started`` is committed *before* the sale goes to the terminal, so after a crash a record in ``created`` never
reached it, and one in ``started``/``unknown``/``approved``/``reversing`` is unresolved: the reconciler settles it by
querying the terminal and the platform before the kiosk serves anyone. At most one unresolved record per order (a
unique partial index), so an order can never be paid twice from this kiosk. Commits are durable
(``synchronous=FULL``, WAL). Nothing personal is stored: order numbers, amounts, masked card numbers.
"""
from __future__ import annotations

import enum
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable

from drivers.base import mask_card_number
from kiosk.errors import KioskError
from kiosk.sqlite_tuning import SQLITE_CACHE_KIB


class PaymentState(str, enum.Enum):
    CREATED = "created"
    STARTED = "started"
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    CONFIRMED = "confirmed"
    REVERSING = "reversing"
    REVERSED = "reversed"

    @property
    def resolved(self) -> bool:
        return self in RESOLVED


RESOLVED = frozenset({PaymentState.DECLINED, PaymentState.CANCELLED, PaymentState.CONFIRMED, PaymentState.REVERSED})
S = PaymentState
ALLOWED: dict[PaymentState, frozenset[PaymentState]] = {
    S.CREATED: frozenset({S.STARTED, S.CANCELLED}),
    S.STARTED: frozenset({S.APPROVED, S.DECLINED, S.CANCELLED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.APPROVED, S.DECLINED, S.CANCELLED, S.UNKNOWN, S.REVERSING}),
    S.APPROVED: frozenset({S.CONFIRMED, S.REVERSING}),
    S.REVERSING: frozenset({S.REVERSED, S.REVERSING}),
}


class PaymentInProgress(KioskError):
    """The order has an unresolved payment at this kiosk: it must be settled before another attempt."""

    code = "payment_in_progress"
    translation_key = "payment.error.in_progress"


class InvalidTransition(KioskError):
    code = "invalid_payment_transition"


@dataclass(frozen=True)
class PaymentRecord:
    id: str                 # the idempotency key of this attempt (platform confirmation key derives from it)
    order_no: str
    amount_fen: int
    channel: str            # card | code | qr
    method: str             # the platform's method once known (unionpay_card, wechat_pay, …)
    purpose: str
    payee: str
    application_number: str
    state: PaymentState
    txn_ref: str = ""
    card_masked: str = ""
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    paid_at: float | None = None

    @property
    def reference(self) -> str:
        """What the citizen and staff quote: short, not personal."""
        return f"{self.order_no}-{self.id[:6].upper()}"


_COLUMNS = [f.name for f in fields(PaymentRecord)]

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, order_no TEXT NOT NULL, amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    channel TEXT NOT NULL, method TEXT NOT NULL, purpose TEXT NOT NULL, payee TEXT NOT NULL,
    application_number TEXT NOT NULL, state TEXT NOT NULL, txn_ref TEXT NOT NULL DEFAULT '',
    card_masked TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
    updated_at REAL NOT NULL, paid_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_payment_per_order ON payments (order_no)
    WHERE state NOT IN ('declined', 'cancelled', 'confirmed', 'reversed');
CREATE UNIQUE INDEX IF NOT EXISTS one_confirmed_payment_per_order ON payments (order_no) WHERE state = 'confirmed';
CREATE INDEX IF NOT EXISTS payments_state ON payments (state);
CREATE TABLE IF NOT EXISTS payment_steps (
    payment_id TEXT NOT NULL REFERENCES payments (id), at REAL NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
"""


class PaymentJournal:
    """Thread-safe; one connection, every write its own durable transaction."""

    def __init__(self, path: str | Path, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # a bounded page cache (SQLite keeps every page it writes until its cache is full: 2 MB per connection by
        # default, so a growing journal grew the kiosk's memory by ~1 KB per session — bench/soak_sessions.py)
        self._db.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: Iterable[Any] | None) -> PaymentRecord | None:
        if row is None:
            return None
        values = dict(zip(_COLUMNS, row))
        values["state"] = PaymentState(values["state"])
        return PaymentRecord(**values)

    def create(self, *, order_no: str, amount_fen: int, channel: str, method: str = "", purpose: str = "",
               payee: str = "", application_number: str = "") -> PaymentRecord:
        """Record the intent to pay. Raises PaymentInProgress when the order has an unresolved record."""
        if amount_fen <= 0:
            raise ValueError("amount_fen must be > 0")
        now = self._clock()
        record = PaymentRecord(id=str(uuid.uuid4()), order_no=order_no, amount_fen=int(amount_fen), channel=channel,
                               method=method, purpose=purpose, payee=payee, application_number=application_number,
                               state=PaymentState.CREATED, created_at=now, updated_at=now)
        values = [getattr(record, c) for c in _COLUMNS]
        values[_COLUMNS.index("state")] = record.state.value
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(f"INSERT INTO payments ({', '.join(_COLUMNS)}) VALUES "
                                 f"({', '.join('?' * len(_COLUMNS))})", values)
                self._db.execute("INSERT INTO payment_steps VALUES (?, ?, ?, '')", (record.id, now, "created"))
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise PaymentInProgress(f"order {order_no} has an unresolved payment") from exc
        return record

    def transition(self, payment_id: str, state: PaymentState, **changes: Any) -> PaymentRecord:
        """Move a record to ``state`` (checked against the allowed transitions), with field ``changes``."""
        unknown = set(changes) - {"txn_ref", "card_masked", "reason", "method", "paid_at"}
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        if "card_masked" in changes:   # PCI DSS 3.4: never a full card number on disk, whatever a terminal sent
            changes["card_masked"] = mask_card_number(changes["card_masked"] or "")
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._row(self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments WHERE id = ?",
                                                     (payment_id,)).fetchone())
                if current is None:
                    raise KeyError(payment_id)
                if state not in ALLOWED.get(current.state, frozenset()):
                    raise InvalidTransition(f"{current.state.value} → {state.value} is not allowed")
                sets = {"state": state.value, "updated_at": now, **changes}
                self._db.execute(f"UPDATE payments SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                                 [*sets.values(), payment_id])
                self._db.execute("INSERT INTO payment_steps VALUES (?, ?, ?, ?)",
                                 (payment_id, now, state.value, str(changes.get("reason", ""))))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        record = self.get(payment_id)
        assert record is not None
        return record

    def get(self, payment_id: str) -> PaymentRecord | None:
        with self._lock:
            return self._row(self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments WHERE id = ?",
                                              (payment_id,)).fetchone())

    def for_order(self, order_no: str) -> list[PaymentRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments WHERE order_no = ? "
                                    "ORDER BY rowid", (order_no,)).fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    def unresolved(self) -> list[PaymentRecord]:
        """Every record not in a final state, oldest first: in the order they were journaled (rowid), never by
        ``created_at`` — a wall clock stepped back by NTP must not put a newer payment before an older one."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments WHERE state NOT IN "
                                    "('declined', 'cancelled', 'confirmed', 'reversed') ORDER BY rowid"
                                    ).fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    def steps(self, payment_id: str) -> list[str]:
        with self._lock:
            return [s for (s,) in self._db.execute("SELECT state FROM payment_steps WHERE payment_id = ? "
                                                   "ORDER BY rowid", (payment_id,))]

    def all(self) -> list[PaymentRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments ORDER BY rowid")
            return [r for r in map(self._row, rows.fetchall()) if r is not None]

    def purge(self, older_than_s: float) -> int:
        """Delete resolved records (confirmed, declined, cancelled, reversed) and their steps last changed more than
        ``older_than_s`` ago; returns how many. Unresolved ones are kept whatever their age (the reconciler needs
        them). The profile's ``retention.payment_journal_days`` (default 90) sets the age (at start and hourly while idle: KioskCore.purge_journals)."""
        cutoff = self._clock() - older_than_s
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [i for (i,) in self._db.execute(
                    "SELECT id FROM payments WHERE state IN ('declined', 'cancelled', 'confirmed', 'reversed') "
                    "AND updated_at < ?", (cutoff,))]
                for chunk in range(0, len(ids), 500):
                    part = ids[chunk:chunk + 500]
                    marks = ", ".join("?" * len(part))
                    self._db.execute(f"DELETE FROM payment_steps WHERE payment_id IN ({marks})", part)
                    self._db.execute(f"DELETE FROM payments WHERE id IN ({marks})", part)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(ids)
