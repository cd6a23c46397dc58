"""The agent's on-disk outbox: order, acknowledgement, bounds, newest-wins, and what survives a restart."""
from __future__ import annotations

from pathlib import Path

from fleet.agent.outbox import Outbox


def test_rows_come_out_in_order_until_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    mids = [box.put("data", "data", {"n": i}, created_ms=i) for i in range(5)]
    assert mids == sorted(mids) and len(set(mids)) == 5
    rows = box.peek(0, 3)
    assert [r.payload["n"] for r in rows] == [0, 1, 2] and rows[0].payload["mid"] == mids[0]
    assert [r.payload["n"] for r in box.peek(rows[-1].id, 10)] == [3, 4]
    box.ack([r.id for r in rows])
    assert [r.payload["n"] for r in box.peek(0, 10)] == [3, 4]


def test_heartbeats_coalesce_newest_wins(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("data", "data", {"n": "change"}, 1)
    for i in range(5):
        box.put("heartbeat", "data", {"n": f"hb{i}"}, 2 + i, coalesce_key="heartbeat")
    assert [r.payload["n"] for r in box.peek(0, 10)] == ["change", "hb4"]


def test_bounded_queue_evicts_heartbeats_then_data_before_alarms(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=4)
    box.put("alarm", "alarm", {"n": "a1"}, 1)
    box.put("cmd-result", "cmd-result/x", {"n": "r1"}, 2)
    box.put("heartbeat", "data", {"n": "hb"}, 3, coalesce_key="heartbeat")
    for i in range(4):
        box.put("data", "data", {"n": f"d{i}"}, 4 + i)
    assert [r.payload["n"] for r in box.peek(0, 10)] == ["a1", "r1", "d2", "d3"]
    assert box.dropped == 3


def test_counters_and_queue_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    first_mid = box.put("data", "data", {"n": 1}, 1)
    bd = [box.next_bdseq() for _ in range(3)]
    box.remember_command("cmd-1", expires_ms=10**13, now_ms=1)
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [r.payload["n"] for r in again.peek(0, 10)] == [1]
    assert again.put("data", "data", {"n": 2}, 2) == first_mid + 1
    assert again.next_bdseq() == bd[-1] + 1
    assert again.command_seen("cmd-1") and not again.command_seen("cmd-2")


def test_mids_start_at_creation_time_so_a_new_disk_never_goes_backwards(tmp_path: Path) -> None:
    old = Outbox(tmp_path / "old.db")
    old_mid = old.put("data", "data", {}, 1)
    new = Outbox(tmp_path / "new.db")
    assert new.put("data", "data", {}, 1) >= old_mid > 10**15
    assert len(str(old_mid)) == 16  # never 15 or 18 digits: nothing ID-number-like in a payload
