"""The storage guard: a kiosk whose data disk is full refuses new transactions honestly instead of failing half-way.

Every transaction (an application, a payment, a print, an EMS delivery) is journaled on the data disk before
anything leaves the kiosk (outbox, payment journal, print journal, audit). With the disk full those writes fail, so:

* ``require()`` — called before a transaction starts — measures the free space of ``data_dir`` (``os.statvfs``) and
  raises :class:`StorageFull` (code ``storage_full``) below the profile's ``kiosk.min_free_mb``. The margin is what
  the journals, the audit trail and the fleet agent's queue still need to record what the kiosk does meanwhile.
* ``writing()`` wraps a journal write: an ``ENOSPC`` (or SQLite's "database or disk is full") raised by it becomes
  the same :class:`StorageFull`. The journals write each record in one transaction (SQLite) or one append that is
  cut back on failure (audit), so nothing is left half-recorded.
* ``check()`` runs periodically (the core's health check) and on every ``require()``; each change full ↔ not full
  goes to ``on_change(full, free_bytes)`` — the core marks those services unavailable on the menu (guides and
  progress keep working) and raises, then clears, the fleet alarm ``storage_full``.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterator

from kiosk.errors import KioskError

log = logging.getLogger(__name__)

MB = 1024 * 1024
DEFAULT_MIN_FREE_MB = 200.0
#: errnos that mean "no room to write": the disk, or the kiosk user's quota
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StorageFull(KioskError):
    """The kiosk's data disk is (nearly) full: no new transaction is started, nothing is half-recorded."""

    code = "storage_full"
    translation_key = "error.storage.full"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk is full."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, StorageFull):
            return True
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                                               or "database or disk is full" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class StorageGuard:
    def __init__(self, path: str | os.PathLike[str], min_free_mb: float = DEFAULT_MIN_FREE_MB,
                 on_change: Callable[[bool, int], None] | None = None,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> None:
        self.path = Path(path)
        self.min_free_bytes = int(float(min_free_mb) * MB)
        self._statvfs = statvfs
        self._listeners: list[Callable[[bool, int], None]] = [on_change] if on_change else []
        self._lock = threading.Lock()
        self.full = False
        self.free_bytes: int | None = None

    def subscribe(self, listener: Callable[[bool, int], None]) -> None:
        self._listeners.append(listener)

    def measure(self) -> int:
        """Bytes an unprivileged writer may still use on data_dir's filesystem."""
        st = self._statvfs(str(self.path))
        return int(st.f_bavail) * int(st.f_frsize)

    def check(self) -> bool:
        """Measure now; True when below the threshold. A change is logged and reported to the listeners."""
        try:
            free = self.measure()
        except OSError as exc:       # data_dir gone or unreadable: cannot journal either
            log.error("free space of %s not measurable: %s", self.path, exc)
            free = 0
        self._set(free < self.min_free_bytes, free)
        return self.full

    def note_full(self) -> None:
        """A write failed with the disk full (whatever statvfs said a moment ago): full until a check says not."""
        try:
            free = self.measure()
        except OSError:
            free = 0
        self._set(True, free)

    def _set(self, full: bool, free: int) -> None:
        with self._lock:
            self.free_bytes = free
            changed = full != self.full
            self.full = full
        if not changed:
            return
        if full:
            log.error("data disk %s nearly full: %.1f MB free (minimum %.1f MB): new transactions refused",
                      self.path, free / MB, self.min_free_bytes / MB)
        else:
            log.warning("data disk %s has room again: %.1f MB free: transactions resume", self.path, free / MB)
        for listener in list(self._listeners):
            try:
                listener(full, free)
            except Exception:   # a listener's failure must not hide the refusal
                log.exception("storage listener failed")

    def require(self, action: str = "") -> None:
        """Before a transaction starts: raise :class:`StorageFull` when data_dir is below the threshold."""
        if self.check():
            raise StorageFull(f"data disk full: {action or 'transaction'} refused "
                              f"({(self.free_bytes or 0) // MB} MB free, minimum {self.min_free_bytes // MB} MB)")

    @contextlib.contextmanager
    def writing(self, what: str = "") -> Iterator[None]:
        """Around a journal write: a disk-full failure becomes :class:`StorageFull` (and marks the guard full)."""
        try:
            yield
        except StorageFull:
            self.note_full()
            raise
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self.note_full()
            raise StorageFull(f"data disk full while writing {what or 'a journal'}") from exc


__all__ = ["StorageFull", "StorageGuard", "is_disk_full", "DEFAULT_MIN_FREE_MB"]
