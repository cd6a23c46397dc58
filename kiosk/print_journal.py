"""The print journal: every print job the kiosk makes, written to SQLite before its first byte leaves the kiosk.

States: ``queued`` (recorded, nothing sent) → ``sent`` (handed to the printer: some or all of it may have printed)
→ ``done`` (the printer confirmed it) or ``failed`` (with a reason code). Each change is one committed transaction
(WAL, ``synchronous=FULL``: fsynced before :meth:`mark_sent` returns), so after a crash, a power cut or a kill -9 the
journal says exactly which jobs did not complete, and whether anything of them may have come out:

* ``queued`` — nothing was sent: printing it again is not a reprint;
* ``sent`` — the printer got some or all of it: printing it again is a reprint (marked on the paper for receipts,
  authorised by staff and counted for licences);
* ``failed`` — the reason code says why; a job that failed before its first byte is closed at once as
  ``not_printed`` (the citizen was told up front), the others stay open.

:meth:`pending` lists the jobs that are neither done nor closed. A job is closed when it was reprinted (the new job
carries ``reprint_of``), dismissed by staff, or is known not to have printed. Every transition is also kept in the
``job_events`` table.

Personal data: the journal keeps a non-personal ``summary`` and, only while a job is open, what is needed to print it
again (a receipt's rendered blocks — templates put masked names only; any ID-number-like text is masked here as a
last line of defence; a licence's print options and a document reference, never the document). The payload is
dropped when the job is done or closed. Nothing from a job is written to the logs.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from kiosk.privacy import contains_id_number, scrub
from kiosk.sqlite_tuning import SQLITE_CACHE_KIB

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("receipt", "licence")
STATES = ("queued", "sent", "done", "failed")
#: state → the states it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "queued": ("sent", "failed"),
    "sent": ("done", "failed"),
    "failed": ("done",),          # a licence job found completed on the print server after all
    "done": (),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('receipt', 'licence')),
    template      TEXT NOT NULL,
    summary       TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    reprint_of    TEXT REFERENCES jobs(id),
    root_id       TEXT NOT NULL,
    is_reprint    INTEGER NOT NULL DEFAULT 0,
    authorised_by TEXT,
    reason        TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    bytes_sent    INTEGER,
    device_job    TEXT,
    paper         TEXT,
    pages         INTEGER,
    payload       TEXT,
    closed        TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (state, closed);
CREATE INDEX IF NOT EXISTS jobs_root ON jobs (root_id);
CREATE TABLE IF NOT EXISTS job_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL REFERENCES jobs(id),
    state   TEXT NOT NULL,
    reason  TEXT,
    at      REAL NOT NULL
);
"""


class JournalError(Exception):
    code = "print_journal_error"


class UnknownJob(JournalError, KeyError):
    code = "unknown_print_job"


class InvalidTransition(JournalError, ValueError):
    code = "invalid_print_job_transition"


@dataclass(frozen=True)
class JournalEntry:
    """One job as the journal knows it. Contains no personal data (summary and payload are masked)."""

    id: str
    kind: str
    template: str
    summary: str
    state: str
    attempts: int
    reprint_of: str | None
    root_id: str
    is_reprint: bool
    authorised_by: str | None
    reason: str | None
    detail: str
    bytes_sent: int | None
    device_job: str | None
    paper: str | None
    pages: int | None
    payload: Mapping[str, Any] | None
    closed: str | None
    created_at: float
    updated_at: float

    @property
    def finished(self) -> bool:
        """Needs no more attention: done, or closed (reprinted, dismissed, known not printed)."""
        return self.state == "done" or self.closed is not None

    @property
    def may_have_printed(self) -> bool:
        """Whether any of it may have come out of the printer (printing it again is then a reprint)."""
        if self.state in ("sent", "done"):
            return True
        if self.state == "failed" and self.attempts > 0:
            return not (self.bytes_sent == 0 and self.device_job is None)
        return False

    def to_dict(self) -> dict[str, Any]:
        """For screens, staff tools and telemetry (no payload)."""
        return {"id": self.id, "kind": self.kind, "template": self.template, "summary": self.summary,
                "state": self.state, "attempts": self.attempts, "reprint_of": self.reprint_of,
                "is_reprint": self.is_reprint, "reason": self.reason, "device_job": self.device_job,
                "bytes_sent": self.bytes_sent, "paper": self.paper, "pages": self.pages, "closed": self.closed,
                "may_have_printed": self.may_have_printed, "created_at": self.created_at,
                "updated_at": self.updated_at}


Listener = Callable[[JournalEntry], None]


def _masked(text: str, what: str, job_id: str) -> str:
    if contains_id_number(text):
        log.warning("print job %s: an ID number in the %s was masked before it was stored", job_id, what)
        return scrub(text)
    return text


class PrintJournal:
    """The journal on one SQLite file. Thread-safe; one instance per file per process."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"print journal {self.path.name}: WAL mode not available ({mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        # a bounded page cache (SQLite keeps every page it writes until its cache is full: 2 MB per connection by
        # default, so a growing journal grew the kiosk's memory by ~1 KB per session — bench/soak_sessions.py)
        self._db.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise JournalError(f"print journal {self.path.name} has schema {row[0]}, expected {SCHEMA_VERSION}")

    # ------------------------------------------------------------------------------------------ plumbing
    class _Tx:
        def __init__(self, journal: "PrintJournal") -> None:
            self.journal = journal

        def __enter__(self) -> sqlite3.Connection:
            self.journal._lock.acquire()
            try:
                self.journal._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.journal._lock.release()
                raise
            return self.journal._db

        def __exit__(self, exc_type: Any, *exc: Any) -> None:
            try:
                self.journal._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.journal._lock.release()

    def _tx(self) -> "PrintJournal._Tx":
        return PrintJournal._Tx(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "PrintJournal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, listener: Listener) -> None:
        """``listener(entry)`` after every committed change (on the thread that made it)."""
        self._listeners.append(listener)

    def _notify(self, entry: JournalEntry) -> None:
        for listener in list(self._listeners):
            listener(entry)

    @staticmethod
    def _entry(row: sqlite3.Row) -> JournalEntry:
        return JournalEntry(
            id=row["id"], kind=row["kind"], template=row["template"], summary=row["summary"], state=row["state"],
            attempts=row["attempts"], reprint_of=row["reprint_of"], root_id=row["root_id"],
            is_reprint=bool(row["is_reprint"]), authorised_by=row["authorised_by"], reason=row["reason"],
            detail=row["detail"], bytes_sent=row["bytes_sent"], device_job=row["device_job"], paper=row["paper"],
            pages=row["pages"], payload=json.loads(row["payload"]) if row["payload"] else None,
            closed=row["closed"], created_at=row["created_at"], updated_at=row["updated_at"])

    def _row(self, db: sqlite3.Connection, job_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        return row

    def _event(self, db: sqlite3.Connection, job_id: str, state: str, reason: str | None, now: float) -> None:
        db.execute("INSERT INTO job_events (job_id, state, reason, at) VALUES (?, ?, ?, ?)",
                   (job_id, state, reason, now))

    # ------------------------------------------------------------------------------------------ writing
    def create(self, kind: str, template: str, job_id: str, *, summary: str = "",
               payload: Mapping[str, Any] | None = None, reprint_of: str | None = None, is_reprint: bool = False,
               authorised_by: str | None = None) -> JournalEntry:
        """Record a new job as ``queued`` (committed and fsynced when this returns)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if not job_id:
            raise ValueError("job_id must not be empty")
        payload_text = _masked(json.dumps(payload, ensure_ascii=False), "payload", job_id) if payload else None
        summary = _masked(summary, "summary", job_id)
        now = self._clock()
        with self._tx() as db:
            root_id = job_id
            if reprint_of is not None:
                original = self._row(db, reprint_of)
                root_id = original["root_id"]
                if original["closed"] is None and original["state"] != "done":
                    db.execute("UPDATE jobs SET closed = ?, payload = NULL, updated_at = ? WHERE id = ?",
                               (f"reprinted:{job_id}", now, reprint_of))
                    self._event(db, reprint_of, original["state"], f"reprinted:{job_id}", now)
            db.execute(
                "INSERT INTO jobs (id, kind, template, summary, state, reprint_of, root_id, is_reprint, authorised_by,"
                " payload, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, kind, template, summary, reprint_of, root_id, int(is_reprint), authorised_by,
                 payload_text, now, now))
            self._event(db, job_id, "queued", None, now)
            entry = self._entry(self._row(db, job_id))
        self._notify(entry)
        return entry

    def _move(self, job_id: str, state: str, *, reason: str | None = None, sets: Mapping[str, Any] | None = None,
              attempt: bool = False) -> JournalEntry:
        now = self._clock()
        with self._tx() as db:
            row = self._row(db, job_id)
            if state not in TRANSITIONS[row["state"]]:
                raise InvalidTransition(f"job {job_id}: {row['state']} → {state} is not allowed")
            columns = {"state": state, "updated_at": now, **(sets or {})}
            if attempt:
                columns["attempts"] = row["attempts"] + 1
            assignments = ", ".join(f"{name} = ?" for name in columns)
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*columns.values(), job_id))
            if state != row["state"]:
                self._event(db, job_id, state, reason, now)
            entry = self._entry(self._row(db, job_id))
        self._notify(entry)
        return entry

    def mark_sent(self, job_id: str, device_job: str | int | None = None) -> JournalEntry:
        """The job is about to leave the kiosk (call before its first byte). Counts an attempt."""
        sets = {"device_job": str(device_job)} if device_job is not None else {}
        return self._move(job_id, "sent", sets=sets, attempt=True)

    def set_device_job(self, job_id: str, device_job: str | int) -> JournalEntry:
        """The printer's own id for the job (a CUPS job id), as soon as it is known."""
        now = self._clock()
        with self._tx() as db:
            self._row(db, job_id)
            db.execute("UPDATE jobs SET device_job = ?, updated_at = ? WHERE id = ?", (str(device_job), now, job_id))
            entry = self._entry(self._row(db, job_id))
        self._notify(entry)
        return entry

    def mark_done(self, job_id: str, *, bytes_sent: int | None = None, paper: str | None = None,
                  pages: int | None = None, detail: str = "") -> JournalEntry:
        sets: dict[str, Any] = {"payload": None, "reason": None}
        for name, value in (("bytes_sent", bytes_sent), ("paper", paper), ("pages", pages)):
            if value is not None:
                sets[name] = value
        if detail:
            sets["detail"] = _masked(detail, "detail", job_id)
        return self._move(job_id, "done", sets=sets)

    def mark_failed(self, job_id: str, reason: str, *, detail: str = "", bytes_sent: int | None = None,
                    device_job: str | int | None = None, paper: str | None = None,
                    close: str | None = None) -> JournalEntry:
        """The job did not complete. ``close`` (e.g. ``not_printed``) also closes it: nothing needs doing."""
        sets: dict[str, Any] = {"reason": reason, "detail": _masked(detail, "detail", job_id)}
        if bytes_sent is not None:
            sets["bytes_sent"] = bytes_sent
        if device_job is not None:
            sets["device_job"] = str(device_job)
        if paper is not None:
            sets["paper"] = paper
        if close:
            sets["closed"] = close
            sets["payload"] = None
        return self._move(job_id, "failed", reason=reason, sets=sets)

    def close_job(self, job_id: str, why: str) -> JournalEntry:
        """Staff (or the kiosk) settled an open job: ``dismissed:<reason>``, ``handed_to_staff``, ``not_printed``."""
        now = self._clock()
        with self._tx() as db:
            row = self._row(db, job_id)
            if row["state"] == "done":
                raise InvalidTransition(f"job {job_id} is done")
            db.execute("UPDATE jobs SET closed = ?, payload = NULL, updated_at = ? WHERE id = ?", (why, now, job_id))
            self._event(db, job_id, row["state"], why, now)
            entry = self._entry(self._row(db, job_id))
        self._notify(entry)
        return entry

    # ------------------------------------------------------------------------------------------ reading
    def get(self, job_id: str) -> JournalEntry:
        with self._lock:
            return self._entry(self._row(self._db, job_id))

    def _select(self, where: str, params: Iterable[Any] = ()) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY seq", tuple(params)).fetchall()
        return [self._entry(r) for r in rows]

    def pending(self, kind: str | None = None) -> list[JournalEntry]:
        """Jobs that did not complete and are not closed, oldest first."""
        if kind is None:
            return self._select("state != 'done' AND closed IS NULL")
        return self._select("state != 'done' AND closed IS NULL AND kind = ?", (kind,))

    def jobs(self, limit: int = 100) -> list[JournalEntry]:
        """The latest jobs, oldest first."""
        return self._select("seq > (SELECT COALESCE(MAX(seq), 0) FROM jobs) - ?", (limit,))

    def history(self, job_id: str) -> list[tuple[str, str | None]]:
        """(state, reason) of each recorded change of one job, in order."""
        with self._lock:
            rows = self._db.execute("SELECT state, reason FROM job_events WHERE job_id = ? ORDER BY seq",
                                    (job_id,)).fetchall()
        return [(r["state"], r["reason"]) for r in rows]

    def reprint_count(self, job_id: str) -> int:
        """How many reprints were made of the document ``job_id`` printed (across reprints of reprints)."""
        with self._lock:
            root = self._row(self._db, job_id)["root_id"]
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE root_id = ? AND is_reprint = 1",
                                    (root,)).fetchone()[0]

    def counts(self) -> dict[str, int]:
        """Numbers for telemetry: jobs by state, open ones, reprints."""
        with self._lock:
            out = {state: 0 for state in STATES}
            for state, n in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                out[state] = n
            out["pending"] = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state != 'done' AND closed IS NULL").fetchone()[0]
            out["reprints"] = self._db.execute("SELECT COUNT(*) FROM jobs WHERE is_reprint = 1").fetchone()[0]
        return out

    def purge(self, older_than_s: float) -> int:
        """Delete finished jobs (done or closed) last changed more than ``older_than_s`` ago; returns how many.
        Open jobs are kept whatever their age."""
        cutoff = self._clock() - older_than_s
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM jobs WHERE (state = 'done' OR closed IS NOT NULL) AND updated_at < ? AND id NOT IN "
                "(SELECT reprint_of FROM jobs WHERE reprint_of IS NOT NULL AND state != 'done' AND closed IS NULL)",
                (cutoff,))]
            for job_id in ids:
                db.execute("UPDATE jobs SET reprint_of = NULL WHERE reprint_of = ?", (job_id,))
                db.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return len(ids)
