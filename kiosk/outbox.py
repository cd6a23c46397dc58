"""The kiosk's outbox: creating calls (applications, ratings) that must reach the platform exactly once.

Every request is journaled here *before* its first attempt, encrypted (AES-256-GCM, the key in a 0600 file in the
profile's data dir, the row's id and kind bound as associated data), with its own idempotency key and the moment the
citizen confirmed (``captured_at``, sent as ``X-Captured-At`` on every attempt so a later one is the same request).

    pending ──attempt──► sending ──answered──► submitted   (result kept: the number; the payload is erased)
       ▲                    │                 └► rejected  (the platform refused it: 4xx; payload erased)
       └── unreachable ─────┘

A process killed in ``sending`` leaves the row there; the next drain sends it again with the same key and the
platform replays its first answer — nothing lost, nothing done twice. :class:`OutboxDrainer` drains in the
background (wake it with :meth:`OutboxDrainer.wake`, e.g. when the platform is back).

Senders are registered per kind: ``sender(payload, idempotency_key, captured_at) -> dict`` (a JSON-able result,
non-personal, e.g. ``{"number": ...}``); they raise :class:`~kiosk.errors.PlatformUnavailable` (retry later) or
:class:`~kiosk.errors.PlatformRejected` (final).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.errors import KioskError, PlatformRejected, PlatformUnavailable, error_code
from kiosk.sqlite_tuning import SQLITE_CACHE_KIB

log = logging.getLogger(__name__)

Sender = Callable[[dict[str, Any], str, dt.datetime], dict[str, Any]]
StateHook = Callable[[str, str], None]  # (item id, state) after each durable change, and "answered"

STATES = ("pending", "sending", "submitted", "rejected")
OPEN_STATES = ("pending", "sending")


class OutboxKeyError(KioskError):
    """The outbox key file is missing while rows exist, unreadable, or readable by others."""

    code = "outbox_key_error"
    translation_key = "error.generic"


@dataclass(frozen=True)
class OutboxItem:
    id: str
    kind: str
    reference: str          # shown to the citizen and printed: how staff find it (no personal data)
    idempotency_key: str
    state: str
    created_at: float
    captured_at: str        # ISO with offset
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    payload: dict[str, Any] | None = field(default=None, repr=False)  # decrypted; None once settled


@dataclass(frozen=True)
class DrainReport:
    submitted: list[OutboxItem]
    rejected: list[OutboxItem]
    remaining: int
    unreachable: bool


def load_key(path: Path) -> bytes:
    """The outbox key: created once (32 random bytes, file mode 0600, created exclusively so two processes never
    write different keys); refused if others may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise OutboxKeyError(f"{path} is readable by others (mode {mode:o}); it must be 0600")
        key = path.read_bytes()
        if len(key) != 32:
            raise OutboxKeyError(f"{path} is not a 32-byte key")
        return key
    key = AESGCM.generate_key(bit_length=256)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def sealed_rows(path: Path) -> int:
    """How many rows of an existing outbox database still carry an encrypted payload (0 when there is none)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    db = sqlite3.connect(path, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox WHERE payload IS NOT NULL").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0   # no outbox table yet
    finally:
        db.close()


def new_reference(now: dt.datetime | None = None) -> str:
    """A short reference for the citizen: ``KQ`` + date + 6 random characters (unambiguous letters and digits)."""
    now = now or dt.datetime.now()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return f"KQ{now:%Y%m%d}" + "".join(secrets.choice(alphabet) for _ in range(6))


class Outbox:
    """SQLite journal of creating calls, encrypted payloads. Thread-safe; one instance per process."""

    def __init__(self, path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None,
                 on_state: StateHook | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key_file = Path(key_path) if key_path else self.path.with_suffix(".key")
        if not key_file.exists():
            sealed = sealed_rows(self.path)
            if sealed:
                # never a silently new key: those rows could not be opened with it, and nobody would notice
                log.critical("outbox key %s is missing while %s holds %d encrypted request(s); refusing to create "
                             "a new key", key_file, self.path, sealed)
                raise OutboxKeyError(f"outbox key {key_file} is missing while {self.path} holds {sealed} encrypted "
                                     f"request(s) that only that key can open")
        self._aead = AESGCM(load_key(key_file))
        self._lock = threading.RLock()
        self._in_flight: set[str] = set()
        self._senders: dict[str, Sender] = {}
        self._hooks: list[StateHook] = [on_state] if on_state else []
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # a bounded page cache (SQLite keeps every page it writes until its cache is full: 2 MB per connection by
        # default, so a growing journal grew the kiosk's memory by ~1 KB per session — bench/soak_sessions.py)
        self._db.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._db.execute("""CREATE TABLE IF NOT EXISTS outbox (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, reference TEXT NOT NULL UNIQUE,
            idempotency_key TEXT NOT NULL UNIQUE, state TEXT NOT NULL, created_at REAL NOT NULL,
            captured_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            result TEXT, payload BLOB, updated_at REAL NOT NULL)""")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, created_at)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------------------------------ set-up
    def register(self, kind: str, sender: Sender) -> None:
        self._senders[kind] = sender

    def subscribe(self, hook: StateHook) -> None:
        self._hooks.append(hook)

    def _notify(self, item_id: str, state: str) -> None:
        for hook in list(self._hooks):
            hook(item_id, state)

    # ------------------------------------------------------------------------------------------ crypto
    def _seal(self, item_id: str, kind: str, payload: Mapping[str, Any]) -> bytes:
        nonce = os.urandom(12)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return nonce + self._aead.encrypt(nonce, data, f"{item_id}|{kind}".encode())

    def _open(self, item_id: str, kind: str, blob: bytes | None) -> dict[str, Any] | None:
        if blob is None:
            return None
        return json.loads(self._aead.decrypt(blob[:12], blob[12:], f"{item_id}|{kind}".encode()))

    # ------------------------------------------------------------------------------------------ rows
    def _item(self, row: tuple[Any, ...], decrypt: bool = False) -> OutboxItem:
        (id_, kind, reference, key, state, created, captured, attempts, last_error, result, payload) = row
        return OutboxItem(id=id_, kind=kind, reference=reference, idempotency_key=key, state=state,
                          created_at=created, captured_at=captured, attempts=attempts, last_error=last_error,
                          result=json.loads(result) if result else None,
                          payload=self._open(id_, kind, payload) if decrypt else None)

    _COLUMNS = ("id, kind, reference, idempotency_key, state, created_at, captured_at, attempts, last_error, "
                "result, payload")

    def get(self, item_id: str, decrypt: bool = False) -> OutboxItem:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(item_id)
        return self._item(row, decrypt)

    def by_key(self, idempotency_key: str) -> OutboxItem | None:
        """The item journaled with that idempotency key, if any (one indexed row: a retry finds its item without
        reading every row the outbox has kept)."""
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM outbox WHERE idempotency_key = ?",
                                   (idempotency_key,)).fetchone()
        return None if row is None else self._item(row)

    def items(self, states: tuple[str, ...] = STATES, kind: str | None = None) -> list[OutboxItem]:
        """Items in those states, in the order they were journaled (rowid: not ``created_at``, which a wall clock
        stepped back would reorder)."""
        marks = ",".join("?" * len(states))
        sql = f"SELECT {self._COLUMNS} FROM outbox WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rowid", args).fetchall()
        return [self._item(r) for r in rows]

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')")
                       .fetchone()[0])

    def put(self, kind: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None,
            captured_at: dt.datetime | None = None) -> OutboxItem:
        """Journal a request (state ``pending``) before anything is sent. ``captured_at``: when the citizen
        confirmed (default now), kept to the second."""
        captured = (captured_at or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
        if captured.tzinfo is None:
            raise ValueError("captured_at must be timezone-aware")
        item_id = uuid.uuid4().hex
        key = idempotency_key or str(uuid.uuid4())
        now = time.time()
        with self._lock:
            for _ in range(5):
                reference = new_reference()
                try:
                    self._db.execute(
                        "INSERT INTO outbox (id, kind, reference, idempotency_key, state, created_at, captured_at, "
                        "payload, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                        (item_id, kind, reference, key, now, captured.isoformat(), self._seal(item_id, kind, payload),
                         now))
                    break
                except sqlite3.IntegrityError as exc:
                    if "reference" not in str(exc):
                        raise
            else:  # pragma: no cover - 32^6 references a day
                raise RuntimeError("could not find a free outbox reference")
        self._notify(item_id, "pending")
        return self.get(item_id)

    def _set(self, item_id: str, state: str, **cols: Any) -> None:
        sets = ", ".join(f"{c} = ?" for c in ("state", "updated_at", *cols))
        with self._lock:
            self._db.execute(f"UPDATE outbox SET {sets} WHERE id = ?", (state, time.time(), *cols.values(), item_id))
        self._notify(item_id, state)

    # ------------------------------------------------------------------------------------------ sending
    def attempt(self, item_id: str) -> OutboxItem:
        """One attempt to send an open item. Returns it ``submitted`` or ``rejected`` (then the sender's
        rejection is raised as well, so the caller can show it), or raises :class:`PlatformUnavailable` with the
        item back in ``pending``. Another thread already sending it: :class:`PlatformUnavailable` too."""
        with self._lock:
            if item_id in self._in_flight:
                raise PlatformUnavailable("already being sent")
            self._in_flight.add(item_id)
        try:
            item = self.get(item_id, decrypt=True)
            if item.state not in OPEN_STATES:
                return item
            sender = self._senders.get(item.kind)
            if sender is None:
                raise KeyError(f"no sender for outbox kind {item.kind!r}")
            with self._lock:
                self._db.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
                                 "WHERE id = ?", (time.time(), item_id))
            self._notify(item_id, "sending")
            assert item.payload is not None
            try:
                result = sender(item.payload, item.idempotency_key, dt.datetime.fromisoformat(item.captured_at))
            except PlatformRejected as exc:
                self._notify(item_id, "answered")
                self._set(item_id, "rejected", last_error=getattr(exc, "platform_code", "") or error_code(exc),
                          payload=None)
                raise
            except PlatformUnavailable as exc:
                self._set(item_id, "pending", last_error=error_code(exc))
                raise
            except Exception as exc:  # a bug or an unexpected answer: keep it for the next drain
                self._set(item_id, "pending", last_error=type(exc).__name__)
                raise
            self._notify(item_id, "answered")
            self._set(item_id, "submitted", result=json.dumps(result, ensure_ascii=False), payload=None,
                      last_error=None)
            return self.get(item_id)
        finally:
            with self._lock:
                self._in_flight.discard(item_id)

    def drain(self) -> DrainReport:
        """Send every open item, oldest first; stop at the first 'unreachable' (the rest waits)."""
        submitted: list[OutboxItem] = []
        rejected: list[OutboxItem] = []
        unreachable = False
        for item in self.items(OPEN_STATES):
            try:
                done = self.attempt(item.id)
            except PlatformRejected:
                rejected.append(self.get(item.id))
                log.warning("outbox %s %s rejected by the platform", item.kind, item.reference)
                continue
            except PlatformUnavailable:
                unreachable = True
                break
            except Exception:
                log.exception("outbox %s %s failed", item.kind, item.reference)
                continue
            if done.state == "submitted":
                submitted.append(done)
        return DrainReport(submitted, rejected, self.pending_count(), unreachable)

    def purge(self, older_than_s: float = 30 * 86400) -> int:
        """Forget settled rows older than that (they hold no personal data, only references and numbers)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE state IN ('submitted', 'rejected') AND updated_at < ?",
                                   (time.time() - older_than_s,))
            return cur.rowcount


class OutboxDrainer:
    """Drains the outbox in a background thread: every ``interval_s`` while items are open, at once on
    :meth:`wake`; ``listener(report)`` after each drain that settled something."""

    def __init__(self, outbox: Outbox, interval_s: float = 30.0,
                 listener: Callable[[DrainReport], None] | None = None) -> None:
        self.outbox = outbox
        self.interval_s = interval_s
        self.listener = listener
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: drain rounds looked at so far (the first at start, then one per wake or interval)
        self.rounds = 0

    def start(self) -> "OutboxDrainer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kiosk-outbox", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            self.outbox.purge()  # settled rows of last month: references only, but no reason to keep them
        except Exception:
            log.exception("outbox purge failed")
        while not self._stop.is_set():
            try:
                if self.outbox.pending_count():
                    report = self.outbox.drain()
                    if (report.submitted or report.rejected) and self.listener:
                        self.listener(report)
            except Exception:  # never let the drainer die: the next round tries again
                log.exception("outbox drain failed")
            self.rounds += 1
            self._wake.wait(self.interval_s)
            self._wake.clear()
