"""The kiosk's fleet agent against a real mosquitto: birth/data/heartbeat/death, sequence numbers, the outbox while
the broker is away, signed commands, MQTT 5, TLS with a client certificate, and no personal data in any payload."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from fleet.agent import FleetAgent
from fleet.agent.virtual import VirtualKiosk
from fleet.broker import Mosquitto, TlsListener, dev_pki, free_port
from fleet.signing import CommandSigner



@pytest.fixture
def make_agent(broker: Mosquitto, keys: tuple[Path, Path], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    agents: list[FleetAgent] = []

    def make(kiosk_id: str = "KSK-T-0001", **kw: Any) -> tuple[FleetAgent, VirtualKiosk]:
        kiosk = VirtualKiosk(kiosk_id)
        options: dict[str, Any] = dict(verify_key=keys[1], identity=kiosk.identity(), app_source=kiosk.app,
                                       command_handlers=kiosk.handlers(), outbox_path=tmp_path / f"{kiosk_id}.db",
                                       heartbeat_s=30, poll_s=0.2, reconnect_min_s=0.1, reconnect_max_s=0.5,
                                       rebirth_jitter_s=0)
        options.update(kw)
        agent = FleetAgent(kiosk_id, broker.url, kiosk.statuses, **options)
        kiosk.on_change = agent.notify_changed
        agents.append(agent)
        return agent, kiosk

    yield make
    for a in agents:
        a.stop()


def test_birth_then_data_on_change_with_sequence_numbers(make_agent: Any, observer: Any, wait_for: Any) -> None:
    agent, kiosk = make_agent()
    agent.start()
    births = wait_for(lambda: observer.of("birth"), 10, what="the birth")
    b = births[0]
    assert (b["kiosk_id"], b["seq"], b["bdSeq"]) == ("KSK-T-0001", 0, agent.bd_seq)
    assert b["identity"]["district"] == "龙子湖区" and b["identity"]["agent_version"]
    assert b["devices"]["receipt_printer"] == {"state": "ok", "xfs": "online", "supplies": {"paper": "ok"},
                                               "error_code": None, "error_text": "",
                                               "counters": {"pages": 0, "jobs_failed": 0}}
    assert set(b["commands"]) >= {"rebirth", "self_test", "out_of_service", "show_announcement"}
    kiosk.set_paper("out")
    data = wait_for(lambda: observer.of("data"), 5, what="a data message")
    alarm = wait_for(lambda: observer.of("alarm"), 5, what="an alarm")
    assert data[0]["devices"] == {"receipt_printer": {**b["devices"]["receipt_printer"], "state": "fault",
                                                      "supplies": {"paper": "out"}, "error_code": "paper_out"}}
    assert "idcard" not in data[0]["devices"]  # by exception: only what changed
    assert alarm[0]["events"] == [{"device": "receipt_printer", "code": "paper_out", "severity": "critical",
                                   "active": True}]
    kiosk.set_paper("full")
    wait_for(lambda: len(observer.of("alarm")) == 2, 5, what="the clearing alarm")
    assert observer.of("alarm")[1]["events"][0]["active"] is False
    seqs = [m["seq"] for m in sorted(observer.of("data") + observer.of("alarm"), key=lambda m: m["mid"])]
    assert seqs == list(range(1, len(seqs) + 1))
    mids = [m["mid"] for m in observer.of("birth") + observer.of("data") + observer.of("alarm")]
    assert len(set(mids)) == len(mids)


def test_heartbeat_carries_everything_and_stop_sends_the_death(make_agent: Any, observer: Any,
                                                               wait_for: Any) -> None:
    agent, _kiosk = make_agent(heartbeat_s=0.3,
                               host_probe=lambda: {"uptime_s": 5, "disk_free_pct": 50.0, "cpu_temp_c": None})
    agent.start()
    beat = wait_for(lambda: [m for m in observer.of("data") if m["reason"] == "heartbeat"], 5, what="a heartbeat")[0]
    assert set(beat["devices"]) == {"idcard", "receipt_printer"}
    assert beat["host"] == {"uptime_s": 5, "disk_free_pct": 50.0, "cpu_temp_c": None}
    assert beat["counters"] == {"sessions": 0} and beat["service"] == "in_service"
    agent.stop()
    death = wait_for(lambda: observer.of("death"), 5, what="the explicit death")[0]
    assert death["reason"] == "shutdown" and death["bdSeq"] == agent.bd_seq


def test_start_never_blocks_even_without_a_broker(keys: tuple[Path, Path], tmp_path: Path) -> None:
    def slow_status() -> dict:
        time.sleep(0.5)  # a device that takes its time to answer
        return {}

    agent = FleetAgent("KSK-T-0009", f"mqtt://127.0.0.1:{free_port()}", slow_status, verify_key=keys[1],
                       reconnect_min_s=0.05)
    t0 = time.monotonic()
    agent.start()
    for _ in range(100):
        agent.notify_changed()
    assert time.monotonic() - t0 < 0.1
    assert not agent.connected
    t1 = time.monotonic()
    agent.stop(timeout=3)
    assert time.monotonic() - t1 < 3.5


def test_outbox_keeps_messages_while_the_broker_is_down_and_sends_them_in_order(
        make_agent: Any, broker: Mosquitto, make_observer: Any, wait_for: Any) -> None:
    agent, kiosk = make_agent()
    agent.start()
    wait_for(lambda: agent.connected and agent.pending() == 0, 10, what="the first session")
    first_bd = agent.bd_seq
    broker.stop()
    wait_for(lambda: not agent.connected, 10, what="the agent to notice")
    for i in range(3):
        kiosk.serve_citizen()
        wait_for(lambda: agent.pending() >= i + 1, 5, what="the change to be queued on disk")
    kiosk.set_paper("out")
    wait_for(lambda: agent.pending() >= 5, 5, what="the paper-out data and alarm to be queued")
    broker.start()
    o = make_observer(broker)
    wait_for(lambda: agent.pending() == 0, 15, what="the backlog to be sent")
    birth = wait_for(lambda: o.of("birth"), 5, what="the new birth")[0]
    assert birth["bdSeq"] == (first_bd + 1) % 256
    assert birth["devices"]["receipt_printer"]["supplies"]["paper"] == "out"  # newest state, first
    backlog = sorted(o.of("data") + o.of("alarm"), key=lambda m: m["mid"])
    assert [m["counters"]["sessions"] for m in backlog if m.get("counters")][:3] == [1, 2, 3]
    assert all(m.get("historical") for m in backlog)
    assert [m["seq"] for m in backlog] == list(range(1, len(backlog) + 1))
    assert all(m["mid"] < birth["mid"] for m in backlog)


def test_outbox_survives_a_restart_of_the_kiosk(make_agent: Any, broker: Mosquitto, make_observer: Any,
                                               wait_for: Any) -> None:
    broker.stop()
    agent, kiosk = make_agent()
    agent.start()
    wait_for(lambda: agent._snapshot_ready.is_set(), 5, what="the first poll")
    kiosk.serve_citizen()
    wait_for(lambda: agent.pending() == 1, 5, what="the change on disk")
    agent.stop()
    broker.start()
    o = make_observer(broker)
    again, _ = make_agent()  # same outbox file
    again.start()
    data = wait_for(lambda: [m for m in o.of("data") if m.get("counters", {}).get("sessions") == 1], 10,
                    what="the message queued before the restart")
    assert data[0]["historical"] is True


def test_signed_commands_run_and_answer_forged_ones_are_refused(make_agent: Any, keys: tuple[Path, Path],
                                                                other_keys: tuple[Path, Path], observer: Any,
                                                                wait_for: Any, caplog: Any) -> None:
    agent, kiosk = make_agent()
    agent.start()
    wait_for(lambda: observer.of("birth"), 10, what="the birth")
    controller = mqtt_client_for_commands(observer)
    cmd, payload = CommandSigner(keys[0]).sign("KSK-T-0001", "out_of_service")
    controller(cmd.id, payload)
    results = wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == cmd.id and
                                r["status"] == "done"], 5, what="the command result")
    assert [r["status"] for r in observer.of("cmd-result") if r["command_id"] == cmd.id] == ["accepted", "done"]
    assert results[0]["reason"] == "out of service" and kiosk.service == "out_of_service"
    wait_for(lambda: any(m.get("service") == "out_of_service" for m in observer.of("data")), 5,
             what="the new service mode published")
    # replaying the very same signed message does nothing
    controller(cmd.id, payload)
    wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == cmd.id and
                      r["status"] == "rejected"], 5, what="the replay refused")
    # a command signed with another key
    forged, forged_payload = CommandSigner(other_keys[0]).sign("KSK-T-0001", "back_in_service")
    controller(forged.id, forged_payload)
    refused = wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == forged.id], 5,
                       what="the forged command refused")
    assert refused[0]["status"] == "rejected" and refused[0]["reason"] == "unknown_key"
    assert kiosk.service == "out_of_service"
    assert agent.stats["commands_rejected"] == 2 and agent.stats["commands_run"] == 1
    assert any("rejected command" in r.getMessage() and "unknown_key" in r.getMessage() for r in caplog.records)
    # a handler that fails is a failed command, not a dead agent
    agent.handlers["restart_app"] = lambda args: (_ for _ in ()).throw(RuntimeError("cannot"))
    cmd2, payload2 = CommandSigner(keys[0]).sign("KSK-T-0001", "restart_app")
    controller(cmd2.id, payload2)
    failed = wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == cmd2.id and
                               r["status"] == "failed"], 5, what="the failed result")
    assert failed[0]["reason"] == "RuntimeError"


def mqtt_client_for_commands(observer: Any) -> Callable[[str, bytes], None]:
    def send(command_id: str, payload: bytes) -> None:
        observer.publish(f"fleet/v1/KSK-T-0001/cmd/{command_id}", payload)
    return send


def test_rebirth_and_self_test_are_built_in(make_agent: Any, keys: tuple[Path, Path], observer: Any,
                                           wait_for: Any) -> None:
    agent, kiosk = make_agent(command_handlers={})
    agent.start()
    wait_for(lambda: observer.of("birth"), 10, what="the birth")
    signer = CommandSigner(keys[0])
    cmd, payload = signer.sign("KSK-T-0001", "rebirth")
    observer.publish(f"fleet/v1/KSK-T-0001/cmd/{cmd.id}", payload)
    wait_for(lambda: len(observer.of("birth")) == 2, 5, what="the second birth")
    assert observer.of("birth")[1]["bdSeq"] == observer.of("birth")[0]["bdSeq"]  # same session, seq reset
    kiosk.set_device("idcard", "hardware_error", "sam_failed")
    cmd, payload = signer.sign("KSK-T-0001", "self_test")
    observer.publish(f"fleet/v1/KSK-T-0001/cmd/{cmd.id}", payload)
    res = wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == cmd.id and
                            r["status"] != "accepted"], 5, what="the self-test result")[0]
    assert res["status"] == "failed" and res["data"]["devices"] == {"idcard": "fault", "receipt_printer": "ok"}
    cmd, payload = signer.sign("KSK-T-0001", "push_profile", {"profile": "x"})
    observer.publish(f"fleet/v1/KSK-T-0001/cmd/{cmd.id}", payload)
    res = wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == cmd.id], 5,
                   what="the unsupported command refused")[0]
    assert (res["status"], res["reason"]) == ("rejected", "unsupported")


def test_acl_keeps_each_kiosk_on_its_own_topics(make_agent: Any, broker: Mosquitto, keys: tuple[Path, Path],
                                               observer: Any, kiosk_client: Any, wait_for: Any) -> None:
    agent, kiosk = make_agent()
    agent.start()
    wait_for(lambda: observer.of("birth"), 10, what="the birth")
    other = kiosk_client(broker, "KSK-T-0002", "KSK-T-0002")
    # another kiosk cannot speak for this one nor command it, even with a genuinely signed command
    other.publish("fleet/v1/KSK-T-0001/data", b'{"forged": true}', 1).wait_for_publish(5)
    cmd, payload = CommandSigner(keys[0]).sign("KSK-T-0001", "out_of_service")
    other.publish(f"fleet/v1/KSK-T-0001/cmd/{cmd.id}", payload, 1).wait_for_publish(5)
    marker, marker_payload = CommandSigner(keys[0]).sign("KSK-T-0001", "self_test")
    observer.publish(f"fleet/v1/KSK-T-0001/cmd/{marker.id}", marker_payload)
    wait_for(lambda: [r for r in observer.of("cmd-result") if r["command_id"] == marker.id], 5,
             what="a command from the controllers' account")
    assert not [r for r in observer.of("cmd-result") if r["command_id"] == cmd.id]
    assert kiosk.service == "in_service"
    assert not [p for p in observer.all_payloads() if b"forged" in p]


def test_tls_with_a_per_kiosk_client_certificate_and_mqtt5(tmp_path: Path, keys: tuple[Path, Path],
                                                           make_observer: Any, wait_for: Any) -> None:
    pki = dev_pki(tmp_path / "pki", ["KSK-TLS-0001", "fleet-controller"])
    tls = TlsListener(free_port(), str(pki.ca), str(pki.server_cert), str(pki.server_key))
    broker = Mosquitto(tmp_path / "tls-broker", tls_listener=tls, anonymous=True).start()  # + loopback observer
    cert, key = pki.clients["KSK-TLS-0001"]
    kiosk = VirtualKiosk("KSK-TLS-0001")
    agent = FleetAgent("KSK-TLS-0001", f"mqtts://127.0.0.1:{tls.port}?ca={pki.ca}&cert={cert}&key={key}",
                       kiosk.statuses, verify_key=keys[1], identity=kiosk.identity())
    o = make_observer(broker)
    try:
        agent.start()
        births = wait_for(lambda: o.of("birth", "KSK-TLS-0001"), 10, what="the birth over TLS")
        assert births[0]["kiosk_id"] == "KSK-TLS-0001"
        log = broker.log_text()
        # the certificate's CN became the username (so the ACL applies), and the session is MQTT 5
        assert re.search(r"as KSK-TLS-0001 \(p5, c1, k30, u'KSK-TLS-0001'\)", log), log[-2000:]
    finally:
        agent.stop()
        broker.stop()


def test_no_personal_data_in_any_payload_with_the_real_device_manager(broker: Mosquitto, keys: tuple[Path, Path],
                                                                     observer: Any, tmp_path: Path,
                                                                     wait_for: Any) -> None:
    """The kiosk's own DeviceManager with its simulators; a citizen's card (张明华, 340302195803172018) is read."""
    from device_profiles.loader import load_profile
    from fleet.agent import HostProbe, identity_from_profile
    from kiosk.devices import DeviceManager

    root = Path(__file__).resolve().parents[2]
    profile = load_profile(root / "device_profiles" / "simulated.yaml")
    manager = DeviceManager(profile)
    manager.start()
    agent = FleetAgent(profile.kiosk.id, broker.url, manager.statuses, verify_key=keys[1],
                       identity=identity_from_profile(profile, app_version="0.1.0"),
                       host_probe=HostProbe(tmp_path), heartbeat_s=0.5, poll_s=0.2, outbox_path=tmp_path / "o.db")
    try:
        agent.start()
        wait_for(lambda: observer.of("birth"), 15, what="the birth")
        manager.simulator_control("idcard", "place_card", identity="zhang")
        document = manager.get("idcard").read_card()  # type: ignore[union-attr]
        assert document.id_number == "340302195803172018" and document.name == "张明华"
        agent.notify_changed()
        wait_for(lambda: any(m["devices"].get("idcard", {}).get("counters", {}).get("cards_read") == 1
                             for m in observer.of("data")), 10, what="the card-read counter published")
        manager.simulator_control("receipt_printer", "set_paper", state="out")
        agent.notify_changed()
        wait_for(lambda: observer.of("alarm"), 10, what="the paper-out alarm")
        wait_for(lambda: len([m for m in observer.of("data") if m["reason"] == "heartbeat"]) >= 2, 10,
                 what="heartbeats")
    finally:
        agent.stop()
        manager.stop()
    payloads = observer.all_payloads()
    assert len(payloads) >= 5
    id_like = re.compile(rb"(?<!\d)\d{17}[\dXx](?!\d)")
    for raw in payloads:
        text = raw.decode("utf-8")
        assert "340302195803172018" not in text and "张明华" not in text and "张*华" not in text
        assert not id_like.search(raw), text
        assert "photo" not in text and "address" not in json.dumps(json.loads(text)).lower()
