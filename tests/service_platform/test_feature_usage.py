"""GET /api/v1/kiosk/feature-usage: platform-wide counts per kiosk feature for the elderly-mode menu (most used
first). Who may call it: an enrolled kiosk (signed request) — not the public, not an unenrolled key; what it gives:
numbers only, never a person, an application or a row."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.service_platform.conftest import CITIZENS

USAGE = "/api/v1/kiosk/feature-usage"
FEATURES = {"apply", "pay", "appointment", "delivery", "progress", "guide", "certificates"}


def test_counts_per_feature_only_numbers(kiosk: httpx.Client) -> None:
    r = kiosk.get(USAGE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"window_days", "features"} and body["window_days"] == 90
    assert set(body["features"]) == FEATURES
    assert all(isinstance(v, int) and v >= 0 for v in body["features"].values())
    assert body["features"]["apply"] > 0        # the seed's applications
    for id_number, (name, numbers) in CITIZENS.items():   # aggregate: no person, no case number
        assert id_number not in r.text and name not in r.text
        assert not any(n in r.text for n in numbers)


def test_a_rated_progress_query_counts(kiosk: httpx.Client) -> None:
    before = kiosk.get(USAGE).json()["features"]["progress"]
    rated = kiosk.post("/api/v1/ratings", headers={"Idempotency-Key": str(uuid.uuid4())},
                       json={"target_type": "application", "target_id": "SP20261027000102", "stars": 5,
                             "tags": ["fast"], "comment": None, "kiosk_id": "KSK-340302-0001"})
    assert rated.status_code == 201, rated.text
    assert kiosk.get(USAGE).json()["features"]["progress"] == before + 1


def test_window_is_validated(kiosk: httpx.Client) -> None:
    assert kiosk.get(USAGE, params={"days": 7}).json()["window_days"] == 7
    for bad in (0, 367, "x"):
        assert kiosk.get(USAGE, params={"days": bad}).status_code == 422


def test_only_enrolled_kiosks(public: httpx.Client, platform: Any,
                              new_kiosk_key_pair: Callable[[str], Any]) -> None:
    r = public.get(USAGE)
    assert r.status_code == 401, r.text
    stranger = new_kiosk_key_pair("KSK-999999-0001")   # a well-formed signature by a key nobody enrolled
    with httpx.Client(base_url=platform.url, timeout=10, auth=stranger.signer()) as client:
        r = client.get(USAGE)
    assert r.status_code == 401, r.text
    assert "features" not in r.text
