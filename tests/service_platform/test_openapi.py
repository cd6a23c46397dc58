"""The committed service_platform/openapi.json must equal the app's spec (regenerate with
``service-platform openapi > service_platform/openapi.json``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collections.abc import Callable

import httpx

import service_platform
from service_platform.app import create_app

COMMITTED = Path(service_platform.__file__).resolve().parent / "openapi.json"
HINT = "openapi.json is stale: run `service-platform openapi > service_platform/openapi.json`"


def test_committed_spec_matches_the_app() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    spec = json.loads(json.dumps(create_app("sqlite://", init_db=False).openapi()))
    assert committed == spec, HINT


def test_cli_prints_the_committed_spec() -> None:
    out = subprocess.run([sys.executable, "-m", "service_platform.cli", "openapi"], capture_output=True,
                         check=True, timeout=60).stdout
    assert out.decode("utf-8") == COMMITTED.read_text(encoding="utf-8"), HINT


def test_server_serves_spec_and_docs(public: httpx.Client) -> None:
    assert public.get("/openapi.json").json() == json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert public.get("/docs").status_code == 200


def test_spec_documents_the_contract() -> None:
    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    paths = spec["paths"]
    for path in ("/healthz", "/api/v1/categories", "/api/v1/services", "/api/v1/services/{code}",
                 "/api/v1/applications/{number}", "/api/v1/citizen-sessions", "/api/v1/citizen-sessions/current",
                 "/api/v1/me/applications", "/api/v1/ratings", "/api/v1/rating-tags"):
        assert path in paths, path
    assert "security" not in paths["/api/v1/services"]["get"]
    kiosk = {name: [] for name in ("KioskId", "KioskKeyId", "KioskTimestamp", "KioskNonce", "KioskSignature")}
    assert paths["/api/v1/citizen-sessions"]["post"]["security"] == [kiosk]
    assert paths["/api/v1/me/applications"]["get"]["security"] == [{**kiosk, "CitizenToken": []}]
    schemes = spec["components"]["securitySchemes"]
    assert "KioskKey" not in schemes and "KIOSK-ED25519-V1" in schemes["KioskSignature"]["description"]
    rating_post = paths["/api/v1/ratings"]["post"]
    assert {"name": "Idempotency-Key", "in": "header", "required": True}.items() <= rating_post["parameters"][0].items()
    for code in ("401", "409", "422"):
        assert rating_post["responses"][code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"}
    assert "HTTPValidationError" not in json.dumps(spec)


# Creating calls and their Idempotency-Key. Not creating: pre-review, the photo query, the progress lookup by number
# and ID number's last 4, cancellations (safe to repeat).
# POST /citizen-sessions is the one exception by design: replaying it would need the bearer token stored in clear;
# a repeated session is harmless (it expires unused).
NOT_CREATING = {"/api/v1/me/applications/pre-review", "/api/v1/registered-photos/query",
                "/api/v1/applications/{number}/lookup",
                "/api/v1/me/proxy-applications/prefill",   # 代办: checks the principal, pre-fills, creates nothing
                "/api/v1/payment-orders/{order_no}/cancel", "/api/v1/me/appointments/{appointment_no}/cancel",
                "/api/v1/citizen-sessions",
                "/api/v1/staff/documents/{code}/revoke",  # revoking twice keeps the first revocation
                # technician yes/no checks (service_platform/technicians.py): create nothing
                "/api/v1/kiosk/technicians/lookup", "/api/v1/kiosk/technicians/verify"}


def creating_paths() -> list[str]:
    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return sorted(path for path, ops in spec["paths"].items() if "post" in ops and path not in NOT_CREATING)


def test_every_creating_call_requires_an_idempotency_key_in_the_spec() -> None:
    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    paths = creating_paths()
    assert {"/api/v1/me/uploads", "/api/v1/me/applications", "/api/v1/me/applications/{number}/supplements",
            "/api/v1/me/payment-orders", "/api/v1/payment-orders/{order_no}/confirm", "/api/v1/me/appointments",
            "/api/v1/me/appointments/{appointment_no}/check-in", "/api/v1/queue-tickets", "/api/v1/me/deliveries",
            "/api/v1/ratings", "/api/v1/me/proofs", "/api/v1/me/phone-uploads",
            "/api/v1/me/proxy-applications", "/api/v1/feedback"} == set(paths)
    for path in paths:
        params = spec["paths"][path]["post"].get("parameters", [])
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"] for p in params), path
        assert "409" in spec["paths"][path]["post"]["responses"], path


def test_every_creating_call_refuses_a_request_without_a_key(kiosk: httpx.Client,
                                                             open_session: Callable[[str], dict[str, str]]) -> None:
    auth = open_session("340302195803172018")
    for path in creating_paths():
        url = path.replace("{number}", "SP20261027000102").replace("{order_no}", "PO20261102000001") \
                  .replace("{appointment_no}", "AP20261102000001")
        r = kiosk.post(url, headers=auth, json={})
        assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_required", (path, r.text)
