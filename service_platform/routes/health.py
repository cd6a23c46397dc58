"""Liveness/readiness probe."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service_platform import __version__
from service_platform.deps import get_db
from service_platform.errors import ApiError, error_responses
from service_platform.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses=error_responses(503), summary="Health check")
def healthz(db: Session = Depends(get_db)) -> Health:
    """``{"status": "ok", "version": ...}`` once the database answers; 503 ``database_unavailable`` if not."""
    try:
        db.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise ApiError(503, "database_unavailable", "the database does not answer") from exc
    return Health(status="ok", version=__version__)


router.add_api_route("/api/v1/healthz", healthz, methods=["GET"], response_model=Health,
                     responses=error_responses(503), summary="Health check (same as /healthz)",
                     name="healthz_api_v1")


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")
