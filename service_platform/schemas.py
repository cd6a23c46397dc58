"""Pydantic request/response models: the platform's HTTP contract (also the source of /openapi.json)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ApplicationStatus = Literal[
    "received", "accepted", "in_review", "supplement_required", "decided", "rejected", "delivered"]
DocumentKind = Literal["resident_id", "hmt_residence_permit", "foreign_permanent_resident"]
RatingTargetType = Literal["application", "service", "kiosk_action"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors / health ---------------------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, unauthorized, validation_failed, "
                                  "conflict, session_expired, reason_required, idempotency_conflict")
    message: str = Field(description="Human-readable explanation (English, for logs and technicians)")
    details: Any | None = Field(default=None, description="Optional structured details (validation errors)")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str


# --- catalogue ---------------------------------------------------------------------------------------------------

class CategoryOut(_Out):
    code: str = Field(examples=["housing"])
    name_zh: str = Field(examples=["住房"])
    name_en: str = Field(examples=["Housing"])
    service_count: int = Field(description="Number of services in this life event")


class CategoryList(BaseModel):
    items: list[CategoryOut]


class ServiceSummary(_Out):
    code: str = Field(examples=["hpf-withdrawal"])
    name: str = Field(examples=["住房公积金提取"])
    name_en: str = Field(examples=["Housing provident fund withdrawal"])
    department: str = Field(examples=["蚌埠市住房公积金管理中心"])
    category: str = Field(description="Primary life-event category code")
    categories: list[str] = Field(description="All life-event category codes the service belongs to")
    online_depth: int = Field(ge=1, le=4, description=(
        "网上办理深度: 1 信息公开 (guide only), 2 在线预审 (online pre-check, paper at the window), "
        "3 网上受理·最多跑一次 (apply online, at most one visit), 4 全程网办 (fully online / at the kiosk)"))
    fee_fen: int = Field(ge=0, description="Fee in fen (1/100 yuan); 0 = free")
    promised_days: int = Field(ge=0, description="Promised completion time in working days (0 = on the spot)")


class ServiceList(BaseModel):
    items: list[ServiceSummary]
    total: int = Field(description="Number of matches before limit/offset")


class MaterialOut(_Out):
    name: str
    originals: int = Field(ge=0, description="Number of originals to show")
    copies: int = Field(ge=0, description="Number of photocopies to hand in")
    required: bool
    e_cert_type: str | None = Field(description="Electronic certificate (电子证照) that can replace it, if any")
    note: str | None


class PlaceOut(_Out):
    name: str
    address: str
    hours: str
    phone: str


class FaqOut(BaseModel):
    q: str
    a: str


class ServiceDetail(ServiceSummary):
    conditions: list[str] = Field(description="Conditions the applicant must meet (申请条件)")
    materials: list[MaterialOut]
    legal_days: int = Field(ge=0, description="Statutory time limit in working days (法定办结时限)")
    fee_note: str | None
    basis: str = Field(description="Legal basis (设定依据)")
    places: list[PlaceOut]
    faqs: list[FaqOut]


# --- applications ------------------------------------------------------------------------------------------------

class TimelineEntry(BaseModel):
    status: ApplicationStatus
    at: dt.datetime = Field(description="ISO 8601 with offset, China Standard Time (+08:00)")
    department: str
    note: str | None


class ApplicationProgress(BaseModel):
    number: str = Field(examples=["SP20261027000102"], description="办件编号: SP + yyyymmdd + 6 digits")
    service_code: str
    service_name: str
    status: ApplicationStatus
    status_text_zh: str = Field(examples=["审查中"])
    status_text_en: str = Field(examples=["In review"])
    applicant_masked: str = Field(examples=["张*华"], description="Masked applicant name; never the full name")
    submitted_at: dt.datetime
    department: str
    promised_date: dt.date = Field(description="submitted date + promised working days (weekends skipped)")
    timeline: list[TimelineEntry] = Field(description="Oldest first")


class ApplicationList(BaseModel):
    items: list[ApplicationProgress] = Field(description="Newest first")


# --- citizen sessions --------------------------------------------------------------------------------------------

class Verification(_In):
    method: Literal["card", "card+face"]
    face_match: bool | None = Field(default=None, description="Result of the kiosk's face comparison "
                                                               "(required to be true when method is card+face)")


class CitizenSessionCreate(_In):
    id_number: str = Field(min_length=15, max_length=18, examples=["340302195803172018"])
    name: str = Field(min_length=1, max_length=50, examples=["张明华"])
    document_kind: DocumentKind
    verification: Verification


class CitizenOut(BaseModel):
    name_masked: str = Field(examples=["张*华"])


class CitizenSessionOut(BaseModel):
    token: str = Field(description="Bearer token for /api/v1/me/*; send as `Authorization: Bearer <token>`")
    expires_at: dt.datetime
    citizen: CitizenOut


# --- ratings -----------------------------------------------------------------------------------------------------

class RatingCreate(_In):
    target_type: RatingTargetType
    target_id: str = Field(min_length=1, max_length=80, description="Application number, service code or a "
                                                                     "kiosk action name")
    stars: int = Field(ge=1, le=5)
    tags: list[Annotated[str, Field(min_length=1, max_length=30)]] = Field(default_factory=list, max_length=10)
    comment: str | None = Field(default=None, max_length=500)
    kiosk_id: str | None = Field(default=None, description="Must equal X-Kiosk-Id when given")


class RatingOut(_Out):
    id: int
    target_type: RatingTargetType
    target_id: str
    stars: int
    tags: list[str]
    comment: str | None
    kiosk_id: str
    created_at: dt.datetime


class RatingTag(BaseModel):
    code: str
    zh: str
    en: str


class RatingTags(BaseModel):
    good: list[RatingTag] = Field(description="Suggested for 4–5 stars")
    bad: list[RatingTag] = Field(description="Suggested for 1–3 stars; 1–2 stars need a tag or a comment")
