"""Prometheus ``/metrics`` of the real platform (service_platform/metrics.py): off (404) without a scrape token,
401 without or with a wrong one; per route TEMPLATE (never a raw path, number or code in a label), method and status
class; outbox replays (X-Captured-At) and idempotent replays counted. Parsed with the client library's parser."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, new_db_url: Callable[[str], str],
            start_server: Callable[..., Any]) -> Iterator[tuple[Any, str]]:
    folder = tmp_path_factory.mktemp("metrics")
    token = secrets.token_urlsafe(24)
    (folder / "scrape.token").write_text(token + "\n")
    server = start_server(new_db_url("sqlite"), "--metrics-token-file", str(folder / "scrape.token"),
                            stderr_path=folder / "server.log")
    try:
        yield server, token
    finally:
        server.stop()


def families(url: str, token: str) -> dict[str, Any]:
    r = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def total(fams: dict[str, Any], name: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in fams[name].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_are_off_without_a_token(public: httpx.Client) -> None:
    r = public.get("/metrics")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert "/metrics" not in public.get("/openapi.json").json()["paths"]


def test_scrape_needs_the_token(scraped: tuple[Any, str]) -> None:
    server, token = scraped
    for headers in ({}, {"Authorization": "Bearer " + "y" * 32}, {"Authorization": f"Basic {token}"}):
        r = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
        assert r.status_code == 401 and "platform_http_requests" not in r.text


def test_requests_per_route_template_and_replays(scraped: tuple[Any, str], kiosk_auth: httpx.Auth) -> None:
    server, token = scraped
    with httpx.Client(base_url=server.url, timeout=10) as public, \
            httpx.Client(base_url=server.url, timeout=10, auth=kiosk_auth) as kiosk:
        for code in ("hpf-withdrawal", "id-card-renewal", "no-such-service-123"):
            public.get(f"/api/v1/services/{code}")
        public.get("/api/v1/applications/SP20261027000102")
        public.get("/no/such/path/42")
        key = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"target_type": "service", "target_id": "hpf-withdrawal", "stars": 5, "tags": ["fast"]}
        assert kiosk.post("/api/v1/ratings", json=body, headers=key).status_code == 201
        again = kiosk.post("/api/v1/ratings", json=body, headers=key)
        assert again.headers.get("idempotent-replayed") == "true"
        late = kiosk.post("/api/v1/ratings", json=body, headers={"Idempotency-Key": str(uuid.uuid4()),
                                                                 "X-Captured-At": "2026-11-02T09:00:00+08:00"})
        assert late.status_code in (201, 422)
    m = families(server.url, token)
    req = "platform_http_requests_total"
    assert total(m, "platform_http_requests", req, route="/api/v1/services/{code}", method="GET",
                 status_class="2xx") == 2
    assert total(m, "platform_http_requests", req, route="/api/v1/services/{code}", status_class="4xx") == 1
    assert total(m, "platform_http_requests", req, route="/api/v1/applications/{number}") == 1
    assert total(m, "platform_http_requests", req, route="unmatched") == 1
    assert total(m, "platform_http_requests", req, route="/api/v1/ratings", method="POST") == 3
    assert total(m, "platform_http_request_duration_seconds", "platform_http_request_duration_seconds_count",
                 route="/api/v1/services/{code}", method="GET") == 3
    assert total(m, "platform_idempotent_replays", "platform_idempotent_replays_total", route="/api/v1/ratings") == 1
    assert total(m, "platform_outbox_replays", "platform_outbox_replays_total", route="/api/v1/ratings") == 1
    # the scrape itself is not counted; no raw path, number or code in any label
    raw = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    for leaked in ("hpf-withdrawal", "SP20261027000102", "no-such-service", "/no/such", "KSK-", 'route="/metrics"'):
        assert leaked not in raw, leaked
    labels = {k for f in m.values() for s in f.samples for k in s.labels}
    assert labels <= {"route", "method", "status_class", "le"}


def test_the_token_is_never_logged(scraped: tuple[Any, str]) -> None:
    server, token = scraped
    families(server.url, token)
    assert token not in Path(server.log_path).read_text(encoding="utf-8", errors="replace")
