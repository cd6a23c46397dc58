"""Kiosk authentication, citizen sessions and the citizen's own applications, against the real server."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest

SESSIONS = "/api/v1/citizen-sessions"
KIOSK_ID = "KSK-340302-0001"


def session_body(id_number: str, name: str, kind: str = "resident_id", method: str = "card+face",
                 face_match: bool | None = True) -> dict[str, Any]:
    return {"id_number": id_number, "name": name, "document_kind": kind,
            "verification": {"method": method, "face_match": face_match}}


def test_open_session(kiosk: httpx.Client) -> None:
    r = kiosk.post(SESSIONS, json=session_body("340302195803172018", "张明华"))
    assert r.status_code == 201, r.text
    data = r.json()
    assert len(data["token"]) >= 32 and data["citizen"] == {"name_masked": "张*华"}
    expires = dt.datetime.fromisoformat(data["expires_at"])
    left = expires - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15, seconds=5)
    assert "340302195803172018" not in r.text and "张明华" not in r.text


def test_bad_check_digit_is_422(kiosk: httpx.Client) -> None:
    r = kiosk.post(SESSIONS, json=session_body("340302195803172019", "张明华"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_id_number"
    r = kiosk.post(SESSIONS, json=session_body("810000199205082048", "黄嘉欣", kind="hmt_residence_permit"))
    assert r.status_code == 422


def test_lower_case_x_and_other_documents(kiosk: httpx.Client) -> None:
    assert kiosk.post(SESSIONS, json=session_body("35010219490822102x", "李秀英")).status_code == 201
    assert kiosk.post(SESSIONS, json=session_body("810000199205082049", "黄嘉欣",
                                                  kind="hmt_residence_permit")).status_code == 201
    # a resident ID is not an HMT permit number
    assert kiosk.post(SESSIONS, json=session_body("340302195803172018", "张明华",
                                                  kind="hmt_residence_permit")).status_code == 422
    assert kiosk.post(SESSIONS, json=session_body("USA123456789012", "JOHN SMITH",
                                                  kind="foreign_permanent_resident")).status_code == 201


def test_bad_body_is_validation_failed(kiosk: httpx.Client) -> None:
    body = session_body("340302195803172018", "张明华")
    body["verification"]["method"] = "password"
    r = kiosk.post(SESSIONS, json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


def test_face_mismatch_is_refused(kiosk: httpx.Client) -> None:
    r = kiosk.post(SESSIONS, json=session_body("340302195803172018", "张明华", face_match=False))
    assert r.status_code == 403 and r.json()["error"]["code"] == "verification_failed"
    r = kiosk.post(SESSIONS, json=session_body("340302195803172018", "张明华", method="card", face_match=None))
    assert r.status_code == 201


def _signed(kiosk_auth: Any, body: bytes) -> dict[str, str]:
    return kiosk_auth.headers_for("POST", SESSIONS.encode(), body)


@pytest.mark.parametrize("case", ["none", "id only", "old static key", "unknown kiosk", "bad signature",
                                  "malformed signature", "short nonce", "other body"])
def test_bad_kiosk_credentials_are_401(public: httpx.Client, kiosk_auth: Any, case: str) -> None:
    import json

    body = json.dumps(session_body("340302195803172018", "张明华")).encode()
    good = _signed(kiosk_auth, body)
    headers = {
        "none": {},
        "id only": {"X-Kiosk-Id": KIOSK_ID},
        "old static key": {"X-Kiosk-Id": KIOSK_ID, "X-Kiosk-Key": "demo-kiosk-key"},
        "unknown kiosk": {**good, "X-Kiosk-Id": "KSK-000000-9999"},
        "bad signature": {**good, "X-Kiosk-Signature": _signed(kiosk_auth, b"{}")["X-Kiosk-Signature"]},
        "malformed signature": {**good, "X-Kiosk-Signature": "not base64!"},
        "short nonce": {**good, "X-Kiosk-Nonce": "abc"},
        "other body": good,
    }[case]
    sent = body.replace(rb"\u5f20", rb"\u674e") if case == "other body" else body
    r = public.post(SESSIONS, content=sent, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 401
    assert r.json()["error"] == {"code": "unauthorized", "message": "kiosk request signature missing or not valid"}


def test_me_applications_are_exactly_mine(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]],
                                          citizens: dict[str, tuple[str, list[str]]], citizen_id: str) -> None:
    name, numbers = citizens[citizen_id]
    id_number = citizen_id
    r = kiosk.get("/api/v1/me/applications", headers=open_session(id_number))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [a["number"] for a in items] == numbers  # exactly the seeded ones, newest first
    assert name not in r.text and id_number not in r.text
    for a in items:
        assert a["applicant_masked"] == name[0] + "*" + name[-1]
        assert a["service_name"] and a["status"] and a["timeline"]


def test_me_needs_a_live_session(kiosk: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    r = kiosk.get("/api/v1/me/applications")
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_required"
    r = kiosk.get("/api/v1/me/applications", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_invalid"
    auth = open_session("520302199002144027")
    assert kiosk.get("/api/v1/me/applications", headers=auth).status_code == 200
    r = kiosk.delete(f"{SESSIONS}/current", headers=auth)
    assert r.status_code == 204
    r = kiosk.get("/api/v1/me/applications", headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"
    assert kiosk.delete(f"{SESSIONS}/current", headers=auth).status_code == 204  # ending twice is fine


def test_me_needs_the_kiosk_too(public: httpx.Client, open_session: Callable[[str], dict[str, str]]) -> None:
    r = public.get("/api/v1/me/applications", headers=open_session("340302195803172018"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
