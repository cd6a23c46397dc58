"""好差评: ratings of an application, a service or a kiosk action, and the suggested tags."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.auth import citizen_bearer, optional_citizen_request, require_kiosk, require_live_if_any
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.models import Application, Kiosk, Rating, Service
from service_platform.routes.applications import local
from service_platform.routes.staff import open_followup
from service_platform.schemas import RatingCreate, RatingOut, RatingTag, RatingTags

router = APIRouter(prefix="/api/v1", tags=["ratings"])

GOOD_TAGS = [
    RatingTag(code="fast", zh="办事快捷", en="Fast"),
    RatingTag(code="one_visit", zh="一次办成", en="Done in one go"),
    RatingTag(code="friendly", zh="态度热情", en="Friendly service"),
    RatingTag(code="clear_guidance", zh="指引清晰", en="Clear guidance"),
    RatingTag(code="few_materials", zh="材料精简", en="Few documents needed"),
    RatingTag(code="easy_to_use", zh="操作简便", en="Easy to use"),
]
BAD_TAGS = [
    RatingTag(code="long_wait", zh="等待时间长", en="Long wait"),
    RatingTag(code="too_many_materials", zh="材料要求多", en="Too many documents"),
    RatingTag(code="complicated", zh="操作复杂", en="Complicated to use"),
    RatingTag(code="unclear_guidance", zh="指引不清", en="Unclear guidance"),
    RatingTag(code="multiple_trips", zh="多次跑腿", en="Had to come several times"),
    RatingTag(code="device_fault", zh="设备故障", en="Device not working"),
    RatingTag(code="poor_attitude", zh="服务态度差", en="Unfriendly staff"),
]

SCOPE = "POST /api/v1/ratings"


@router.get("/rating-tags", response_model=RatingTags, summary="Suggested rating tags")
def rating_tags() -> RatingTags:
    """Reference data, public like the catalogue. Send a tag's ``code`` (preferred) or free text in ``tags``."""
    return RatingTags(good=GOOD_TAGS, bad=BAD_TAGS)


def _check_target(db: Session, body: RatingCreate) -> None:
    if body.target_type == "application":
        found = db.scalar(select(Application.id).where(Application.number == body.target_id))
    elif body.target_type == "service":
        found = db.scalar(select(Service.id).where(Service.code == body.target_id))
    else:
        return
    if found is None:
        raise ApiError(422, "unknown_target", f"no {body.target_type} {body.target_id!r}")


@router.post("/ratings", response_model=RatingOut, status_code=201,
             responses=error_responses(401, 409, 422),
             summary="Submit a rating (好差评)",
             openapi_extra={"x-citizen-session": "optional"})
def create_rating(body: RatingCreate,
                  kiosk: Kiosk = Depends(require_kiosk),
                  idempotency_key: str = Depends(require_idempotency_key),
                  creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                  db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """1–2 stars need a reason: at least one tag or a comment (422 ``reason_required``). A Bearer token links the
    rating to the citizen session. The same ``Idempotency-Key`` with the same request returns the first result
    (same id, header ``Idempotent-Replayed: true``) even after the citizen session has ended; with a different
    request it is 409 ``idempotency_conflict``."""
    citizen, payload = optional_citizen_request(db, kiosk, creds, body)

    def create() -> tuple[int, dict]:
        require_live_if_any(citizen, now)
        if body.kiosk_id is not None and body.kiosk_id != kiosk.id:
            raise ApiError(422, "kiosk_mismatch", "kiosk_id in the body differs from X-Kiosk-Id")
        comment = body.comment.strip() if body.comment else None
        tags = [t.strip() for t in body.tags if t.strip()]
        if body.stars <= 2 and not tags and not comment:
            raise ApiError(422, "reason_required", "ratings of 1–2 stars need at least one tag or a comment")
        _check_target(db, body)
        rating = Rating(target_type=body.target_type, target_id=body.target_id, stars=body.stars, tags=tags,
                        comment=comment or None, kiosk_id=kiosk.id,
                        citizen_token_id=citizen.id if citizen else None,
                        idempotency_key=idempotency_key, created_at=now)
        db.add(rating)
        db.flush()
        open_followup(db, rating, now)  # ★1–2: the responsible department's queue (routes/staff.py)
        out = RatingOut(id=rating.id, target_type=rating.target_type,  # type: ignore[arg-type]
                        target_id=rating.target_id, stars=rating.stars, tags=rating.tags, comment=rating.comment,
                        kiosk_id=rating.kiosk_id, created_at=local(rating.created_at))
        return 201, out.model_dump(mode="json")

    return run_idempotent(db, scope=SCOPE, key=idempotency_key, payload=payload, now=now,
                          create=create).response()
