"""District reports against the raw journeys they come from, on SQLite and PostgreSQL: a seeded fleet's journey
messages (redeliveries and late sessions among them) go through the controller's own aggregation
(``reports.write_journeys``, the flush's code); the district report read from the buckets must equal what the raw
sessions say. An older PostgreSQL database (district and fleet rows in ``journey_daily``, a plain primary key on
``journey_kiosk_ratings``) is migrated by ``create_schema`` with every report unchanged, keeps ingesting, and
answers a district's report by index-only scans."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from fleet import protocol as P
from fleet.controller import reports as R
from fleet.controller import reports_schema as RS
from fleet.controller.store import Store, kiosks as kiosks_t

DISTRICTS = ("龙子湖区", "蚌山区", "怀远县")
SERVICES = {"print": ["guide", "print_confirm"], "progress": ["progress"], "apply": ["apply_notice", "apply_form"]}
DAYS = 20
Message = tuple[str, int, int, int, list[dict[str, Any]]]


def fleet_kiosks() -> dict[str, str]:
    return {f"KSK-T-{i:03d}": DISTRICTS[i % len(DISTRICTS)] for i in range(9)}


def random_session(rng: random.Random, start_s: float) -> dict[str, Any]:
    outcome = rng.choice(P.JOURNEY_OUTCOMES)
    steps: list[list[Any]] = [["attract", 2.0], ["card", 3.0], ["menu", 4.0]] if rng.random() < 0.7 else \
        [["attract", 1.5], ["menu", 6.0]]
    services, ratings = [], []
    if outcome == "completed" or rng.random() < 0.6:
        code = rng.choice(sorted(SERVICES))
        screens = SERVICES[code] if outcome == "completed" else SERVICES[code][:1]
        secs = float(rng.randint(15, 400))
        steps += [[sc, round(secs / len(screens), 1)] for sc in screens]
        services.append([code, outcome, secs, screens])
        if outcome == "completed" and rng.random() < 0.6:
            ratings.append([code, rng.randint(1, 5), rng.sample(["fast", "long_wait", "clear_guidance"], 1)])
    if outcome == "completed":
        steps.append(["done", 0.0])
    s = {"sid": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12)), "start_s": start_s,
         "dur_s": round(sum(x[1] for x in steps), 1), "outcome": outcome,
         "at": "done" if outcome == "completed" else steps[-1][0],
         "err": "platform_unavailable" if outcome == "error" else None, "steps": steps, "services": services}
    if ratings:
        s["ratings"] = ratings
    return s


def seeded_messages(now: int, seed: int = 16) -> list[Message]:
    """Journey messages of :func:`fleet_kiosks` over the last :data:`DAYS` days: a few sessions each, some sent
    late (a kiosk that was offline: sessions started up to 3 days before the message), some delivered twice."""
    rng = random.Random(seed)
    out: list[Message] = []
    mid = 1_000
    for kiosk_id in fleet_kiosks():
        for d in range(DAYS):
            for _ in range(rng.randint(1, 3)):
                ts = now - d * R.DAY - rng.randint(0, 20) * R.HOUR
                late = rng.random() < 0.15
                sessions = [random_session(rng, float(rng.randint(3, 72) * 3600 if late else rng.randint(5, 900)))
                            for _ in range(rng.randint(1, 4))]
                for s in sessions:
                    P.check_journey({"sessions": [s]})
                mid += 1
                out.append((kiosk_id, mid, ts, ts + 500, sessions))
                if rng.random() < 0.1:   # redelivered (the outbox replays it): counted once
                    out.append((kiosk_id, mid, ts, ts + 90_000, sessions))
    rng.shuffle(out)
    return out


def seed_store(url: str, messages: list[Message], old_key: bool = False) -> Store:
    store = Store(url)
    store.create_schema()
    if old_key and not store.is_sqlite:   # what a controller before the covering key created
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE journey_kiosk_ratings DROP CONSTRAINT journey_kiosk_ratings_pkey, "
                                 "ADD PRIMARY KEY (district, service, day, kiosk_id)")
        assert not RS.ratings_key_covers(store)
    now = P.now_ms()
    with store.engine.begin() as conn:
        conn.execute(insert(kiosks_t), [{"kiosk_id": k, "name": f"终端 {k[-3:]}", "district": d, "first_seen": now,
                                         "last_seen": now} for k, d in fleet_kiosks().items()])
    ingest(store, messages)
    if old_key:   # … and kept the district's and the fleet's rows in journey_daily
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO journey_daily SELECT * FROM journey_area_daily")
            conn.exec_driver_sql("DELETE FROM journey_area_daily")
            conn.exec_driver_sql(f"DELETE FROM settings WHERE name = '{RS.MOVED}'")
    return store


def ingest(store: Store, messages: list[Message]) -> None:
    for i in range(0, len(messages), 40):   # flushes of 40 messages, as the controller's writer does them
        with store.engine.begin() as conn:
            R.write_journeys(store, conn, messages[i:i + 40])


def expected(messages: list[Message], district: str, since: int, until: int) -> dict[str, Any]:
    """The district's figures straight from the raw sessions (each message once)."""
    where = fleet_kiosks()
    once = {(m[0], m[1]): m for m in messages}
    days: dict[int, Counter] = {}
    outcomes: Counter = Counter()
    services: dict[str, Counter] = {}
    stars: Counter = Counter()
    per_kiosk: dict[str, Counter] = {}
    per_district: dict[str, Counter] = {}
    for kiosk_id, _mid, ts, _recv, sessions in once.values():
        for s in sessions:
            day = R.cst_day(ts - int(s["start_s"] * 1000))
            if not since <= day <= until:
                continue
            for _code, n, _tags in s.get("ratings", []):
                per_district.setdefault(where[kiosk_id], Counter())[str(n)] += 1
            if where[kiosk_id] != district:
                continue
            days.setdefault(day, Counter())[s["outcome"]] += 1
            outcomes[s["outcome"]] += 1
            for code, outcome, _secs, _screens in s["services"]:
                services.setdefault(code, Counter())["started"] += 1
                services[code][outcome] += 1
            for _code, n, _tags in s.get("ratings", []):
                stars[str(n)] += 1
                per_kiosk.setdefault(kiosk_id, Counter())[str(n)] += 1
    return {"days": days, "outcomes": outcomes, "services": services, "stars": stars, "per_kiosk": per_kiosk,
            "per_district": per_district}


def stars_of(counter: Counter) -> dict[str, int]:
    return {str(i): counter[str(i)] for i in range(1, 6)}


def check_district(store: Store, messages: list[Message], district: str, since: int, until: int) -> None:
    report = R.journey_report(store, since, until, district)
    want = expected(messages, district, since, until)
    assert report["totals"]["sessions"] == sum(want["outcomes"].values()) > 0
    assert {o: report["totals"][o] for o in P.JOURNEY_OUTCOMES} == {o: want["outcomes"][o] for o in P.JOURNEY_OUTCOMES}
    assert len(report["days"]) == (until - since) // R.DAY + 1
    for row in report["days"]:
        got = want["days"].get(row["day_ms"], Counter())
        assert row["sessions"] == sum(got.values()), row["day"]
        assert {o: row[o] for o in P.JOURNEY_OUTCOMES} == {o: got[o] for o in P.JOURNEY_OUTCOMES}, row["day"]
    assert {s["service"]: {k: s[k] for k in ("started", *P.JOURNEY_OUTCOMES)} for s in report["services"]} == \
        {code: {k: c[k] for k in ("started", *P.JOURNEY_OUTCOMES)} for code, c in want["services"].items()}
    assert want["per_kiosk"] and report["ratings"]["stars"] == stars_of(want["stars"])
    assert {p["place"]: p["stars"] for p in report["ratings_by"]} == \
        {k: stars_of(c) for k, c in want["per_kiosk"].items()}
    assert all(p["kind"] == "kiosk" and p["name"] == f"终端 {p['place'][-3:]}" for p in report["ratings_by"])
    fleet = R.ratings_by_place(store, since, until)
    assert {p["place"]: p["stars"] for p in fleet} == {d: stars_of(c) for d, c in want["per_district"].items()}


def windows(now: int) -> list[tuple[int, int]]:
    today = R.cst_day(now)
    return [(today - (DAYS + 3) * R.DAY, today), (today - 9 * R.DAY, today - 3 * R.DAY)]


def test_district_report_equals_the_raw_sessions(db_url: str) -> None:
    now = P.now_ms()
    messages = seeded_messages(now)
    store = seed_store(db_url, messages)
    try:
        assert RS.ratings_key_covers(store)   # new databases: the covering key (SQLite: nothing to cover)
        for since, until in windows(now):
            for district in DISTRICTS:
                check_district(store, messages, district, since, until)
    finally:
        store.dispose()


def test_older_postgres_database_migrates_with_identical_reports(pg_url: str, tmp_path: Path) -> None:
    now = P.now_ms()
    messages = seeded_messages(now, seed=7)
    first, later = messages[:len(messages) * 3 // 4], messages[len(messages) * 3 // 4:]
    old = seed_store(pg_url, first, old_key=True)
    lite = seed_store(str(tmp_path / "fleet.db"), first)

    def reports(store: Store) -> list[dict[str, Any]]:
        return [R.journey_report(store, since, until, district, service=service)
                for since, until in windows(now) for district in ("", *DISTRICTS) for service in ("", "print")]

    try:
        want = reports(lite)
        newer = Store(pg_url)            # a newer controller starts on the older database: migrates once
        newer.create_schema()
        newer.dispose()
        assert RS.ratings_key_covers(old) and not RS.cover_ratings_key(old) and RS.move_area_rows(old) is None
        with old.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM journey_daily WHERE scope NOT LIKE %s",
                                        ("k:%",)).scalar() == 0
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM journey_area_daily").scalar() > 0
        assert reports(old) == want      # the same figures as a database that never was older, on either engine
        ingest(old, later)               # ingest goes on into the new layout (upserts on existing days too)
        ingest(lite, later)
        after = reports(old)
        assert after == reports(lite) and after != want
        for since, until in windows(now):
            check_district(old, messages, DISTRICTS[1], since, until)
        since, until = windows(now)[0]
        with old.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE journey_kiosk_ratings, journey_area_daily")
            conn.exec_driver_sql("SET enable_seqscan = off")   # tiny tables: the planner would just read them all
            for sql, params, index in (
                    (R.ratings_by_sql("%s"), (DISTRICTS[1], "", since, until), "journey_kiosk_ratings_pkey"),
                    ("SELECT service, metric, key, SUM(n), SUM(total) FROM journey_area_daily WHERE scope = %s "
                     "AND day >= %s AND day <= %s GROUP BY service, metric, key", ("d:" + DISTRICTS[1], since, until),
                     "journey_area_daily_pkey")):
                plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params).fetchall())
                assert f"Index Only Scan using {index}" in plan, plan
    finally:
        old.dispose()
        lite.dispose()


def test_older_sqlite_database_moves_its_area_rows(tmp_path: Path) -> None:
    now = P.now_ms()
    messages = seeded_messages(now, seed=3)
    old = seed_store(str(tmp_path / "old.db"), messages, old_key=True)
    fresh = seed_store(str(tmp_path / "fresh.db"), messages)
    try:
        moved = RS.move_area_rows(old)
        assert moved and RS.move_area_rows(old) is None
        for since, until in windows(now):
            for district in ("", *DISTRICTS):
                assert R.journey_report(old, since, until, district) == R.journey_report(fresh, since, until, district)
    finally:
        old.dispose()
        fresh.dispose()
