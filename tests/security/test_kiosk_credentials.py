"""Kiosk credentials under attack, through a REAL ``service-platform serve`` subprocess on a free loopback port
(kiosks enrolled with ``service-platform kiosk add`` as in production; ``--demo`` only for the synthetic population
registry, its demo kiosk has no key): requests without a signature,
signed by a key the platform does not know, with a body other than the one signed, replayed, or stale; another
kiosk using a citizen session it did not open; revocation from the command line taking effect on the next request;
a platform without any enrolled key refusing to start; and a profile sending requests over plain http elsewhere
than loopback refused by the loader."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.sim.process import ManagedProcess
from kiosk.request_signing import KioskRequestSigner, public_key_pem, write_private_key

ROOT = Path(__file__).resolve().parents[2]
A, B = "KSK-340302-0101", "KSK-340302-0102"
SESSIONS = "/api/v1/citizen-sessions"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service_platform.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


#: synthetic people of the demo population registry (service_platform/seed/demo.yaml)
PEOPLE = [("340302195803172018", "张明华"), ("35010219490822102X", "李秀英"), ("230202197511053015", "王建国"),
          ("520302199002144027", "陈静怡"), ("530102198306301518", "杨志强"), ("340302194501013033", "赵德顺")]


def session_body(n: int) -> bytes:
    id_number, name = PEOPLE[n % len(PEOPLE)]
    return json.dumps({"id_number": id_number, "name": name, "document_kind": "resident_id",
                       "verification": {"method": "card+face", "face_match": True}}).encode()


class Kiosk:
    """One enrolled kiosk: its key files and signer."""

    def __init__(self, folder: Path, kiosk_id: str) -> None:
        self.id = kiosk_id
        self.private_file = folder / f"{kiosk_id}.key"
        key = write_private_key(self.private_file)
        self.public_file = folder / f"{kiosk_id}.pem"
        self.public_file.write_bytes(public_key_pem(key))  # PEM: what `kiosk add` also takes
        self.signer = KioskRequestSigner.from_file(kiosk_id, self.private_file)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Kiosks A and B enrolled by the CLI into a fresh database, then ``serve`` (``--demo`` for the registry's
    synthetic people; no demo kiosk key)."""
    folder = tmp_path_factory.mktemp("security")
    db = f"sqlite:///{folder / 'platform.db'}"
    kiosks = {k: Kiosk(folder, k) for k in (A, B)}
    for k in kiosks.values():
        done = cli("kiosk", "add", "--db", db, "--id", k.id, "--name", f"{k.id} test", "--public-key",
                   str(k.public_file))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"kiosk_id": k.id, "key_id": k.signer.key_id, "added": True}
    proc = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", db, "--host", "127.0.0.1",
                           "--port", "0", "--demo"], "service-platform", start_timeout=30, cwd=str(ROOT))
    try:
        yield {"url": proc.endpoints["url"], "db": db, "kiosks": kiosks, "folder": folder}
    finally:
        proc.stop()


def post_session(world: dict[str, Any], headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(world["url"] + SESSIONS, content=body, timeout=10,
                      headers={**headers, "Content-Type": "application/json"})


def signed(signer: KioskRequestSigner, body: bytes, method: str = "POST", path: str = SESSIONS) -> dict[str, str]:
    return signer.headers_for(method, path.encode(), body)


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_a_correctly_signed_request_is_accepted(world: dict[str, Any]) -> None:
    r = post_session(world, signed(world["kiosks"][A].signer, session_body(1)), session_body(1))
    assert r.status_code == 201, r.text


def test_no_signature_is_401(world: dict[str, Any]) -> None:
    assert error(post_session(world, {}, session_body(2))) == (401, "unauthorized")
    assert error(post_session(world, {"X-Kiosk-Id": A}, session_body(2))) == (401, "unauthorized")
    assert error(post_session(world, {"X-Kiosk-Id": A, "X-Kiosk-Key": "demo-kiosk-key"},
                              session_body(2))) == (401, "unauthorized")  # the old static key is gone


def test_a_key_the_platform_does_not_know_is_401_and_says_nothing_more(world: dict[str, Any]) -> None:
    body = session_body(3)
    stranger = KioskRequestSigner(A, Ed25519PrivateKey.generate())  # claims to be A, with its own key
    r1 = post_session(world, signed(stranger, body), body)
    # A's key id, but signed by the stranger's key
    forged = {**signed(stranger, body), "X-Kiosk-Key-Id": world["kiosks"][A].signer.key_id}
    r2 = post_session(world, forged, body)
    # a kiosk that does not exist at all
    r3 = post_session(world, signed(KioskRequestSigner("KSK-000000-9999", Ed25519PrivateKey.generate()), body), body)
    # B's genuine key presented as kiosk A
    r4 = post_session(world, {**signed(world["kiosks"][B].signer, body), "X-Kiosk-Id": A}, body)
    answers = [r.json() for r in (r1, r2, r3, r4)]
    assert {r.status_code for r in (r1, r2, r3, r4)} == {401}
    assert all(a == answers[0] for a in answers), "the answers must not tell which part was wrong"
    assert answers[0]["error"]["code"] == "unauthorized"


def test_a_body_other_than_the_signed_one_is_401(world: dict[str, Any]) -> None:
    headers = signed(world["kiosks"][A].signer, session_body(4))
    assert error(post_session(world, headers, session_body(5))) == (401, "unauthorized")
    # and a different path or query with the same signature
    h = signed(world["kiosks"][A].signer, b"", "GET", "/api/v1/payment-reconciliation?date=2026-11-01")
    r = httpx.get(world["url"] + "/api/v1/payment-reconciliation", params={"date": "2026-11-02"}, headers=h)
    assert error(r) == (401, "unauthorized")


def test_replaying_a_signed_request_is_401(world: dict[str, Any]) -> None:
    body = session_body(6)
    headers = signed(world["kiosks"][A].signer, body)
    assert post_session(world, headers, body).status_code == 201
    assert error(post_session(world, headers, body)) == (401, "replayed_request")
    assert error(post_session(world, headers, body)) == (401, "replayed_request")  # and stays spent


def test_a_stale_or_future_timestamp_is_401(world: dict[str, Any]) -> None:
    body = session_body(7)
    for skew in (-600, +600):
        stale = KioskRequestSigner(A, world["kiosks"][A].signer._key, clock=lambda s=skew: time.time() + s)
        assert error(post_session(world, signed(stale, body), body)) == (401, "request_expired")


def test_kiosk_b_cannot_use_or_end_kiosk_as_citizen_session(world: dict[str, Any]) -> None:
    a, b = world["kiosks"][A].signer, world["kiosks"][B].signer
    with httpx.Client(base_url=world["url"], auth=a, timeout=10) as ka, \
            httpx.Client(base_url=world["url"], auth=b, timeout=10) as kb:
        r = ka.post(SESSIONS, content=session_body(8), headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        bearer = {"Authorization": f"Bearer {r.json()['token']}"}
        assert error(kb.get("/api/v1/me/applications", headers=bearer)) == (401, "session_invalid")
        assert kb.delete(f"{SESSIONS}/current", headers=bearer).status_code in (401, 404)
        assert ka.get("/api/v1/me/applications", headers=bearer).status_code == 200  # still A's, still live
        # the token alone, without a kiosk signature, is nothing
        assert error(httpx.get(world["url"] + "/api/v1/me/applications", headers=bearer)) == (401, "unauthorized")


def test_revoking_a_key_refuses_the_next_request_and_no_other_kiosk(world: dict[str, Any]) -> None:
    folder: Path = world["folder"]
    c = Kiosk(folder, "KSK-340302-0103")
    assert cli("kiosk", "add", "--db", world["db"], "--id", c.id, "--public-key", str(c.public_file)).returncode == 0
    # rotation: a second key for the same kiosk, both work; then the old one is revoked
    (folder / "rotated").mkdir()
    rotated = Kiosk(folder / "rotated", c.id)
    assert cli("kiosk", "add", "--db", world["db"], "--id", c.id, "--public-key",
               str(rotated.public_file)).returncode == 0
    with httpx.Client(base_url=world["url"], timeout=10) as http:
        def ok(signer: KioskRequestSigner) -> int:
            return http.post(SESSIONS, content=session_body(9), auth=signer,
                             headers={"Content-Type": "application/json"}).status_code

        assert ok(c.signer) == 201 and ok(rotated.signer) == 201
        done = cli("kiosk", "revoke", "--db", world["db"], "--id", c.id, "--key-id", c.signer.key_id)
        assert done.returncode == 0 and json.loads(done.stdout)["revoked"] == [c.signer.key_id], done.stderr
        assert ok(c.signer) == 401          # the very next request
        assert ok(rotated.signer) == 201 and ok(world["kiosks"][B].signer) == 201
        done = cli("kiosk", "revoke", "--db", world["db"], "--id", c.id, "--all")
        assert json.loads(done.stdout)["revoked"] == [rotated.signer.key_id]
        assert ok(rotated.signer) == 401
        assert ok(world["kiosks"][A].signer) == 201 and ok(world["kiosks"][B].signer) == 201
        listed = [json.loads(line) for line in cli("kiosk", "list", "--db", world["db"]).stdout.splitlines()]
        keys_of_c = next(k["keys"] for k in listed if k["kiosk_id"] == c.id)
        assert all(k["revoked_at"] for k in keys_of_c) and len(keys_of_c) == 2
        assert all(k["revoked_at"] is None for entry in listed if entry["kiosk_id"] in (A, B) for k in entry["keys"])
        # a revoked key is never enrolled again
        again = cli("kiosk", "add", "--db", world["db"], "--id", c.id, "--public-key", str(c.public_file))
        assert again.returncode != 0 and "revoked" in again.stderr


def test_a_disabled_kiosk_is_403_until_enabled(world: dict[str, Any]) -> None:
    b = world["kiosks"][B].signer

    def status() -> int:
        return httpx.post(world["url"] + SESSIONS, content=session_body(10), auth=b, timeout=10,
                          headers={"Content-Type": "application/json"}).status_code

    assert cli("kiosk", "disable", "--db", world["db"], "--id", B).returncode == 0
    try:
        assert status() == 403
    finally:
        assert cli("kiosk", "enable", "--db", world["db"], "--id", B).returncode == 0
    assert status() == 201


def test_serve_without_demo_on_an_empty_database_refuses_to_start(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    done = subprocess.run([sys.executable, "-m", "service_platform.cli", "serve", "--db", db, "--port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert "service-platform kiosk add" in done.stderr and "--public-key" in done.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "empty.db") as conn:  # catalogue yes; no kiosk, no key: nobody can sign in
        assert conn.execute("SELECT count(*) FROM kiosk_keys").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM kiosks").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM applications").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM services").fetchone()[0] > 0


def test_serve_demo_key_options_are_checked(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    pub = tmp_path / "demo.pub"
    pub.write_text("not a key")
    done = cli("serve", "--db", db, "--port", "0", "--demo", "--demo-kiosk-public-key", str(pub))
    assert done.returncode == 2 and "--demo-kiosk-public-key" in done.stderr
    done = cli("serve", "--db", db, "--port", "0", "--demo-kiosk-public-key", str(pub))
    assert done.returncode == 2 and "needs --demo" in done.stderr


def test_profile_with_plain_http_to_another_host_is_refused(tmp_path: Path) -> None:
    import yaml

    from device_profiles.loader import ProfileError, load_profile

    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["platform"]["url"] = "http://platform.example.gov.cn:8700"
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    with pytest.raises(ProfileError, match=r"platform\.url: .*must use https://"):
        load_profile(path, environ={})
    data["platform"]["url"] = "https://platform.example.gov.cn:8443"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    assert load_profile(path, environ={}).platform.url == "https://platform.example.gov.cn:8443"
