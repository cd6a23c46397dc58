"""Schemathesis against the platform's OpenAPI spec ("checks from outside"): for every operation a bounded
number of generated requests — valid and invalid data — sent to the real app in-process (ASGI, fresh seeded SQLite),
with a kiosk's credentials (every request signed, KIOSK-ED25519-V1, by a requests auth hook) and a live citizen
session. No answer may be a server error, and every answer must match
the spec: a documented status code, the documented content type, a body valid against the response schema.

The spec tested is the one the app serves, which tests/service_platform/test_openapi.py keeps equal to the committed
service_platform/openapi.json. ``SCHEMATHESIS_MAX_EXAMPLES`` (default 6) bounds the run (~1 min on the 2-core box).

All of schemathesis' checks run (``schemathesis run --checks all``): besides the four above, response headers,
negative data rejected, positive data accepted, a missing required header refused, an undocumented method answered
405 with an ``Allow`` listing exactly the documented methods, declared authentication enforced (``ignored_auth``
re-sends without our credentials and with invalid ones: 401/403), and the stateful ``use_after_free`` /
``ensure_resource_availability``. Our credentials are only added where the case carries the security headers
schemathesis generated: a case that leaves one out (the missing-header scenario) goes out without it, so the server's
refusal is what is checked. Configured the way schemathesis intends, with the reason:

* ``positive_data_acceptance`` also expects 422: a schema-valid request can still break a documented business rule
  that no JSON Schema can say (an ID number's check digit, a booking date outside the window relative to today,
  a service not handled at that hall, ``X-Captured-At`` older than 72 hours, a 1–2 star rating without a reason,
  an amount that differs from the order's, pre-review problems). What it cannot be is a schema-level refusal:
  :func:`schema_valid_request_is_not_a_validation_failure` fails any schema-valid request answered 422
  ``validation_failed`` (the code of the platform's own request validation). 404 for a schema-valid request about
  a resource that does not exist is documented and expected by schemathesis by default.
* ``max_response_time`` is left out (no limit is part of the contract; timing on a shared CI box is noise), and so
  is ``object_level_authorization``: it needs two identities configured as ``[auth.wfc]`` peers, which this
  in-process signed setup does not provide (cross-citizen access is covered by tests/service_platform/
  test_privacy.py: another citizen's resource is 404).
"""
from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import requests.auth
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CHECKS as REGISTERED_CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx in its test client
    from fastapi.testclient import TestClient

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.request_signing import KioskRequestSigner
from service_platform.app import create_app

KIOSK_ID = "KSK-340302-0001"
KIOSK_SIGNER = KioskRequestSigner(KIOSK_ID, Ed25519PrivateKey.generate())
CITIZEN = {"id_number": "340302195803172018", "name": "张明华", "document_kind": "resident_id",
           "verification": {"method": "card+face", "face_match": True}}
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "6"))
LEFT_OUT = {"max_response_time", "object_level_authorization"}  # why: see the module docstring
KIOSK_HEADERS = ("X-Kiosk-Id", "X-Kiosk-Key-Id", "X-Kiosk-Timestamp", "X-Kiosk-Nonce", "X-Kiosk-Signature")


@schemathesis.check
def schema_valid_request_is_not_a_validation_failure(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request the schema accepts may break a business rule (422 with that rule's code) but never the platform's
    request validation (422 ``validation_failed``): where they disagree, the spec or the server is wrong."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    if isinstance(meta.phase.data, CoveragePhaseData) and meta.phase.data.scenario in {
            CoverageScenario.UNSPECIFIED_HTTP_METHOD}:
        return None
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    if code == "validation_failed":
        raise Failure(operation=case.operation.label, title="Schema-valid request refused as validation_failed",
                      message=f"The schema accepts this request, the server's validation does not: {response.text}")
    return None


load_all_checks()
CHECKS = [check for check in REGISTERED_CHECKS.get_all() if check.__name__ not in LEFT_OUT]
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 429]}},
})

def _app() -> Any:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="schemathesis-platform-"))
    return create_app(str(folder / "platform.db"), session_ttl=dt.timedelta(hours=2), demo=True,
                      demo_kiosk_public_key=KIOSK_SIGNER.public_key,
                      # a configured provider (a key nobody here holds): the cashier checks signatures, not 503
                      payment_provider_key=Ed25519PrivateKey.generate().public_key())


def _left_out_on_purpose(case: Any) -> set[str]:
    data = case.meta.phase.data if case.meta is not None else None
    if isinstance(data, CoveragePhaseData) and data.scenario == CoverageScenario.MISSING_PARAMETER and data.parameter:
        return {data.parameter}
    return set()


class SignedRequests(requests.auth.AuthBase):
    """Signs each prepared request as the kiosk, over the exact path, query and body bytes the ASGI client sends."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(str(r.url))
        body = r.body.encode("utf-8") if isinstance(r.body, str) else (r.body or b"")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        r.headers.update(KIOSK_SIGNER.headers_for(str(r.method), target.encode("ascii"), body))
        return r


APP = _app()


def _staff_token() -> str:
    """A department's staff token (routes/staff.py): what the staff routes' Bearer scheme means."""
    from service_platform.db import utcnow
    from service_platform.routes.staff import add_staff

    with APP.state.sessionmaker() as db:
        token = add_staff(db, "schemathesis", "蚌埠市住房公积金管理中心", utcnow())
        db.commit()
    return token


STAFF_TOKEN = _staff_token()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(APP) as c:
        yield c


def citizen_headers(client: Any) -> dict[str, str]:
    """A fresh citizen token (a generated DELETE of the session must not starve the rest); the kiosk's signature
    is added per request (``client`` signs its own, schemathesis' requests are signed by :class:`SignedRequests`)."""
    answer = client.post("/api/v1/citizen-sessions", json=CITIZEN, auth=KIOSK_SIGNER)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_answers_as_documented(case: Any, client: Any) -> None:
    # our credentials replace the generated ones — only where the case carries them (a case may leave one out on
    # purpose); the case's other headers (Idempotency-Key, X-Captured-At) stay as made
    headers = case.headers if case.headers is not None else {}
    left_out = _left_out_on_purpose(case)
    signed = all(name in headers for name in KIOSK_HEADERS) and not left_out & set(KIOSK_HEADERS)
    if "Authorization" in headers and "Authorization" not in left_out:
        if case.path.startswith("/api/v1/staff/"):  # department staff: their own token, no kiosk signature
            headers["Authorization"] = f"Bearer {STAFF_TOKEN}"
        else:
            headers.update(citizen_headers(client))
    case.call_and_validate(checks=CHECKS, auth=SignedRequests() if signed else None)


def test_an_undecodable_body_is_a_documented_validation_failure(client: Any) -> None:
    """Found by schemathesis: a body that is not UTF-8 was answered 400, which no operation documents."""
    answer = client.post("/api/v1/me/appointments", content=b"\xff\xfe\x10e\xb1", auth=KIOSK_SIGNER,
                         headers={**citizen_headers(client), "Content-Type": "application/json",
                                  "Idempotency-Key": "undecodable-1"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_failed"


def test_a_405_allows_every_method_of_the_path(client: Any) -> None:
    """Found by schemathesis (allow_header_conformance): one path served by routes in two routers (GET and POST
    me/applications) answered ``Allow: GET``. (An empty ``Allow`` would pass both checks: asserted here.)"""
    for path, allow in [("/api/v1/me/applications", "GET, POST"), ("/api/v1/me/payment-orders", "GET, POST"),
                        ("/api/v1/me/applications/pre-review", "POST"),  # not GET me/applications/{number}
                        ("/api/v1/citizen-sessions/current", "DELETE"), ("/api/v1/categories", "GET")]:
        answer = client.request("PATCH", path)
        assert answer.status_code == 405 and answer.headers["allow"] == allow, (path, answer.headers)


def test_query_values_are_what_the_schema_says(client: Any) -> None:
    """Found by schemathesis (negative_data_rejection): ``date=0`` read as 1970-01-01 (pydantic's lax dates take
    Unix time), and a repeated scalar parameter was read as one of its values."""
    assert client.get("/api/v1/halls/city-hall/slots", params={"date": "0"}).status_code == 422
    assert client.get("/api/v1/services?q=a&q=b").status_code == 422
    assert client.get("/api/v1/services?q=a").status_code == 200
