"""``create_app(db_url, ...)``: the FastAPI application of the reference service platform."""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from service_platform import __version__
from service_platform.auth import NonceStore, wall_clock
from service_platform.deps import single_valued_query
from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow
from service_platform.ecert_pdf import PdfCache
from service_platform.errors import install_error_handlers
from service_platform.identity_checks import DEFAULT_MAX_CITIZENS_PER_HOUR, IdentityGuard
from service_platform.photos import PhotoRegistry, PhotoSource, load_photo_map
from service_platform.payment_provider import key_from_env, load_public_key
from service_platform.throttle import FailureThrottle
from service_platform.routes import (
    applications, catalogue, citizen_sessions, deliveries, ecertificates, filing, halls, health, payments,
    phone_uploads, proofs, ratings, staff, verify)

DEFAULT_SESSION_TTL = dt.timedelta(minutes=15)

DESCRIPTION = """\
Reference 一网通办 service platform that the 24-hour self-service kiosks are a channel of.

* **Public** (no credentials): `/healthz`, catalogue reads (`/api/v1/categories`, `/api/v1/services…`,
  `/api/v1/rating-tags`, `/api/v1/e-certificate-types`, `/api/v1/halls…`, `/api/v1/delivery-consent`), application
  progress by number (`/api/v1/applications/{number}`: the state only; `POST …/lookup` with the applicant's ID
  number's last 4: the full progress, throttled), a queue ticket by its id, and the public summary of ratings per
  service (`/api/v1/public/ratings/summary`, counts under 5 suppressed).
* **Department staff** (`/api/v1/staff/…`: the follow-up of ★1–2 ratings, 差评整改) send `Authorization: Bearer
  <staff token>` from `service-platform staff add`; they see only their own department's items. Kiosk signatures
  and citizen tokens are not accepted there.
* **The payment provider** notifies wallet payments at `PUT /api/v1/cashier/{order_no}/payment`, signed with its
  Ed25519 key (header `X-Provider-Signature`; format in service_platform/README.md).
* **Kiosk calls** (registered photos, queue tickets, payment orders of the kiosk, reconciliation) are signed by the
  kiosk's own Ed25519 key, scheme `KIOSK-ED25519-V1`: headers `X-Kiosk-Id`, `X-Kiosk-Key-Id`, `X-Kiosk-Timestamp`,
  `X-Kiosk-Nonce`, `X-Kiosk-Signature` (see the security schemes; a bad signature is 401 `unauthorized`, a
  timestamp more than 300 s off 401 `request_expired`, a repeated nonce 401 `replayed_request`).
* **Citizen calls** (`/api/v1/me/…`): kiosk headers plus `Authorization: Bearer <token>` from
  `POST /api/v1/citizen-sessions`; they only ever see that citizen's data (someone else's is "not found").
* **Creating calls** take an `Idempotency-Key` header: a repeat returns the first result (`Idempotent-Replayed:
  true`), never a duplicate. A kiosk's outbox may send a citizen's request later with `X-Captured-At`.
* **Proofs and sealed PDFs** (`/api/v1/me/proofs…`, e-certificate PDFs) are signed (PAdES) by the issuing
  department's seal; their codes, application receipts, payment vouchers and queue tickets are verifiable by anyone
  at `/api/v1/verify/…` (and as HTML pages under `/verify/…`), throttled per address. Kiosks read the platform's
  PUBLIC base URL for printed QR codes from `/api/v1/kiosk/config` (docs/protocols/proofs.md).
* **Errors** always look like `{"error": {"code": "stable_code", "message": "…", "details": …}}`.
* **Times** are ISO 8601 in China Standard Time (`+08:00`); money is in fen (`fee_fen`, `amount_fen`).
"""


def create_app(db_url: str | None = None, *, init_db: bool = True,
               session_ttl: dt.timedelta = DEFAULT_SESSION_TTL,
               clock: Callable[[], dt.datetime] = utcnow,
               demo: bool = False,
               demo_kiosk_public_key: bytes | None = None,
               auth_clock: Callable[[], float] = wall_clock,
               photo_source: PhotoSource | None = None,
               payment_provider_key: Ed25519PublicKey | str | None = None,
               max_citizens_per_hour: int | None = None,
               metrics_token: str | None = None,
               public_base_url: str | None = None,
               seal_dir: str | None = None) -> FastAPI:
    """Build the app on ``db_url`` (SQLAlchemy URL or file path; default ``./var/platform.db``).

    With ``init_db`` the tables are created and the catalogue parts still missing are seeded; with ``demo`` also
    the demo data (demo citizens, their applications, the demo kiosk) and, when ``demo_kiosk_public_key`` is given
    (an Ed25519 public key: raw 32 bytes, or PEM / base64 text as bytes), that key is enrolled for the demo kiosk.
    ``clock`` returns the current aware UTC time (tests replace it); ``auth_clock`` the real Unix time that signed
    kiosk requests are checked against (±300 s). ``photo_source`` gives registered photos
    (default: the photo map named by env ``PLATFORM_PHOTOS`` if set, else drawn placeholders; see photos.py).
    ``payment_provider_key``: the unified-payment provider's Ed25519 public key (key, or PEM file path / PEM text /
    base64), else env ``PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY``; without one the cashier answers 503.
    ``max_citizens_per_hour``: distinct citizens a kiosk may ask about per rolling hour (sessions and registered
    photos; else env ``PLATFORM_MAX_CITIZENS_PER_HOUR``, else 60), then 429 ``rate_limited`` (identity_checks.py).
    ``metrics_token``: the Prometheus scrape token (``Authorization: Bearer``) of ``GET /metrics``; without one
    ``/metrics`` answers 404 (metrics.py).
    ``public_base_url``: the platform's PUBLIC address used in every QR it makes (else env ``PLATFORM_PUBLIC_URL``,
    else the address a request came to; ``serve`` sets its listening URL). ``seal_dir``: the seal CA directory
    (seal.py; else env ``PLATFORM_SEAL_DIR``); with ``demo`` a missing CA is created on first use.
    """
    engine = make_engine(normalize_db_url(db_url))
    sessionmaker = make_sessionmaker(engine)
    if init_db:
        from service_platform.seed.loader import seed_if_empty

        create_tables(engine)
        with sessionmaker() as db:
            seed_if_empty(db, demo=demo, demo_kiosk_public_key=demo_kiosk_public_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        from service_platform.retention import run_periodically

        # retention (service_platform/retention.py): old citizen sessions, idempotency records, unclaimed uploads
        sweeper = asyncio.create_task(run_periodically(_app)) if _app.state.retention.interval_s > 0 else None
        # pyHanko's import and a demo seal CA, off the first sealed PDF's request (seal.py)
        warm = asyncio.create_task(asyncio.to_thread(_app.state.seal_keeper.warm_up))
        yield
        warm.cancel()
        if sweeper is not None:
            sweeper.cancel()
        engine.dispose()

    app = FastAPI(title="Service platform (一网通办) — reference", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, generate_unique_id_function=_operation_id,
                  dependencies=[Depends(single_valued_query)])
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.clock = clock
    app.state.session_ttl = session_ttl
    app.state.nonce_store = NonceStore()
    app.state.auth_clock = auth_clock
    if photo_source is None:
        photo_map = os.environ.get("PLATFORM_PHOTOS", "").strip()
        photo_source = load_photo_map(photo_map) if photo_map else PhotoRegistry()
    app.state.photo_source = photo_source
    if isinstance(payment_provider_key, str):
        payment_provider_key = load_public_key(payment_provider_key)
    app.state.payment_provider_key = payment_provider_key if payment_provider_key is not None else key_from_env()
    app.state.pdf_cache = PdfCache()
    app.state.lookup_throttle = FailureThrottle()  # progress lookups with the ID number's last 4
    limit = max_citizens_per_hour or int(os.environ.get("PLATFORM_MAX_CITIZENS_PER_HOUR") or 0)
    app.state.identity_guard = IdentityGuard(limit or DEFAULT_MAX_CITIZENS_PER_HOUR)
    from service_platform.retention import RetentionPolicy

    app.state.retention = RetentionPolicy.from_env()  # PLATFORM_RETENTION_INTERVAL_S=0: no periodic sweep
    from service_platform.seal import SealKeeper

    app.state.public_base_url = (public_base_url or os.environ.get("PLATFORM_PUBLIC_URL", "").strip()
                                 or None)
    app.state.seal_keeper = SealKeeper(seal_dir or os.environ.get("PLATFORM_SEAL_DIR", "").strip() or None,
                                       auto_init=demo)
    app.state.verify_throttle = FailureThrottle(limit=20)  # public verify pages and phone-upload links
    install_error_handlers(app)
    for module in (health, catalogue, applications, citizen_sessions, ratings, ecertificates, filing, payments,
                   halls, deliveries, staff):
        app.include_router(module.router)
    # proofs on demand, kiosk config, public verification pages, phone upload
    for extra in (proofs.router, phone_uploads.router, verify.api, verify.pages, phone_uploads.pages):
        app.include_router(extra)
    from service_platform.routes import feedback, proxy  # 代办, complaints and consultations

    app.include_router(proxy.router)
    app.include_router(feedback.router)
    from service_platform.routes import usage

    app.include_router(usage.router)   # aggregate feature counts for kiosks' elderly-mode menus
    app.include_router(staff.public_router)
    from service_platform import technicians   # technicians per kiosk: maintenance by card + PIN (yes/no lookups)

    app.state.technician_throttle = FailureThrottle(limit=20)   # unknown technician cards per kiosk
    app.include_router(technicians.router)
    _install_metrics(app, metrics_token)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _install_metrics(app: FastAPI, token: str | None) -> None:
    """Prometheus ``/metrics`` (metrics.py): per route template, method and status class; not in the OpenAPI."""
    from service_platform.errors import ApiError
    from service_platform.metrics import CONTENT_TYPE, MetricsMiddleware, PlatformMetrics, token_ok

    metrics = PlatformMetrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics, router_app=app.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        if token is None:
            raise ApiError(404, "not_found", "metrics are not enabled (serve --metrics-token-file)")
        if not token_ok(token, request.headers.get("authorization")):
            raise ApiError(401, "unauthorized", "a metrics scrape token is required",
                           headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)


def _operation_id(route: APIRoute) -> str:
    return route.name


_KIOSK_SCHEMES = ("KioskId", "KioskKeyId", "KioskTimestamp", "KioskNonce", "KioskSignature")
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
            if schemes & set(_KIOSK_SCHEMES):
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
