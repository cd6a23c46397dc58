"""Settings shared by the kiosk's SQLite journals (print journal, payment journal, outbox).

SQLite keeps every page a connection reads or writes in that connection's page cache until the cache is full (2 MB
per connection by default). A journal that grows by a row per session therefore grew the kiosk's resident memory by
about its own size — ~1 KB per session over three journals, for thousands of sessions — before the cache filled
(bench/soak_sessions.py). The journals are written once per step and read by index (open jobs, unresolved payments,
pending requests): a small cache costs them nothing measurable and keeps memory flat.
"""
from __future__ import annotations

#: page cache per connection, KiB (``PRAGMA cache_size=-N``)
SQLITE_CACHE_KIB = 256
