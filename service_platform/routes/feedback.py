"""Complaints (投诉) and consultations (咨询) sent from a kiosk, their public progress, and their handling by the
responsible department's staff.

**Reference format** (printed on the receipt and in its QR code, queried like an application number): ``FB`` +
yyyymmdd (China Standard Time) + 6 random digits + 1 Luhn check digit (the digits after ``FB``), 17 characters, e.g.
``FB202612071234563``. Random, so one reference says nothing about the next. :func:`is_reference` checks the shape.

**Who may call.**

* ``POST /api/v1/feedback`` — a signed kiosk (KIOSK-ED25519-V1; 401 ``unauthorized`` without), with
  ``Idempotency-Key``; anonymous, or with the citizen's session (``Authorization: Bearer``: the session must be this
  kiosk's and live, else 401 — a bad token is never silently ignored). The platform answers ``received``.
* ``GET /api/v1/feedback/{reference}`` — public, like ``GET applications/{number}``: the kind, state and time of
  the last change only (no text, service, kiosk, reply or person).
* ``GET/PATCH /api/v1/staff/feedback…`` — department staff (``Authorization: Bearer`` staff token, see
  routes/staff.py): only their own department's items (another's is 404 like a missing one); they set the state and
  the reply. Kiosk signatures and citizen tokens are not staff credentials (401 ``staff_unauthorized``).

The text and reply are shown only to the department's staff — never in logs, public answers or metrics.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.auth import citizen_bearer, optional_citizen_request, require_kiosk, require_live_if_any
from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.models import Feedback, Kiosk, Service, StaffMember
from service_platform.numbering import luhn_check_digit
from service_platform.routes.applications import local
from service_platform.routes.staff import KIOSK_DEPARTMENT, require_staff
from service_platform.schemas import NOT_BLANK_PATTERN, _In

router = APIRouter(prefix="/api/v1", tags=["feedback"])

FeedbackKind = Literal["complaint", "consultation"]
FeedbackStatus = Literal["received", "in_progress", "answered", "closed"]
PREFIX = "FB"
#: a complaint is to be answered within this time (投诉 15 working days is usual; calendar days here)
ANSWER_WITHIN = dt.timedelta(days=15)
STATUS_TEXT: dict[str, tuple[str, str]] = {
    "received": ("已收到", "Received"),
    "in_progress": ("办理中", "Being handled"),
    "answered": ("已答复", "Answered"),
    "closed": ("已办结", "Closed"),
}
RECEIVED_TEXT = ("您的{kind}已收到，编号 {reference}，我们将在15日内答复。",
                 "Your {kind} was received, reference {reference}; we will answer within 15 days.")
KIND_TEXT = {"complaint": ("投诉", "complaint"), "consultation": ("咨询", "question")}


def new_reference(at: dt.datetime) -> str:
    body = at.astimezone(CHINA_TZ).strftime("%Y%m%d") + f"{secrets.randbelow(1_000_000):06d}"
    return PREFIX + body + luhn_check_digit(body)


def is_reference(value: str) -> bool:
    """The shape of a feedback reference (``FB`` + 14 digits + Luhn check digit)."""
    return (len(value) == 17 and value[:2] == PREFIX and value[2:].isdigit()
            and luhn_check_digit(value[2:16]) == value[16])


class FeedbackIn(_In):
    kind: FeedbackKind
    text: str = Field(min_length=1, max_length=500, json_schema_extra={"pattern": NOT_BLANK_PATTERN},
                      description="What the citizen wrote (shown only to the responsible department)")
    service_code: str | None = Field(default=None, max_length=60,
                                     description="The service it is about (its department handles it)")


class FeedbackReceived(BaseModel):
    reference: str = Field(examples=["FB202612071234563"])
    kind: FeedbackKind
    status: FeedbackStatus = Field(description="Always received when created")
    message_zh: str
    message_en: str
    service_code: str | None
    created_at: dt.datetime
    answer_due: dt.datetime
    with_session: bool = Field(description="Linked to the citizen's session (false: anonymous)")


class FeedbackStatusOut(BaseModel):
    reference: str
    kind: FeedbackKind
    status: FeedbackStatus
    status_text_zh: str
    status_text_en: str
    updated_at: dt.datetime


class StaffFeedbackOut(BaseModel):
    id: int
    reference: str
    kind: FeedbackKind
    department: str
    service_code: str | None
    text: str
    kiosk_id: str
    with_session: bool
    status: FeedbackStatus
    reply: str | None
    created_at: dt.datetime
    due_at: dt.datetime
    overdue: bool
    updated_at: dt.datetime
    updated_by: str | None


class StaffFeedbackList(BaseModel):
    items: list[StaffFeedbackOut]
    total: int


class StaffFeedbackUpdate(BaseModel):
    """Move the item on and/or answer it. ``answered`` needs a reply (now or before); a closed item cannot change
    (409 ``already_closed``)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["in_progress", "answered", "closed"] | None = None
    reply: str | None = Field(default=None, min_length=1, max_length=2000, pattern=r"\S")


def _department(db: Session, service_code: str | None) -> str:
    if service_code:
        department = db.scalar(select(Service.department).where(Service.code == service_code))
        if department is None:
            raise ApiError(422, "unknown_service", f"no service {service_code!r}")
        return department
    return KIOSK_DEPARTMENT


@router.post("/feedback", response_model=FeedbackReceived, status_code=201, responses=error_responses(401, 409, 422),
             summary="File a complaint or a question (投诉/咨询); the platform answers received with a reference",
             openapi_extra={"x-citizen-session": "optional"})
def create_feedback(body: FeedbackIn, kiosk: Kiosk = Depends(require_kiosk),
                    idempotency_key: str = Depends(require_idempotency_key),
                    creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                    db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """Anonymous, or linked to the citizen session of the Bearer token (this kiosk's, live: else 401). The
    responsible department is the service's (else the kiosk operations centre). The same ``Idempotency-Key``
    with the same request returns the first answer (one reference, never two)."""
    if not re.search(NOT_BLANK_PATTERN, body.text):
        raise ApiError(422, "validation_failed", "text: must not be blank")
    citizen, payload = optional_citizen_request(db, kiosk, creds, body)

    def create() -> tuple[int, dict]:
        require_live_if_any(citizen, now)
        department = _department(db, body.service_code)
        reference = new_reference(now)
        while db.scalar(select(Feedback.id).where(Feedback.reference == reference)) is not None:
            reference = new_reference(now)
        item = Feedback(reference=reference, kind=body.kind, service_code=body.service_code, text=body.text.strip(),
                        department=department, kiosk_id=kiosk.id, citizen_session_id=citizen.id if citizen else None,
                        status="received", created_at=now, due_at=now + ANSWER_WITHIN, updated_at=now)
        db.add(item)
        db.flush()
        zh_kind, en_kind = KIND_TEXT[body.kind]
        out = FeedbackReceived(
            reference=reference, kind=body.kind, status="received",
            message_zh=RECEIVED_TEXT[0].format(kind=zh_kind, reference=reference),
            message_en=RECEIVED_TEXT[1].format(kind=en_kind, reference=reference),
            service_code=body.service_code, created_at=local(now), answer_due=local(item.due_at),
            with_session=citizen is not None)
        return 201, out.model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/feedback", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


def _status_out(item: Feedback) -> FeedbackStatusOut:
    zh, en = STATUS_TEXT[item.status]
    return FeedbackStatusOut(reference=item.reference, kind=item.kind, status=item.status,  # type: ignore[arg-type]
                             status_text_zh=zh, status_text_en=en, updated_at=local(item.updated_at))


@router.get("/feedback/{reference}", response_model=FeedbackStatusOut, responses=error_responses(404),
            summary="Public progress of a complaint or question by its reference (state only)")
def feedback_status(response: Response, reference: str = Path(max_length=24, examples=["FB202612071234563"]),
                    db: Session = Depends(get_db)) -> FeedbackStatusOut:
    """No login: the kind, the state and when it last changed — nothing of what was written or answered."""
    item = db.scalar(select(Feedback).where(Feedback.reference == reference.strip().upper()))
    if item is None:
        raise not_found(f"feedback {reference!r}")
    response.headers["Cache-Control"] = "no-store"
    return _status_out(item)


# --- staff ---------------------------------------------------------------------------------------------------------

def _staff_out(item: Feedback, now: dt.datetime) -> StaffFeedbackOut:
    return StaffFeedbackOut(
        id=item.id, reference=item.reference, kind=item.kind, department=item.department,  # type: ignore[arg-type]
        service_code=item.service_code, text=item.text, kiosk_id=item.kiosk_id,
        with_session=item.citizen_session_id is not None, status=item.status,  # type: ignore[arg-type]
        reply=item.reply, created_at=local(item.created_at), due_at=local(item.due_at),
        overdue=item.status not in ("answered", "closed") and now > item.due_at,
        updated_at=local(item.updated_at), updated_by=item.updated_by)


@router.get("/staff/feedback", response_model=StaffFeedbackList, responses=error_responses(401),
            summary="The department's complaints and questions (oldest due first)")
def list_feedback(status: Annotated[FeedbackStatus | None, Query()] = None,
                  kind: Annotated[FeedbackKind | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                  staff: StaffMember = Depends(require_staff), db: Session = Depends(get_db),
                  now: dt.datetime = Depends(get_now)) -> StaffFeedbackList:
    query = select(Feedback).where(Feedback.department == staff.department)
    if status is not None:
        query = query.where(Feedback.status == status)
    if kind is not None:
        query = query.where(Feedback.kind == kind)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Feedback.due_at, Feedback.id).limit(limit).offset(offset)).all()
    return StaffFeedbackList(items=[_staff_out(i, now) for i in rows], total=total)


FeedbackId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.patch("/staff/feedback/{feedback_id}", response_model=StaffFeedbackOut,
              responses=error_responses(401, 404, 409, 422), summary="Handle or answer a complaint or question")
def update_feedback(feedback_id: FeedbackId, body: StaffFeedbackUpdate, staff: StaffMember = Depends(require_staff),
                    db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> StaffFeedbackOut:
    item = db.get(Feedback, feedback_id)
    if item is None or item.department != staff.department:
        raise not_found("feedback")
    if item.status == "closed":
        raise ApiError(409, "already_closed", "this item is closed")
    reply = body.reply.strip() if body.reply is not None else None
    if body.status == "answered" and not (reply or item.reply):
        raise ApiError(422, "reply_required", "write the reply before marking it answered")
    if reply:
        item.reply = reply
    if body.status is not None:
        item.status = body.status
    item.updated_at, item.updated_by = now, staff.name
    db.commit()
    return _staff_out(item, now)
