"""The hostile scan: a pad that sends the whole card number (``set_card pan=… send=full``) pays an
order through the whole kiosk core — the device manager's simulators, the real pad driver, the payment service and
journal, the voucher on the ESC/POS emulator, the audit journal — with the fleet link up against a real mosquitto and
a real fleet controller; afterwards the full number is nowhere: not in any file under the kiosk's data folder
(payment journal, audit, print journal, outbox, caches — with their WAL files), not in the logs, not in the voucher,
not in any MQTT payload published under ``fleet/v1/#``, not in the platform's or the controller's database files."""
from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.loader import load_profile
from drivers.sim.process import ManagedProcess
from fleet.broker import CONTROLLER_USER, Mosquitto
from fleet.signing import generate_keypair
from kiosk.core import KioskCore
from tests.kiosk.payments.conftest import FAST_CONFIG, PAYMENT_DEVICES

ROOT = Path(__file__).resolve().parents[3]
FULL_PAN = "6217000010012345678"
MASKED = "621700*********5678"
#: what must never be seen: the number, its hidden middle digits, the number as UTF-16 (SQLite may store text so)
NEEDLES = [FULL_PAN.encode(), FULL_PAN[6:15].encode(), FULL_PAN.encode("utf-16-le")]


def leaks(raw: bytes) -> list[bytes]:
    return [n for n in NEEDLES if n in raw]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    try:
        m = Mosquitto(tmp_path / "broker", anonymous=True).start()
    except RuntimeError as exc:  # loud, never a skip: setup installs mosquitto
        pytest.fail(f"the hostile scan needs a real mosquitto: {exc} (scripts/setup.sh installs it)", pytrace=False)
    try:
        yield m
    finally:
        m.stop()


class Wiretap:
    """Every message published under fleet/v1/# (subscribed as the controllers' user, before the kiosk starts)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wiretap-{time.monotonic_ns()}")
        self.client.username_pw_set(CONTROLLER_USER)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("fleet/v1/#", 1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(5), "the wiretap did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def snapshot(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def wiretap(broker: Mosquitto) -> Iterator[Wiretap]:
    tap = Wiretap(broker)
    try:
        yield tap
    finally:
        tap.close()


@pytest.fixture
def controller(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[ManagedProcess, Path, Path]]:
    """``fleet-controller serve`` on the broker with a SQLite file: (process, database, public command key)."""
    private, public = generate_keypair(tmp_path / "keys")
    db = tmp_path / "fleet.db"
    proc = ManagedProcess([sys.executable, "-m", "fleet.controller.cli", "serve", "--broker", broker.url, "--db",
                           str(db), "--http", "127.0.0.1:0", "--signing-key", str(private), "--demo"],
                          "fleet-controller", start_timeout=30, env={"FLEET_ADMIN_PASSWORD": "hostile-scan-pw"},
                          cwd=str(ROOT))
    try:
        yield proc, db, public
    finally:
        proc.stop(10)


def test_a_full_pan_from_a_hostile_pad_is_nowhere_after_a_whole_payment(
        make_profile: Callable[..., Path], broker: Mosquitto, wiretap: Wiretap,
        controller: tuple[ManagedProcess, Path, Path], platform_server: Any, platform: Any, new_order: Any,
        clock: Any, wait_for: Callable[..., Any], call: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    _proc, fleet_db, verify_key = controller
    profile = load_profile(make_profile(**PAYMENT_DEVICES, fleet={"broker_url": broker.url,
                                                                  "verify_key": str(verify_key), "heartbeat_s": 1}),
                           environ={})
    caplog.set_level(logging.DEBUG)
    core = KioskCore(profile, clock=clock)
    core.payments.service.config = FAST_CONFIG
    try:
        core.start()
        kiosk_id = core.kiosk_id
        wait_for(lambda: any(t.split("/")[2:3] == [kiosk_id] for t, _ in wiretap.snapshot()), timeout=20,
                 what="the kiosk's fleet link publishing")
        pad_sim = core.devices.simulators["payment_pad"]
        printer_sim = core.devices.simulators["receipt_printer"]
        pad_sim.control("set_timing", card_s=0.05, pin_s=0.05, host_s=0.05)
        pad_sim.control("set_card", pan=FULL_PAN, send="full")          # the hostile pad: the whole number on the wire
        order = call(core.payments.find, new_order().order_no)
        core.start_anonymous()
        done = call(core.payments.pay, order, "card")
        assert done.outcome.status == "paid", done.outcome
        assert pad_sim.control("ledger")["ledger"][order.order_no]["pan_sent"] == FULL_PAN   # it was on the wire
        assert done.outcome.record.card_masked == MASKED
        assert platform.payment_order(order.order_no).card_masked == MASKED
        receipts = wait_for(lambda: printer_sim.control("receipts")["receipts"], what="the voucher")
        voucher = receipts[-1]["text"]
        assert "缴费凭证" in voucher and MASKED in voucher
        # the fleet link carries the kiosk's state after the payment too (health now, then a heartbeat)
        seen = len(wiretap.snapshot())
        core.check_health()
        wait_for(lambda: len(wiretap.snapshot()) > seen, timeout=20, what="fleet messages after the payment")
        core.flush_audit()
        core.end_session()
    finally:
        core.stop()

    found: list[str] = []
    # the voucher, as printed and as the emulator rendered it
    for receipt in receipts:
        found += [f"voucher: {n!r}" for n in leaks(str(receipt).encode())]
    # every file the kiosk wrote (payment journal, audit journal, print journal, outbox, caches, WAL files)
    data_dir = Path(profile.kiosk.data_dir)
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("payments.sqlite3") for p in files)
    assert any(p.name.startswith("audit") for p in files)
    audit = "".join(p.read_text("utf-8", "replace") for p in files if p.name.startswith("audit"))
    assert '"payment"' in audit
    for path in files:
        found += [f"{path.relative_to(data_dir)}: {n!r}" for n in leaks(path.read_bytes())]
    # the logs of this process (kiosk core, drivers, payment service, fleet agent)
    found += [f"log: {n!r}" for n in leaks(caplog.text.encode())]
    # every MQTT payload published under fleet/v1/# while the kiosk ran
    messages = wiretap.snapshot()
    assert any(kiosk_id in topic for topic, _ in messages)
    for topic, payload in messages:
        found += [f"mqtt {topic}: {n!r}" for n in leaks(payload) + leaks(topic.encode())]
    # the platform's database (with its WAL) and the fleet controller's
    for db in [platform_server.db_path, fleet_db]:
        for path in Path(db).parent.glob(Path(db).name + "*"):
            found += [f"{path.name}: {n!r}" for n in leaks(path.read_bytes())]
    assert not found, "the full card number leaked: " + "; ".join(found)
