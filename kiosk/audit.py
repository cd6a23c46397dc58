"""Append-only audit journal: one JSON object per line, chained and keyed, durable, rotated, verifiable.

Entry: ``{"ts", "kiosk", "event", "session", …fields, "seq", "epoch", "prev", "mac"}`` where ``mac`` is
HMAC-SHA256 (the kiosk's audit key) over the entry's canonical JSON without ``mac``, and ``prev`` is the ``mac`` of
the entry before it (:data:`GENESIS` for the very first). ``seq`` counts entries (1, 2, …) across files and
restarts; ``epoch`` counts chain segments (0 at first; +1 when the chain had to be restarted, see below).

Durability (the batch rule): :meth:`AuditJournal.record` returns only after the line was written, flushed and
fsynced (and the folder fsynced when a file was created or renamed). :class:`kiosk.core.KioskCore` hands entries
to one writer thread (the fsync never runs on the UI thread), in order; a step whose entry must be on disk before
it goes on calls ``KioskCore.flush_audit()``, which returns once every entry asked for so far is fsynced.

Power loss in the middle of a write leaves a torn last line (a partial JSON line without its newline, or a last
line that does not parse). At open it is cut off and quarantined — moved to ``audit.jsonl.<n>.torn`` (n counts
them), logged, and recorded as an ``audit_torn_tail`` entry — never glued to the next entry; the chain continues
from the last whole entry.

Key: 32 random bytes in ``audit.key`` beside the journal (mode 0600, created exclusively at the first start). A
missing key while audit files exist (or a key that does not verify the last entry) is never silently replaced:
the journal logs it as critical, starts a new chain segment (``epoch`` + 1) whose first entry
``audit_chain_break`` records the reason and the head it could not verify, and sets :attr:`AuditJournal.chain_break`
so the kiosk raises a fleet alarm (``audit_chain_break``, critical).

Rotation: when the active file ``audit.jsonl`` reaches ``max_bytes`` or its first entry is from an earlier (local)
day, it is renamed ``audit-<seq of its first entry, 12 digits>.jsonl`` and a new active file starts; its first entry
links (``prev``) to the last entry of the previous file, so one chain runs through all files in name order.
Retention: :meth:`AuditJournal.prune` deletes rotated files last written more than N days ago (the profile's
``retention.audit_days``, default 365); the verifier then starts at the first entry still present.

:func:`verify_dir` (CLI: ``kiosk audit-verify DIR``) checks a folder of files with the key: every MAC, every link,
``seq`` without gaps, and reports the head. The head (seq, hash, epoch) goes to the fleet in the agent's telemetry;
the controller raises ``audit_chain_broken`` when it goes backwards (tail deleted or chain rewritten).

No personal data in clear: values are checked and any ID-number-like text is masked before it is written (the
caller should pass masked values in the first place).
"""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from kiosk.privacy import scrub

log = logging.getLogger(__name__)

GENESIS = "0" * 64
KEY_BYTES = 32
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_RETENTION_DAYS = 365
_ROTATED = re.compile(r"-(\d{12})$")


class AuditKeyError(RuntimeError):
    """The audit key file is unusable (readable by others, wrong size)."""


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes the MAC covers: the entry without ``mac``, sorted keys, UTF-8."""
    return json.dumps({k: v for k, v in entry.items() if k != "mac"}, ensure_ascii=False,
                      sort_keys=True).encode("utf-8")


def entry_mac(key: bytes, entry: dict[str, Any]) -> str:
    return hmac.new(key, canonical(entry), hashlib.sha256).hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key(path: Path) -> bytes:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuditKeyError(f"{path} is readable by others (mode {mode:o}); it must be 0600")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise AuditKeyError(f"{path} is not a {KEY_BYTES}-byte key")
    return key


def create_key(path: Path) -> bytes:
    """A new key, created exclusively with mode 0600 (two processes never write different keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    _write_new(path, key)
    _fsync_dir(path.parent)
    return key


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file (created exclusively, mode 0600) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_files(active: Path) -> list[Path]:
    """Rotated files in chain order (by the seq in their names), then the active file."""
    rotated = sorted(p for p in active.parent.glob(f"{active.stem}-*{active.suffix}")
                     if _ROTATED.search(p.stem))
    return rotated + ([active] if active.exists() else [])


def _last_line(path: Path) -> bytes | None:
    """The last non-empty line of a file (read backwards in blocks)."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        buf = b""
        pos = end
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            stripped = buf.rstrip(b"\n")
            idx = stripped.rfind(b"\n")
            if idx >= 0:
                return stripped[idx + 1:] or None
        stripped = buf.rstrip(b"\n")
        return stripped or None


@dataclass
class ChainBreak:
    reason: str                  # key_missing | key_mismatch
    epoch: int                   # the new segment
    previous: dict[str, Any] = field(default_factory=dict)   # the head that could not be verified


class AuditJournal:
    def __init__(self, path: str | os.PathLike[str], kiosk_id: str, *, key_path: str | os.PathLike[str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.kiosk_id = kiosk_id
        self.key_path = Path(key_path) if key_path else self.path.parent / f"{self.path.stem}.key"
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.torn_count = 0               # torn tails quarantined at this open
        self.chain_break: ChainBreak | None = None
        self._seq = 0
        self._epoch = 0
        self._last_hash = GENESIS
        self._active_day: dt.date | None = None
        torn = self._quarantine_torn_tail()
        last = self._last_entry()
        keyed = last is not None and "mac" in last   # legacy (unkeyed) journals are continued with a new key
        if last is not None:
            self._seq = int(last.get("seq", 0)) if "mac" in last else self._count_legacy()
            self._epoch = int(last.get("epoch", 0))
            self._last_hash = last["mac"] if "mac" in last else last["_sha256"]
        self._active_day = self._first_day()
        if self.key_path.exists():
            self._key = read_key(self.key_path)
            if last is not None and "mac" in last and not hmac.compare_digest(
                    entry_mac(self._key, {k: v for k, v in last.items() if k != "_sha256"}), last["mac"]):
                self._break("key_mismatch")
        else:
            self._key = create_key(self.key_path)
            if keyed:
                self._break("key_missing")
        for name, size in torn:
            self.record("audit_torn_tail", file=name, bytes=size, count=self.torn_count)

    # opening ------------------------------------------------------------------------------------------------------
    def _quarantine_torn_tail(self) -> list[tuple[str, int]]:
        """Cut a torn last line off the active file and move it to ``<name>.<n>.torn``."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if not data:
            return []
        cut = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
        if cut == len(data):  # whole lines: is the last one valid JSON?
            body = data.rstrip(b"\n")
            start = body.rfind(b"\n") + 1
            try:
                json.loads(body[start:] or b"{}")
            except ValueError:
                cut = start
        if cut == len(data):
            return []
        torn = data[cut:]
        existing = len(list(self.path.parent.glob(f"{self.path.name}.*.torn")))
        target = self.path.parent / f"{self.path.name}.{existing + 1}.torn"
        _write_new(target, torn)
        with self.path.open("r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.path.parent)
        self.torn_count += 1
        log.error("audit journal %s: torn last line (%d bytes, power loss during a write?) quarantined to %s",
                  self.path, len(torn), target.name)
        return [(target.name, len(torn))]

    def _last_entry(self) -> dict[str, Any] | None:
        for p in reversed(journal_files(self.path)):
            line = _last_line(p)
            if line:
                entry = json.loads(line)
                entry["_sha256"] = hashlib.sha256(line).hexdigest()
                return entry
        return None

    def _count_legacy(self) -> int:
        n = 0
        for p in journal_files(self.path):
            with p.open("rb") as fh:
                n += sum(1 for line in fh if line.strip())
        return n

    def _first_day(self) -> dt.date | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            return dt.datetime.fromtimestamp(float(json.loads(first)["ts"])).date()
        except (ValueError, KeyError, TypeError):
            return None

    def _break(self, reason: str) -> None:
        previous = {"seq": self._seq, "hash": self._last_hash, "epoch": self._epoch}
        self._epoch += 1
        self.chain_break = ChainBreak(reason, self._epoch, previous)
        log.critical("AUDIT CHAIN BREAK (%s): %s — the existing audit files cannot be verified with %s; starting "
                     "chain segment %d (head before: seq %d). Investigate: the key must never be lost or replaced.",
                     reason, self.path.parent, self.key_path, self._epoch, self._seq)
        self.record("audit_chain_break", reason=reason, prev_seq=previous["seq"], prev_hash=previous["hash"],
                    prev_epoch=previous["epoch"])

    # writing ------------------------------------------------------------------------------------------------------
    def _maybe_rotate(self, now: float) -> None:
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        if size == 0:
            return
        today = dt.datetime.fromtimestamp(now).date()
        if size < self.max_bytes and (self._active_day is None or self._active_day == today):
            return
        with self.path.open("rb") as fh:
            first = json.loads(fh.readline())
        first_seq = int(first.get("seq", 0))
        target = self.path.parent / f"{self.path.stem}-{first_seq:012d}{self.path.suffix}"
        n = 0
        while target.exists():  # legacy files without seq: never overwrite
            n += 1
            target = self.path.parent / f"{self.path.stem}-{first_seq:012d}.{n}{self.path.suffix}"
        os.rename(self.path, target)
        _fsync_dir(self.path.parent)
        self._active_day = None
        log.info("audit journal rotated to %s", target.name)

    def record(self, event: str, session_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one entry; returns it once it is on disk (fsynced). ``fields`` must be JSON-serialisable."""
        safe = json.loads(scrub(json.dumps(fields, ensure_ascii=False, default=str)))
        with self._lock:
            now = self._clock()
            self._maybe_rotate(now)
            entry = {"ts": round(now, 3), "kiosk": self.kiosk_id, "event": event, "session": session_id, **safe,
                     "seq": self._seq + 1, "epoch": self._epoch, "prev": self._last_hash}
            entry["mac"] = entry_mac(self._key, entry)
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8")
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                start = os.fstat(fd).st_size
                data = line + b"\n"
                try:
                    written = os.write(fd, data)
                    if written != len(data):   # a short write: the disk filled up part-way
                        raise OSError(errno.ENOSPC, f"audit entry cut short ({written} of {len(data)} bytes)")
                    os.fsync(fd)
                except OSError:
                    # disk full (or I/O error) mid-append: cut the partial line off again, so no half entry stays
                    # to be glued to the next one; the chain goes on from the last whole entry
                    try:
                        os.ftruncate(fd, start)
                        os.fsync(fd)
                    except OSError:
                        log.error("audit journal %s: a failed append could not be cut back", self.path)
                    raise
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
            if self._active_day is None:
                self._active_day = dt.datetime.fromtimestamp(now).date()
            self._seq += 1
            self._last_hash = entry["mac"]
        return entry

    # reading ------------------------------------------------------------------------------------------------------
    def head(self) -> dict[str, Any]:
        """The chain head for the fleet: ``{"seq", "hash", "epoch"}``."""
        with self._lock:
            return {"seq": self._seq, "hash": self._last_hash, "epoch": self._epoch}

    def files(self) -> list[Path]:
        return journal_files(self.path)

    def entries(self) -> Iterator[dict[str, Any]]:
        for p in journal_files(self.path):
            with p.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)

    def verify(self) -> bool:
        """True when every entry's MAC and link check out with this kiosk's key (nothing removed or edited)."""
        return verify_dir(self.path.parent, self._key, stem=self.path.stem, suffix=self.path.suffix).ok

    def prune(self, older_than_days: float = DEFAULT_RETENTION_DAYS) -> list[str]:
        """Delete rotated files last written more than ``older_than_days`` ago (never the active file)."""
        cutoff = self._clock() - older_than_days * 86400
        removed = []
        with self._lock:
            for p in journal_files(self.path):
                if p != self.path and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed.append(p.name)
            if removed:
                _fsync_dir(self.path.parent)
                log.info("audit retention: removed %s", ", ".join(removed))
        return removed


# verifying ----------------------------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    ok: bool = True
    entries: int = 0
    files: list[str] = field(default_factory=list)
    first_seq: int | None = None
    head: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    breaks: list[dict[str, Any]] = field(default_factory=list)    # declared chain breaks (key lost)
    unverifiable: int = 0       # entries of segments before a declared key loss (their key is gone)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "files": self.files, "first_seq": self.first_seq,
                "head": self.head, "problems": self.problems[:100], "breaks": self.breaks,
                "unverifiable": self.unverifiable}


def verify_dir(folder: str | os.PathLike[str], key: bytes | None = None, *, stem: str = "audit",
               suffix: str = ".jsonl", key_path: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Check every audit file in ``folder`` (rotated ones, then the active one) with ``key`` (default: the
    ``audit.key`` file there): MAC of every entry, ``prev`` = the MAC of the entry before, ``seq`` + 1 each time.
    The first entry present may start after seq 1 (older files pruned by retention). Entries of a segment that
    ended in a declared key loss (``audit_chain_break``) cannot be checked with the new key: counted as
    ``unverifiable``, listed in ``breaks``, not as tampering. Legacy entries (SHA-256 chain, no MAC, before the key)
    are checked by their hash chain."""
    folder = Path(folder)
    if key is None:
        key = read_key(Path(key_path) if key_path else folder / f"{stem}.key")
    report = VerifyReport()
    lines: list[tuple[str, int, bytes]] = []
    for p in journal_files(folder / f"{stem}{suffix}"):
        report.files.append(p.name)
        with p.open("rb") as fh:
            for no, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    report.problems.append(f"{p.name}:{no}: line without newline (torn)")
                raw = raw.rstrip(b"\n")
                if raw.strip():
                    lines.append((p.name, no, raw))
    parsed: list[tuple[str, int, bytes, dict[str, Any] | None]] = []
    for name, no, raw in lines:
        try:
            parsed.append((name, no, raw, json.loads(raw)))
        except ValueError:
            parsed.append((name, no, raw, None))
    # segments whose key was declared lost: everything before the last break entry's position
    last_break = max((i for i, (_, _, _, e) in enumerate(parsed) if e and e.get("event") == "audit_chain_break"),
                     default=-1)
    prev: str | None = None       # None: accept the first link (pruned start)
    seq: int | None = None
    for i, (name, no, raw, entry) in enumerate(parsed):
        where = f"{name}:{no}"
        report.entries += 1
        if entry is None:
            report.problems.append(f"{where}: not JSON")
            prev = None
            continue
        if "mac" not in entry:  # legacy: SHA-256 chain
            if prev is not None and entry.get("prev") != prev:
                report.problems.append(f"{where}: legacy link broken")
            prev = hashlib.sha256(raw).hexdigest()
            seq = (seq or 0) + 1
            continue
        if i < last_break:
            report.unverifiable += 1
            prev, seq = entry["mac"], entry.get("seq")
            continue
        if entry.get("event") == "audit_chain_break":
            report.breaks.append({"at": where, "seq": entry.get("seq"), "epoch": entry.get("epoch"),
                                  "reason": entry.get("reason"), "prev_seq": entry.get("prev_seq")})
        if not hmac.compare_digest(entry_mac(key, entry), str(entry.get("mac"))):
            report.problems.append(f"{where}: MAC does not match (entry edited or another key)")
        if prev is not None and entry.get("prev") != prev:
            report.problems.append(f"{where}: link broken (an entry before it was removed, edited or inserted)")
        if report.first_seq is None:
            report.first_seq = entry.get("seq")
        if seq is not None and entry.get("seq") != seq + 1:
            report.problems.append(f"{where}: seq {entry.get('seq')} after {seq}")
        prev, seq = entry["mac"], entry.get("seq")
        report.head = {"seq": entry.get("seq"), "hash": entry["mac"], "epoch": entry.get("epoch", 0)}
    report.ok = not report.problems
    return report


def verify_command(folder: str, key_file: str | None = None) -> int:
    """``kiosk audit-verify DIR [--key FILE]``: prints the report as JSON; exit status 0 when the chain holds."""
    try:
        report = verify_dir(folder, key_path=key_file)
    except (OSError, AuditKeyError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        return 2
    print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    return 0 if report.ok else 1
