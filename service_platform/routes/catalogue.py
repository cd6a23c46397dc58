"""Public catalogue reads: life-event categories, service list/search, service guide (办事指南)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service_platform.deps import get_db
from service_platform.errors import error_responses, not_found
from service_platform.filing import satisfied_by
from service_platform.models import (
    Category, Service, ServiceAgentRule, ServiceFilingRule, ServiceSampleForm, service_categories)
from service_platform.schemas import (
    CategoryList, CategoryOut, FaqOut, MaterialOut, PlaceOut, SampleFormField, SampleFormOut, ServiceDetail,
    ServiceList, ServiceSummary)
from service_platform.search import SearchDoc, rank

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


def service_summary(svc: Service, agent_allowed: bool = False) -> ServiceSummary:
    return ServiceSummary(
        code=svc.code, name=svc.name, name_en=svc.name_en, department=svc.department,
        category=svc.primary_category, categories=[c.code for c in svc.categories],
        online_depth=svc.online_depth, fee_fen=svc.fee_fen, promised_days=svc.promised_days,
        agent_allowed=agent_allowed)


def agent_services(db: Session) -> set[int]:
    """Ids of the services an agent may apply for (代办)."""
    return set(db.scalars(select(ServiceAgentRule.service_id).where(ServiceAgentRule.agent_allowed.is_(True))))


def search_doc(svc: Service) -> SearchDoc:
    return SearchDoc(name=svc.name, name_en=svc.name_en, department=svc.department,
                     keywords=tuple(svc.keywords or ()), initials_key=svc.search_initials,
                     pinyin_key=svc.search_pinyin)


#: how long a process keeps its index of the catalogue (services change only when the catalogue is re-seeded)
INDEX_TTL_S = 60.0


@dataclass(frozen=True)
class IndexedService:
    doc: SearchDoc
    summary: ServiceSummary


def catalogue_index(request: Request, db: Session) -> list[IndexedService]:
    """Every service's search document and summary in catalogue order, built once per ``INDEX_TTL_S`` per process:
    a search then ranks in memory instead of loading and decoding the whole catalogue from the database each time."""
    cached = getattr(request.app.state, "catalogue_index", None)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    services = db.scalars(select(Service).options(selectinload(Service.categories))
                          .order_by(Service.position, Service.id)).all()
    agents = agent_services(db)
    index = [IndexedService(search_doc(s), service_summary(s, s.id in agents)) for s in services]
    request.app.state.catalogue_index = (time.monotonic() + INDEX_TTL_S, index)
    return index


@router.get("/categories", response_model=CategoryList, summary="Life-event categories")
def list_categories(db: Session = Depends(get_db)) -> CategoryList:
    counts = dict(db.execute(select(service_categories.c.category_code, func.count())
                             .group_by(service_categories.c.category_code)).all())
    cats = db.scalars(select(Category).order_by(Category.position, Category.code)).all()
    return CategoryList(items=[CategoryOut(code=c.code, name_zh=c.name_zh, name_en=c.name_en,
                                           service_count=counts.get(c.code, 0)) for c in cats])


@router.get("/services", response_model=ServiceList, responses=error_responses(422),
            summary="List or search services")
def list_services(
    request: Request,
    db: Session = Depends(get_db),
    q: str | None = Query(default=None, max_length=50,
                          description="Chinese text, pinyin initials (gjj) or full pinyin (gongjijin); "
                                      "several words must all match"),
    category: str | None = Query(default=None, max_length=40, description="Life-event category code"),
    limit: int = Query(default=20, ge=1, le=100),
    offset: int = Query(default=0, ge=0),
    agent_allowed: bool | None = Query(default=None, description="true: only services an agent may apply for "
                                                                  "(代办); false: only the others"),
) -> ServiceList:
    """Without ``q``: catalogue order. With ``q``: best match first (exact name > name prefix > pinyin initials /
    full pinyin > keywords, English name, department). An unknown category simply matches nothing."""
    services = catalogue_index(request, db)
    if category:
        services = [s for s in services if category in s.summary.categories]
    if agent_allowed is not None:
        services = [s for s in services if s.summary.agent_allowed == agent_allowed]
    if q and q.strip():
        services = [svc for _score, svc in rank(q, [(s.doc, s) for s in services])]  # type: ignore[misc]
    page = services[offset:offset + limit]
    return ServiceList(items=[s.summary for s in page], total=len(services))


@router.get("/services/{code}", response_model=ServiceDetail, responses=error_responses(404),
            summary="Service guide (办事指南)")
def get_service(code: str, db: Session = Depends(get_db)) -> ServiceDetail:
    svc = db.scalar(select(Service).where(Service.code == code).options(
        selectinload(Service.categories), selectinload(Service.materials), selectinload(Service.place_links)))
    if svc is None:
        raise not_found(f"service {code!r}")
    rule = db.get(ServiceFilingRule, svc.id)
    deferrable = set(rule.deferrable_materials or []) if rule else set()
    agent = db.get(ServiceAgentRule, svc.id)
    samples = db.scalars(select(ServiceSampleForm).where(ServiceSampleForm.service_id == svc.id)
                         .order_by(ServiceSampleForm.position, ServiceSampleForm.id)).all()
    return ServiceDetail(
        **service_summary(svc, bool(agent and agent.agent_allowed)).model_dump(),
        agent_note=agent.note if agent and agent.agent_allowed else None,
        sample_forms=[SampleFormOut(title=f.title, title_en=f.title_en, note=f.note,
                                    fields=[SampleFormField(**x) for x in f.fields or []]) for f in samples],
        conditions=list(svc.conditions or []),
        materials=[MaterialOut(index=i, name=m.name, originals=m.originals, copies=m.copies, required=m.required,
                               e_cert_type=m.e_cert_type, note=m.note, satisfied_by=satisfied_by(i, m, rule),
                               deferrable=i in deferrable)  # type: ignore[arg-type]
                   for i, m in enumerate(svc.materials)],
        legal_days=svc.legal_days, fee_note=svc.fee_note, basis=svc.basis,
        places=[PlaceOut.model_validate(link.place) for link in svc.place_links],
        faqs=[FaqOut(**f) for f in (svc.faqs or [])],
        form_schema=rule.form_schema if rule else None,
        supplement_days=rule.supplement_days if rule else None,
    )
