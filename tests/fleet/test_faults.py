"""Faults the fleet must survive, with real processes: the broker restarted while kiosks publish, a kiosk killed with
SIGKILL, messages lost (sequence gap → rebirth), a forged command, malformed payloads."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from fleet import protocol as P
from fleet.broker import CONTROLLER_USER
from fleet.signing import CommandSigner


def test_broker_restart_while_kiosks_publish_loses_no_state(broker: Any, start_controller: Any, start_agents: Any,
                                                            tmp_path: Path, wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(3, "KSK-R-", "--poll", "0.2", "--heartbeat", "1", "--outbox-dir", str(tmp_path / "ob"))
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 3, 15, what="three kiosks online")
    bd_before = {k: controller.kiosk(k)["bd_seq"] for k in agents.kiosks}
    for _ in range(2):
        agents.cmd("serve_citizen", kiosk="KSK-R-0001")
    broker.stop()
    # the kiosks keep working while the broker is away: their outboxes fill
    for _ in range(3):
        agents.cmd("serve_citizen", kiosk="KSK-R-0001")
    agents.cmd("set_paper", kiosk="KSK-R-0002", state="out")
    wait_for(lambda: agents.cmd("stats", kiosk="KSK-R-0001")["pending"] >= 3, 5, what="the outbox to hold them")
    broker.start()
    for k in agents.kiosks:
        wait_for(lambda: controller.kiosk(k)["online"] and controller.kiosk(k)["bd_seq"] != bd_before[k], 20,
                 what=f"{k} reborn after the restart")
    wait_for(lambda: controller.kiosk("KSK-R-0001")["counters"].get("sessions") == 5, 10,
             what="the latest session count")
    wait_for(lambda: [a for a in controller.alerts(kiosk_id="KSK-R-0002") if a["rule"] == "paper_out"], 10,
             what="paper out raised while the broker was down")
    wait_for(lambda: all(agents.cmd("stats", kiosk=k)["pending"] == 0 for k in agents.kiosks), 10,
             what="every outbox drained")
    # the history kept what happened while the broker was away (sent from the outbox, stored once)
    history = controller.get("/api/v1/kiosks/KSK-R-0001/history", hours=1)
    assert sum(v for _t, v in history["sessions_per_hour"]) == 5
    # any gap the restart caused was healed by a rebirth: no sequence-gap alert stays open
    wait_for(lambda: not [a for a in controller.alerts() if a["rule"] == "seq_gap"], 10, what="gaps healed")
    stats = controller.stats()
    assert stats["malformed"] == 0 and stats["connects"] >= 2


def test_lost_messages_are_detected_and_healed_by_a_rebirth(broker: Any, start_controller: Any,
                                                           start_agents: Any, kiosk_client: Any,
                                                           make_observer: Any, wait_for: Any) -> None:
    controller = start_controller()
    observer = make_observer(broker)
    agents = start_agents(1, "KSK-G-", "--poll", "0.2")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 1, 15, what="the kiosk online")
    agents.cmd("serve_citizen", kiosk="KSK-G-0001")
    last = wait_for(lambda: [m for m in observer.of("data", "KSK-G-0001")], 5, what="a data message")[-1]
    # a message of this session arrives with seq + 5: four were lost on the way
    lost = {**last, "seq": (last["seq"] + 5) % 256, "mid": last["mid"] + 5, "ts": P.now_ms(), "devices": {}}
    client = kiosk_client(broker, "KSK-G-0001", "KSK-G-0001-replay")
    client.publish("fleet/v1/KSK-G-0001/data", P.dumps(lost), 1).wait_for_publish(5)
    gap = wait_for(lambda: [a for a in controller.alerts(status="all") if a["rule"] == "seq_gap"], 10,
                   what="the sequence-gap alert")[0]
    assert f"expected seq {(last['seq'] + 1) % 256}, got {lost['seq']}" in gap["detail"]
    rebirth = wait_for(lambda: [c for c in controller.get("/api/v1/kiosks/KSK-G-0001/commands")
                                if c["name"] == "rebirth" and c["status"] == "succeeded"], 10,
                       what="the rebirth command answered")[0]
    assert rebirth["created_by"] == "sequence-audit"
    wait_for(lambda: [a for a in controller.alerts(status="cleared") if a["id"] == gap["id"]], 10,
             what="the gap alert to clear at the rebirth")
    assert len(observer.of("birth", "KSK-G-0001")) >= 2
    assert controller.stats()["gaps"] >= 1


def test_kill_9_death_via_will_alert_opens_and_clears_on_return(start_controller: Any, start_agents: Any,
                                                               tmp_path: Path, wait_for: Any) -> None:
    controller = start_controller("--offline-after", "1")
    outbox = str(tmp_path / "outbox")
    agents = start_agents(2, "KSK-K-", "--outbox-dir", outbox)
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 2, 15, what="two kiosks online")
    os.kill(agents.pid, signal.SIGKILL)  # no clean shutdown: no explicit death
    for k in agents.kiosks:
        wait_for(lambda: not controller.kiosk(k)["online"], 5, what=f"{k} dead via its Will")
        assert controller.kiosk(k)["offline_reason"] == "will"
    alerts = wait_for(lambda: [a for a in controller.alerts() if a["rule"] == "kiosk_offline"]
                      if len([a for a in controller.alerts() if a["rule"] == "kiosk_offline"]) == 2 else None, 10,
                      what="kiosk-offline alerts")
    assert {a["severity"] for a in alerts} == {"critical"}
    back = start_agents(2, "KSK-K-", "--outbox-dir", outbox)
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 2, 15, what="the kiosks back")
    wait_for(lambda: not [a for a in controller.alerts() if a["rule"] == "kiosk_offline"], 10,
             what="the offline alerts to clear")
    assert back.kiosks == agents.kiosks


def test_a_forged_command_is_rejected_logged_and_reported(broker: Any, start_controller: Any, start_agents: Any,
                                                         other_keys: tuple[Path, Path], kiosk_client: Any,
                                                         wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(1, "KSK-F-")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 1, 15, what="the kiosk online")
    # someone with the controllers' broker account (a leaked password) but not the signing key
    intruder = kiosk_client(broker, CONTROLLER_USER, "intruder")
    cmd, payload = CommandSigner(other_keys[0]).sign("KSK-F-0001", "out_of_service")
    intruder.publish(f"fleet/v1/KSK-F-0001/cmd/{cmd.id}", payload, 1).wait_for_publish(5)
    unsigned = json.dumps({"body": json.dumps({"id": "x1", "kiosk_id": "KSK-F-0001", "name": "restart_app"}),
                           "sig": "AAAA", "key_id": "0000"}).encode()
    intruder.publish("fleet/v1/KSK-F-0001/cmd/x1", unsigned, 1).wait_for_publish(5)
    events = wait_for(lambda: [e for e in controller.get("/api/v1/kiosks/KSK-F-0001/events")
                               if e["code"] == "command_rejected"] if len(
        [e for e in controller.get("/api/v1/kiosks/KSK-F-0001/events") if e["code"] == "command_rejected"]) == 2
        else None, 10, what="the rejections reported")
    assert any("unknown_key" in e["text"] for e in events) and events[0]["severity"] == "critical"
    stats = agents.cmd("stats", kiosk="KSK-F-0001")
    assert stats["service"] == "in_service" and stats["restarts"] == 0
    assert stats["stats"]["commands_rejected"] == 2 and stats["stats"]["commands_run"] == 0
    assert controller.stats()["forged_results"] == 2


def test_malformed_payloads_are_dropped_counted_and_the_controller_keeps_going(
        broker: Any, start_controller: Any, start_agents: Any, kiosk_client: Any, wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(1, "KSK-M-")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 1, 15, what="the kiosk online")
    client = kiosk_client(broker, "KSK-M-0001", "KSK-M-0001-fuzz")
    good = {"v": 1, "kiosk_id": "KSK-M-0001", "ts": P.now_ms(), "seq": 1, "bdSeq": 1, "mid": 1, "devices": {}}
    garbage = [
        ("data", b"not json at all"),
        ("data", b"\xff\xfe\x00 invalid utf-8"),
        ("data", b"[1, 2, 3]"),
        ("data", b'{"v": 1} trailing'),
        ("data", P.dumps({**good, "kiosk_id": "KSK-OTHER"})),
        ("data", P.dumps({**good, "seq": 999})),
        ("data", P.dumps({**good, "devices": {"idcard": {"state": "on fire"}}})),
        ("birth", P.dumps({**good, "seq": 0, "devices": None})),
        ("cmd-result/abc", P.dumps({**good, "command_id": "abc", "status": "exploded"})),
        ("data", b"{" * 100_000),
    ]
    for suffix, payload in garbage:
        client.publish(f"fleet/v1/KSK-M-0001/{suffix}", payload, 1).wait_for_publish(5)
    stats = wait_for(lambda: (s := controller.stats())["malformed"] == len(garbage) and s, 10,
                     what="every malformed message counted")
    assert stats["malformed_by_reason"] == {"not_json": 3, "not_object": 1, "kiosk_mismatch": 1, "bad_seq": 1,
                                            "bad_device_state": 1, "birth_without_devices": 1,
                                            "bad_result_status": 1, "too_large": 1}  # 100 kB > the 64 kB cap
    assert stats["dead_letters"] == len(garbage)
    # still working: state changes keep flowing and alerts still open
    agents.cmd("set_paper", kiosk="KSK-M-0001", state="out")
    wait_for(lambda: controller.alerts(kiosk_id="KSK-M-0001"), 5, what="an alert after the garbage")
    assert controller.kiosk("KSK-M-0001")["online"]
