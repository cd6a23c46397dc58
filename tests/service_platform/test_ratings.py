"""好差评 ratings: validation, reasons for low stars, idempotency (checked in the database itself)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

RATINGS = "/api/v1/ratings"
KIOSK_ID = "KSK-340302-0001"


def rating(**overrides: Any) -> dict[str, Any]:
    return {"target_type": "application", "target_id": "SP20261027000102", "stars": 5, "tags": ["fast"],
            "comment": None, "kiosk_id": KIOSK_ID, **overrides}


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_rating_created(kiosk: httpx.Client) -> None:
    r = kiosk.post(RATINGS, json=rating(), headers=key())
    assert r.status_code == 201, r.text
    data = r.json()
    assert isinstance(data["id"], int) and data["stars"] == 5 and data["tags"] == ["fast"]
    assert data["kiosk_id"] == KIOSK_ID and data["created_at"].endswith("+08:00")


def test_low_stars_need_a_reason(kiosk: httpx.Client) -> None:
    r = kiosk.post(RATINGS, json=rating(stars=2, tags=[], comment=None), headers=key())
    assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required"
    r = kiosk.post(RATINGS, json=rating(stars=1, tags=[], comment="   "), headers=key())
    assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required"
    assert kiosk.post(RATINGS, json=rating(stars=2, tags=["long_wait"]), headers=key()).status_code == 201
    assert kiosk.post(RATINGS, json=rating(stars=1, tags=[], comment="排队太久"), headers=key()).status_code == 201
    assert kiosk.post(RATINGS, json=rating(stars=3, tags=[]), headers=key()).status_code == 201


def test_repeated_key_returns_the_first_result_and_stores_one_row(kiosk: httpx.Client,
                                                                  platform: Any) -> None:
    headers = key()
    body = rating(target_type="service", target_id="hpf-withdrawal", stars=4, tags=["easy_to_use"])
    first = kiosk.post(RATINGS, json=body, headers=headers)
    second = kiosk.post(RATINGS, json=body, headers=headers)
    assert first.status_code == 201 and second.status_code in (200, 201)
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    rows = platform.query("SELECT id, stars FROM ratings WHERE idempotency_key = :k", k=headers["Idempotency-Key"])
    assert rows == [(first.json()["id"], 4)]


def test_concurrent_repeats_store_one_row(kiosk: httpx.Client, platform: Any) -> None:
    headers = key()
    body = rating(stars=4, tags=["clear_guidance"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: kiosk.post(RATINGS, json=body, headers=headers), range(6)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    rows = platform.query("SELECT COUNT(*) FROM ratings WHERE idempotency_key = :k", k=headers["Idempotency-Key"])
    assert rows == [(1,)]


def test_repeated_key_with_another_body_is_409(kiosk: httpx.Client, platform: Any) -> None:
    headers = key()
    assert kiosk.post(RATINGS, json=rating(stars=5), headers=headers).status_code == 201
    r = kiosk.post(RATINGS, json=rating(stars=4), headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict"
    rows = platform.query("SELECT stars FROM ratings WHERE idempotency_key = :k", k=headers["Idempotency-Key"])
    assert rows == [(5,)]


def test_idempotency_key_is_required(kiosk: httpx.Client) -> None:
    r = kiosk.post(RATINGS, json=rating())
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_required"


def test_rating_needs_kiosk_auth(public: httpx.Client) -> None:
    r = public.post(RATINGS, json=rating(), headers=key())
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_rating_validation(kiosk: httpx.Client) -> None:
    for bad in (rating(stars=0), rating(stars=6), rating(target_type="window"), rating(tags=["x" * 31])):
        r = kiosk.post(RATINGS, json=bad, headers=key())
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed", bad
    r = kiosk.post(RATINGS, json=rating(target_id="SP20990101000000"), headers=key())
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_target"
    r = kiosk.post(RATINGS, json=rating(kiosk_id="KSK-340302-0002"), headers=key())
    assert r.status_code == 422 and r.json()["error"]["code"] == "kiosk_mismatch"
    r = kiosk.post(RATINGS, json=rating(target_type="kiosk_action", target_id="print_certificate"), headers=key())
    assert r.status_code == 201


def test_rating_with_citizen_session_is_linked_and_replays_after_the_session_ended(
        kiosk: httpx.Client, platform: Any, open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session("340302195803172018")
    headers = {**key(), **auth}
    first = kiosk.post(RATINGS, json=rating(stars=5, tags=["one_visit"]), headers=headers)
    assert first.status_code == 201
    (citizen_token_id,), = platform.query("SELECT citizen_token_id FROM ratings WHERE id = :id", id=first.json()["id"])
    assert citizen_token_id is not None
    assert kiosk.delete("/api/v1/citizen-sessions/current", headers=auth).status_code == 204
    again = kiosk.post(RATINGS, json=rating(stars=5, tags=["one_visit"]), headers=headers)  # kiosk outbox retry
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    fresh = kiosk.post(RATINGS, json=rating(stars=5), headers={**key(), **auth})
    assert fresh.status_code == 401 and fresh.json()["error"]["code"] == "session_expired"
