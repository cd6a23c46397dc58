"""Schema upkeep of the report buckets (fleet/controller/reports.py) on databases created by an older controller.

Why the layout (measured on the bench's database, 2,000 kiosks × 90 days, PostgreSQL): a district's report reads
~26,000 daily rows (293 keys × 90 days) and, for "ratings per kiosk of a district", ~30,000 rows (333 kiosks × 90
days). Written day after day for every kiosk at once, and moved by every live upsert, those rows lie one per heap
page: reading them through a plain primary key fetched ~25,000 pages (265 ms for the daily rows, 185 ms for the
ratings). So

* the district and fleet rows (scopes ``d:…`` and ``*``) have their own table, ``journey_area_daily``, instead of
  sharing ``journey_daily`` with 2,000 kiosks' rows; and
* on PostgreSQL the primary keys of ``journey_area_daily`` and ``journey_kiosk_ratings`` carry the counts
  (``INCLUDE``): the reads are index-only scans of the few hundred index pages that hold the district (~10 ms).

New databases get this from ``metadata.create_all``. :func:`migrate` (run by ``Store.create_schema``) brings an
older database over once: it rebuilds the ratings key and moves the area rows out of ``journey_daily`` (marker
:data:`MOVED` in ``settings``; controllers starting together do it once). Rows keep their values, so every report
stays the same. Controllers sharing a database are upgraded together (an older one would go on writing area rows
into ``journey_daily``, where the newer ones no longer read them).
"""
from __future__ import annotations

from typing import Any

RATINGS = "journey_kiosk_ratings"
RATINGS_KEY = ("district", "service", "day", "kiosk_id")
COUNTS = tuple(f"s{i}" for i in range(1, 6))
RATINGS_PKEY = "journey_kiosk_ratings_pkey"
#: ``settings`` row: the area rows of ``journey_daily`` have been moved to ``journey_area_daily``
MOVED = "journey_area_daily"
DAILY_COLS = "scope, day, service, metric, key"


def _key_covers(conn: Any) -> tuple[bool, str | None]:
    """Whether the ratings table's primary key includes the counts, and the key constraint's name (None: no key)."""
    row = conn.exec_driver_sql(
        "SELECT i.indnatts, i.indnkeyatts, c.conname FROM pg_index i JOIN pg_constraint c "
        "ON c.conindid = i.indexrelid AND c.contype = 'p' "
        f"WHERE i.indrelid = '{RATINGS}'::regclass AND i.indisprimary").first()
    if row is None:
        return False, None
    return row[0] >= row[1] + len(COUNTS), row[2]


def ratings_key_covers(store: Any) -> bool:
    """PostgreSQL: whether ``journey_kiosk_ratings``' primary key carries the star counts (always True on SQLite)."""
    if store.is_sqlite:
        return True
    with store.engine.connect() as conn:
        return _key_covers(conn)[0]


def cover_ratings_key(store: Any) -> bool:
    """Give an older PostgreSQL database's ``journey_kiosk_ratings`` the covering primary key; returns whether it
    rebuilt it (False: nothing to do, or SQLite)."""
    if store.is_sqlite or ratings_key_covers(store):
        return False
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"LOCK TABLE {RATINGS} IN ACCESS EXCLUSIVE MODE")
        covers, name = _key_covers(conn)   # again, under the lock: another controller may have done it meanwhile
        if covers:
            return False
        drop = f'DROP CONSTRAINT "{name}", ' if name else ""
        conn.exec_driver_sql(f"ALTER TABLE {RATINGS} {drop}ADD CONSTRAINT {RATINGS_PKEY} PRIMARY KEY "
                             f"({', '.join(RATINGS_KEY)}) INCLUDE ({', '.join(COUNTS)})")
    return True


def move_area_rows(store: Any) -> int | None:
    """Move the district and fleet rows of ``journey_daily`` (an older controller's) to ``journey_area_daily``,
    once per database; returns how many rows were moved (None: done before)."""
    ph = store.ph
    with store.engine.begin() as conn:
        if conn.exec_driver_sql(f"SELECT 1 FROM settings WHERE name = {ph}", (MOVED,)).first():
            return None
        # claim the move: a controller doing the same waits on this row until we commit, then finds it taken
        claimed = conn.exec_driver_sql(f"INSERT INTO settings (name, value) VALUES ({ph}, {ph}) ON CONFLICT DO NOTHING",
                                       (MOVED, "moved")).rowcount
        if not claimed:
            return None
        if not store.is_sqlite:   # no older controller adds area rows while they move (reads go on)
            conn.exec_driver_sql("LOCK TABLE journey_daily IN EXCLUSIVE MODE")
        area = f"scope NOT LIKE {ph}"   # the district and fleet scopes ('d:…', '*'), not the kiosks' ('k:…')
        conn.exec_driver_sql(
            f"INSERT INTO journey_area_daily ({DAILY_COLS}, n, total) SELECT {DAILY_COLS}, n, total FROM journey_daily "
            f"WHERE {area} ON CONFLICT ({DAILY_COLS}) DO UPDATE SET n = journey_area_daily.n + excluded.n, "
            "total = journey_area_daily.total + excluded.total", ("k:%",))
        return int(conn.exec_driver_sql(f"DELETE FROM journey_daily WHERE {area}", ("k:%",)).rowcount or 0)


def migrate(store: Any) -> None:
    """Everything above that an older database still needs (cheap when done: a catalog query, a settings row)."""
    cover_ratings_key(store)
    move_area_rows(store)
