"""Complaints and consultations (/api/v1/feedback) against the real server, both databases: anonymous or with the
citizen's session, answered "received" with a reference of the documented shape, one reference per Idempotency-Key,
public progress by reference (state only), handled by the responsible department's staff. Hostile: unsigned and
badly signed requests, another kiosk's or an ended citizen session, staff of another department, kiosk and citizen
credentials on the staff routes; the text never reaches the public answer or the log."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from service_platform.routes.feedback import is_reference

FEEDBACK = "/api/v1/feedback"
STAFF = "/api/v1/staff/feedback"
HPF = "蚌埠市住房公积金管理中心"
POLICE = "蚌埠市公安局龙子湖分局"
TEXT = "公积金窗口让我跑了三次 secret-feedback-5521"
OTHER_KIOSK_ID = "KSK-340302-0013"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def add_staff(platform: Any, name: str, department: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "service_platform.cli", "staff", "add", "--db", platform.db_url,
                          "--name", name, "--department", department], capture_output=True, check=True, timeout=60)
    return {"Authorization": f"Bearer {json.loads(out.stdout)['token']}"}


@pytest.fixture(scope="module")
def staff(platform: Any) -> dict[str, dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    return {"hpf": add_staff(platform, f"fb-hpf-{suffix}", HPF), "police": add_staff(platform, f"fb-pol-{suffix}",
                                                                                     POLICE)}


@pytest.fixture
def other_kiosk(platform: Any, new_kiosk_key_pair: Callable[[str], Any]) -> Iterator[httpx.Client]:
    keys = new_kiosk_key_pair(OTHER_KIOSK_ID)
    if not platform.query("SELECT id FROM kiosks WHERE id = :i", i=OTHER_KIOSK_ID):
        platform.execute("INSERT INTO kiosks (id, name, location, key_hash, active, created_at) "
                         "VALUES (:i, '13号机', '', '', :a, :c)", i=OTHER_KIOSK_ID, a=True, c=dt.datetime(2026, 11, 1))
    platform.execute("INSERT INTO kiosk_keys (kiosk_id, key_id, public_key, created_at) VALUES (:i, :k, :p, :c)",
                     i=OTHER_KIOSK_ID, k=keys.key_id, p=keys.public_key_b64, c=dt.datetime(2026, 11, 1))
    with httpx.Client(base_url=platform.url, timeout=10, auth=keys.signer()) as client:
        yield client


def test_complaint_received_tracked_and_answered(kiosk: httpx.Client, public: httpx.Client, platform: Any,
                                                 open_session: Callable[[str], dict[str, str]],
                                                 staff: dict[str, dict[str, str]]) -> None:
    citizen = open_session("340302195803172018")
    headers = {**citizen, **key()}
    body = {"kind": "complaint", "text": TEXT, "service_code": "hpf-withdrawal"}
    r = kiosk.post(FEEDBACK, headers=headers, json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    reference = got["reference"]
    assert is_reference(reference) and got["status"] == "received" and got["with_session"] is True
    assert reference in got["message_zh"] and "received" in got["message_en"]
    assert kiosk.post(FEEDBACK, headers=headers, json=body).json()["reference"] == reference   # one per key
    assert platform.query("SELECT count(*) FROM feedback WHERE reference = :r", r=reference) == [(1,)]

    # public progress: state only, like an application number
    status = public.get(f"{FEEDBACK}/{reference}")
    assert status.status_code == 200 and status.json()["status"] == "received"
    assert TEXT not in status.text and "hpf" not in status.text and "KSK" not in status.text
    page = public.get(f"/verify/f/{reference}")   # the receipt's QR opens this page (routes/verify.py)
    assert page.status_code == 200 and reference in page.text and "已收到" in page.text and TEXT not in page.text

    # the responsible department sees it and answers; another department does not
    mine = [i for i in public.get(STAFF, headers=staff["hpf"], params={"limit": 200}).json()["items"]
            if i["reference"] == reference]
    assert len(mine) == 1 and mine[0]["text"] == TEXT and mine[0]["kind"] == "complaint"
    item = mine[0]
    assert reference not in {i["reference"] for i in public.get(STAFF, headers=staff["police"]).json()["items"]}
    r = public.patch(f"{STAFF}/{item['id']}", headers=staff["police"], json={"status": "in_progress"})
    assert r.status_code == 404 and TEXT not in r.text
    r = public.patch(f"{STAFF}/{item['id']}", headers=staff["hpf"], json={"status": "answered"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "reply_required"
    r = public.patch(f"{STAFF}/{item['id']}", headers=staff["hpf"], json={"status": "answered",
                                                                          "reply": "已核实并致电说明"})
    assert r.status_code == 200 and r.json()["status"] == "answered"
    answered = public.get(f"{FEEDBACK}/{reference}").json()
    assert answered["status"] == "answered" and answered["status_text_zh"] == "已答复"
    assert "已核实" not in json.dumps(answered)
    public.patch(f"{STAFF}/{item['id']}", headers=staff["hpf"], json={"status": "closed"})
    r = public.patch(f"{STAFF}/{item['id']}", headers=staff["hpf"], json={"reply": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_closed"
    if platform.log_path is not None:   # the text never reaches the server's log
        assert TEXT not in platform.log_path.read_text("utf-8", errors="replace")


def test_anonymous_consultation(kiosk: httpx.Client, public: httpx.Client) -> None:
    r = kiosk.post(FEEDBACK, headers=key(), json={"kind": "consultation", "text": "老年卡可以代办吗？"})
    assert r.status_code == 201, r.text
    assert r.json()["with_session"] is False and r.json()["service_code"] is None
    assert public.get(f"{FEEDBACK}/{r.json()['reference']}").json()["kind"] == "consultation"
    assert public.get(f"{FEEDBACK}/FB202612070000000").status_code == 404


def test_who_may_file_feedback(kiosk: httpx.Client, public: httpx.Client, other_kiosk: httpx.Client,
                               open_session: Callable[[str], dict[str, str]], platform: Any,
                               staff: dict[str, dict[str, str]]) -> None:
    body = {"kind": "complaint", "text": TEXT}
    before = platform.query("SELECT count(*) FROM feedback")[0][0]
    # not a kiosk: unsigned, or a forged signature
    r = public.post(FEEDBACK, headers=key(), json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    forged = {"X-Kiosk-Id": "KSK-340302-0001", "X-Kiosk-Key-Id": "0123456789abcdef", "X-Kiosk-Timestamp": "1",
              "X-Kiosk-Nonce": "A" * 22, "X-Kiosk-Signature": "A" * 88}
    assert public.post(FEEDBACK, headers={**forged, **key()}, json=body).status_code == 401
    # a citizen session of another kiosk, or one that ended: refused, never filed anonymously instead
    citizen = open_session("35010219490822102X")
    r = other_kiosk.post(FEEDBACK, headers={**citizen, **key()}, json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_invalid"
    assert kiosk.delete("/api/v1/citizen-sessions/current", headers=citizen).status_code in (200, 204)
    r = kiosk.post(FEEDBACK, headers={**citizen, **key()}, json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"
    # a blank text or an unknown service
    for bad, code in (({"kind": "complaint", "text": "   "}, 422), ({**body, "service_code": "no-such"}, 422),
                      ({"kind": "praise", "text": "好"}, 422)):
        assert kiosk.post(FEEDBACK, headers=key(), json=bad).status_code == code
    assert platform.query("SELECT count(*) FROM feedback")[0][0] == before
    # kiosk and citizen credentials are not staff credentials
    citizen2 = open_session("340302195803172018")
    for client, headers in ((public, {}), (kiosk, {}), (kiosk, citizen2)):
        for method in ("GET", "PATCH"):
            url = STAFF if method == "GET" else f"{STAFF}/1"
            r = client.request(method, url, headers=headers, json={"status": "closed"} if method == "PATCH" else None)
            assert r.status_code == 401 and r.json()["error"]["code"] == "staff_unauthorized"


def test_retention_unlinks_feedback_from_old_sessions(backend: str, new_db_url: Callable[[str], str],
                                                      clock_factory: Any, kiosk_key_pair: Any, kiosk_auth: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that sent a complaint is deleted by retention like any other (the complaint stays, unlinked)."""
    import warnings

    from sqlalchemy import select

    from service_platform.app import create_app
    from service_platform.models import CitizenSession, Feedback
    from service_platform.retention import sweep_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    monkeypatch.setenv("PLATFORM_RETENTION_INTERVAL_S", "0")
    clock = clock_factory()
    app = create_app(new_db_url(backend), clock=clock, demo=True,
                     demo_kiosk_public_key=kiosk_key_pair.public_key_file.read_bytes())
    with TestClient(app) as client:
        client.auth = kiosk_auth
        r = client.post("/api/v1/citizen-sessions", json={
            "id_number": "35010219490822102X", "name": "李秀英", "document_kind": "resident_id",
            "verification": {"method": "card+face", "face_match": True}})
        token = r.json()["token"]
        r = client.post(FEEDBACK, headers={"Authorization": f"Bearer {token}", **key()},
                        json={"kind": "complaint", "text": TEXT})
        assert r.status_code == 201 and r.json()["with_session"]
        clock.advance(days=8)
        assert sweep_app(app)["citizen_sessions"] == 1
        with app.state.sessionmaker() as db:
            assert db.scalars(select(CitizenSession)).all() == []
            item = db.scalars(select(Feedback)).one()
            assert item.citizen_session_id is None and item.text == TEXT
