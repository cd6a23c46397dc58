"""Application (办件) progress: public lookup by number, with the applicant's name masked."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service_platform.db import CHINA_TZ
from service_platform.deps import get_db
from service_platform.errors import error_responses, not_found
from service_platform.identity import mask_name
from service_platform.models import Application
from service_platform.schemas import ApplicationProgress, TimelineEntry

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


@router.get("/applications/{number}", response_model=ApplicationProgress, responses=error_responses(404),
            summary="Public progress of an application by its number")
def get_application(response: Response,
                    number: str = Path(max_length=24, examples=["SP20261027000102"]),
                    db: Session = Depends(get_db)) -> ApplicationProgress:
    """No login needed (as on the provincial portal); the applicant appears only masked (张*华), never with the
    full name or ID number."""
    app = db.scalar(select(Application).where(Application.number == number.strip().upper())
                    .options(selectinload(Application.events)))
    if app is None:
        raise not_found(f"application {number!r}")
    response.headers["Cache-Control"] = "no-store"
    return progress_of(app)
