"""Operators' reports from anonymous journeys (topic ``journey``) and device history.

Aggregated at ingest, incrementally (:func:`write_journeys`, in the flush's transaction): each journey message counts
once (``journey_seen``, keyed by kiosk and ``mid``), its sessions become counts and sums of seconds in
``journey_hourly`` (UTC hour × kiosk × service × metric × key), ``journey_daily`` (CST day × scope × …, scope
``k:<kiosk>``) and ``journey_area_daily`` (the same for scopes ``d:<district>`` and ``*``: the per-district and
fleet rollup, a table of its own so that a district's rows stay together and, on PostgreSQL, are read from the
covering primary key alone). Report pages read one scope and a day range: a few thousand rows for 90 days whatever
the fleet's size — never the raw messages (which are not kept).

Metrics (service ``''`` = the whole session):
  outcome/<outcome>      sessions by outcome (total = seconds)      furthest/<step>   card journeys by furthest step
  furthest_anon/<step>   the same for sessions without a card       exit/<screen>     not completed, ended on screen
  timeout/<screen>       timed out on screen                        error/<screen>    ended in an error on screen
  error_code/<code>      error codes                                 screen/<screen>   visits (total = seconds)
  <svc> started          services entered                            <svc> <outcome>   by outcome (total = seconds)
  <svc> ctime/<bin>      completed within ≤ bin seconds (medians from the histogram)
  <svc> reach/<screen>   sessions of the service that reached its screen (the per-service funnel)
  <svc> exit/<screen>    … that left the service, not completed, on that screen
  rating/<stars>         ratings (total = stars), for the session ('') and for the rated service
  rtag/<tag>             suggested tag codes given with ratings ('' and per service)
Ratings per kiosk of a district and per district of the fleet: ``journey_kiosk_ratings`` (district × service × day ×
kiosk: counts per star; district ``'*'`` holds the fleet's districts in ``kiosk_id``), written in the same
transaction — a few hundred rows per report instead of every row of every kiosk's scope.
"""
from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
from typing import Any, Iterable, Mapping, Sequence

from fleet.protocol import JOURNEY_OUTCOMES, now_ms

HOUR = 3_600_000
DAY = 86_400_000
CST_OFFSET = 8 * HOUR
FUNNEL = ("attract", "card", "face", "menu", "service", "done")
_STAGE = {"attract": 0, "card": 1, "face": 2, "menu": 3, "done": 5}
NOT_STAGES = frozenset({"rating"})
CTIME_BINS = (10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600, 86400)
SMALL_CELL = 5
STARS = frozenset("12345")
#: a printer reports paper only as ok / near-end / out; a near-end roll is assumed to hold this many pages
NEAR_END_PAGES = 150
HOURLY_KEEP_DAYS = 35
SEEN_KEEP_DAYS = 32
OUTCOME_ZH = {"completed": "办结", "abandoned": "放弃", "timed_out": "超时", "error": "出错", "out_of_service": "暂停服务"}
SCREEN_ZH = {"attract": "待机页", "card": "读卡", "face_check": "人脸核验", "face_consent": "人脸核验授权", "menu": "菜单", "guide": "办事指南",
             "guide_detail": "指南详情", "progress": "办件进度", "apply": "在线申报", "apply_notice": "申报须知",
             "apply_form": "填写表单", "payment": "缴费", "print_confirm": "打印确认", "appointment": "预约取号",
             "delivery": "邮寄送达", "certificates": "电子证照", "rating": "评价", "done": "办结"}
STEP_ZH = {"attract": "待机页", "card": "读卡", "face": "人脸核验", "menu": "菜单", "service": "业务办理", "done": "完成"}


def cst_day(ms: int) -> int:
    """The start (ms) of the China Standard Time day holding ``ms``."""
    return ms - (ms + CST_OFFSET) % DAY


def day_label(day_ms: int) -> str:
    return dt.datetime.fromtimestamp((day_ms + CST_OFFSET) / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


def parse_day(text: str) -> int:
    """``YYYY-MM-DD`` (a CST day) → its start in ms; ValueError otherwise."""
    d = dt.datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000) - CST_OFFSET


def _stage(step: str) -> int | None:
    if step in NOT_STAGES:
        return None
    return _STAGE.get(step, 4)


def session_rows(session: Mapping[str, Any]) -> list[tuple[str, str, str, int, float]]:
    """One checked session (fleet.protocol.check_journey) → ``(service, metric, key, n, seconds)`` rows."""
    outcome, at = session["outcome"], session.get("at") or "attract"
    steps = session.get("steps") or []
    rows: list[tuple[str, str, str, int, float]] = [("", "outcome", outcome, 1, float(session["dur_s"]))]
    stages = [st for st in (_stage(s[0]) for s in steps) if st is not None]
    if outcome == "completed":
        stages.append(5)
    furthest = max(stages, default=0)
    anonymous = not any(s[0] == "card" for s in steps)
    rows.append(("", "furthest_anon" if anonymous else "furthest", FUNNEL[furthest], 1, 0.0))
    if outcome != "completed":
        rows.append(("", "exit", at, 1, 0.0))
        if outcome == "timed_out":
            rows.append(("", "timeout", at, 1, 0.0))
        elif outcome == "error":
            rows.append(("", "error", at, 1, 0.0))
            rows.append(("", "error_code", session.get("err") or "error", 1, 0.0))
    for screen, secs in steps:
        if screen != "done":
            rows.append(("", "screen", screen, 1, float(secs)))
    for entry in session.get("services") or []:
        code, svc_outcome, secs = entry[0], entry[1], entry[2]
        rows.append((code, "started", "", 1, 0.0))
        rows.append((code, svc_outcome, "", 1, float(secs)))
        if svc_outcome == "completed":
            b = CTIME_BINS[min(bisect.bisect_left(CTIME_BINS, secs), len(CTIME_BINS) - 1)]
            rows.append((code, "ctime", str(b), 1, float(secs)))
        screens = entry[3] if len(entry) > 3 else []
        for screen in dict.fromkeys(screens):
            rows.append((code, "reach", screen, 1, 0.0))
        if screens and svc_outcome != "completed":
            rows.append((code, "exit", screens[-1], 1, 0.0))
    for code, stars, tags in session.get("ratings") or []:
        for svc in ("", code):
            rows.append((svc, "rating", str(stars), 1, float(stars)))
            for tag in dict.fromkeys(tags):
                rows.append((svc, "rtag", tag, 1, 0.0))
    return rows


# --- ingest ----------------------------------------------------------------------------------------------------------

def _districts(store: Any, conn: Any, kiosk_ids: Iterable[str]) -> dict[str, str]:
    cache: dict[str, str] = store.__dict__.setdefault("_journey_districts", {})
    missing = sorted({k for k in kiosk_ids if k not in cache})
    for i in range(0, len(missing), 500):
        part = missing[i:i + 500]
        marks = ",".join([store.ph] * len(part))
        for kiosk_id, district in conn.exec_driver_sql(
                f"SELECT kiosk_id, district FROM kiosks WHERE kiosk_id IN ({marks})", tuple(part)).fetchall():
            cache[kiosk_id] = district or ""
    if len(cache) > 200_000:
        cache.clear()
    return cache


def forget_district(store: Any, kiosk_id: str) -> None:
    store.__dict__.setdefault("_journey_districts", {}).pop(kiosk_id, None)


def write_journeys(store: Any, conn: Any, journeys: Sequence[tuple[str, int, int, int, list[Any]]]) -> int:
    """Count the batch's journey messages not counted before into the hourly and daily buckets (one upsert per
    bucket and table, rows in sorted order so controllers sharing PostgreSQL never deadlock). Returns how many
    messages were new."""
    unique: dict[tuple[str, int], tuple[str, int, int, int, list[Any]]] = {}
    for j in journeys:
        unique.setdefault((j[0], j[1]), j)
    keys = sorted(unique)
    new: set[tuple[str, int]] = set()
    ph = store.ph
    for i in range(0, len(keys), 300):
        part = keys[i:i + 300]
        values = ",".join([f"({ph},{ph},{ph})"] * len(part))
        params: list[Any] = []
        for k in part:
            params += [k[0], k[1], unique[k][3]]
        rows = conn.exec_driver_sql(f"INSERT INTO journey_seen (kiosk_id, mid, recv) VALUES {values} "
                                    f"ON CONFLICT DO NOTHING RETURNING kiosk_id, mid", tuple(params)).fetchall()
        new.update((r[0], r[1]) for r in rows)
    if not new:
        return 0
    districts = _districts(store, conn, {k for k, _m in new})
    hourly: dict[tuple, list[float]] = {}
    daily: dict[tuple, list[float]] = {}   # the kiosk's scope
    area: dict[tuple, list[float]] = {}    # its district's and the fleet's
    kiosk_ratings: dict[tuple, list[int]] = {}
    for key in sorted(new):
        kiosk_id, _mid, ts, _recv, sessions = unique[key]
        district = districts.get(kiosk_id, "")
        scopes = (("k:" + kiosk_id, daily), ("d:" + district, area), ("*", area))   # (scope, its buckets)
        for s in sessions:
            start = max(ts - int(s["start_s"] * 1000), ts - 30 * DAY)
            hour, day = start - start % HOUR, cst_day(start)
            for code, stars, _tags in s.get("ratings") or []:
                for svc in ("", code):   # per kiosk of its district, and per district of the fleet ('*')
                    kiosk_ratings.setdefault((district, svc, day, kiosk_id), [0] * 5)[stars - 1] += 1
                    kiosk_ratings.setdefault(("*", svc, day, district[:64]), [0] * 5)[stars - 1] += 1
            for service, metric, k, n, secs in session_rows(s):
                acc = hourly.setdefault((hour, kiosk_id, service, metric, k), [0, 0.0])
                acc[0] += n
                acc[1] += secs
                for scope, buckets in scopes:
                    acc = buckets.setdefault((scope, day, service, metric, k), [0, 0.0])
                    acc[0] += n
                    acc[1] += secs
    for table, cols, data in (("journey_hourly", "hour, kiosk_id, service, metric, key", hourly),
                              ("journey_daily", "scope, day, service, metric, key", daily),
                              ("journey_area_daily", "scope, day, service, metric, key", area)):
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({cols}, n, total) VALUES ({ph},{ph},{ph},{ph},{ph},{ph},{ph}) "
            f"ON CONFLICT ({cols}) DO UPDATE SET n = {table}.n + excluded.n, total = {table}.total + excluded.total",
            [(*k, int(v[0]), round(v[1], 1)) for k, v in sorted(data.items())])
    if kiosk_ratings:
        stars = ", ".join(f"s{i}" for i in range(1, 6))
        conn.exec_driver_sql(
            f"INSERT INTO journey_kiosk_ratings (district, service, day, kiosk_id, {stars}) "
            f"VALUES ({','.join([ph] * 9)}) ON CONFLICT (district, service, day, kiosk_id) DO UPDATE SET "
            + ", ".join(f"s{i} = journey_kiosk_ratings.s{i} + excluded.s{i}" for i in range(1, 6)),
            [(*k, *v) for k, v in sorted(kiosk_ratings.items())])
    return len(new)


def prune(store: Any, now: int) -> None:
    """Retention: hourly buckets after :data:`HOURLY_KEEP_DAYS`, the seen-message keys after :data:`SEEN_KEEP_DAYS`
    (older messages are refused by the ingest's ``ts`` window anyway); daily buckets are kept."""
    ph = store.ph
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM journey_hourly WHERE hour < {ph}", (now - HOURLY_KEEP_DAYS * DAY,))
        conn.exec_driver_sql(f"DELETE FROM journey_seen WHERE recv < {ph}", (now - SEEN_KEEP_DAYS * DAY,))


# --- reading ---------------------------------------------------------------------------------------------------------

def _median(bins: Mapping[int, int]) -> float | None:
    total = sum(bins.values())
    if not total:
        return None
    half, run = total / 2, 0
    for b in sorted(bins):
        run += bins[b]
        if run >= half:
            return float(b)
    return None


def journey_report(store: Any, since_day: int, until_day: int, district: str = "", kiosk: str = "",
                   service: str = "") -> dict[str, Any]:
    """Everything the reports page shows for CST days ``since_day``..``until_day`` (inclusive, day starts in ms) and
    one scope (the kiosk if given, else the district, else the fleet); ``service`` narrows the per-day counts and
    the service table (the funnel and screens are per session)."""
    scope = f"k:{kiosk}" if kiosk else (f"d:{district}" if district else "*")
    table = "journey_daily" if kiosk else "journey_area_daily"
    ph = store.ph
    with store.engine.connect() as conn:
        if service:
            per_day = conn.exec_driver_sql(
                f"SELECT day, metric, SUM(n) FROM {table} WHERE scope = {ph} AND day >= {ph} AND day <= {ph} "
                f"AND service = {ph} GROUP BY day, metric", (scope, since_day, until_day, service)).fetchall()
            per_day = [(d, m, n) for d, m, n in per_day if m in JOURNEY_OUTCOMES or m == "started"]
        else:
            per_day = conn.exec_driver_sql(
                f"SELECT day, key, SUM(n) FROM {table} WHERE scope = {ph} AND day >= {ph} AND day <= {ph} "
                f"AND service = '' AND metric = 'outcome' GROUP BY day, key", (scope, since_day, until_day)).fetchall()
        rows = conn.exec_driver_sql(
            f"SELECT service, metric, key, SUM(n), SUM(total) FROM {table} WHERE scope = {ph} AND day >= {ph} "
            f"AND day <= {ph} GROUP BY service, metric, key", (scope, since_day, until_day)).fetchall()
    days: dict[int, dict[str, Any]] = {}
    d = since_day
    while d <= until_day and len(days) < 400:
        days[d] = {"day": day_label(d), "day_ms": d, "sessions": 0, "completed": 0, **{o: 0 for o in JOURNEY_OUTCOMES}}
        d += DAY
    for day, key, n in per_day:
        row = days.get(int(day))
        if row is None:
            continue
        n = int(n or 0)
        if key == "started":
            row["sessions"] += n
        elif key in JOURNEY_OUTCOMES:
            row[key] += n
            if not service:
                row["sessions"] += n
    services: dict[str, dict[str, Any]] = {}
    funnel = {"furthest": [0] * len(FUNNEL), "furthest_anon": [0] * len(FUNNEL)}
    exits: dict[str, int] = {}
    screens: dict[str, dict[str, Any]] = {}
    error_codes: dict[str, int] = {}
    outcomes = {o: 0 for o in JOURNEY_OUTCOMES}
    session_seconds = 0.0
    all_stars, all_tags = [0] * 5, {}
    for svc, metric, key, n, total in rows:
        n, total = int(n or 0), float(total or 0.0)
        if svc:
            if service and svc != service:
                continue
            s = services.setdefault(svc, {"service": svc, "started": 0, **{o: 0 for o in JOURNEY_OUTCOMES},
                                          "_bins": {}, "_ctime": 0.0, "_reach": {}, "_exit": {},
                                          "_stars": [0] * 5, "_tags": {}})
            if metric == "started":
                s["started"] += n
            elif metric in JOURNEY_OUTCOMES:
                s[metric] += n
                if metric == "completed":
                    s["_ctime"] += total
            elif metric == "ctime":
                s["_bins"][int(key)] = s["_bins"].get(int(key), 0) + n
            elif metric in ("reach", "exit", "rtag"):
                acc = s["_" + metric if metric != "rtag" else "_tags"]
                acc[key] = acc.get(key, 0) + n
            elif metric == "rating" and key in STARS:
                s["_stars"][int(key) - 1] += n
            continue
        if metric == "rating" and key in STARS:
            all_stars[int(key) - 1] += n
        elif metric == "rtag":
            all_tags[key] = all_tags.get(key, 0) + n
        elif metric == "outcome" and key in outcomes:
            outcomes[key] += n
            session_seconds += total
        elif metric in funnel and key in FUNNEL:
            funnel[metric][FUNNEL.index(key)] += n
        elif metric == "exit":
            exits[key] = exits.get(key, 0) + n
        elif metric in ("screen", "timeout", "error"):
            sc = screens.setdefault(key, {"screen": key, "visits": 0, "seconds": 0.0, "timeouts": 0, "errors": 0})
            if metric == "screen":
                sc["visits"] += n
                sc["seconds"] += total
            else:
                sc["timeouts" if metric == "timeout" else "errors"] += n
        elif metric == "error_code":
            error_codes[key] = error_codes.get(key, 0) + n
    service_rows = []
    for s in sorted(services.values(), key=lambda r: (-r["started"], r["service"])):
        bins, ctime = s.pop("_bins"), s.pop("_ctime")
        s["abandoned_all"] = s["abandoned"] + s["timed_out"] + s["error"] + s["out_of_service"]
        s["median_s"] = _median(bins)
        s["mean_s"] = round(ctime / s["completed"], 1) if s["completed"] else None
        s["completion_pct"] = round(100 * s["completed"] / s["started"], 1) if s["started"] else None
        s["ratings"] = rating_summary(s.pop("_stars"), s.pop("_tags"))
        s["flow"] = service_flow(s, s.pop("_reach"), s.pop("_exit"))
        service_rows.append(s)

    def funnel_rows(furthest: list[int]) -> list[dict[str, Any]]:
        out = []
        for i, step in enumerate(FUNNEL):
            reached = sum(furthest[i:])
            dropped = furthest[i] if step != "done" else 0
            out.append({"step": step, "reached": reached, "dropped": dropped,
                        "drop_pct": round(100 * dropped / reached, 1) if reached else None})
        return out

    for sc in screens.values():
        sc["avg_s"] = round(sc.pop("seconds") / sc["visits"], 1) if sc["visits"] else None
    total_sessions = sum(outcomes.values())
    return {
        "since": day_label(since_day), "until": day_label(until_day),
        "filters": {"district": district, "kiosk": kiosk, "service": service}, "scope": scope,
        "totals": {"sessions": total_sessions, **outcomes,
                   "avg_session_s": round(session_seconds / total_sessions, 1) if total_sessions else None},
        "days": list(days.values()),
        "services": service_rows,
        "funnel": funnel_rows(funnel["furthest"]),
        "funnel_anonymous": funnel_rows(funnel["furthest_anon"]),
        "exits": [{"screen": k, "count": v} for k, v in sorted(exits.items(), key=lambda kv: (-kv[1], kv[0]))][:15],
        "screens": sorted(screens.values(), key=lambda r: (-(r["timeouts"] + r["errors"]), -r["visits"], r["screen"])),
        "error_codes": [{"code": k, "count": v} for k, v in sorted(error_codes.items(), key=lambda kv: -kv[1])][:15],
        "ratings": rating_summary(all_stars, all_tags),
        "ratings_by": ratings_by_place(store, since_day, until_day, district, kiosk, service),
    }


def rating_summary(stars: Sequence[int], tags: Mapping[str, int], top: int = 8) -> dict[str, Any]:
    """Counts per star (``"1"``…``"5"``), how many, the ★1–2 count and share, the mean, the most used tags."""
    rated = sum(stars)
    low = stars[0] + stars[1]
    return {"rated": rated, "stars": {str(i + 1): n for i, n in enumerate(stars)}, "low": low,
            "low_pct": round(100 * low / rated, 1) if rated else None,
            "mean": round(sum((i + 1) * n for i, n in enumerate(stars)) / rated, 2) if rated else None,
            "tags": [{"tag": t, "count": n} for t, n in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))][:top]}


def service_flow(svc: Mapping[str, Any], reach: Mapping[str, int], exits: Mapping[str, int]) -> list[dict[str, Any]]:
    """One service's funnel: its screens in the order citizens went through them (most reached first — later
    screens are reached by fewer) with the sessions that left the service on each, then ``done`` (completed).
    The steps before the service (attract → card → face → menu) belong to no service yet: see the session funnel."""
    out = []
    for screen in sorted(reach, key=lambda k: (-reach[k], k)):
        dropped = exits.get(screen, 0)
        out.append({"step": screen, "reached": reach[screen], "dropped": dropped,
                    "drop_pct": round(100 * dropped / reach[screen], 1) if reach[screen] else None})
    out.append({"step": "done", "reached": svc["completed"], "dropped": 0, "drop_pct": None})
    return out


def ratings_by_sql(ph: str) -> str:
    """Star counts per place (``kiosk_id``) of one district (``'*'``: the fleet's districts), service and day range:
    on PostgreSQL an index-only scan of the covering primary key (fleet/controller/reports_schema.py)."""
    return ("SELECT kiosk_id, SUM(s1), SUM(s2), SUM(s3), SUM(s4), SUM(s5) FROM journey_kiosk_ratings "
            f"WHERE district = {ph} AND service = {ph} AND day >= {ph} AND day <= {ph} GROUP BY kiosk_id")


def ratings_by_place(store: Any, since_day: int, until_day: int, district: str = "", kiosk: str = "",
                     service: str = "") -> list[dict[str, Any]]:
    """Ratings per district (fleet-wide) or per kiosk (one district), worst share of ★1–2 first (places with fewer
    than 5 ratings last); nothing for one kiosk (its own figures are the report's). From ``journey_kiosk_ratings``:
    one row per place and day."""
    if kiosk:
        return []
    ph = store.ph
    names: dict[str, str] = {}
    rows: list[Any] = []
    with store.engine.connect() as conn:
        if district:
            for kiosk_id, name in conn.exec_driver_sql(
                    f"SELECT kiosk_id, name FROM kiosks WHERE district = {ph}", (district,)).fetchall():
                names["k:" + kiosk_id] = name or ""
        # one row per place and day: the district's kiosks, or the fleet's districts (district '*')
        for place, *stars in conn.exec_driver_sql(
                ratings_by_sql(ph), (district or "*", service, since_day, until_day)).fetchall():
            rows += [(("k:" if district else "d:") + place, str(i + 1), n) for i, n in enumerate(stars)]
    per: dict[str, list[int]] = {}
    for scope, key, n in rows:
        if key in STARS:
            per.setdefault(scope, [0] * 5)[int(key) - 1] += int(n or 0)
    out = []
    for scope, stars in per.items():
        summary = rating_summary(stars, {}, top=0)
        summary.pop("tags")
        out.append({"place": scope[2:], "kind": "kiosk" if scope.startswith("k:") else "district",
                    "name": names.get(scope, ""), **summary})
    out.sort(key=lambda r: (r["rated"] < SMALL_CELL, -(r["low_pct"] or 0), -r["rated"], r["place"]))  # few last
    return out[:500]


def services_seen(store: Any, limit: int = 200) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT service FROM journey_area_daily WHERE scope = '*' AND service <> '' "
            f"AND day >= {store.ph} ORDER BY service", (cst_day(now_ms()) - 400 * DAY,)).fetchall()
    return [r[0] for r in rows][:limit]


def _scope(ph: str, where: list[str], district: str, kiosk: str) -> tuple[list[str], list[Any]]:
    """``where`` narrowed to one kiosk (``k.kiosk_id``) if given, else to one district, with its parameters."""
    if kiosk:
        return [*where, f"k.kiosk_id = {ph}"], [kiosk]
    if district:
        return [*where, f"k.district = {ph}"], [district]
    return list(where), []


FAULT_CODES = ("device_fault", "device_offline", "paper_out")
#: alerts that mean a device cannot serve (paper near end still prints)
FAULT_RULES = ("device_fault", "paper_out")


def device_availability(store: Any, since: int, until: int, district: str = "", kiosk: str = "",
                        limit: int = 2000, settings: Any = None) -> list[dict[str, Any]]:
    """Per kiosk and fitted device, within the kiosk's opening hours (:mod:`fleet.controller.opening_hours`):
    % of the open time the device was healthy — down from a fault event the kiosk reports (``device_fault`` /
    ``device_offline`` / ``paper_out`` active → inactive) and while the whole kiosk was offline (its
    ``kiosk_offline`` alert); faults begun in the window; MTBF = healthy open hours / faults; time to repair =
    mean time from a device alert (``device_fault``/``paper_out``) to its clearing; MTTR from the fault events.
    A fault or an offline alert still open runs to ``until``. ``required``: a device kind the kiosk needs to serve
    (the settings' list; all when none is set)."""
    from fleet.controller import opening_hours as OH

    cfg = settings or OH.load(store)
    ph = store.ph
    where, params = _scope(ph, ["d.state <> 'absent'", "d.kind <> 'app'"], district, kiosk)
    with store.engine.connect() as conn:
        fitted = conn.exec_driver_sql(
            f"SELECT k.kiosk_id, k.name, k.district, d.kind FROM kiosks k JOIN devices d ON d.kiosk_id = k.kiosk_id "
            f"WHERE {' AND '.join(where)} ORDER BY k.kiosk_id, d.kind", tuple(params)).fetchall()
        ev_where = [f"ts <= {ph}", f"ts >= {ph}", f"code IN ({','.join([ph] * len(FAULT_CODES))})"]
        ev_params = [until, since - 30 * DAY, *FAULT_CODES]
        al_where, al_params = [f"opened_at <= {ph}", f"(cleared_at IS NULL OR cleared_at >= {ph})",
                               f"rule IN ({ph},{ph},{ph})"], [until, since, *FAULT_RULES, "kiosk_offline"]
        if kiosk:
            ev_where.append(f"kiosk_id = {ph}")
            ev_params.append(kiosk)
            al_where.append(f"kiosk_id = {ph}")
            al_params.append(kiosk)
        events_ = conn.exec_driver_sql(
            f"SELECT kiosk_id, device, active, ts FROM events WHERE {' AND '.join(ev_where)} ORDER BY ts",
            tuple(ev_params)).fetchall()
        alerts_ = conn.exec_driver_sql(
            f"SELECT kiosk_id, device, rule, opened_at, cleared_at FROM alerts WHERE {' AND '.join(al_where)}",
            tuple(al_params)).fetchall()
    # (kiosk, device) → [down intervals, faults begun in the window, repair ms, repairs, open since]
    down: dict[tuple[str, str], list[Any]] = {}
    for kiosk_id, device, active, ts in events_:
        acc = down.setdefault((kiosk_id, device), [[], 0, 0, 0, None])
        if active:
            if acc[4] is None:
                acc[4] = ts
                if ts >= since:
                    acc[1] += 1
        elif acc[4] is not None:
            acc[0].append((max(acc[4], since), min(ts, until)))
            acc[2] += ts - acc[4]
            acc[3] += 1
            acc[4] = None
    offline: dict[str, list[tuple[int, int]]] = {}
    ttr: dict[tuple[str, str], list[int]] = {}   # (kiosk, device) → [alerts, cleared, ms alert → clear]
    for kiosk_id, device, rule, opened, cleared in alerts_:
        if rule == "kiosk_offline":
            offline.setdefault(kiosk_id, []).append((max(opened, since), min(cleared or until, until)))
        elif opened >= since:
            acc_t = ttr.setdefault((kiosk_id, device), [0, 0, 0])
            acc_t[0] += 1
            if cleared is not None:
                acc_t[1] += 1
                acc_t[2] += cleared - opened
    open_cache: dict[Any, tuple[list[tuple[int, int]], int]] = {}   # week → (open intervals, their ms)
    out = []
    for kiosk_id, name, district_, kind in fitted[:limit * 8]:
        week = cfg.week(kiosk_id, district_ or "")
        cached = open_cache.get(week)
        if cached is None:
            opened_ = OH.open_intervals(week, since, until)
            cached = open_cache[week] = (opened_, sum(e - s for s, e in opened_))
        opened, open_ms = cached
        acc = down.get((kiosk_id, kind), [[], 0, 0, 0, None])
        spans = list(acc[0]) + offline.get(kiosk_id, [])
        if acc[4] is not None:
            spans.append((max(acc[4], since), until))
        down_ms = OH.overlap(OH.merge(spans), opened) if spans else 0
        up_h = (open_ms - down_ms) / HOUR
        t = ttr.get((kiosk_id, kind), [0, 0, 0])
        out.append({"kiosk_id": kiosk_id, "name": name, "district": district_, "device": kind,
                    "required": cfg.is_required(kind), "open_hours": round(open_ms / HOUR, 1),
                    "available_pct": round(100 * (1 - down_ms / open_ms), 2) if open_ms else None,
                    "faults": acc[1], "mtbf_h": round(up_h / acc[1], 1) if acc[1] else None,
                    "mttr_min": round(acc[2] / acc[3] / 60_000, 1) if acc[3] else None,
                    "alerts": t[0], "ttr_min": round(t[2] / t[1] / 60_000, 1) if t[1] else None,
                    "open_fault": acc[4] is not None})
    out.sort(key=lambda r: (100.0 if r["available_pct"] is None else r["available_pct"], r["kiosk_id"], r["device"]))
    return out


def paper_forecast(store: Any, now: int, district: str = "", kiosk: str = "", limit: int = 50,
                   settings: Any = None) -> dict[str, Any]:
    """Days until the paper runs out at the current rate (pages per day over the last 7 days, from the printers'
    ``pages`` counter in the time series; counter resets at a restart are followed).

    Printers report paper only as ok / near-end / out, so the pages left are estimated: at near-end,
    ``near_end_pages`` minus the pages printed since; at ok (asked for one kiosk, where reading its series is
    cheap), ``roll_pages`` minus the pages printed since the last refill (the last near-end/out condition that
    cleared). Fleet-wide the table lists the printers at near-end or out (what needs a visit)."""
    from fleet.controller import opening_hours as OH

    cfg = settings or OH.load(store)
    ph = store.ph
    states = "('near-end', 'out')" if not kiosk else "('near-end', 'out', 'ok')"
    where, params = _scope(ph, [f"d.paper IN {states}"], district, kiosk)
    with store.engine.connect() as conn:
        printers = conn.exec_driver_sql(
            f"SELECT k.kiosk_id, k.name, k.district, d.kind, d.paper, d.changed_at FROM kiosks k JOIN devices d "
            f"ON d.kiosk_id = k.kiosk_id WHERE {' AND '.join(where)} ORDER BY d.paper DESC, k.kiosk_id "
            f"LIMIT {int(limit)}", tuple(params)).fetchall()
        refills: dict[tuple[str, str], int] = {}
        if kiosk and printers:
            for device, ts in conn.exec_driver_sql(
                    f"SELECT device, MAX(ts) FROM events WHERE kiosk_id = {ph} AND active = {ph} "
                    f"AND code IN ('paper_out', 'paper_near_end') GROUP BY device", (kiosk, False)).fetchall():
                refills[(kiosk, device)] = int(ts)
    since = now - 7 * DAY
    out = []
    for kiosk_id, name, district_, kind, paper, changed_at in printers:
        pts = [(r[0], r[1]) for r in store.samples(kiosk_id, since, now + 1, ["pages"]) if r[1] is not None]

        def printed_since(start: int) -> int:
            total, prev = 0, None
            for ts, v in pts:
                if prev is not None and ts >= start:
                    total += v - prev if v >= prev else v
                prev = v
            return total

        pages = printed_since(0)
        days_seen = max(1.0, (pts[-1][0] - pts[0][0]) / DAY) if len(pts) > 1 else None
        rate = round(pages / days_seen, 1) if days_seen else None
        left: int | None
        if paper == "out":
            left = 0
        elif paper == "near-end":
            left = max(0, cfg.near_end_pages - printed_since(changed_at or now))
        elif (kiosk_id, kind) in refills:
            left = max(0, cfg.roll_pages - printed_since(refills[(kiosk_id, kind)]))
        else:
            left = None
        days_left = 0.0 if left == 0 else (round(left / rate, 1) if rate and left is not None else None)
        out.append({"kiosk_id": kiosk_id, "name": name, "district": district_, "device": kind, "paper": paper,
                    "pages_per_day": rate, "pages_left": left, "days_left": days_left})
    return {"near_end_pages": cfg.near_end_pages, "roll_pages": cfg.roll_pages, "kiosks": out,
            "missing": "printers report paper only as ok / near-end / out: pages left are estimated from the pages "
                       f"printed since near-end ({cfg.near_end_pages} pages left then) or since the last refill "
                       f"({cfg.roll_pages} pages per roll)"}


# --- CSV ---------------------------------------------------------------------------------------------------------------

def small(n: Any) -> Any:
    """The small-cell rule for exports: a count from 1 to 4 is shown as ``<5`` (0 stays 0)."""
    if isinstance(n, int) and not isinstance(n, bool) and 0 < n < SMALL_CELL:
        return "<5"
    return n


COUNT_FIELDS = frozenset({"sessions", "completed", "abandoned", "timed_out", "error", "out_of_service", "started",
                          "abandoned_all", "reached", "dropped", "count", "visits", "timeouts", "errors", "faults",
                          "rated", "low", "s1", "s2", "s3", "s4", "s5", "alerts"})
#: figures worked out from counts: left empty when a count they come from is suppressed (else a share and its
#: total would give the small count away)
DERIVED_FROM = {"completion_pct": ("completed", "started"), "median_s": ("completed",), "mean_s": ("completed",),
                "drop_pct": ("dropped", "reached"), "low_pct": ("low", "rated"), "mean": ("rated",),
                "avg_s": ("visits",)}
RATING_COLS = ("rated", "s1", "s2", "s3", "s4", "s5", "low", "low_pct", "mean")
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "days": ("day", "sessions", *JOURNEY_OUTCOMES),
    "services": ("service", "started", *JOURNEY_OUTCOMES, "median_s", "completion_pct"),
    "funnel": ("step", "reached", "dropped", "drop_pct"),
    "service_funnel": ("service", "step", "reached", "dropped", "drop_pct"),
    "exits": ("screen", "count"),
    "screens": ("screen", "visits", "avg_s", "timeouts", "errors"),
    "error_codes": ("code", "count"),
    "ratings": ("service", *RATING_COLS),
    "rating_tags": ("service", "tag", "count"),
    "ratings_by": ("place", "kind", "name", *RATING_COLS),
    "availability": ("kiosk_id", "name", "district", "device", "required", "open_hours", "available_pct", "faults",
                     "mtbf_h", "mttr_min", "alerts", "ttr_min"),
}
CSV_SECTIONS = tuple(CSV_COLUMNS)


def _rating_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {**{f"s{k}": v for k, v in r["stars"].items()}, **{k: r[k] for k in ("rated", "low", "low_pct", "mean")}}


def section_rows(report: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    """The rows of one CSV section (nested parts of the report flattened)."""
    if section == "service_funnel":
        return [{"service": s["service"], **f} for s in report["services"] for f in s["flow"]]
    if section == "ratings":
        rows = [{"service": "*", **_rating_row(report["ratings"])}] if report["ratings"]["rated"] else []
        return rows + [{"service": s["service"], **_rating_row(s["ratings"])} for s in report["services"]
                       if s["ratings"]["rated"]]
    if section == "rating_tags":
        return [{"service": "*", **t} for t in report["ratings"]["tags"]] + \
            [{"service": s["service"], **t} for s in report["services"] for t in s["ratings"]["tags"]]
    if section == "ratings_by":
        return [{**r, **{f"s{k}": v for k, v in r["stars"].items()}} for r in report["ratings_by"]]
    return report[section]


def report_csv(report: Mapping[str, Any], section: str) -> str:
    """One section of a report as CSV (UTF-8 with BOM for spreadsheet programs); counts under 5 → ``<5``, and a
    share, mean or median worked out from such a count is left empty."""
    cols = CSV_COLUMNS[section]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for row in section_rows(report, section):
        cells = []
        for c in cols:
            v = row.get(c)
            if c in COUNT_FIELDS:
                v = small(v)
            elif c in DERIVED_FROM and any(small(row.get(k)) == "<5" for k in DERIVED_FROM[c]):
                v = None
            cells.append("" if v is None else v)
        w.writerow(cells)
    return "\ufeff" + buf.getvalue()
