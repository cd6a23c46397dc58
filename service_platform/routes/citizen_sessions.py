"""Citizen sessions opened by a kiosk after reading an ID card (and optionally matching the face), and the
citizen's own data (/me/*)."""
from __future__ import annotations

import datetime as dt
import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service_platform.auth import (
    citizen_bearer, find_session, hash_token, new_token, require_citizen, require_kiosk)
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses
from service_platform.identity import id_number_problem, mask_name, normalize_id_number
from service_platform.identity_checks import IdentityGuard, registry_problem
from service_platform.levels import ANY, level_dependency, level_extra
from service_platform.models import Application, CitizenSession, Kiosk
from service_platform.routes.applications import local, progress_of
from service_platform.schemas import (
    NOT_BLANK_PATTERN, ApplicationList, CitizenOut, CitizenSessionCreate, CitizenSessionOut, KioskUsage)

router = APIRouter(prefix="/api/v1", tags=["citizen sessions"])


@router.post("/citizen-sessions", response_model=CitizenSessionOut, status_code=201,
             responses=error_responses(401, 403, 422, 429), summary="Open a citizen session at this kiosk")
def create_session(body: CitizenSessionCreate, request: Request, kiosk: Kiosk = Depends(require_kiosk),
                   db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> CitizenSessionOut:
    """The kiosk has read the citizen's card (and, with ``card+face``, compared the face; with ``card+pin``, the
    social-security card accepted its PIN). Resident ID and HMT residence permit numbers must carry a valid GB 11643
    check digit (422 ``invalid_id_number``). The card's number and name must match the population registry (403
    ``unknown_person``, ``identity_mismatch``). ``card+face`` with ``face_match`` not true, or ``card+pin`` with
    ``pin_verified`` not true, is refused (403 ``verification_failed``). A kiosk may ask about at most the
    platform's limit of distinct citizens per rolling hour (429 ``rate_limited`` with ``Retry-After``). Every
    attempt is audited per kiosk with a keyed hash of the number, never the number or name. The token expires after
    the platform's session lifetime (15 min by default) and works only from this kiosk; what it may do depends on
    the method (``x-identity-level`` of each operation: ``card`` alone reads progress and books appointments)."""
    id_number = normalize_id_number(body.id_number)
    guard: IdentityGuard = request.app.state.identity_guard
    method = body.verification.method
    id_hash = guard.id_hash(db, id_number, now)

    def refuse(error: ApiError) -> ApiError:
        guard.record(db, kiosk.id, id_hash, "session", error.code, now, method)
        db.commit()
        return error

    problem = id_number_problem(id_number, body.document_kind)
    if problem:
        raise refuse(ApiError(422, "invalid_id_number", f"id_number: {problem}"))
    name = body.name.strip()
    if not re.search(NOT_BLANK_PATTERN, body.name):
        raise refuse(ApiError(422, "validation_failed", "name: must not be blank"))
    limited = guard.check_rate(db, kiosk.id, id_hash, now)
    if limited:
        raise refuse(limited)
    mismatch = registry_problem(db, id_number, name)
    if mismatch:
        raise refuse(mismatch)
    if method == "card+face" and body.verification.face_match is not True:
        raise refuse(ApiError(403, "verification_failed", "face comparison did not confirm the card holder"))
    if method == "card+pin" and body.verification.pin_verified is not True:
        raise refuse(ApiError(403, "verification_failed", "the card did not confirm its PIN"))
    token = new_token()
    ttl: dt.timedelta = request.app.state.session_ttl
    session = CitizenSession(
        token_hash=hash_token(token), kiosk_id=kiosk.id, id_number=id_number, name=name,
        document_kind=body.document_kind, verification_method=method,
        face_match=body.verification.face_match, created_at=now, expires_at=now + ttl)
    db.add(session)
    guard.record(db, kiosk.id, id_hash, "session", "opened", now, method)
    db.commit()
    return CitizenSessionOut(token=token, expires_at=local(session.expires_at),
                             citizen=CitizenOut(name_masked=mask_name(name)), verification_method=method)


@router.get("/kiosk/usage", response_model=KioskUsage, responses=error_responses(401),
            summary="This kiosk's own identity-check counts in the rolling hour")
def kiosk_usage(request: Request, kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                now: dt.datetime = Depends(get_now)) -> KioskUsage:
    """How many distinct citizens this kiosk asked about (sessions and registered-photo queries) within the last
    hour, the limit, and how many attempts were refused as ``rate_limited``. Only the calling kiosk's own counts."""
    guard: IdentityGuard = request.app.state.identity_guard
    return KioskUsage(**guard.usage(db, kiosk.id, now))  # type: ignore[arg-type]


@router.delete("/citizen-sessions/current", status_code=204, response_class=Response,
               responses=error_responses(401), summary="End the current citizen session",
               openapi_extra={"x-citizen-session": "required"})
def end_session(kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                now: dt.datetime = Depends(get_now)) -> Response:
    """Idempotent: ending an already ended or expired session is also 204."""
    if creds is None:
        raise ApiError(401, "session_required", "Authorization: Bearer <citizen session token> is required")
    session = find_session(db, kiosk, creds.credentials)
    if session.ended_at is None:
        session.ended_at = now
        from service_platform.routes.phone_uploads import wipe_session

        wipe_session(db, session.id, now)  # phone-uploaded photos go with the session
        db.commit()
    return Response(status_code=204)


@router.get("/me/applications", response_model=ApplicationList, responses=error_responses(401, 403),
            summary="The identified citizen's applications", dependencies=[level_dependency(*ANY)],
            openapi_extra=level_extra(*ANY))
def my_applications(citizen: CitizenSession = Depends(require_citizen),
                    db: Session = Depends(get_db)) -> ApplicationList:
    """Only this citizen's applications, newest first; the applicant name stays masked in the payload."""
    apps = db.scalars(select(Application).where(Application.applicant_id_number == citizen.id_number)
                      .options(selectinload(Application.events))
                      .order_by(Application.submitted_at.desc(), Application.id.desc())).all()
    return ApplicationList(items=[progress_of(a) for a in apps])
