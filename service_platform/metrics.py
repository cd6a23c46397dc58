"""Prometheus metrics of the platform (``GET /metrics``, exposition format, prometheus_client).

Labels are the route TEMPLATE (``/api/v1/me/applications/{number}``, never the raw path: no numbers, ids or names
in a label), the method and the status class (``2xx`` … ``5xx``); a path no route matches is ``route="unmatched"``.
Every app has its own registry (tests build many apps in one process).

Access: ``/metrics`` is off (404) unless a scrape token is configured (``serve --metrics-token-file FILE`` or env
``PLATFORM_METRICS_TOKEN_FILE``); then a scraper sends ``Authorization: Bearer <token>`` (else 401). It is not part of
the public OpenAPI contract.
"""
from __future__ import annotations

import hmac
import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PlatformMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("platform_http_requests", "HTTP requests answered, per route template, method and "
                                "status class", ("route", "method", "status_class"), registry=self.registry)
        self.latency = Histogram("platform_http_request_duration_seconds", "Time from request to the end of the "
                                 "answer, per route template and method", ("route", "method"), buckets=BUCKETS,
                                 registry=self.registry)
        self.outbox_replays = Counter("platform_outbox_replays", "Requests sent late from a kiosk's outbox "
                                      "(header X-Captured-At), per route template and status class",
                                      ("route", "status_class"), registry=self.registry)
        self.idempotent_replays = Counter("platform_idempotent_replays", "Answers replayed for a repeated "
                                          "Idempotency-Key (Idempotent-Replayed: true), per route template",
                                          ("route",), registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def route_template(app: Any, scope: Scope) -> str:
    """The template of the route that answered (Starlette puts it in the scope), else of the first that matches,
    else ``unmatched``."""
    found = getattr(scope.get("route"), "path", None)
    if isinstance(found, str):
        return found
    for route in getattr(app, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:  # noqa: BLE001 - a route that cannot judge this scope is not it
            continue
        if match == Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


class MetricsMiddleware:
    """Pure ASGI (the body goes through untouched: signed requests hash it)."""

    def __init__(self, app: ASGIApp, metrics: PlatformMetrics, router_app: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.router_app = router_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        replayed = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                replayed = any(k.lower() == b"idempotent-replayed" and v.lower() == b"true"
                               for k, v in message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(self.router_app, scope)
            if route != "/metrics":
                method = scope.get("method", "GET")
                klass = f"{status // 100}xx"
                m = self.metrics
                m.requests.labels(route, method, klass).inc()
                m.latency.labels(route, method).observe(time.perf_counter() - start)
                if any(k.lower() == b"x-captured-at" for k, _ in scope.get("headers", ())):
                    m.outbox_replays.labels(route, klass).inc()
                if replayed:
                    m.idempotent_replays.labels(route).inc()


def load_token(path: str | os.PathLike[str] | None) -> str | None:
    """The scrape token from a file (first line, stripped; at least 16 characters), or None when not configured."""
    if not path:
        return None
    text = Path(path).read_text(encoding="utf-8").strip()
    token = text.splitlines()[0].strip() if text else ""
    if len(token) < 16:
        raise ValueError(f"{path}: the metrics token must have at least 16 characters")
    return token


def token_ok(expected: str, authorization: str | None) -> bool:
    if not authorization or not authorization.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode("utf-8"), expected.encode("utf-8"))


CONTENT_TYPE = CONTENT_TYPE_LATEST
