"""The service catalogue on the kiosk's own disk, so that guides and their one-time notices (一次性告知) still show while
the platform is unreachable — with the date of the copy, so nobody mistakes an old copy for today's rules.

The whole catalogue (every service's summary and detail, as the platform sent them) is fetched at start and then once
a day, and replaced in one transaction: a refresh that fails half-way leaves yesterday's copy whole. Searching the copy
matches what the platform's search matches for a citizen at the kiosk: the name, the English name, the department,
and the pinyin (full or initials, so "gjj" finds 公积金).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from kiosk.errors import KioskError
from kiosk.platform_client import PlatformClient, ServiceDetail, ServiceSummary

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    code TEXT PRIMARY KEY, position INTEGER NOT NULL, categories TEXT NOT NULL,
    search_text TEXT NOT NULL, summary TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class GuideNotCached(KioskError):
    """The platform is unreachable and the kiosk holds no copy of this guide."""

    code = "guide_not_cached"
    translation_key = "guide_offline.not_cached"


def search_text(summary: dict[str, Any]) -> str:
    """What a query is matched against: names, department, pinyin in full and as initials (lower case)."""
    from pypinyin import Style, lazy_pinyin

    name = summary.get("name", "")
    parts = [name, summary.get("name_en") or "", summary.get("department") or "",
             "".join(lazy_pinyin(name)), "".join(lazy_pinyin(name, style=Style.FIRST_LETTER))]
    return "\n".join(parts).lower()


class GuideCache:
    """A SQLite copy of the catalogue; safe to use from the kiosk's worker threads."""

    def __init__(self, path: Path, max_age_s: float = DAY_S, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.max_age_s = max_age_s
        self._clock = clock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # freshness --------------------------------------------------------------------------------------------------------
    @property
    def refreshed_at(self) -> datetime | None:
        """When the copy was taken (local time), None before the first refresh."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'refreshed_at'").fetchone()
        return datetime.fromtimestamp(float(row[0])) if row else None

    def stale(self) -> bool:
        """A day old — or taken "in the future": the wall clock was stepped back (NTP) past the copy's time, so its
        age is unknown; one refresh sets a date consistent with the clock again rather than waiting for the wall
        clock to catch up (hours or days without a refresh)."""
        taken = self.refreshed_at
        if taken is None:
            return True
        age = self._clock() - taken.timestamp()
        return age < 0 or age >= self.max_age_s

    def refresh(self, platform: PlatformClient) -> int:
        """Fetch the whole catalogue and replace the copy in one transaction; returns the number of services.
        A refresh already running makes this one return 0 at once."""
        if not self._refreshing.acquire(blocking=False):
            return 0
        try:
            summaries = platform.catalogue()
            rows = []
            for position, summary in enumerate(summaries):
                detail = platform.service_detail_json(summary["code"])
                categories = {summary.get("category") or "", *(summary.get("categories") or [])} - {""}
                rows.append((summary["code"], position, "|" + "|".join(sorted(categories)) + "|", search_text(summary),
                             json.dumps(summary, ensure_ascii=False), json.dumps(detail, ensure_ascii=False)))
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("DELETE FROM services")
                    self._db.executemany("INSERT INTO services VALUES (?, ?, ?, ?, ?, ?)", rows)
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('refreshed_at', ?)", (str(self._clock()),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            log.info("guide cache refreshed: %d services", len(rows))
            return len(rows)
        finally:
            self._refreshing.release()

    def refresh_if_stale(self, platform: PlatformClient) -> int:
        return self.refresh(platform) if self.stale() else 0

    # reading ----------------------------------------------------------------------------------------------------------
    def search(self, query: str = "", category: str = "", limit: int = 50) -> list[ServiceSummary]:
        words = query.strip().lower().split()
        sql = "SELECT summary FROM services WHERE 1=1"
        args: list[Any] = []
        for word in words:
            sql += " AND instr(search_text, ?) > 0"
            args.append(word)
        if category:
            sql += " AND instr(categories, ?) > 0"
            args.append(f"|{category}|")
        sql += " ORDER BY position LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [ServiceSummary.from_json(json.loads(row[0])) for row in rows]

    def detail(self, code: str) -> ServiceDetail:
        with self._lock:
            row = self._db.execute("SELECT detail FROM services WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise GuideNotCached(f"no cached guide for {code}")
        return ServiceDetail.from_json(json.loads(row[0]))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM services").fetchone()[0])
