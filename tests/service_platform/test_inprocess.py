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
from service_platform.auth import hash_key
from service_platform.models import Kiosk

KEY = "inprocess-key"
KIOSK_ID = "KSK-340302-0001"
BODY = {"id_number": "340302195803172018", "name": "张明华", "document_kind": "resident_id",
        "verification": {"method": "card+face", "face_match": True}}


@pytest.fixture(scope="module")
def clock(clock_factory: Any) -> Any:
    return clock_factory()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, clock: Any) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("inprocess") / "p.db"
    app = create_app(str(db), clock=clock, session_ttl=dt.timedelta(minutes=15), demo_kiosk_key=KEY)
    with app.state.sessionmaker() as s:
        s.add(Kiosk(id="KSK-340302-0002", name="2号机", key_hash=hash_key("second-key"), active=True,
                    created_at=clock()))
        s.add(Kiosk(id="KSK-340302-0003", name="停用", key_hash=hash_key("third-key"), active=False,
                    created_at=clock()))
        s.commit()
    with TestClient(app, headers={"X-Kiosk-Id": KIOSK_ID, "X-Kiosk-Key": KEY}) as c:
        yield c


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


def test_session_only_works_at_its_kiosk(client: TestClient) -> None:
    auth = open_session(client)
    other = {"X-Kiosk-Id": "KSK-340302-0002", "X-Kiosk-Key": "second-key"}
    r = client.get("/api/v1/me/applications", headers={**auth, **other})
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_invalid"


def test_disabled_kiosk_is_refused(client: TestClient) -> None:
    r = client.post("/api/v1/citizen-sessions", json=BODY,
                    headers={"X-Kiosk-Id": "KSK-340302-0003", "X-Kiosk-Key": "third-key"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "kiosk_disabled"


def test_key_is_stored_hashed(client: TestClient) -> None:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        kiosk = s.get(Kiosk, KIOSK_ID)
        assert kiosk is not None and KEY not in kiosk.key_hash and kiosk.key_hash.startswith("scrypt$")


def test_seed_is_not_repeated(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    create_app(str(db), demo_kiosk_key=KEY)
    app = create_app(str(db), demo_kiosk_key=KEY)  # second start: no duplicate rows
    with TestClient(app) as c:
        assert c.get("/api/v1/services", params={"limit": 100}).json()["total"] == 39
