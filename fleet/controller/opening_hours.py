"""Opening hours and consumables settings for the operators' reports (device availability, paper forecast).

Kiosks are 24-hour kiosks by default, but many stand in halls or lobbies that close at night; availability is the
share of the hours a kiosk *should* serve. The controller keeps one JSON document in its ``settings`` table (name
``report_settings``, shared by every controller on the database), loaded by ``fleet-controller serve
--opening-hours FILE`` (validated; a bad file refuses to start)::

    {"default": "00:00-24:00",                                # every kiosk unless named below
     "districts": {"蚌埠市龙子湖区": "08:00-20:00"},            # by the district kiosks report in their birth
     "kiosks": {"KSK-340302-0001": {"mon-fri": "08:30-12:00,14:00-17:30", "sat": "09:00-12:00"}},
     "required": ["idcard", "receipt_printer"],              # device kinds a kiosk needs to serve (default: all)
     "roll_pages": 600, "near_end_pages": 150}                 # receipts per paper roll; left at near-end

A spec is ``"HH:MM-HH:MM[,…]"`` for every day, or an object of weekday ranges (``mon``…``sun``, ``mon-fri``;
days not named are closed). Times are China Standard Time (UTC+8, no daylight saving), as on the reports.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

SETTING = "report_settings"
HOUR = 3_600_000
DAY = 86_400_000
CST_OFFSET = 8 * HOUR
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
#: a week of windows: 7 tuples (Monday first) of (start, end) minutes after CST midnight
Week = tuple[tuple[tuple[int, int], ...], ...]
ALWAYS: Week = tuple(((0, 1440),) for _ in WEEKDAYS)


def _day_windows(text: Any) -> tuple[tuple[int, int], ...]:
    if type(text) is not str or len(text) > 200:
        raise ValueError("opening hours: a spec is a string like '08:30-12:00,14:00-18:00'")
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"opening hours: {part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        a, b = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or not 0 <= a < b <= 1440:
            raise ValueError(f"opening hours: {part!r} is not a window within one day")
        out.append((a, b))
    out.sort()
    for (_a1, b1), (a2, _b2) in zip(out, out[1:]):
        if a2 < b1:
            raise ValueError("opening hours: windows overlap")
    return tuple(out)


def parse_week(spec: Any) -> Week:
    """A spec (string for every day, or an object of weekday ranges) → a :data:`Week`; ValueError when bad."""
    if isinstance(spec, str):
        day = _day_windows(spec)
        return tuple(day for _ in WEEKDAYS)
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError("opening hours: a spec is a string or an object of weekdays")
    week: list[tuple[tuple[int, int], ...]] = [() for _ in WEEKDAYS]
    for key, text in spec.items():
        first, _, last = str(key).lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"opening hours: {key!r} is not a weekday or a range like mon-fri")
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if j < i:
            raise ValueError(f"opening hours: {key!r} runs backwards")
        for d in range(i, j + 1):
            week[d] = _day_windows(text)
    return tuple(week)


@dataclass(frozen=True)
class ReportSettings:
    default: Week = ALWAYS
    districts: Mapping[str, Week] = field(default_factory=dict)
    kiosks: Mapping[str, Week] = field(default_factory=dict)
    required: frozenset[str] | None = None   # None: every fitted device counts
    roll_pages: int = 600
    near_end_pages: int = 150
    source: str = "{}"

    @classmethod
    def parse(cls, text: str) -> ReportSettings:
        try:
            data = json.loads(text or "{}")
        except ValueError as exc:
            raise ValueError(f"opening hours: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("opening hours: the document is a JSON object")
        unknown = set(data) - {"default", "districts", "kiosks", "required", "roll_pages", "near_end_pages"}
        if unknown:
            raise ValueError(f"opening hours: unknown keys {sorted(unknown)}")
        required = data.get("required")
        if required is not None and (type(required) is not list or not all(type(k) is str for k in required)):
            raise ValueError("opening hours: required is a list of device kinds")
        pages = {k: data.get(k, d) for k, d in (("roll_pages", 600), ("near_end_pages", 150))}
        for k, v in pages.items():
            if type(v) is not int or not 1 <= v <= 100_000:
                raise ValueError(f"opening hours: {k} is a whole number of pages")
        maps = {}
        for name in ("districts", "kiosks"):
            m = data.get(name, {})
            if not isinstance(m, dict):
                raise ValueError(f"opening hours: {name} is an object")
            maps[name] = {str(k): parse_week(v) for k, v in m.items()}
        return cls(default=parse_week(data.get("default", "00:00-24:00")), districts=maps["districts"],
                   kiosks=maps["kiosks"], required=frozenset(required) if required is not None else None,
                   roll_pages=pages["roll_pages"], near_end_pages=pages["near_end_pages"],
                   source=json.dumps(data, ensure_ascii=False, sort_keys=True))

    def week(self, kiosk_id: str, district: str) -> Week:
        return self.kiosks.get(kiosk_id) or self.districts.get(district or "") or self.default

    def is_required(self, kind: str) -> bool:
        return self.required is None or kind in self.required


def open_intervals(week: Week, since: int, until: int) -> list[tuple[int, int]]:
    """The opening windows of ``week`` between ``since`` and ``until`` (ms), in order, clipped."""
    out: list[tuple[int, int]] = []
    day = since - (since + CST_OFFSET) % DAY
    while day < until:
        weekday = ((day + CST_OFFSET) // DAY + 3) % 7   # 1970-01-01 was a Thursday
        for a, b in week[weekday]:
            s, e = max(since, day + a * 60_000), min(until, day + b * 60_000)
            if s < e:
                if out and out[-1][1] == s:   # 24:00 → 00:00 of the next day: one interval
                    out[-1] = (out[-1][0], e)
                else:
                    out.append((s, e))
        day += DAY
    return out


def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlap(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    """Total length of the intersection of two sorted, non-overlapping interval lists."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            total += e - s
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def load(store: Any) -> ReportSettings:
    """The settings stored on the controller's database (defaults when none were loaded)."""
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT value FROM settings WHERE name = {store.ph}", (SETTING,)).first()
    if row is None:
        return ReportSettings()
    try:
        return ReportSettings.parse(row[0])
    except ValueError:
        return ReportSettings()


def save(store: Any, text: str) -> ReportSettings:
    """Validate ``text`` and store it for every controller on this database (replacing what was there)."""
    parsed = ReportSettings.parse(text)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM settings WHERE name = {store.ph}", (SETTING,))
        conn.exec_driver_sql(f"INSERT INTO settings (name, value) VALUES ({store.ph}, {store.ph})",
                             (SETTING, parsed.source))
    return parsed
