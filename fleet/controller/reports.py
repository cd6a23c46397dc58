"""Operators' reports from anonymous journeys (topic ``journey``) and device history.

Aggregated at ingest, incrementally (:func:`write_journeys`, in the flush's transaction): each journey message counts
once (``journey_seen``, keyed by kiosk and ``mid``), its sessions become counts and sums of seconds in
``journey_hourly`` (UTC hour × kiosk × service × metric × key) and ``journey_daily`` (CST day × scope × …, scope
``k:<kiosk>`` / ``d:<district>`` / ``*``). Report pages read ``journey_daily`` for one scope and a day range: a few
thousand rows for 90 days whatever the fleet's size — never the raw messages (which are not kept).

Metrics (service ``''`` = the whole session):
  outcome/<outcome>      sessions by outcome (total = seconds)      furthest/<step>   card journeys by furthest step
  furthest_anon/<step>   the same for sessions without a card       exit/<screen>     not completed, ended on screen
  timeout/<screen>       timed out on screen                        error/<screen>    ended in an error on screen
  error_code/<code>      error codes                                 screen/<screen>   visits (total = seconds)
  <svc> started          services entered                            <svc> <outcome>   by outcome (total = seconds)
  <svc> ctime/<bin>      completed within ≤ bin seconds (medians from the histogram)
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
#: a printer reports paper only as ok / near-end / out; a near-end roll is assumed to hold this many pages
NEAR_END_PAGES = 150
HOURLY_KEEP_DAYS = 35
SEEN_KEEP_DAYS = 32
OUTCOME_ZH = {"completed": "办结", "abandoned": "放弃", "timed_out": "超时", "error": "出错", "out_of_service": "暂停服务"}
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
    for code, svc_outcome, secs in session.get("services") or []:
        rows.append((code, "started", "", 1, 0.0))
        rows.append((code, svc_outcome, "", 1, float(secs)))
        if svc_outcome == "completed":
            b = CTIME_BINS[min(bisect.bisect_left(CTIME_BINS, secs), len(CTIME_BINS) - 1)]
            rows.append((code, "ctime", str(b), 1, float(secs)))
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
    daily: dict[tuple, list[float]] = {}
    for key in sorted(new):
        kiosk_id, _mid, ts, _recv, sessions = unique[key]
        scopes = ("k:" + kiosk_id, "d:" + districts.get(kiosk_id, ""), "*")
        for s in sessions:
            start = max(ts - int(s["start_s"] * 1000), ts - 30 * DAY)
            hour, day = start - start % HOUR, cst_day(start)
            for service, metric, k, n, secs in session_rows(s):
                acc = hourly.setdefault((hour, kiosk_id, service, metric, k), [0, 0.0])
                acc[0] += n
                acc[1] += secs
                for scope in scopes:
                    acc = daily.setdefault((scope, day, service, metric, k), [0, 0.0])
                    acc[0] += n
                    acc[1] += secs
    for table, cols, data in (("journey_hourly", "hour, kiosk_id, service, metric, key", hourly),
                              ("journey_daily", "scope, day, service, metric, key", daily)):
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({cols}, n, total) VALUES ({ph},{ph},{ph},{ph},{ph},{ph},{ph}) "
            f"ON CONFLICT ({cols}) DO UPDATE SET n = {table}.n + excluded.n, total = {table}.total + excluded.total",
            [(*k, int(v[0]), round(v[1], 1)) for k, v in sorted(data.items())])
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
    ph = store.ph
    with store.engine.connect() as conn:
        if service:
            per_day = conn.exec_driver_sql(
                f"SELECT day, metric, SUM(n) FROM journey_daily WHERE scope = {ph} AND day >= {ph} AND day <= {ph} "
                f"AND service = {ph} GROUP BY day, metric", (scope, since_day, until_day, service)).fetchall()
            per_day = [(d, m, n) for d, m, n in per_day if m in JOURNEY_OUTCOMES or m == "started"]
        else:
            per_day = conn.exec_driver_sql(
                f"SELECT day, key, SUM(n) FROM journey_daily WHERE scope = {ph} AND day >= {ph} AND day <= {ph} "
                f"AND service = '' AND metric = 'outcome' GROUP BY day, key", (scope, since_day, until_day)).fetchall()
        rows = conn.exec_driver_sql(
            f"SELECT service, metric, key, SUM(n), SUM(total) FROM journey_daily WHERE scope = {ph} AND day >= {ph} "
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
    for svc, metric, key, n, total in rows:
        n, total = int(n or 0), float(total or 0.0)
        if svc:
            if service and svc != service:
                continue
            s = services.setdefault(svc, {"service": svc, "started": 0, **{o: 0 for o in JOURNEY_OUTCOMES},
                                          "_bins": {}, "_ctime": 0.0})
            if metric == "started":
                s["started"] += n
            elif metric in JOURNEY_OUTCOMES:
                s[metric] += n
                if metric == "completed":
                    s["_ctime"] += total
            elif metric == "ctime":
                s["_bins"][int(key)] = s["_bins"].get(int(key), 0) + n
            continue
        if metric == "outcome" and key in outcomes:
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
    }


def services_seen(store: Any, limit: int = 200) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT service FROM journey_daily WHERE scope = '*' AND service <> '' "
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


def device_availability(store: Any, since: int, until: int, district: str = "", kiosk: str = "",
                        limit: int = 2000) -> list[dict[str, Any]]:
    """Per kiosk and fitted device: % of the window the device was healthy, from the fault events the kiosks report
    (``device_fault``/``device_offline``/``paper_out`` active → inactive), the number of faults and the mean time to
    repair; a fault still open runs to ``until``. (Opening hours are not known to the controller: the whole window
    counts.)"""
    ph = store.ph
    where, params = _scope(ph, ["d.state <> 'absent'", "d.kind <> 'app'"], district, kiosk)
    with store.engine.connect() as conn:
        fitted = conn.exec_driver_sql(
            f"SELECT k.kiosk_id, k.name, k.district, d.kind FROM kiosks k JOIN devices d ON d.kiosk_id = k.kiosk_id "
            f"WHERE {' AND '.join(where)} ORDER BY k.kiosk_id, d.kind", tuple(params)).fetchall()
        ev_where, ev_params = [f"ts <= {ph}", f"ts >= {ph}",
                               f"code IN ({','.join([ph] * len(FAULT_CODES))})"], [until, since - 30 * DAY, *FAULT_CODES]
        if kiosk:
            ev_where.append(f"kiosk_id = {ph}")
            ev_params.append(kiosk)
        events_ = conn.exec_driver_sql(
            f"SELECT kiosk_id, device, active, ts FROM events WHERE {' AND '.join(ev_where)} ORDER BY ts",
            tuple(ev_params)).fetchall()
    span = max(1, until - since)
    down: dict[tuple[str, str], list[Any]] = {}  # (kiosk, device) → [down ms, faults, repair ms, repairs, open since]
    for kiosk_id, device, active, ts in events_:
        acc = down.setdefault((kiosk_id, device), [0, 0, 0, 0, None])
        if active:
            if acc[4] is None:
                acc[4] = ts
                if ts >= since:
                    acc[1] += 1
        elif acc[4] is not None:
            start = acc[4]
            acc[0] += max(0, min(ts, until) - max(start, since))
            acc[2] += ts - start
            acc[3] += 1
            acc[4] = None
    out = []
    for kiosk_id, name, district_, kind in fitted[:limit * 8]:
        acc = down.get((kiosk_id, kind), [0, 0, 0, 0, None])
        down_ms = acc[0] + (max(0, until - max(acc[4], since)) if acc[4] is not None else 0)
        out.append({"kiosk_id": kiosk_id, "name": name, "district": district_, "device": kind,
                    "available_pct": round(100 * (1 - min(down_ms, span) / span), 2), "faults": acc[1],
                    "mttr_min": round(acc[2] / acc[3] / 60_000, 1) if acc[3] else None,
                    "open_fault": acc[4] is not None})
    out.sort(key=lambda r: (r["available_pct"], r["kiosk_id"], r["device"]))
    return out


def paper_forecast(store: Any, now: int, district: str = "", kiosk: str = "", limit: int = 50) -> dict[str, Any]:
    """Days until the paper runs out, for printers at near-end or out: pages printed per day over the last 7 days
    (the kiosk's ``pages`` counter in the time series) against :data:`NEAR_END_PAGES`. Printers report only ok /
    near-end / out, not a page count, so a printer at ``ok`` has no forecast (what is missing: a remaining-paper
    counter from the driver)."""
    ph = store.ph
    where, params = _scope(ph, ["d.paper IN ('near-end', 'out')"], district, kiosk)
    with store.engine.connect() as conn:
        low = conn.exec_driver_sql(
            f"SELECT k.kiosk_id, k.name, k.district, d.kind, d.paper, d.changed_at FROM kiosks k JOIN devices d "
            f"ON d.kiosk_id = k.kiosk_id WHERE {' AND '.join(where)} ORDER BY d.paper DESC, k.kiosk_id LIMIT {int(limit)}",
            tuple(params)).fetchall()
    since = now - 7 * DAY
    out = []
    for kiosk_id, name, district_, kind, paper, changed_at in low:
        pts = [(r[0], r[1]) for r in store.samples(kiosk_id, since, now + 1, ["pages"]) if r[1] is not None]
        pages, prev = 0, None
        for _ts, v in pts:
            if prev is not None:
                pages += v - prev if v >= prev else v
            prev = v
        days_seen = max(1.0, (pts[-1][0] - pts[0][0]) / DAY) if len(pts) > 1 else None
        rate = round(pages / days_seen, 1) if days_seen else None
        if paper == "out":
            days_left: float | None = 0.0
        elif rate:
            printed_since = 0
            prev = None
            for ts, v in pts:
                if prev is not None and ts >= (changed_at or now):
                    printed_since += v - prev if v >= prev else v
                prev = v
            days_left = round(max(0.0, NEAR_END_PAGES - printed_since) / rate, 1)
        else:
            days_left = None
        out.append({"kiosk_id": kiosk_id, "name": name, "district": district_, "device": kind, "paper": paper,
                    "pages_per_day": rate, "days_left": days_left})
    return {"near_end_pages": NEAR_END_PAGES, "kiosks": out,
            "missing": "printers report paper only as ok / near-end / out; days left are estimated from the pages "
                       f"printed since near-end against an assumed {NEAR_END_PAGES} pages per near-end roll"}


# --- CSV ---------------------------------------------------------------------------------------------------------------

def small(n: Any) -> Any:
    """The small-cell rule for exports: a count from 1 to 4 is shown as ``<5`` (0 stays 0)."""
    if isinstance(n, int) and not isinstance(n, bool) and 0 < n < SMALL_CELL:
        return "<5"
    return n


COUNT_FIELDS = frozenset({"sessions", "completed", "abandoned", "timed_out", "error", "out_of_service", "started",
                          "abandoned_all", "reached", "dropped", "count", "visits", "timeouts", "errors", "faults"})


def report_csv(report: Mapping[str, Any], section: str) -> str:
    """One section of a report as CSV (UTF-8 with BOM for spreadsheet programs); counts under 5 → ``<5``."""
    sections = {"days": ("day", "sessions", *JOURNEY_OUTCOMES),
                "services": ("service", "started", *JOURNEY_OUTCOMES, "median_s", "completion_pct"),
                "funnel": ("step", "reached", "dropped", "drop_pct"),
                "exits": ("screen", "count"),
                "screens": ("screen", "visits", "avg_s", "timeouts", "errors"),
                "error_codes": ("code", "count")}
    if section == "availability":
        cols: Sequence[str] = ("kiosk_id", "name", "district", "device", "available_pct", "faults", "mttr_min")
    else:
        cols = sections[section]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for row in report[section]:
        w.writerow([small(row.get(c)) if c in COUNT_FIELDS else
                    ("" if row.get(c) is None else row.get(c)) for c in cols])
    return "\ufeff" + buf.getvalue()


CSV_SECTIONS = ("days", "services", "funnel", "exits", "screens", "error_codes", "availability")
