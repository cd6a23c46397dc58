"""In-process tests (FastAPI TestClient + a settable clock) for what needs control over time or the database:
session expiry, sessions bound to their kiosk, the seed checks."""
from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path

from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx in its test client
    from fastapi.testclient import TestClient

from service_platform.app import create_app
from service_platform.kiosk_keys import add_key
from service_platform.models import Kiosk, KioskKey

KIOSK_ID = "KSK-340302-0001"
BODY = {"id_number": "340302195803172018", "name": "张明华", "document_kind": "resident_id",
        "verification": {"method": "card+face", "face_match": True}}


@pytest.fixture(scope="module")
def clock(clock_factory: Any) -> Any:
    return clock_factory()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, clock: Any, kiosk_key_pair: Any, kiosk_auth: Any,
           others: dict[str, Any]) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("inprocess") / "p.db"
    app = create_app(str(db), clock=clock, session_ttl=dt.timedelta(minutes=15), demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes())
    with app.state.sessionmaker() as s:
        for kiosk_id, pair in others.items():
            add_key(s, kiosk_id, pair.signer().public_key, name=kiosk_id, now=clock())
        s.get(Kiosk, "KSK-340302-0003").active = False  # type: ignore[union-attr]
        s.commit()
    with TestClient(app) as c:
        c.auth = kiosk_auth
        yield c


@pytest.fixture(scope="module")
def others(new_kiosk_key_pair: Any) -> dict[str, Any]:
    """Two more kiosks' key pairs: 0002 active, 0003 disabled."""
    return {kiosk_id: new_kiosk_key_pair(kiosk_id) for kiosk_id in ("KSK-340302-0002", "KSK-340302-0003")}


def open_session(client: TestClient) -> dict[str, str]:
    r = client.post("/api/v1/citizen-sessions", json=BODY)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_session_expires_after_its_lifetime(client: TestClient, clock: Any) -> None:
    auth = open_session(client)
    clock.advance(minutes=14, seconds=59)
    assert client.get("/api/v1/me/applications", headers=auth).status_code == 200
    clock.advance(seconds=1)
    r = client.get("/api/v1/me/applications", headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"


def test_session_only_works_at_its_kiosk(client: TestClient, others: dict[str, Any]) -> None:
    auth = open_session(client)
    r = client.get("/api/v1/me/applications", headers=auth, auth=others["KSK-340302-0002"].signer())
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_invalid"


def test_disabled_kiosk_is_refused(client: TestClient, others: dict[str, Any]) -> None:
    r = client.post("/api/v1/citizen-sessions", json=BODY, auth=others["KSK-340302-0003"].signer())
    assert r.status_code == 403 and r.json()["error"]["code"] == "kiosk_disabled"


def test_only_public_keys_are_stored(client: TestClient, kiosk_key_pair: Any) -> None:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        kiosk = s.get(Kiosk, KIOSK_ID)
        keys = s.query(KioskKey).filter_by(kiosk_id=KIOSK_ID).all()
        assert kiosk is not None and kiosk.key_hash == ""
        assert [(k.key_id, k.public_key, k.revoked_at) for k in keys] == [
            (kiosk_key_pair.key_id, kiosk_key_pair.public_key_b64, None)]


def test_seed_is_not_repeated(tmp_path: Path, kiosk_key_pair: Any) -> None:
    db = tmp_path / "p.db"
    key = kiosk_key_pair.public_key_file.read_bytes()
    create_app(str(db), demo=True, demo_kiosk_public_key=key)
    app = create_app(str(db), demo=True, demo_kiosk_public_key=key)  # second start: no duplicate rows
    with TestClient(app) as c:
        assert c.get("/api/v1/services", params={"limit": 100}).json()["total"] == 39
    with app.state.sessionmaker() as s:
        assert s.query(KioskKey).count() == 1


def test_without_demo_only_the_catalogue_is_seeded(tmp_path: Path) -> None:
    from service_platform.models import Application, RegisteredCitizen

    app = create_app(str(tmp_path / "p.db"))
    with TestClient(app) as c:
        assert c.get("/api/v1/services", params={"limit": 100}).json()["total"] == 39
        assert len(c.get("/api/v1/halls").json()["items"]) == 9
    with app.state.sessionmaker() as s:
        assert s.query(Kiosk).count() == 0 and s.query(KioskKey).count() == 0
        assert s.query(Application).count() == 0 and s.query(RegisteredCitizen).count() == 0
