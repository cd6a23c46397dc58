"""Platform retention (service_platform/retention.py) with a settable clock, in-process, on SQLite and PostgreSQL:
old citizen sessions go (or lose their personal fields when a filing refers to them), old idempotency records and
uploads never attached to an application go; recent ones stay. No sleeping: the clock is moved."""
from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from sqlalchemy import select

from service_platform.app import create_app
from service_platform.models import CitizenSession, IdempotencyRecord, Upload
from service_platform.retention import RetentionPolicy, sweep, sweep_app

LI = "35010219490822102X"


@pytest.fixture
def app_and_client(backend: str, new_db_url: Callable[[str], str], clock_factory: Any, kiosk_key_pair: Any,
                   kiosk_auth: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient, Any]]:
    monkeypatch.setenv("PLATFORM_RETENTION_INTERVAL_S", "0")   # no background pass: the test runs them
    clock = clock_factory()
    clock.now = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)
    app = create_app(new_db_url(backend), clock=clock, demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes())
    with TestClient(app) as c:
        c.auth = kiosk_auth
        yield app, c, clock


def login(client: TestClient) -> None:
    r = client.post("/api/v1/citizen-sessions", json={"id_number": LI, "name": "李秀英", "document_kind": "resident_id",
                                                      "verification": {"method": "card+face", "face_match": True}})
    assert r.status_code == 201, r.text


def test_retention_removes_what_is_old_and_keeps_what_is_recent(app_and_client: Any) -> None:
    app, client, clock = app_and_client
    assert app.state.retention == RetentionPolicy(interval_s=0)
    login(client)                                         # a session at day 0
    maker = app.state.sessionmaker
    with maker() as db:
        kiosk_id = db.scalars(select(CitizenSession.kiosk_id)).first()
        for age_days, key in ((60, "old"), (1, "new")):
            db.add(IdempotencyRecord(scope="test", key=key, request_hash="0" * 64, status_code=201,
                                     response_body={}, created_at=clock.now - dt.timedelta(days=age_days)))
        for age_hours, uid in ((30, "U-OLD"), (2, "U-NEW")):
            db.add(Upload(id=uid, owner_id_number=LI, kiosk_id=kiosk_id, content_type="image/jpeg", size=1, width=1,
                          height=1, sha256="0" * 64, blank=False, data=b"x", application_id=None,
                          created_at=clock.now - dt.timedelta(hours=age_hours)))
        db.commit()
    first = sweep_app(app)
    assert first["idempotency_records"] == 1 and first["uploads"] == 1 and first["citizen_sessions"] == 0
    with maker() as db:
        assert [r.key for r in db.scalars(select(IdempotencyRecord).where(IdempotencyRecord.scope == "test"))] == ["new"]
        assert [u.id for u in db.scalars(select(Upload))] == ["U-NEW"]
        assert db.scalars(select(CitizenSession)).all()      # the session is recent
    clock.now += dt.timedelta(days=8)                         # the session expired more than 7 days ago
    login(client)                                             # and a new one now
    second = sweep_app(app)
    assert second["citizen_sessions"] == 1
    with maker() as db:
        left = db.scalars(select(CitizenSession)).all()
        assert len(left) == 1 and left[0].created_at == clock.now
    assert sweep_app(app) == {"citizen_sessions": 0, "citizen_sessions_scrubbed": 0, "idempotency_records": 0,
                              "uploads": 0, "phone_upload_links": 0, "phone_upload_photos": 0,
                              "document_pdfs": 0}              # idempotent


def test_policy_from_the_environment() -> None:
    p = RetentionPolicy.from_env({"PLATFORM_SESSION_RETENTION_DAYS": "3", "PLATFORM_UPLOAD_RETENTION_HOURS": "6"})
    assert (p.session_days, p.idempotency_days, p.upload_hours, p.interval_s) == (3.0, 45.0, 6.0, 3600.0)
    assert callable(sweep)
