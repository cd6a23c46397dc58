"""Device availability within opening hours: the opening-hours settings (parsing, weekly windows, stored
for every controller), and availability / MTBF / time from alert to clear computed from fault events and alerts on a
real controller database (SQLite), with a kiosk's offline time counted against every device."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import insert

from fleet.controller import opening_hours as OH
from fleet.controller import reports as R
from fleet.controller.store import Store, alerts, devices, events, kiosks

H = 3_600_000
MONDAY = "2026-11-02"
SETTINGS = {"default": "00:00-24:00", "districts": {"龙子湖区": {"mon-fri": "09:00-17:00"}},
            "required": ["idcard", "receipt_printer"], "roll_pages": 500, "near_end_pages": 120}


def test_specs_parse_and_bad_ones_are_refused() -> None:
    s = OH.ReportSettings.parse(json.dumps(SETTINGS, ensure_ascii=False))
    week = s.week("KSK-X", "龙子湖区")
    assert week[0] == ((540, 1020),) and week[5] == () and week[6] == ()
    assert s.week("KSK-X", "other") == OH.ALWAYS and s.is_required("idcard") and not s.is_required("camera")
    assert OH.parse_week("08:00-12:00,13:30-17:00")[3] == ((480, 720), (810, 1020))
    for bad in ({"default": "8-12"}, {"default": "12:00-08:00"}, {"default": "08:00-12:00,11:00-13:00"},
                {"default": {"mon-xyz": "08:00-12:00"}}, {"default": {"fri-mon": "08:00-12:00"}},
                {"default": "08:70-12:00"}, {"hours": "24h"}, {"required": "idcard"}, {"roll_pages": 0}, []):
        with pytest.raises(ValueError):
            OH.ReportSettings.parse(json.dumps(bad))


def test_open_intervals_follow_the_week_in_china_time() -> None:
    monday = R.parse_day(MONDAY)
    assert dt.datetime.fromtimestamp((monday + 8 * H) / 1000, dt.timezone.utc).weekday() == 0
    week = OH.parse_week({"mon-fri": "09:00-17:00"})
    got = OH.open_intervals(week, monday, monday + 7 * R.DAY)
    assert len(got) == 5 and sum(e - s for s, e in got) == 40 * H and got[0] == (monday + 9 * H, monday + 17 * H)
    assert OH.open_intervals(OH.ALWAYS, monday + H, monday + 2 * R.DAY) == [(monday + H, monday + 2 * R.DAY)]
    assert OH.overlap(OH.merge([(0, 10), (5, 20), (30, 40)]), [(15, 35)]) == 10


def test_availability_counts_only_opening_hours(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "fleet.db"))
    store.create_schema()
    monday = R.parse_day(MONDAY)
    tue, wed, fri = monday + R.DAY, monday + 2 * R.DAY, monday + 4 * R.DAY
    with store.engine.begin() as conn:
        conn.execute(insert(kiosks), [{"kiosk_id": "KSK-A", "name": "A", "district": "龙子湖区"},
                                      {"kiosk_id": "KSK-B", "name": "B", "district": "蚌山区"}])
        conn.execute(insert(devices), [{"kiosk_id": k, "kind": kind, "state": "online", "mid": 1, "changed_at": 0,
                                        "updated_at": 0}
                                       for k in ("KSK-A", "KSK-B") for kind in ("camera", "idcard", "receipt_printer")])
        conn.execute(insert(events), [
            # Tuesday 08:00–10:00: one hour of it in opening hours; Wednesday night: none
            {"kiosk_id": "KSK-A", "ts": tue + 8 * H, "device": "idcard", "code": "device_fault", "severity": "major",
             "active": True},
            {"kiosk_id": "KSK-A", "ts": tue + 10 * H, "device": "idcard", "code": "device_fault", "severity": "major",
             "active": False},
            {"kiosk_id": "KSK-A", "ts": wed + 20 * H, "device": "idcard", "code": "device_offline",
             "severity": "major", "active": True},
            {"kiosk_id": "KSK-A", "ts": wed + 32 * H, "device": "idcard", "code": "device_offline",
             "severity": "major", "active": False}])
        conn.execute(insert(alerts), [
            {"kiosk_id": "KSK-A", "rule": "device_fault", "device": "idcard", "severity": "critical",
             "status": "cleared", "opened_at": tue + 8 * H + 30_000, "last_seen_at": tue + 10 * H,
             "cleared_at": tue + 10 * H},
            {"kiosk_id": "KSK-A", "rule": "device_fault", "device": "idcard", "severity": "critical",
             "status": "cleared", "opened_at": wed + 20 * H + 30_000, "last_seen_at": wed + 32 * H,
             "cleared_at": wed + 32 * H},
            # the whole kiosk offline Friday 16:00–18:00: one open hour lost for every device
            {"kiosk_id": "KSK-A", "rule": "kiosk_offline", "device": "", "severity": "critical", "status": "cleared",
             "opened_at": fri + 16 * H, "last_seen_at": fri + 18 * H, "cleared_at": fri + 18 * H}])
    OH.save(store, json.dumps(SETTINGS, ensure_ascii=False))
    cfg = OH.load(store)
    assert cfg.roll_pages == 500 and cfg.required == frozenset({"idcard", "receipt_printer"})
    rows = {(r["kiosk_id"], r["device"]): r for r in R.device_availability(store, monday, monday + 7 * R.DAY)}
    idcard = rows[("KSK-A", "idcard")]
    assert idcard["open_hours"] == 40.0 and idcard["available_pct"] == 95.0   # 2 of 40 open hours down
    assert idcard["faults"] == 2 and idcard["mtbf_h"] == 19.0                  # 38 healthy open hours / 2
    assert idcard["mttr_min"] == 420.0                                         # events: 2 h and 12 h
    assert idcard["alerts"] == 2 and idcard["ttr_min"] == 419.5                # alert → clear
    assert rows[("KSK-A", "receipt_printer")]["available_pct"] == 97.5        # only the offline hour
    assert rows[("KSK-A", "receipt_printer")]["mtbf_h"] is None and not rows[("KSK-A", "camera")]["required"]
    assert rows[("KSK-B", "idcard")]["open_hours"] == 168.0 and rows[("KSK-B", "idcard")]["available_pct"] == 100.0
    # filters, and the CSV section with its new columns
    assert {r["kiosk_id"] for r in R.device_availability(store, monday, monday + 7 * R.DAY, district="蚌山区")} \
        == {"KSK-B"}
    text = R.report_csv({"availability": list(rows.values())}, "availability")
    header, *lines = text.lstrip("\ufeff").splitlines()
    assert header.split(",")[4:] == ["required", "open_hours", "available_pct", "faults", "mtbf_h", "mttr_min",
                                     "alerts", "ttr_min"]
    assert any(line == "KSK-A,A,龙子湖区,idcard,True,40.0,95.0,<5,19.0,420.0,<5,419.5" for line in lines), lines
