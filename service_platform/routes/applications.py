"""Application (办件) progress by number, without a card: the state only (GET), or — with the last 4 characters of
the applicant's ID number (POST …/lookup, throttled) — the full progress with the applicant's name masked."""
from __future__ import annotations

import datetime as dt
import hmac

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.identity import mask_name
from service_platform.models import Application
from service_platform.schemas import ApplicationLookup, ApplicationProgress, ApplicationStatusOut, TimelineEntry

router = APIRouter(prefix="/api/v1", tags=["applications"])

STATUS_TEXT: dict[str, tuple[str, str]] = {
    "received": ("已接收", "Received"),
    "accepted": ("已受理", "Accepted"),
    "in_review": ("审查中", "In review"),
    "supplement_required": ("待补正材料", "Supplementary documents required"),
    "decided": ("已办结", "Decided"),
    "rejected": ("不予受理", "Rejected"),
    "delivered": ("已送达", "Delivered"),
}


def local(at: dt.datetime) -> dt.datetime:
    return at.astimezone(CHINA_TZ)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """``start`` + ``days`` working days, skipping Saturdays and Sundays (no public-holiday calendar yet)."""
    day = start
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


def progress_of(app: Application) -> ApplicationProgress:
    zh, en = STATUS_TEXT[app.status]
    submitted = local(app.submitted_at)
    return ApplicationProgress(
        number=app.number, service_code=app.service_code, service_name=app.service.name,
        status=app.status, status_text_zh=zh, status_text_en=en,  # type: ignore[arg-type]
        applicant_masked=mask_name(app.applicant_name), submitted_at=submitted, department=app.department,
        promised_date=add_working_days(submitted.date(), app.service.promised_days),
        timeline=[TimelineEntry(status=e.status, at=local(e.at), department=e.department,  # type: ignore[arg-type]
                                note=e.note) for e in app.events],
    )


def _find(db: Session, number: str) -> Application | None:
    return db.scalar(select(Application).where(Application.number == number.strip().upper())
                     .options(selectinload(Application.events)))


@router.get("/applications/{number}", response_model=ApplicationStatusOut, responses=error_responses(404),
            summary="Public status of an application by its number (state only)")
def get_application(response: Response,
                    number: str = Path(max_length=24, examples=["SP20261027000102"]),
                    db: Session = Depends(get_db)) -> ApplicationStatusOut:
    """No login needed: only the state and the time of the last step — no service, no name, no kiosk, no
    timeline (a number found on a lost receipt tells nothing about its applicant). The full progress needs the last
    4 characters of the applicant's ID number (``POST …/lookup``) or the citizen's session (``GET me/…``)."""
    app = _find(db, number)
    if app is None:
        raise not_found(f"application {number!r}")
    response.headers["Cache-Control"] = "no-store"
    zh, en = STATUS_TEXT[app.status]
    updated = max((e.at for e in app.events), default=app.submitted_at)
    return ApplicationStatusOut(number=app.number, status=app.status,  # type: ignore[arg-type]
                                status_text_zh=zh, status_text_en=en, updated_at=local(updated))


@router.post("/applications/{number}/lookup", response_model=ApplicationProgress,
             responses={**error_responses(404, 422), 429: {
                 **error_responses(429)[429],
                 "description": "Too many failed lookups from this address (too_many_attempts; Retry-After)"}},
             summary="Full progress of an application by its number and the applicant's ID number's last 4")
def lookup_application(body: ApplicationLookup, request: Request, response: Response,
                       number: str = Path(max_length=24, examples=["SP20261027000102"]),
                       db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> ApplicationProgress:
    """The progress with its timeline, service and masked applicant (张*华) for whoever knows the number AND the
    last 4 characters of the applicant's ID number (POST: they stay out of URLs and access logs). A wrong last 4
    is answered exactly like an unknown number (404 ``not_found``). Each 404 counts against the caller's address:
    after 10 within 10 minutes every lookup from it is refused with 429 ``too_many_attempts`` (``Retry-After``)."""
    throttle = request.app.state.lookup_throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client, now)
    if wait is not None:
        raise ApiError(429, "too_many_attempts", "too many failed lookups from this address; try again later",
                       headers={"Retry-After": str(wait)})
    app = _find(db, number)
    given = body.id_last4.upper().encode("ascii")
    expected = (app.applicant_id_number[-4:].upper() if app is not None else "????").encode("ascii")
    if not hmac.compare_digest(given, expected) or app is None:
        throttle.failed(client, now)
        raise not_found(f"application {number!r}")
    response.headers["Cache-Control"] = "no-store"
    return progress_of(app)
