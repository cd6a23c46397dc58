"""Resident memory that stays flat over months of sessions.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The kiosk's worker, watcher, outbox
and agent threads each touch SQLite, PIL, httpx and the pad drivers, so memory freed on one thread sits in another
thread's arena, and the arenas fragment: the soak (bench/soak_sessions.py) grew by ~1.4–2 MB per 1,000 sessions
while Python's own live objects (tracemalloc) stayed flat and ``malloc_trim`` gave nothing back. With two arenas the
same mix grows by 0.28 MB per 1,000 sessions (3,000 sessions; flat by the soak's rule). Environment
``MALLOC_ARENA_MAX`` (deploy/systemd/kiosk.service sets it too) wins over :func:`limit_malloc_arenas`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

#: glibc's mallopt parameter number for the arena limit (malloc.h: ``M_ARENA_MAX``)
M_ARENA_MAX = -8
#: arenas the kiosk process may use
KIOSK_MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = KIOSK_MALLOC_ARENAS) -> bool:
    """Limit glibc's malloc arenas for this process (call before threads start); False where there is no glibc or
    the environment already sets ``MALLOC_ARENA_MAX``."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):   # not glibc (musl has no mallopt): nothing to limit
        return False
    if not ok:
        log.warning("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return ok


_libc: ctypes.CDLL | None | bool = False   # False: not looked up yet; None: no glibc malloc_trim here


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``); called when a session has ended, so
    what one citizen's prints, payment and PDFs left free is not kept resident until the next restart (the soak's
    untrimmed figure grows about twice as fast as the trimmed one). False where there is no glibc."""
    global _libc
    if _libc is False:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else None
        except OSError:
            _libc = None
    if _libc is None:
        return False
    _libc.malloc_trim(0)
    return True
