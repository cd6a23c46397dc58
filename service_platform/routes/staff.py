"""差评整改: the follow-up of ★1–2 ratings by the responsible department, and the public summary of ratings.

**Who.** Department staff authenticate with a random API token made by ``service-platform staff add --name …
--department …`` (printed once; the platform keeps only its SHA-256), sent as ``Authorization: Bearer <token>`` on
``/api/v1/staff/…``. A staff member sees and changes only their own department's items (another department's item is
404 ``not_found``, exactly like an id that does not exist). Kiosk signatures and citizen tokens are not staff
credentials: a citizen token is an unknown token here (401 ``staff_unauthorized``); a disabled staff member is 401 too.

**What.** Every rating of 1–2 stars opens one follow-up for the department responsible for what was rated (a
service's ``department``; an application's service's; kiosk actions go to :data:`KIOSK_DEPARTMENT`), due 15 days
after the rating (:data:`DUE_AFTER`; ``overdue`` once past that and not closed). Staff list and filter the queue,
assign a person, note the action taken, close (closing needs the action taken). The rating's comment is shown only
here, to that department — never in logs, the public summary or any other answer.

**Public summary** ``GET /api/v1/public/ratings/summary``: per service, counts per star, the share of ★1–2 and the
most used suggested tags — no kiosk, no time, no comment, no free-text tag; small-cell rule: a count under
:data:`MIN_CELL` is suppressed (``null``), with secondary suppression so that no suppressed count can be worked out
from the total and the others.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.auth import hash_token
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.models import Application, Rating, RatingFollowUp, Service, StaffMember
from service_platform.routes.applications import local

router = APIRouter(prefix="/api/v1", tags=["staff"])
public_router = APIRouter(prefix="/api/v1", tags=["ratings"])

#: where ratings of kiosk actions (not of a service) go
KIOSK_DEPARTMENT = "自助终端运营中心"
#: a ★1–2 rating is to be closed within this time, else it is flagged overdue
DUE_AFTER = dt.timedelta(days=15)
#: small-cell rule of the public summary
MIN_CELL = 5

staff_bearer = HTTPBearer(auto_error=False, scheme_name="StaffToken",
                          description="Department staff API token from `service-platform staff add` (only its "
                                      "SHA-256 is stored); only for /api/v1/staff/…")

FollowUpStatus = Literal["open", "assigned", "closed"]


# --- staff identity ------------------------------------------------------------------------------------------------

def add_staff(db: Session, name: str, department: str, now: dt.datetime) -> str:
    """Create (or re-key) a staff member; returns the new token (shown once)."""
    token = "stf_" + secrets.token_urlsafe(32)
    member = db.scalar(select(StaffMember).where(StaffMember.name == name))
    if member is None:
        member = StaffMember(name=name, department=department, token_hash=hash_token(token), active=True,
                             created_at=now)
        db.add(member)
    else:
        member.department, member.token_hash, member.active = department, hash_token(token), True
    db.flush()
    return token


def _staff_unauthorized() -> ApiError:
    return ApiError(401, "staff_unauthorized", "a valid staff token is required",
                    headers={"WWW-Authenticate": "Bearer"})


def require_staff(creds: HTTPAuthorizationCredentials | None = Depends(staff_bearer),
                  db: Session = Depends(get_db)) -> StaffMember:
    if creds is None or not creds.credentials or len(creds.credentials) > 200:
        raise _staff_unauthorized()
    member = db.scalar(select(StaffMember).where(StaffMember.token_hash == hash_token(creds.credentials)))
    if member is None or not member.active:
        raise _staff_unauthorized()
    return member


# --- opening a follow-up (called by POST ratings) ------------------------------------------------------------------

def responsible(db: Session, target_type: str, target_id: str) -> tuple[str, str | None]:
    """(department, service code) responsible for what a rating is about."""
    code: str | None = None
    if target_type == "service":
        code = target_id
    elif target_type == "application":
        code = db.scalar(select(Application.service_code).where(Application.number == target_id))
    if code is not None:
        department = db.scalar(select(Service.department).where(Service.code == code))
        if department:
            return department, code
    return KIOSK_DEPARTMENT, code


def open_followup(db: Session, rating: Rating, now: dt.datetime) -> None:
    if rating.stars > 2:
        return
    department, code = responsible(db, rating.target_type, rating.target_id)
    db.add(RatingFollowUp(rating_id=rating.id, department=department, service_code=code, status="open",
                          created_at=now, due_at=now + DUE_AFTER, updated_at=now))


# --- schemas -------------------------------------------------------------------------------------------------------

class StaffOut(BaseModel):
    name: str
    department: str


class FollowUpOut(BaseModel):
    id: int
    department: str
    service_code: str | None
    target_type: str
    target_id: str = Field(description="Application number, service code or kiosk action rated")
    stars: int
    tags: list[str]
    comment: str | None = Field(description="The citizen's comment, shown only to the responsible department")
    kiosk_id: str
    rated_at: dt.datetime
    status: FollowUpStatus
    assignee: str | None
    action_taken: str | None
    due_at: dt.datetime
    overdue: bool = Field(description="Not closed and past due_at (15 days after the rating)")
    updated_at: dt.datetime
    updated_by: str | None
    closed_at: dt.datetime | None


class FollowUpList(BaseModel):
    items: list[FollowUpOut]
    total: int
    overdue: int = Field(description="Overdue items of the department (whatever the filters)")


class FollowUpUpdate(BaseModel):
    """Assign, note the action taken, close — any of them at once (closing needs the action taken, given now or
    before). A closed item cannot be changed (409 ``already_closed``)."""

    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(default=None, min_length=1, max_length=80, pattern=r"\S",
                                 description="The person who handles it")
    action_taken: str | None = Field(default=None, min_length=1, max_length=2000, pattern=r"\S",
                                     description="What was done (replaces the previous note)")
    close: StrictBool = False


class StarCounts(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    one: int | None = Field(alias="1")
    two: int | None = Field(alias="2")
    three: int | None = Field(alias="3")
    four: int | None = Field(alias="4")
    five: int | None = Field(alias="5")


class TagCount(BaseModel):
    code: str
    count: int


class ServiceRatingSummary(BaseModel):
    service_code: str
    service_name: str
    department: str
    total: int | None = Field(description="null when under 5 (then everything else of the row is null/empty too)")
    stars: StarCounts = Field(description="Counts per star; null = suppressed (under 5, or to protect another)")
    low_share: float | None = Field(description="Share of ★1–2 (0–1), null when it would disclose a small count")
    top_tags: list[TagCount] = Field(description="Up to 3 suggested tags used at least 5 times, most used first")


class RatingSummary(BaseModel):
    min_cell: int = Field(description="Counts under this are suppressed (null)")
    services: list[ServiceRatingSummary]


# --- staff routes --------------------------------------------------------------------------------------------------

def _out(item: RatingFollowUp, now: dt.datetime) -> FollowUpOut:
    r = item.rating
    return FollowUpOut(
        id=item.id, department=item.department, service_code=item.service_code, target_type=r.target_type,
        target_id=r.target_id, stars=r.stars, tags=list(r.tags or []), comment=r.comment, kiosk_id=r.kiosk_id,
        rated_at=local(r.created_at), status=item.status,  # type: ignore[arg-type]
        assignee=item.assignee, action_taken=item.action_taken, due_at=local(item.due_at),
        overdue=item.status != "closed" and now > item.due_at, updated_at=local(item.updated_at),
        updated_by=item.updated_by, closed_at=local(item.closed_at) if item.closed_at else None)


@router.get("/staff/me", response_model=StaffOut, responses=error_responses(401),
            summary="The calling staff member and their department")
def staff_me(staff: StaffMember = Depends(require_staff)) -> StaffOut:
    return StaffOut(name=staff.name, department=staff.department)


@router.get("/staff/rating-followups", response_model=FollowUpList, responses=error_responses(401),
            summary="The department's queue of ★1–2 ratings to follow up (差评整改)")
def list_followups(status: Annotated[FollowUpStatus | None, Query()] = None,
                   overdue: Annotated[Literal["true", "false"] | None, Query(
                       description="true: only overdue items; false: only those not overdue")] = None,
                   service_code: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
                   assignee: Annotated[str | None, Query(min_length=1, max_length=80)] = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
                   staff: StaffMember = Depends(require_staff), db: Session = Depends(get_db),
                   now: dt.datetime = Depends(get_now)) -> FollowUpList:
    """Only the caller's department's items, oldest due first. ``overdue=true``: not closed and past due."""
    mine = RatingFollowUp.department == staff.department
    query = select(RatingFollowUp).where(mine)
    if status is not None:
        query = query.where(RatingFollowUp.status == status)
    if overdue is not None:
        late = (RatingFollowUp.status != "closed") & (RatingFollowUp.due_at < now)
        query = query.where(late if overdue == "true" else ~late)
    if service_code is not None:
        query = query.where(RatingFollowUp.service_code == service_code)
    if assignee is not None:
        query = query.where(RatingFollowUp.assignee == assignee)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(RatingFollowUp.due_at, RatingFollowUp.id).limit(limit).offset(offset)).all()
    late_count = db.scalar(select(func.count(RatingFollowUp.id)).where(
        mine, RatingFollowUp.status != "closed", RatingFollowUp.due_at < now)) or 0
    return FollowUpList(items=[_out(item, now) for item in rows], total=total, overdue=late_count)


def _mine(db: Session, staff: StaffMember, followup_id: int) -> RatingFollowUp:
    item = db.get(RatingFollowUp, followup_id)
    if item is None or item.department != staff.department:
        raise not_found("rating follow-up")  # another department's item looks like a missing one
    return item


FollowUpId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/staff/rating-followups/{followup_id}", response_model=FollowUpOut, responses=error_responses(401, 404),
            summary="One follow-up of the department")
def get_followup(followup_id: FollowUpId, staff: StaffMember = Depends(require_staff),
                 db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> FollowUpOut:
    return _out(_mine(db, staff, followup_id), now)


@router.patch("/staff/rating-followups/{followup_id}", response_model=FollowUpOut,
              responses=error_responses(401, 404, 409, 422),
              summary="Assign, note the action taken, close")
def update_followup(followup_id: FollowUpId, body: FollowUpUpdate, staff: StaffMember = Depends(require_staff),
                    db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> FollowUpOut:
    """Closing without an action taken (now or before) is 422 ``action_required``; any change to a closed item is
    409 ``already_closed``. Repeating the same change is harmless (not creating: no Idempotency-Key)."""
    item = _mine(db, staff, followup_id)
    if item.status == "closed":
        raise ApiError(409, "already_closed", "this follow-up is closed")
    action = body.action_taken.strip() if body.action_taken is not None else None
    if body.close and not (action or item.action_taken):
        raise ApiError(422, "action_required", "note the action taken before closing")
    if body.assignee is not None:
        item.assignee = body.assignee.strip()
        item.status = "assigned"
    if action:
        item.action_taken = action
    if body.close:
        item.status, item.closed_at = "closed", now
    item.updated_at, item.updated_by = now, staff.name
    db.commit()
    return _out(item, now)


# --- public summary ------------------------------------------------------------------------------------------------

def suppress(counts: dict[int, int]) -> tuple[dict[int, int | None], bool]:
    """Small-cell rule on one row of counts per star: every count under MIN_CELL is hidden; while the hidden ones
    add up to 1–4 (derivable from the total) the smallest shown one is hidden too. Returns the row and whether the
    share of ★1–2 may be shown (not when it would give away a hidden count)."""
    hidden = {star for star, n in counts.items() if n < MIN_CELL}
    while hidden and 0 < sum(counts[s] for s in hidden) < MIN_CELL and len(hidden) < len(counts):
        hidden.add(min((s for s in counts if s not in hidden), key=lambda s: (counts[s], s)))
    low = hidden & {1, 2}
    low_sum = counts[1] + counts[2]
    share_ok = (not low or low == hidden) and (low_sum == 0 or low_sum >= MIN_CELL) \
        and (sum(counts.values()) - low_sum == 0 or sum(counts.values()) - low_sum >= MIN_CELL)
    return {s: (None if s in hidden else n) for s, n in counts.items()}, share_ok


@public_router.get("/public/ratings/summary", response_model=RatingSummary, response_model_by_alias=True,
                   summary="Public summary of ratings per service (好差评 公示), no personal data")
def ratings_summary(db: Session = Depends(get_db)) -> RatingSummary:
    """Ratings of a service or of an application (counted for its service), per service: counts per star, the
    share of ★1–2 and the most used suggested tags (codes of ``GET rating-tags``; free text never). No kiosk, time,
    comment or person. Counts under 5 are suppressed (``null``); a service with fewer than 5 ratings shows no
    figure at all."""
    from service_platform.routes.ratings import BAD_TAGS, GOOD_TAGS

    known = {t.code for t in GOOD_TAGS + BAD_TAGS}
    service_of = func.coalesce(Application.service_code, Rating.target_id)
    rows = db.execute(
        select(service_of, Rating.stars, Rating.tags)
        .select_from(Rating)
        .outerjoin(Application, (Rating.target_type == "application") & (Application.number == Rating.target_id))
        .where(Rating.target_type.in_(("service", "application")))).all()
    per: dict[str, dict[int, int]] = {}
    tags: dict[str, dict[str, int]] = {}
    for code, stars, row_tags in rows:
        if code is None or not 1 <= stars <= 5:
            continue
        per.setdefault(code, dict.fromkeys(range(1, 6), 0))[stars] += 1
        for tag in set(row_tags or []):
            if tag in known:
                tags.setdefault(code, {}).setdefault(tag, 0)
                tags[code][tag] += 1
    services = {s.code: s for s in db.scalars(select(Service).where(Service.code.in_(list(per)))).all()}
    out: list[ServiceRatingSummary] = []
    for code in sorted(per):
        service = services.get(code)
        if service is None:
            continue
        counts = per[code]
        total = sum(counts.values())
        if total < MIN_CELL:
            row, share_ok, shown_total = dict.fromkeys(counts, None), False, None
        else:
            row, share_ok = suppress(counts)
            shown_total = total
        top = sorted(((n, t) for t, n in tags.get(code, {}).items() if n >= MIN_CELL), key=lambda x: (-x[0], x[1]))
        out.append(ServiceRatingSummary(
            service_code=code, service_name=service.name, department=service.department, total=shown_total,
            stars=StarCounts(**{str(s): row[s] for s in range(1, 6)}),
            low_share=round((counts[1] + counts[2]) / total, 3) if share_ok and shown_total else None,
            top_tags=[TagCount(code=t, count=n) for n, t in top[:3]] if shown_total else []))
    return RatingSummary(min_cell=MIN_CELL, services=out)
