"""Applying for someone else (代办): an agent, identified at the kiosk with card and face (or card PIN), files an
application for a principal (委托人) whose ID card the kiosk has just read.

**Who may call.** A signed kiosk (KIOSK-ED25519-V1) with the AGENT's citizen session at a strong level
(``card+face`` or ``card+pin``: 403 ``verification_level_insufficient`` otherwise). The principal is never a
session of its own: the kiosk sends the principal card's number, name and document kind, and the platform checks
them against the population registry (403 ``principal_not_recognised`` — one code for an unknown number and a
wrong name, so the answer is no registry oracle; each check counts against the kiosk's hourly limit of distinct
citizens like a session would, 429 ``rate_limited``, and is written to the identity audit with a keyed hash only).

**What.** Only services whose catalogue entry allows an agent (``agent_allowed``; 403 ``agent_not_allowed``
otherwise). The agent cannot be the principal (422 ``principal_is_agent``). The principal's e-certificates are not
the agent's to use: materials come as pages the agent's kiosk uploaded, or deferred (容缺), or are satisfied by the
principal's card read (identity) or the form. The application's applicant is the principal (their progress lookup
and ``me/applications`` show it); the agent is recorded beside it (``application_agents``: number, name,
relationship, kiosk, the agent's session). Answers carry both names masked only.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.auth import CitizenWriter, citizen_writer, require_citizen, require_kiosk
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses
from service_platform.filing import review_draft
from service_platform.forms import prefill
from service_platform.identity import id_number_problem, mask_name, normalize_id_number
from service_platform.identity_checks import IdentityGuard, registry_problem
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.models import (
    Application, ApplicationAgent, ApplicationEvent, ApplicationFiling, CitizenSession, Kiosk, RegisteredCitizen,
    Service, ServiceAgentRule)
from service_platform.numbering import daily_number
from service_platform.routes.applications import add_working_days
from service_platform.routes.ecertificates import today_cst
from service_platform.routes.filing import (
    _attach_uploads, _material_row, _pre_review_failed, filed_out, filing_service)
from service_platform.routes.payments import new_order
from service_platform.schemas import (
    NOT_BLANK_PATTERN, ApplicationFiled, DocumentKind, MaterialRef, PrefillOut, _In)

router = APIRouter(prefix="/api/v1", tags=["proxy applications"])

Relationship = Literal["parent", "child", "spouse", "relative", "other"]
RELATIONSHIP_ZH = {"parent": "父母", "child": "子女", "spouse": "配偶", "relative": "其他亲属", "other": "其他"}


class Principal(_In):
    """The person the application is for, as read from their card at the kiosk."""

    id_number: str = Field(min_length=15, max_length=18, examples=["35010219490822102X"])
    name: str = Field(min_length=1, max_length=50, examples=["李秀英"], json_schema_extra={"pattern": NOT_BLANK_PATTERN})
    document_kind: DocumentKind


class ProxyPrefillIn(_In):
    service_code: str = Field(max_length=60)
    principal: Principal


class ProxyApplicationDraft(_In):
    service_code: str = Field(max_length=60)
    principal: Principal
    relationship: Relationship = Field(description="The agent's relationship to the principal")
    form: dict[str, Any] = Field(default_factory=dict, description="Data for the service's form_schema (about the principal)")
    materials: list[MaterialRef] = Field(default_factory=list, max_length=50)
    commitment: StrictBool = Field(default=False, description="The agent promises to supply deferred materials (告知承诺)")


class ProxyParties(BaseModel):
    agent_masked: str = Field(examples=["张*华"])
    principal_masked: str = Field(examples=["李*英"])
    relationship: Relationship


class ProxyApplicationFiled(ApplicationFiled):
    """A filed proxy application: the application (its applicant is the principal) and both persons, masked."""

    proxy: ProxyParties


def _principal(request: Request, db: Session, kiosk: Kiosk, agent: CitizenSession, body: Principal,
               now: dt.datetime) -> RegisteredCitizen:
    """The principal from the registry, or the refusal (audited with a keyed hash, counted against the limit)."""
    id_number = normalize_id_number(body.id_number)
    guard: IdentityGuard = request.app.state.identity_guard
    id_hash = guard.id_hash(db, id_number, now)

    def refuse(error: ApiError) -> ApiError:
        guard.record(db, kiosk.id, id_hash, "proxy_principal", error.code, now, None)
        db.commit()
        return error

    problem = id_number_problem(id_number, body.document_kind)
    if problem:
        raise refuse(ApiError(422, "invalid_id_number", f"principal.id_number: {problem}"))
    if not re.search(NOT_BLANK_PATTERN, body.name):
        raise refuse(ApiError(422, "validation_failed", "principal.name: must not be blank"))
    if id_number == agent.id_number:
        raise refuse(ApiError(422, "principal_is_agent", "the principal's card is the agent's own card"))
    limited = guard.check_rate(db, kiosk.id, id_hash, now)
    if limited:
        raise refuse(limited)
    if registry_problem(db, id_number, body.name.strip()) is not None:
        raise refuse(ApiError(403, "principal_not_recognised",
                              "the principal's card does not match the population registry"))
    guard.record(db, kiosk.id, id_hash, "proxy_principal", "served", now, None)
    person = db.get(RegisteredCitizen, id_number)
    assert person is not None
    return person


def _agent_service(db: Session, code: str) -> Service:
    service, _rule = filing_service(db, code)
    rule = db.get(ServiceAgentRule, service.id)
    if rule is None or not rule.agent_allowed:
        raise ApiError(403, "agent_not_allowed", "this service must be applied for by the person themselves")
    return service


def _identity(person: RegisteredCitizen) -> dict[str, str]:
    return {"name": person.name, "id_number": person.id_number,
            "sex": {"male": "男", "female": "女"}.get(person.sex, person.sex),
            "birth_date": person.birth_date.isoformat(), "address": person.address}


@router.post("/me/proxy-applications/prefill", response_model=PrefillOut,
             responses=error_responses(401, 403, 404, 422, 429),
             summary="Check the principal of a proxy application (代办) and pre-fill the service's form for them",
             dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def proxy_prefill(body: ProxyPrefillIn, request: Request, kiosk: Kiosk = Depends(require_kiosk),
                  agent: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
                  now: dt.datetime = Depends(get_now)) -> PrefillOut:
    """The form's ``x-prefill`` identity fields from the registry's entry of the principal (never from their
    e-certificates), and per material how it can be provided. Creates nothing."""
    service = _agent_service(db, body.service_code)
    person = _principal(request, db, kiosk, agent, body.principal, now)
    _service, rule = filing_service(db, service.code)
    filled = prefill(rule.form_schema, _identity(person), {})
    review = review_draft(db, service, rule, filled.values, [], False, agent.id_number, today_cst(now))
    db.commit()
    return PrefillOut(service_code=service.code, form=filled.values, sources=filled.sources,
                      materials=review.materials)


@router.post("/me/proxy-applications", response_model=ProxyApplicationFiled, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422, 429),
             summary="File an application for someone else (代办): both persons recorded",
             dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def file_proxy_application(body: ProxyApplicationDraft, request: Request, kiosk: Kiosk = Depends(require_kiosk),
                           writer: CitizenWriter = Depends(citizen_writer),
                           idempotency_key: str = Depends(require_idempotency_key),
                           db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """As ``POST me/applications`` (pre-review: 422 ``pre_review_failed`` with every problem), for the principal.
    E-certificates are refused as materials (they are the principal's, not the agent's)."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        service = _agent_service(db, body.service_code)
        person = _principal(request, db, kiosk, writer.session, body.principal, at)
        _service, rule = filing_service(db, service.code)
        refs = [m for m in body.materials if m.e_certificate_id is None]
        review = review_draft(db, service, rule, body.form, refs, body.commitment, writer.id_number, today_cst(at))
        for ref in body.materials:
            if ref.e_certificate_id is not None:
                review.problem("e_certificate_not_for_proxy", "代办时不能使用电子证照，请拍照上传或容缺后补",
                               "An agent cannot use e-certificates; photograph the page or supply it later",
                               index=ref.index)
        if review.problems:
            raise _pre_review_failed(review)
        number = daily_number(db, "application", at, taken=lambda n: db.scalar(
            select(Application.id).where(Application.number == n)) is not None)
        outstanding = [m for m in review.materials if m.status == "outstanding"]
        due = add_working_days(today_cst(at), rule.supplement_days) if outstanding else None
        relation = RELATIONSHIP_ZH[body.relationship]
        note = f"代办：由{relation}{mask_name(writer.session.name)}代为提交（自助终端 {kiosk.id}）"
        accepted = (f"容缺受理：待补交{len(outstanding)}项材料，请于{due}前补交" if outstanding
                    else "网上预审通过，材料齐全，予以受理")
        app = Application(number=number, service_code=service.code, applicant_id_number=person.id_number,
                          applicant_name=person.name, status="accepted", submitted_at=at,
                          department=service.department, channel="kiosk", events=[
                              ApplicationEvent(status="received", at=at, department=service.department, note=note),
                              ApplicationEvent(status="accepted", at=at, department=service.department,
                                               note=accepted)])
        db.add(app)
        db.flush()
        db.add(ApplicationFiling(application_id=app.id, form=body.form, kiosk_id=kiosk.id,
                                 citizen_session_id=writer.session.id, supplement_due=due))
        db.add(ApplicationAgent(application_id=app.id, agent_id_number=writer.session.id_number,
                                agent_name=writer.session.name, relationship=body.relationship,
                                principal_document_kind=body.principal.document_kind, kiosk_id=kiosk.id,
                                citizen_session_id=writer.session.id, created_at=at))
        for state in review.materials:
            if state.status in ("provided", "outstanding"):
                db.add(_material_row(app.id, state, at))
        _attach_uploads(db, review, app.id)
        if service.fee_fen > 0:
            new_order(db, app, payer_name=person.name, kiosk_id=kiosk.id, now=at)
        db.flush()
        filed = filed_out(db, app, now)
        out = ProxyApplicationFiled(**filed.model_dump(), proxy=ProxyParties(
            agent_masked=mask_name(writer.session.name), principal_masked=mask_name(person.name),
            relationship=body.relationship))
        return 201, out.model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/proxy-applications", key=idempotency_key, payload=payload,
                          now=now, create=create).response()
