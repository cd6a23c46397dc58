"""``create_app(db_url, ...)``: the FastAPI application of the reference service platform."""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from service_platform import __version__
from service_platform.auth import KioskAuthCache
from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow
from service_platform.ecert_pdf import PdfCache
from service_platform.errors import install_error_handlers
from service_platform.photos import PhotoRegistry, PhotoSource, load_photo_map
from service_platform.routes import (
    applications, catalogue, citizen_sessions, deliveries, ecertificates, filing, halls, health, payments, ratings)

DEFAULT_SESSION_TTL = dt.timedelta(minutes=15)

DESCRIPTION = """\
Reference 一网通办 service platform that the 24-hour self-service kiosks are a channel of.

* **Public** (no credentials): `/healthz`, catalogue reads (`/api/v1/categories`, `/api/v1/services…`,
  `/api/v1/rating-tags`, `/api/v1/e-certificate-types`, `/api/v1/halls…`, `/api/v1/delivery-consent`), application
  progress by number (`/api/v1/applications/{number}`) and a queue ticket by its id.
* **Kiosk calls**: headers `X-Kiosk-Id` and `X-Kiosk-Key` (registered photos, queue tickets, payment orders of the
  kiosk, reconciliation).
* **Citizen calls** (`/api/v1/me/…`): kiosk headers plus `Authorization: Bearer <token>` from
  `POST /api/v1/citizen-sessions`; they only ever see that citizen's data (someone else's is "not found").
* **Creating calls** take an `Idempotency-Key` header: a repeat returns the first result (`Idempotent-Replayed:
  true`), never a duplicate. A kiosk's outbox may send a citizen's request later with `X-Captured-At`.
* **Errors** always look like `{"error": {"code": "stable_code", "message": "…", "details": …}}`.
* **Times** are ISO 8601 in China Standard Time (`+08:00`); money is in fen (`fee_fen`, `amount_fen`).
"""


def create_app(db_url: str | None = None, *, init_db: bool = True,
               session_ttl: dt.timedelta = DEFAULT_SESSION_TTL,
               clock: Callable[[], dt.datetime] = utcnow,
               demo_kiosk_key: str | None = None,
               photo_source: PhotoSource | None = None) -> FastAPI:
    """Build the app on ``db_url`` (SQLAlchemy URL or file path; default ``./var/platform.db``).

    With ``init_db`` the tables are created and, when the database is empty, the demo data is seeded (the demo
    kiosk's key: ``demo_kiosk_key``, else env ``PLATFORM_DEMO_KIOSK_KEY``, else ``demo-kiosk-key`` — dev only).
    ``clock`` returns the current aware UTC time (tests replace it). ``photo_source`` gives registered photos
    (default: the photo map named by env ``PLATFORM_PHOTOS`` if set, else drawn placeholders; see photos.py).
    """
    engine = make_engine(normalize_db_url(db_url))
    sessionmaker = make_sessionmaker(engine)
    if init_db:
        from service_platform.seed.loader import seed_if_empty

        create_tables(engine)
        with sessionmaker() as db:
            seed_if_empty(db, demo_kiosk_key=demo_kiosk_key or os.environ.get("PLATFORM_DEMO_KIOSK_KEY"))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="Service platform (一网通办) — reference", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, generate_unique_id_function=_operation_id)
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.clock = clock
    app.state.session_ttl = session_ttl
    app.state.kiosk_auth_cache = KioskAuthCache()
    if photo_source is None:
        photo_map = os.environ.get("PLATFORM_PHOTOS", "").strip()
        photo_source = load_photo_map(photo_map) if photo_map else PhotoRegistry()
    app.state.photo_source = photo_source
    app.state.pdf_cache = PdfCache()
    install_error_handlers(app)
    for module in (health, catalogue, applications, citizen_sessions, ratings, ecertificates, filing, payments,
                   halls, deliveries):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


_KIOSK_SCHEMES = ("KioskId", "KioskKey")
_CITIZEN_SCHEME = "CitizenToken"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, corrected so that it says what the API does:

    * security: the kiosk headers are needed together (FastAPI lists each scheme as an alternative); the citizen
      token is required or optional as the route's ``x-citizen-session`` says;
    * validation errors use the platform's error shape, not FastAPI's ``HTTPValidationError``.
    """
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            schemes = {name for req in op.get("security", []) for name in req}
            if schemes:
                kiosk = {name: [] for name in _KIOSK_SCHEMES if name in schemes}
                citizen = op.get("x-citizen-session")
                if citizen == "required":
                    op["security"] = [{**kiosk, _CITIZEN_SCHEME: []}]
                elif citizen == "optional":
                    op["security"] = [{**kiosk, _CITIZEN_SCHEME: []}, kiosk]
                else:
                    op["security"] = [kiosk]
            for status, resp in op.get("responses", {}).items():
                content = resp.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    content["schema"] = error_ref
                    resp["description"] = "Validation failed (validation_failed or a more specific code)"
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = spec
    return spec
