"""Identity levels (等级保护), hostile, against the real server: a session needs the card to match the population
registry; a ``card``-only session reads its progress and books appointments but nothing that needs the holder
confirmed; ``face_match`` is a strict boolean; a kiosk asking about too many distinct citizens is rate limited; the
audit never holds a clear ID number.

(Here rather than in tests/security/: the platform fixtures live in tests/service_platform/conftest.py, and the
test folders are not packages, so that conftest is only visible from this folder.)"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SESSIONS = "/api/v1/citizen-sessions"
PHOTO_QUERY = "/api/v1/registered-photos/query"
CHEN, CHEN_NAME = "520302199002144027", "陈静怡"
ZHANG, ZHANG_NAME = "340302195803172018", "张明华"
WANG, WANG_NAME = "230202197511053015", "王建国"
STRONG = ["card+face", "card+pin"]


def card_only(kiosk: httpx.Client, body_of: Callable[..., dict[str, Any]], id_number: str, name: str
              ) -> dict[str, str]:
    r = kiosk.post(SESSIONS, json=body_of(id_number, name, method="card", face_match=None))
    assert r.status_code == 201, r.text
    assert r.json()["verification_method"] == "card"
    return {"Authorization": f"Bearer {r.json()['token']}"}


def refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The platform refused with this HTTP status and error code; the error body."""
    assert r.status_code == status and r.json()["error"]["code"] == code, (status, code, r.status_code, r.text)
    return r.json()["error"]


def refused_for_level(r: httpx.Response) -> None:
    error = refused(r, 403, "verification_level_insufficient")
    assert error["details"] == {"required": STRONG, "have": "card"}


# --- registry match ----------------------------------------------------------------------------------------------

def test_unregistered_id_number_gets_no_session(kiosk: httpx.Client, platform: Any,
                                                make_session_body: Callable[..., dict[str, Any]]) -> None:
    from service_platform.identity import check_digit

    first17 = "34030219991231777"
    unknown = first17 + check_digit(first17)  # valid check digit, nobody in the registry
    before = platform.query("SELECT count(*) FROM citizen_sessions")[0][0]
    for method, face in (("card+face", True), ("card", None)):
        r = kiosk.post(SESSIONS, json=make_session_body(unknown, "王小二", method=method, face_match=face))
        refused(r, 403, "unknown_person")
        assert "token" not in r.text
    assert platform.query("SELECT count(*) FROM citizen_sessions")[0][0] == before


@pytest.mark.parametrize("name", ["张明", "李秀英", "张明华华", "Zhang Minghua"])
def test_wrong_name_is_identity_mismatch(kiosk: httpx.Client, make_session_body: Callable[..., dict[str, Any]],
                                         name: str) -> None:
    r = kiosk.post(SESSIONS, json=make_session_body(ZHANG, name))
    refused(r, 403, "identity_mismatch")
    assert ZHANG not in r.text and ZHANG_NAME not in r.text


@pytest.mark.parametrize("name", [" 张明华 ", "张 明 华"])
def test_name_match_tolerates_spacing_and_width(kiosk: httpx.Client, make_session_body: Callable[..., dict[str, Any]],
                                                name: str) -> None:
    assert kiosk.post(SESSIONS, json=make_session_body(ZHANG, name)).status_code == 201


def test_every_simulator_identity_is_registered(kiosk: httpx.Client,
                                                make_session_body: Callable[..., dict[str, Any]]) -> None:
    """The ID card simulator's people (and so the social-security card holders, who are the same people) can open
    a session: the demo and the kiosk tests read their cards."""
    from drivers.idcard.simulator import load_identities

    for key, doc in load_identities().items():
        kind = getattr(doc.kind, "value", str(doc.kind))
        r = kiosk.post(SESSIONS, json=make_session_body(doc.id_number, doc.name, kind, method="card",
                                                        face_match=None))
        assert r.status_code == 201, (key, r.text)


def test_photo_query_needs_the_registry_name(kiosk: httpx.Client) -> None:
    ok = kiosk.post(PHOTO_QUERY, json={"id_number": CHEN, "name": CHEN_NAME, "document_kind": "resident_id"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    wrong = kiosk.post(PHOTO_QUERY, json={"id_number": CHEN, "name": "陈静", "document_kind": "resident_id"})
    refused(wrong, 404, "not_found")
    assert not wrong.content.startswith(b"\xff\xd8")


# --- strict types --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("face_match", ["true", "True", 1, 1.0, "1", "yes", [True], {"v": True}])
def test_face_match_must_be_a_json_boolean(kiosk: httpx.Client, make_session_body: Callable[..., dict[str, Any]],
                                           face_match: Any) -> None:
    body = make_session_body(ZHANG, ZHANG_NAME)
    body["verification"]["face_match"] = face_match
    r = kiosk.post(SESSIONS, json=body)
    refused(r, 422, "validation_failed")


def test_card_pin_needs_the_pin_verified(kiosk: httpx.Client, make_session_body: Callable[..., dict[str, Any]]
                                         ) -> None:
    body = make_session_body(ZHANG, ZHANG_NAME, method="card+pin", face_match=None)
    r = kiosk.post(SESSIONS, json=body)
    refused(r, 403, "verification_failed")
    body["verification"]["pin_verified"] = "true"
    assert kiosk.post(SESSIONS, json=body).status_code == 422
    body["verification"]["pin_verified"] = True
    r = kiosk.post(SESSIONS, json=body)
    assert r.status_code == 201 and r.json()["verification_method"] == "card+pin"
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    assert kiosk.get("/api/v1/me/e-certificates", headers=auth).status_code == 200


# --- what a card-only session may do ----------------------------------------------------------------------------------

def test_card_only_cannot_read_what_needs_the_holder(kiosk: httpx.Client, open_session: Callable[[str], dict],
                                                     make_session_body: Callable[..., dict[str, Any]],
                                                     idem: Callable[[], dict[str, str]]) -> None:
    strong = open_session(CHEN)   # card+face
    cert_id = kiosk.get("/api/v1/me/e-certificates", headers=strong).json()["items"][0]["id"]
    auth = card_only(kiosk, make_session_body, CHEN, CHEN_NAME)
    reads = ["/api/v1/me/e-certificates", f"/api/v1/me/e-certificates/{cert_id}",
             f"/api/v1/me/e-certificates/{cert_id}/pdf", "/api/v1/me/photo", "/api/v1/me/deliveries",
             "/api/v1/me/deliveries/DL20261101000001", "/api/v1/me/payment-orders",
             "/api/v1/me/services/residence-permit-apply/prefill"]
    for path in reads:
        r = kiosk.get(path, headers=auth)
        refused_for_level(r)
        assert not r.content.startswith((b"%PDF", b"\xff\xd8")), path
        assert kiosk.get(path, headers=strong).status_code in (200, 404), path   # the same call at card+face
    writes = [("/api/v1/me/applications", {"service_code": "residence-permit-apply", "form": {}, "materials": []}),
              ("/api/v1/me/applications/pre-review",
               {"service_code": "residence-permit-apply", "form": {}, "materials": []}),
              ("/api/v1/me/payment-orders", {"application_number": "SP20261015000402"}),
              ("/api/v1/me/deliveries", {"application_number": "SP20261015000402"}),
              ("/api/v1/me/applications/SP20261028000401/supplements", {"materials": []})]
    for path, body in writes:
        refused_for_level(kiosk.post(path, json=body, headers={**auth, **idem()}))
    upload = kiosk.post("/api/v1/me/uploads", content=b"\xff\xd8\xff\xe0 not really", headers={
        **auth, **idem(), "Content-Type": "image/jpeg"})
    refused_for_level(upload)


def test_card_only_reads_progress_and_books(kiosk: httpx.Client, make_session_body: Callable[..., dict[str, Any]],
                                            idem: Callable[[], dict[str, str]]) -> None:
    auth = card_only(kiosk, make_session_body, CHEN, CHEN_NAME)
    mine = kiosk.get("/api/v1/me/applications", headers=auth)
    assert mine.status_code == 200
    assert {"SP20261028000401", "SP20261015000402"} <= {a["number"] for a in mine.json()["items"]}
    assert kiosk.get("/api/v1/me/applications/SP20261028000401", headers=auth).status_code == 200
    days = kiosk.get("/api/v1/halls/dongfeng-street/slots", params={"service_code": "senior-card"}).json()["days"]
    date, start = next((d["date"], s["start"]) for d in days for s in d["slots"] if s["available"] > 0)
    body = {"hall_code": "dongfeng-street", "service_code": "senior-card", "date": date, "start": start}
    r = kiosk.post("/api/v1/me/appointments", json=body, headers={**auth, **idem()})
    assert r.status_code == 201, r.text
    booked = r.json()
    assert kiosk.get("/api/v1/me/appointments", headers=auth).status_code == 200
    cancel = kiosk.post(f"/api/v1/me/appointments/{booked['appointment_no']}/cancel", headers=auth)
    assert cancel.status_code == 200


def test_every_me_operation_declares_its_level() -> None:
    import service_platform

    spec = json.loads((Path(service_platform.__file__).parent / "openapi.json").read_text("utf-8"))
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1/me/"):
            continue
        for method, op in ops.items():
            levels = op.get("x-identity-level")
            assert levels, f"{method.upper()} {path} declares no x-identity-level"
            card_ok = path.startswith(("/api/v1/me/appointments", "/api/v1/me/applications"))
            if path in ("/api/v1/me/applications/pre-review", "/api/v1/me/applications/{number}/supplements") \
                    or (path == "/api/v1/me/applications" and method == "post"):
                card_ok = False
            assert ("card" in levels) == card_ok, f"{method.upper()} {path}: {levels}"
            assert "403" in op["responses"], path


# --- rate limit and audit -----------------------------------------------------------------------------------------

LIMIT = 3


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, start_server: Callable[..., Any],
            kiosk_auth: httpx.Auth) -> Iterator[tuple[Any, httpx.Client]]:
    """Another real server (SQLite) whose kiosks may ask about at most LIMIT distinct citizens per hour."""
    folder = tmp_path_factory.mktemp("limited")
    server = start_server(f"sqlite:///{folder / 'p.db'}", "--max-citizens-per-hour", str(LIMIT),
                          stderr_path=folder / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10, auth=kiosk_auth) as client:
            yield server, client
    finally:
        server.stop()


def test_rate_limit_after_n_distinct_citizens(limited: tuple[Any, httpx.Client],
                                              make_session_body: Callable[..., dict[str, Any]]) -> None:
    server, kiosk = limited
    people = [(ZHANG, ZHANG_NAME), (CHEN, CHEN_NAME), (WANG, WANG_NAME)]
    for id_number, name in people:
        assert kiosk.post(SESSIONS, json=make_session_body(id_number, name)).status_code == 201
    # the same citizens again: not new, still fine
    assert kiosk.post(SESSIONS, json=make_session_body(ZHANG, ZHANG_NAME)).status_code == 201
    # a fourth distinct citizen within the hour: refused, session and photo alike
    r = kiosk.post(SESSIONS, json=make_session_body("340302194501013033", "赵德顺"))
    refused(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 3600
    photo = kiosk.post(PHOTO_QUERY, json={"id_number": "340302194501013033", "name": "赵德顺",
                                          "document_kind": "resident_id"})
    refused(photo, 429, "rate_limited")
    # unknown people count as well (a kiosk probing numbers is limited the same way)
    refused(kiosk.post(SESSIONS, json=make_session_body("35010219490822102X", "李秀英")), 429, "rate_limited")
    usage = kiosk.get("/api/v1/kiosk/usage")
    assert usage.status_code == 200, usage.text
    assert usage.json()["distinct_citizens"] == LIMIT and usage.json()["limit"] == LIMIT
    assert usage.json()["rate_limited"] >= 3 and usage.json()["retry_after_s"] > 0
    assert httpx.get(f"{server.url}/api/v1/kiosk/usage").status_code == 401


def test_a_kiosk_sees_only_its_own_usage(tmp_path: Path, start_server: Callable[..., Any], kiosk_auth: httpx.Auth,
                                         new_kiosk_key_pair: Callable[..., Any],
                                         make_session_body: Callable[..., dict[str, Any]]) -> None:
    """Another enrolled kiosk reads its own counts (none), never the first kiosk's, and is not limited by them."""
    server = start_server(f"sqlite:///{tmp_path / 'p.db'}", "--max-citizens-per-hour", "1",
                          stderr_path=tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10, auth=kiosk_auth) as kiosk:
            assert kiosk.post(SESSIONS, json=make_session_body(ZHANG, ZHANG_NAME)).status_code == 201
            assert kiosk.post(SESSIONS, json=make_session_body(CHEN, CHEN_NAME)).status_code == 429  # limit 1
            assert kiosk.get("/api/v1/kiosk/usage").json()["distinct_citizens"] == 1
        other = new_kiosk_key_pair("KSK-340302-0077")
        enrolled = subprocess.run([sys.executable, "-m", "service_platform.cli", "kiosk", "add", "--db",
                                   f"sqlite:///{tmp_path / 'p.db'}", "--id", other.kiosk_id, "--name", "second kiosk",
                                   "--public-key", str(other.public_key_file)], capture_output=True, text=True,
                                  timeout=60)
        assert enrolled.returncode == 0, enrolled.stderr
        with httpx.Client(base_url=server.url, timeout=10, auth=other.signer()) as second:
            usage = second.get("/api/v1/kiosk/usage")
            assert usage.status_code == 200, usage.text
            assert usage.json()["distinct_citizens"] == 0 and usage.json()["rate_limited"] == 0
            assert second.post(SESSIONS, json=make_session_body(WANG, WANG_NAME)).status_code == 201
            assert second.get("/api/v1/kiosk/usage").json()["distinct_citizens"] == 1
    finally:
        server.stop()


def test_audit_rows_hold_no_clear_id_number_or_name(limited: tuple[Any, httpx.Client],
                                                    make_session_body: Callable[..., dict[str, Any]]) -> None:
    server, kiosk = limited
    kiosk.post(SESSIONS, json=make_session_body(CHEN, CHEN_NAME))  # opened, whichever test used the server first
    kiosk.post(SESSIONS, json=make_session_body(ZHANG, "张明"))   # a refusal is audited too
    rows = server.query("SELECT * FROM identity_audit")
    assert rows
    outcomes = {r[-2] for r in rows}
    assert {"opened", "rate_limited"} <= outcomes or {"opened", "identity_mismatch"} <= outcomes
    dump = json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)
    for id_number, name in ((ZHANG, ZHANG_NAME), (CHEN, CHEN_NAME), (WANG, WANG_NAME),
                            ("340302194501013033", "赵德顺")):
        assert id_number not in dump and name not in dump
        assert id_number[-8:] not in dump
    import hashlib

    assert hashlib.sha256(ZHANG.encode()).hexdigest() not in dump   # keyed, not a plain hash of the number
    assert {r[1] for r in rows} == {"KSK-340302-0001"}
