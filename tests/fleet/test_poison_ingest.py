"""Poison-proof ingest: one message the controller cannot use (a timestamp far out, a huge number, a 1 MB string,
garbage, deep nesting) is dead-lettered — counted, kept short and scrubbed for operators — and never stops the
ingest; a batch the database itself refuses is split until the one bad message is found."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet import protocol as P
from fleet.controller.service import ControllerConfig, FleetController
from fleet.controller.store import Store

KIOSK = "KSK-P-0001"


def _message(kiosk: str, mid: int, seq: int, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "kiosk_id": kiosk, "ts": P.now_ms(), "bdSeq": 1, "seq": seq, "mid": mid, "reason": "change",
            "devices": {"receipt_printer": {"state": "ok", "xfs": "online", "supplies": {"paper": "ok"},
                                            "error_code": None, "error_text": "", "counters": {"pages": 3}}},
            **extra}


def _birth(kiosk: str, mid: int) -> bytes:
    return P.dumps(_message(kiosk, mid, 0, identity={"name": "测试终端"}, heartbeat_s=30, commands=["rebirth"],
                            host={"disk_free_pct": 60.0}, counters={"sessions": 0}))


def _stored_mids(db: str, kiosk: str) -> set[int]:
    store = Store(db)
    try:
        with store.engine.connect() as conn:
            return {row[0] for name in sorted(store.refresh_partitions())
                    for row in conn.exec_driver_sql(f"SELECT mid FROM {name} WHERE kiosk_id = '{kiosk}'")}
    finally:
        store.dispose()


def test_a_timestamp_of_2_pow_53_is_dead_lettered_and_the_next_message_is_stored(
        broker: Any, start_controller: Any, kiosk_client: Any, wait_for: Any) -> None:
    controller = start_controller()
    client = kiosk_client(broker, KIOSK, KIOSK)
    client.publish(f"fleet/v1/{KIOSK}/birth", _birth(KIOSK, 100), 1).wait_for_publish(5)
    wait_for(lambda: (k := controller.kiosk(KIOSK)) and k["online"], 10, what="the birth stored")
    client.publish(f"fleet/v1/{KIOSK}/data", P.dumps({**_message(KIOSK, 101, 1), "ts": 2 ** 53}), 1
                   ).wait_for_publish(5)
    client.publish(f"fleet/v1/{KIOSK}/data", P.dumps(_message(KIOSK, 102, 2, counters={"sessions": 7})), 1
                   ).wait_for_publish(5)
    wait_for(lambda: controller.kiosk(KIOSK)["counters"] == {"sessions": 7}, 10, what="the normal message stored")
    assert _stored_mids(controller.db, KIOSK) == {100, 102}
    stats = controller.stats()
    assert stats["dead_letters"] == 1 and stats["malformed_by_reason"] == {"ts_out_of_window": 1}
    assert stats["db_errors"] == 0
    dead = controller.get("/api/v1/dead-letters")
    assert len(dead) == 1
    assert dead[0]["kiosk_id"] == KIOSK and dead[0]["reason"] == "ts_out_of_window"
    assert dead[0]["topic"] == f"fleet/v1/{KIOSK}/data" and '"ts":9007199254740992' in dead[0]["payload"]
    assert controller.get("/api/v1/summary")["dead_letters"] == 1
    # operators' reads need a login
    assert controller.api.get("/api/v1/dead-letters", headers={"Authorization": ""}).status_code == 401


def test_huge_numbers_long_strings_garbage_and_deep_nesting_are_dead_lettered_and_ingest_goes_on(
        broker: Any, start_controller: Any, kiosk_client: Any, wait_for: Any) -> None:
    controller = start_controller()
    client = kiosk_client(broker, KIOSK, KIOSK)
    client.publish(f"fleet/v1/{KIOSK}/birth", _birth(KIOSK, 200), 1).wait_for_publish(5)
    wait_for(lambda: controller.kiosk(KIOSK), 10, what="the birth stored")
    nested: Any = "x"
    for _ in range(40):
        nested = {"a": nested}
    poison = [
        ("data", b'{"v":1,"kiosk_id":"KSK-P-0001","ts":1,"bdSeq":1,"seq":1,"mid":201,"host":{"cpu_temp_c":NaN}}',
         "not_json"),
        ("data", P.dumps(_message(KIOSK, 202, 2, host={"cpu_temp_c": 1e300})), "bad_host"),
        ("data", P.dumps(_message(KIOSK, 203, 3, counters={"sessions": 2 ** 63})), "bad_counters"),
        ("data", P.dumps(_message(KIOSK, 204, 4, announcement="长" * 1_000_000)), "too_large"),
        ("data", b"\x00\x01 this is not JSON", "not_json"),
        ("data", b"[" * 5000 + b"]" * 5000, "not_json"),  # deeper than any parser should go
        ("cmd-result/c1", P.dumps({**_message(KIOSK, 205, 5), "command_id": "c1", "status": "done",
                                   "data": nested}), "bad_result_data"),
        ("alarm", P.dumps(_message(KIOSK, 206, 6, events=[{"code": "paper_out", "text": ["x"] * 3}])), "bad_events"),
        ("data", P.dumps(_message(KIOSK, 207, 7, devices={"receipt_printer": {
            "state": "ok", "counters": {"pages": 2 ** 40}}})), "bad_device_counters"),
        ("data", P.dumps({**_message(KIOSK, 208, 8), "ts": P.now_ms() - 40 * 86_400_000}), "ts_out_of_window"),
    ]
    for suffix, payload, _reason in poison:
        client.publish(f"fleet/v1/{KIOSK}/{suffix}", payload, 1).wait_for_publish(10)
    client.publish(f"fleet/v1/{KIOSK}/data", P.dumps(_message(KIOSK, 299, 9, counters={"sessions": 9})), 1
                   ).wait_for_publish(5)
    wait_for(lambda: controller.kiosk(KIOSK)["counters"] == {"sessions": 9}, 10, what="the good message after")
    stats = wait_for(lambda: (s := controller.stats())["dead_letters"] == len(poison) and s, 10,
                     what="every poison message dead-lettered")
    expected: dict[str, int] = {}
    for _s, _p, reason in poison:
        expected[reason] = expected.get(reason, 0) + 1
    assert stats["malformed_by_reason"] == expected
    assert stats["db_errors"] == 0 and stats["store_rejected"] == 0
    assert _stored_mids(controller.db, KIOSK) == {200, 299}
    dead = controller.get("/api/v1/dead-letters", kiosk_id=KIOSK)
    assert sorted(d["reason"] for d in dead) == sorted(r for _s, _p, r in poison)
    big = next(d for d in dead if d["reason"] == "too_large")
    assert big["size"] > 1_000_000 and len(big["payload"]) <= 256  # kept short
    assert controller.kiosk(KIOSK)["online"]


def test_a_dead_letter_keeps_no_id_number(broker: Any, start_controller: Any, kiosk_client: Any,
                                          wait_for: Any) -> None:
    controller = start_controller()
    client = kiosk_client(broker, KIOSK, KIOSK)
    client.publish(f"fleet/v1/{KIOSK}/data", b'not json 340302195803172018', 1).wait_for_publish(5)
    dead = wait_for(lambda: controller.get("/api/v1/dead-letters"), 10, what="the dead letter")
    assert "340302195803172018" not in json.dumps(dead) and dead[0]["reason"] == "not_json"


# --- a batch the database refuses: split, the good stored, the bad dead-lettered (in process, SQLite) -----------------

@pytest.fixture
def offline_controller(tmp_path: Path) -> Any:
    c = FleetController(ControllerConfig(db=str(tmp_path / "fleet.db"), controller_id="bisect-test"))
    try:
        yield c
    finally:
        c.store.dispose()


def test_a_batch_the_store_refuses_is_split_and_only_the_bad_message_is_dead_lettered(
        offline_controller: FleetController, monkeypatch: pytest.MonkeyPatch) -> None:
    c = offline_controller
    real = c.store.write_batch
    calls = {"n": 0}

    def picky(batch: Any, controller_id: str, now: int) -> dict[str, int]:
        calls["n"] += 1
        if any(row[3] == 1013 for row in batch.samples):  # as if the driver could not convert one value
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(batch, controller_id, now)

    monkeypatch.setattr(c.store, "write_batch", picky)
    from fleet.controller.store import Batch

    batch, items = Batch(), []
    recv = P.now_ms()
    c._take(batch, items, f"fleet/v1/{KIOSK}/birth".encode(), _birth(KIOSK, 1000), recv)
    for i in range(1, 40):
        c._take(batch, items, f"fleet/v1/{KIOSK}/data".encode(),
                P.dumps(_message(KIOSK, 1000 + i, i, counters={"sessions": i})), recv)
    c._take(batch, items, f"fleet/v1/{KIOSK}/data".encode(), b"garbage", recv)  # refused before the store
    assert c._flush(batch, 41, items) is True
    assert c.stats["poison_batches"] == 1 and c.stats["dead_letters"] == 2
    assert calls["n"] < 30, "a split costs O(log n) writes"
    assert _stored_mids(str(c.store.url).split("sqlite:///", 1)[1], KIOSK) == set(range(1000, 1040)) - {1013}
    dead = {d["reason"]: d for d in c.store.dead_letter_list()}
    assert set(dead) == {"not_json", "store_rejected:OverflowError"}
    assert '"mid":1013' in dead["store_rejected:OverflowError"]["payload"]
    assert c.store.kiosk(KIOSK)["counters"] == {"sessions": 39}
    assert c.store.summary()["dead_letters"] == 2


def test_an_unavailable_database_is_waited_for_not_split(offline_controller: FleetController,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    c = offline_controller
    real = c.store.write_batch
    fails = {"left": 2}

    def flaky(batch: Any, controller_id: str, now: int) -> dict[str, int]:
        if fails["left"]:
            fails["left"] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real(batch, controller_id, now)

    monkeypatch.setattr(c.store, "write_batch", flaky)
    from fleet.controller.store import Batch

    batch, items = Batch(), []
    c._take(batch, items, f"fleet/v1/{KIOSK}/birth".encode(), _birth(KIOSK, 5), P.now_ms())
    assert c._flush(batch, 1, items) is True
    assert c.stats["db_errors"] == 2 and c.stats["poison_batches"] == 0 and c.stats["dead_letters"] == 0
    assert c.store.kiosk(KIOSK) is not None


def test_envelope_bounds_unit() -> None:
    now = P.now_ms()
    good = _message(KIOSK, 1, 1)
    assert P.check_envelope("data", KIOSK, good, now) is good
    for bad, reason in [({**good, "ts": now + 2 * 86_400_000}, "ts_out_of_window"),
                        ({**good, "ts": 2 ** 53}, "ts_out_of_window"),
                        ({**good, "devices": {f"d{i}": {"state": "ok"} for i in range(40)}}, "bad_devices"),
                        ({**good, "counters": {"sessions": 1.5}}, "bad_counters"),
                        ({**good, "announcement": {"zh_CN": "x"}}, "bad_announcement"),
                        ({**good, "events": list(range(50))}, "bad_events")]:
        with pytest.raises(P.PayloadError) as err:
            P.check_envelope("data", KIOSK, bad, now)
        assert err.value.reason == reason
    with pytest.raises(P.PayloadError, match="bad_heartbeat"):
        P.check_envelope("birth", KIOSK, {**good, "seq": 0, "heartbeat_s": float("inf")}, now)
    with pytest.raises(P.PayloadError, match="bad_host"):
        P.check_host({"cpu_temp_c": float("nan")})
