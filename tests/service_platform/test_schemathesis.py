"""Schemathesis against the platform's OpenAPI spec (issue 5, "checks from outside"): for every operation a bounded
number of generated requests — valid and invalid data — sent to the real app in-process (ASGI, fresh seeded SQLite),
with a kiosk's credentials and a live citizen session. No answer may be a server error, and every answer must match
the spec: a documented status code, the documented content type, a body valid against the response schema.

The spec tested is the one the app serves, which tests/service_platform/test_openapi.py keeps equal to the committed
service_platform/openapi.json. ``SCHEMATHESIS_MAX_EXAMPLES`` (default 6) bounds the run (~35 s on the 2-core box).
"""
from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx in its test client
    from fastapi.testclient import TestClient

from service_platform.app import create_app

KIOSK_ID, KIOSK_KEY = "KSK-340302-0001", "schemathesis-kiosk-key"
CITIZEN = {"id_number": "340302195803172018", "name": "张明华", "document_kind": "resident_id",
           "verification": {"method": "card+face", "face_match": True}}
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

def _app() -> Any:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="schemathesis-platform-"))
    return create_app(str(folder / "platform.db"), session_ttl=dt.timedelta(hours=2), demo_kiosk_key=KIOSK_KEY)


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(APP) as c:
        yield c


def citizen_headers(client: Any) -> dict[str, str]:
    """Kiosk credentials and a fresh citizen token (a generated DELETE of the session must not starve the rest)."""
    kiosk = {"X-Kiosk-Id": KIOSK_ID, "X-Kiosk-Key": KIOSK_KEY}
    answer = client.post("/api/v1/citizen-sessions", json=CITIZEN, headers=kiosk)
    assert answer.status_code == 201, answer.text
    return {**kiosk, "Authorization": f"Bearer {answer.json()['token']}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_answers_as_documented(case: Any, client: Any) -> None:
    # our credentials replace generated ones; the case's other headers (Idempotency-Key, X-Captured-At) stay as made
    case.call_and_validate(headers=citizen_headers(client), checks=CHECKS)


def test_an_undecodable_body_is_a_documented_validation_failure(client: Any) -> None:
    """Found by schemathesis: a body that is not UTF-8 was answered 400, which no operation documents."""
    answer = client.post("/api/v1/me/appointments", content=b"\xff\xfe\x10e\xb1",
                         headers={**citizen_headers(client), "Content-Type": "application/json",
                                  "Idempotency-Key": "undecodable-1"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_failed"
