"""The controller's receive and batching path: PUBLISH packets parsed a whole buffer at a time (order kept, every
other packet left to paho), and what a burst processed in one flush stores — newest state wins, every message goes
to the time series once, a sequence gap inside a burst still opens an alert and asks for a rebirth."""
from __future__ import annotations

import threading
from typing import Any

from fleet import protocol as P
from fleet.agent.swarm import publish_packet
from fleet.broker import CONTROLLER_USER
from fleet.controller.ingest import make_ingest_client, parse_publishes
from fleet.controller.store import Store
from fleet.mqtt import BrokerConfig

PINGRESP = b"\xd0\x00"


def _payload(n: int, size: int = 0) -> bytes:
    return b'{"n":%d,"pad":"%s"}' % (n, b"x" * size)


def test_parse_publishes_takes_whole_publishes_in_order_and_stops_at_anything_else() -> None:
    sizes = [0, 100, 200, 20_000, 3_000_000]  # remaining length in 1, 2, 3 and 4 bytes
    packets = [publish_packet(f"fleet/v1/K{i}/data", _payload(i, s), i % 2, 1000 + i) for i, s in enumerate(sizes)]
    stream = b"".join(packets) + PINGRESP + packets[0]
    out: list[tuple[bytes, bytes, int, int]] = []
    pos = parse_publishes(stream, 0, out)
    assert pos == len(stream) - len(PINGRESP) - len(packets[0])  # stopped at the PINGRESP, left for paho
    assert [(t, p, q) for t, p, _m, q in out] == [(f"fleet/v1/K{i}/data".encode(), _payload(i, s), i % 2)
                                                  for i, s in enumerate(sizes)]
    assert [m for _t, _p, m, q in out if q] == [1001, 1003]
    assert parse_publishes(stream, pos + len(PINGRESP), out) == len(stream)
    assert out[-1][1] == _payload(0)


def test_parse_publishes_leaves_cut_and_qos2_packets_alone() -> None:
    first = publish_packet("fleet/v1/K/data", _payload(1, 50), 1, 7)
    second = publish_packet("fleet/v1/K/data", _payload(2, 50_000), 1, 8)
    for cut in (1, 2, 3, len(second) - 1):  # in the header, the length, the topic, the payload
        out: list[tuple[bytes, bytes, int, int]] = []
        assert parse_publishes(first + second[:cut], 0, out) == len(first)
        assert [m for _t, _p, m, _q in out] == [7]
    qos2 = publish_packet("fleet/v1/K/data", _payload(3), 2, 9)
    out = []
    assert parse_publishes(qos2 + first, 0, out) == 0 and out == []


def test_bulk_client_delivers_every_message_once_in_order_across_buffer_boundaries(
        broker: Any, kiosk_client: Any, wait_for: Any) -> None:
    got: list[tuple[bytes, bytes, int, int]] = []
    batches: list[int] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    client = make_ingest_client(BrokerConfig.from_url(broker.url).with_username(CONTROLLER_USER), "ingest-test")

    def on_batch(items: list[tuple[bytes, bytes, int, int]]) -> None:
        with lock:
            got.extend(items)
            batches.append(len(items))
        client.ack_many([m for _t, _p, m, q in items if q])

    def on_single(topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        with lock:
            got.append((bytes(topic), bytes(payload), mid, qos))
        if qos:
            client.ack_many([mid])

    client.on_publish_batch = on_batch
    client.on_raw_publish = on_single
    client.on_connect = lambda c, *_a: c.subscribe("$share/controllers/fleet/v1/+/data", 1)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(5)
        kiosk = kiosk_client(broker, "KSK-I-0001", "KSK-I-0001")
        # mostly small messages, now and then one larger than the client's 256 KiB receive buffer
        sizes = [300_000 if i % 500 == 250 else (i * 37) % 900 for i in range(3000)]
        infos = [kiosk.publish("fleet/v1/KSK-I-0001/data", _payload(i, s), 1) for i, s in enumerate(sizes)]
        for info in infos[-20:]:
            info.wait_for_publish(10)
        wait_for(lambda: len(got) >= len(sizes), 30, what="every message received")
        with lock:
            assert [p for _t, p, _m, _q in got] == [_payload(i, s) for i, s in enumerate(sizes)]
            assert {t for t, _p, _m, _q in got} == {b"fleet/v1/KSK-I-0001/data"}
            assert max(batches) > 1  # whole buffers were handed over at once
    finally:
        client.disconnect()
        client.loop_stop()


def _message(kiosk: str, mid: int, seq: int, bd: int, paper: str, **extra: Any) -> bytes:
    state = {"ok": "ok", "near-end": "degraded", "out": "fault"}[paper]
    return P.dumps({"v": 1, "kiosk_id": kiosk, "ts": P.now_ms(), "mid": mid, "seq": seq, "bdSeq": bd,
                    "devices": {"receipt_printer": {"state": state, "xfs": "online", "supplies": {"paper": paper},
                                                    "error_code": None, "error_text": "", "counters": {"pages": mid}}},
                    **extra})


def _birth(kiosk: str, mid: int, bd: int) -> bytes:
    return _message(kiosk, mid, 0, bd, "ok", identity={"name": "测试终端", "district": "蚌埠"}, heartbeat_s=30,
                    commands=["rebirth"], host={"disk_free_pct": 60.0}, counters={"sessions": 0})


def test_a_burst_keeps_the_newest_state_and_stores_each_message_once(
        broker: Any, start_controller: Any, kiosk_client: Any, db_url: str, wait_for: Any) -> None:
    """On SQLite and on PostgreSQL (samples through COPY)."""
    controller = start_controller("--flush-interval", "1.0", db=db_url)
    kiosk = "KSK-B-0001"
    client = kiosk_client(broker, kiosk, kiosk)
    client.publish(f"fleet/v1/{kiosk}/birth", _birth(kiosk, 1000, 5), 1).wait_for_publish(5)
    wait_for(lambda: (k := controller.kiosk(kiosk)) and k["online"], 10, what="the birth stored")
    # 200 messages, most in one flush (1 s): paper runs out at seq 150, sessions count up; then a redelivery of
    # an older message (mid below the newest) that must not win
    infos = []
    for seq in range(1, 201):
        paper = "out" if seq >= 150 else "ok"
        infos.append(client.publish(f"fleet/v1/{kiosk}/data", _message(
            kiosk, 1000 + seq, seq, 5, paper, counters={"sessions": seq}), 1))
    infos.append(client.publish(f"fleet/v1/{kiosk}/data", _message(
        kiosk, 1100, 100, 5, "ok", counters={"sessions": 100}), 1))
    for info in infos:
        info.wait_for_publish(5)
    wait_for(lambda: controller.stats()["processed"] >= 202, 10, what="the burst processed")
    alerts = wait_for(lambda: [a for a in controller.alerts(kiosk_id=kiosk) if a["rule"] == "paper_out"], 5,
                      what="the paper-out alert")
    assert alerts[0]["device"] == "receipt_printer"
    k = controller.kiosk(kiosk)
    assert k["counters"] == {"sessions": 200}
    printer = next(d for d in k["devices"] if d["kind"] == "receipt_printer")
    assert printer["paper"] == "out" and printer["counters"] == {"pages": 1200}
    stats = controller.stats()
    assert stats["malformed"] == 0 and stats["stored"] == 201 and stats["duplicates"] == 1  # mid 1100 twice
    store = Store(controller.db)
    try:
        assert store.sample_totals() == {"rows": 201, "distinct": 201}
    finally:
        store.dispose()
    assert not [a for a in controller.alerts(status="all") if a["rule"] == "seq_gap"]


def test_a_gap_inside_a_burst_opens_an_alert_and_asks_for_a_rebirth(
        broker: Any, start_controller: Any, kiosk_client: Any, make_observer: Any, wait_for: Any) -> None:
    controller = start_controller("--flush-interval", "1.0")
    observer = make_observer(broker)
    kiosk = "KSK-B-0002"
    client = kiosk_client(broker, kiosk, kiosk)
    client.publish(f"fleet/v1/{kiosk}/birth", _birth(kiosk, 5000, 9), 1).wait_for_publish(5)
    wait_for(lambda: (k := controller.kiosk(kiosk)) and k["online"], 10, what="the birth stored")
    infos = [client.publish(f"fleet/v1/{kiosk}/data", _message(kiosk, 5000 + seq, seq % 256, 9, "ok"), 1)
             for seq in range(1, 201) if seq != 123]  # seq 123 lost
    for info in infos:
        info.wait_for_publish(5)
    gap = wait_for(lambda: [a for a in controller.alerts() if a["rule"] == "seq_gap"], 15,
                   what="the sequence-gap alert")
    assert gap[0]["kiosk_id"] == kiosk and "expected seq 123, got 124" in gap[0]["detail"]
    rebirth = wait_for(lambda: [c for c in controller.get(f"/api/v1/kiosks/{kiosk}/commands")
                                if c["name"] == "rebirth"], 10, what="the rebirth command")
    assert rebirth[0]["created_by"] == "sequence-audit"
    wait_for(lambda: [t for t, _p in observer.messages if t.startswith(f"fleet/v1/{kiosk}/cmd/")], 10,
             what="the signed rebirth sent to the kiosk")
    assert controller.stats()["gaps"] == 1  # one lost message, one gap
