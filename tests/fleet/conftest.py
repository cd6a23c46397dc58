"""Fixtures for the fleet tests: a real mosquitto (config rendered from fleet/broker's templates) on a free loopback
port, a throw-away PostgreSQL (initdb'd into a temporary folder, run as a non-root user), ``fleet-controller serve``
and ``python -m fleet.agent`` processes started the way operators start them (first stdout line = JSON endpoints,
stopped by PID), an observer MQTT client recording every fleet message, and headless Chromium."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.sim.control import send_command
from drivers.sim.process import ManagedProcess
from fleet.broker import CONTROLLER_USER, Mosquitto
from fleet.signing import generate_keypair

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "test-operator-password"


# --- broker and keys ----------------------------------------------------------------------------------------------

@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    try:
        m = Mosquitto(tmp_path / "broker", anonymous=True).start()  # loopback, usernames as given: tests only
    except RuntimeError as exc:  # loud, never a skip: setup installs mosquitto
        pytest.fail(f"the fleet tests need a real mosquitto: {exc} (scripts/setup.sh installs it)", pytrace=False)
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The controllers' Ed25519 command-signing key pair: (private .key, public .pub)."""
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A key pair that is not the controllers' (what a forger has)."""
    return generate_keypair(tmp_path_factory.mktemp("forger"))


class Observer:
    """An MQTT client (as the controllers' user) recording every message under fleet/v1/#."""

    def __init__(self, broker: Mosquitto, username: str = CONTROLLER_USER, topic: str = "fleet/v1/#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{time.monotonic_ns()}")
        self.client.username_pw_set(username)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(5), "observer did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def of(self, kind: str, kiosk: str | None = None) -> list[dict[str, Any]]:
        out = []
        with self._lock:
            items = list(self.messages)
        for topic, payload in items:
            parts = topic.split("/")
            if len(parts) >= 4 and parts[3] == kind and (kiosk is None or parts[2] == kiosk):
                try:
                    out.append(json.loads(payload))
                except ValueError:
                    pass
        return out

    def all_payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _t, p in self.messages]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def observer(broker: Mosquitto) -> Iterator[Observer]:
    o = Observer(broker)
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
def make_observer() -> Iterator[Callable[[Mosquitto], Observer]]:
    made: list[Observer] = []

    def make(broker: Mosquitto) -> Observer:
        made.append(Observer(broker))
        return made[-1]

    yield make
    for o in made:
        o.close()


@pytest.fixture
def kiosk_client() -> Iterator[Callable[[Mosquitto, str, str], mqtt.Client]]:
    """Connected MQTT clients with a given username (a kiosk's account, or an intruder's)."""
    made: list[mqtt.Client] = []

    def make(broker: Mosquitto, username: str, client_id: str) -> mqtt.Client:
        made.append(mqtt_client(broker, username, client_id))
        return made[-1]

    yield make
    for c in made:
        c.loop_stop()
        c.disconnect()


def mqtt_client(broker: Mosquitto, username: str, client_id: str) -> mqtt.Client:
    """A connected client with this username (the ACL picks its topics by username)."""
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(username)
    client.on_connect = lambda *a: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert connected.wait(5)
    return client


# --- PostgreSQL -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fleet.controller.tempdb import TempPostgres, pg_bindir

    if pg_bindir() is None:
        pytest.fail("PostgreSQL is needed for the fleet tests: apt-get install postgresql (see scripts/setup.sh)")
    pg = TempPostgres().start()
    try:
        yield pg
    finally:
        pg.stop()


_db_counter = iter(range(1, 10_000))


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A fresh database on the session's PostgreSQL server."""
    name = f"fleet_t{next(_db_counter)}"
    subprocess.run([str(postgres.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U",
                    postgres.run_as or "root", name], check=True, preexec_fn=postgres._demote)
    return postgres.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "fleet.db")
    return request.getfixturevalue("pg_url")


# --- controller and agents as processes ---------------------------------------------------------------------------

class ControllerProcess:
    """``fleet-controller serve --demo``: the demo mode creates the admin ``admin`` from $FLEET_ADMIN_PASSWORD (serve
    without --demo refuses to start on a database without an admin)."""

    def __init__(self, broker: Mosquitto, db: str, key: Path, *args: str, name: str = "") -> None:
        cmd = [sys.executable, "-m", "fleet.controller.cli", "serve", "--broker", broker.url, "--db", db,
               "--http", "127.0.0.1:0", "--signing-key", str(key), "--demo", *args]
        if name:
            cmd += ["--controller-id", name]
        self.proc = ManagedProcess(cmd, "fleet-controller", start_timeout=30,
                                   env={"FLEET_ADMIN_PASSWORD": ADMIN_PASSWORD}, cwd=str(ROOT))
        self.endpoints = self.proc.endpoints
        self.url = self.endpoints.get("scheme", "http") + "://" + self.endpoints["http"]
        self.db = db
        self.api = httpx.Client(base_url=self.url, timeout=10, verify=False)  # https: a throw-away certificate
        token = self.api.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
        token.raise_for_status()
        self.token = token.json()["access_token"]
        self.api.headers["Authorization"] = f"Bearer {self.token}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str, **params: Any) -> Any:
        r = self.api.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.api.post(path, json=body)

    def kiosk(self, kiosk_id: str) -> dict[str, Any] | None:
        r = self.api.get(f"/api/v1/kiosks/{kiosk_id}")
        return r.json() if r.status_code == 200 else None

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts", **params)

    def stats(self) -> dict[str, Any]:
        return self.get("/api/v1/stats")["this"]

    def stop(self) -> None:
        self.api.close()
        self.proc.stop(10)


@pytest.fixture
def kiosk(make_profile: Any, broker: Mosquitto, keys: tuple[Path, Path]) -> Iterator[Any]:
    """A running kiosk core whose fleet link talks to ``broker`` and trusts ``keys``."""
    from device_profiles.loader import load_profile
    from kiosk.core import KioskCore

    profile = load_profile(make_profile(fleet={"broker_url": broker.url, "verify_key": str(keys[1]),
                                               "heartbeat_s": 5}), environ={})
    core = KioskCore(profile)
    core.start()
    try:
        yield core
    finally:
        core.stop()


@pytest.fixture
def start_controller(broker: Mosquitto, keys: tuple[Path, Path], tmp_path: Path
                     ) -> Iterator[Callable[..., ControllerProcess]]:
    started: list[ControllerProcess] = []

    def start(*args: str, db: str | None = None, name: str = "") -> ControllerProcess:
        c = ControllerProcess(broker, db or str(tmp_path / "fleet.db"), keys[0], *args, name=name)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


class AgentsProcess:
    """``python -m fleet.agent``: N virtual kiosks with real FleetAgents, driven through the control endpoint."""

    def __init__(self, broker: Mosquitto, pub: Path, count: int, prefix: str, *args: str) -> None:
        self.proc = ManagedProcess([sys.executable, "-m", "fleet.agent", "--broker", broker.url, "--verify-key",
                                    str(pub), "--count", str(count), "--prefix", prefix, *args], "fleet agents",
                                   start_timeout=30, cwd=str(ROOT))
        self.kiosks: list[str] = self.proc.endpoints["kiosks"]
        self.control = self.proc.endpoints["control"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cmd(self, name: str, **args: Any) -> dict[str, Any]:
        reply = send_command(self.control, name, timeout=15, **args)
        assert reply.get("ok"), reply
        return reply

    def stop(self) -> None:
        self.proc.stop(10)


@pytest.fixture
def start_agents(broker: Mosquitto, keys: tuple[Path, Path]) -> Iterator[Callable[..., AgentsProcess]]:
    started: list[AgentsProcess] = []

    def start(count: int = 3, prefix: str = "KSK-T-", *args: str) -> AgentsProcess:
        a = AgentsProcess(broker, keys[1], count, prefix, "--rebirth-jitter", "0.2", *args)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


# --- headless Chromium --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(browser).exists() or not Path(driver_path).exists():
        pytest.fail("Debian's chromium and chromium-driver are needed for the dashboard tests (scripts/setup.sh)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=zh-CN",
                "--window-size=1440,1000", "--force-device-scale-factor=1", "--hide-scrollbars",
                "--autoplay-policy=no-user-gesture-required"):   # the help alarm's tone plays without a click
        options.add_argument(arg)
    options.binary_location = browser
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
