"""The broker knows who connects: client certificates (CN = kiosk id = the username the ACL uses) or passwords,
never anonymous except for tests on loopback; a kiosk's certificate opens only that kiosk's topics."""
from __future__ import annotations

import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet.agent import FleetAgent
from fleet.agent.virtual import VirtualKiosk
from fleet.broker import CONTROLLER_USER, BrokerConfigError, DevPki, Mosquitto, TlsListener, dev_pki, free_port

A, B = "KSK-SEC-000A", "KSK-SEC-000B"


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[tuple[Mosquitto, DevPki]]:
    """A broker with only a TLS listener that requires client certificates (what the demo and production run)."""
    pki = dev_pki(tmp_path / "pki", [A, B, CONTROLLER_USER])
    m = Mosquitto(tmp_path / "secure-broker", tls_listener=TlsListener(free_port(), str(pki.ca),
                                                                       str(pki.server_cert), str(pki.server_key)))
    m.start()
    try:
        yield m, pki
    finally:
        m.stop()


@pytest.fixture
def broker(secure: tuple[Mosquitto, DevPki]) -> Any:
    """What ``start_controller`` connects to: the secured broker, with the controller's own certificate."""
    m, pki = secure
    return SimpleNamespace(url=m.tls_url(*pki.clients[CONTROLLER_USER]), host=m.host, port=m.tls_listener.port)


class Client:
    """A paho client that records what it receives; ``ok`` once the broker accepted the connection."""

    def __init__(self, port: int, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused: Any = None
        self.error: BaseException | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{time.monotonic_ns()}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                                keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED,
                                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        try:
            self.client.connect("127.0.0.1", port, keepalive=10)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
            return
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            self.refused = rc
        else:
            self.connected.set()

    def accepted(self, timeout: float = 3.0) -> bool:
        return self.error is None and self.connected.wait(timeout)

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, 1)
        assert self.subscribed.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, 1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def clients() -> Iterator[Any]:
    made: list[Client] = []

    def make(*args: Any, **kwargs: Any) -> Client:
        made.append(Client(*args, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_the_rendering_refuses_unauthenticated_brokers(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match="client certificates"):
        Mosquitto(tmp_path / "a").write_config()
    with pytest.raises(BrokerConfigError, match="loopback"):
        Mosquitto(tmp_path / "b", host="0.0.0.0", port=1883, anonymous=True).write_config()
    with pytest.raises(BrokerConfigError, match="loopback"):
        Mosquitto(tmp_path / "c", host="192.0.2.10", port=1883, anonymous=True).write_config()
    conf = Mosquitto(tmp_path / "d", anonymous=True).write_config().read_text()
    assert "allow_anonymous true" in conf and "listener" in conf and "127.0.0.1" in conf
    pki = dev_pki(tmp_path / "pki", [])
    tls = TlsListener(8883, str(pki.ca), str(pki.server_cert), str(pki.server_key), host="0.0.0.0",
                      crlfile=str(tmp_path / "revoked.crl"))
    conf = Mosquitto(tmp_path / "e", host="0.0.0.0", tls_listener=tls).write_config().read_text()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    assert f"crlfile {tmp_path / 'revoked.crl'}" in conf
    assert conf.count("listener ") == 1  # no plain listener beside the TLS one
    conf = Mosquitto(tmp_path / "f", host="0.0.0.0", password_file="/etc/mosquitto/passwd").write_config().read_text()
    assert "allow_anonymous false" in conf and "password_file /etc/mosquitto/passwd" in conf


def test_an_anonymous_client_is_refused(secure: tuple[Mosquitto, DevPki], clients: Any, tmp_path: Path) -> None:
    m, pki = secure
    port = m.tls_listener.port
    assert not clients(port).accepted(), "plain MQTT on the TLS listener"
    assert not clients(port, ca=pki.ca).accepted(), "TLS without a client certificate"
    assert not clients(port, ca=pki.ca, username=A).accepted(), "a username alone proves nothing"
    assert clients(port, ca=pki.ca, cert=pki.clients[A][0], key=pki.clients[A][1]).accepted()
    # the password-file variant: anonymous refused, the right password accepted
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), A, "kiosk-a-secret"], check=True,
                   capture_output=True)
    passwd.chmod(0o644)
    pw = Mosquitto(tmp_path / "pw-broker", password_file=str(passwd)).start()
    try:
        anon = clients(pw.port)
        assert not anon.accepted() and anon.refused is not None
        assert not clients(pw.port, username=A, password="wrong").accepted()
        assert clients(pw.port, username=A, password="kiosk-a-secret").accepted()
    finally:
        pw.stop()


def test_kiosk_a_cannot_publish_as_b_nor_read_bs_commands(secure: tuple[Mosquitto, DevPki], clients: Any,
                                                          wait_for: Any) -> None:
    m, pki = secure
    port = m.tls_listener.port
    controller = clients(port, ca=pki.ca, cert=pki.clients[CONTROLLER_USER][0], key=pki.clients[CONTROLLER_USER][1])
    assert controller.accepted()
    controller.subscribe("fleet/v1/#")
    # A's certificate, claiming B's name as its username: the certificate's CN wins
    a = clients(port, ca=pki.ca, cert=pki.clients[A][0], key=pki.clients[A][1], username=B)
    assert a.accepted()
    a.subscribe(f"fleet/v1/{B}/cmd/+")
    a.subscribe(f"fleet/v1/{A}/cmd/+")
    a.publish(f"fleet/v1/{B}/data", b'{"forged": "as B"}')
    a.publish(f"fleet/v1/{B}/birth", b'{"forged": "as B"}')
    a.publish(f"fleet/v1/{A}/data", b'{"genuine": "A"}')
    controller.publish(f"fleet/v1/{B}/cmd/c-b", b'{"for": "B"}')
    controller.publish(f"fleet/v1/{A}/cmd/c-a", b'{"for": "A"}')
    wait_for(lambda: (f"fleet/v1/{A}/data", b'{"genuine": "A"}') in controller.messages, 5,
             what="A's own message at the controller")
    wait_for(lambda: [t for t, _p in a.messages if t == f"fleet/v1/{A}/cmd/c-a"], 5, what="A's own command")
    # no wait for what must not come: mosquitto delivers one client's messages in the order it published them, so a
    # forged message let through (published before A's genuine one) or B's command (published before A's) would be
    # here already
    assert not [t for t, _p in controller.messages if t.startswith(f"fleet/v1/{B}/") and "/cmd/" not in t]
    assert not [p for _t, p in controller.messages if b"forged" in p]
    assert not [t for t, _p in a.messages if B in t], "A read B's command"


def test_a_certificate_from_another_ca_is_refused(secure: tuple[Mosquitto, DevPki], clients: Any,
                                                  tmp_path: Path) -> None:
    m, pki = secure
    rogue = dev_pki(tmp_path / "rogue-pki", [A])
    # trusting our server (right CA for the server) but presenting a client certificate from the rogue CA
    c = clients(m.tls_listener.port, ca=pki.ca, cert=rogue.clients[A][0], key=rogue.clients[A][1])
    assert not c.accepted()


def test_a_kiosk_with_its_certificate_works_end_to_end(secure: tuple[Mosquitto, DevPki], start_controller: Any,
                                                       keys: tuple[Path, Path], wait_for: Any) -> None:
    m, pki = secure
    controller = start_controller()  # over TLS with the controller's own certificate (the broker fixture above)
    kiosk = VirtualKiosk(A)
    agent = FleetAgent(A, m.tls_url(*pki.clients[A]), kiosk.statuses, verify_key=keys[1],
                       identity=kiosk.identity())
    try:
        agent.start()
        seen = wait_for(lambda: (k := controller.kiosk(A)) and k["online"] and k, 20,
                        what="the kiosk's birth at the controller")
        assert {d["kind"] for d in seen["devices"]} == set(kiosk.statuses())
        # and a signed command goes the other way
        response = controller.post(f"/api/v1/kiosks/{A}/commands", {"name": "self_test"})
        assert response.status_code == 202, response.text
        command_id = response.json()["id"]
        wait_for(lambda: controller.get(f"/api/v1/commands/{command_id}")["status"] in ("succeeded", "failed"), 20,
                 what="the command's result")
    finally:
        agent.stop()
