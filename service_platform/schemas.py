"""Pydantic request/response models: the platform's HTTP contract (also the source of /openapi.json)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ApplicationStatus = Literal[
    "received", "accepted", "in_review", "supplement_required", "decided", "rejected", "delivered"]
DocumentKind = Literal["resident_id", "hmt_residence_permit", "foreign_permanent_resident"]
RatingTargetType = Literal["application", "service", "kiosk_action"]
TrustLevel = Literal["A", "B", "C", "D"]
CertStatus = Literal["valid", "expired", "revoked"]
MaterialSatisfiedBy = Literal["form", "identity"]
OrderStatus = Literal["pending", "paid", "cancelled", "expired"]
PaymentMethod = Literal["unionpay_card", "wechat_pay", "alipay", "ecny"]
AppointmentStatus = Literal["booked", "cancelled", "checked_in"]
DeliveryStatus = Literal["awaiting_item", "posted", "in_transit", "out_for_delivery", "delivered"]


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
    index: int = Field(ge=0, description="Position in the service's material list; applications refer to it")
    name: str
    originals: int = Field(ge=0, description="Number of originals to show")
    copies: int = Field(ge=0, description="Number of photocopies to hand in")
    required: bool
    e_cert_type: str | None = Field(description="Electronic certificate (电子证照) that can replace it, if any")
    note: str | None
    satisfied_by: MaterialSatisfiedBy | None = Field(
        default=None, description="Online filing: provided by the form itself or by the kiosk's identity check "
                                  "(no attachment needed)")
    deferrable: bool = Field(default=False, description="Online filing: may be supplied later (容缺受理)")


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
    form_schema: dict[str, Any] | None = Field(
        description="JSON Schema (draft 2020-12) of the online application form; null: this service cannot be "
                    "applied for through the API (guide only / at a window). Annotations: title, x-title-en, "
                    "x-enum-titles(-en), x-error(-en), x-prefill")
    supplement_days: int | None = Field(description="Working days to supply deferred materials (容缺受理)")


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


class Problem(BaseModel):
    """One missing or wrong item found by pre-review (一次性告知: all of them are reported at once)."""

    code: str = Field(description="form_invalid, material_missing, material_not_deferrable, commitment_required, "
                                  "unknown_material, duplicate_material, material_not_outstanding, "
                                  "e_certificate_not_found, e_certificate_not_accepted, e_certificate_wrong_type, "
                                  "e_certificate_expired, e_certificate_revoked, e_certificate_trust_too_low, "
                                  "upload_not_found, upload_already_used, upload_low_resolution, upload_blank")
    field: str | None = Field(default=None, description="JSON pointer into the form (form_invalid)")
    material_index: int | None = Field(default=None, description="Index of the service material concerned")
    message: str = Field(description="For the citizen, Chinese")
    message_en: str


# --- e-certificates and registered photos --------------------------------------------------------------------------

class ECertFieldDef(BaseModel):
    key: str
    label: str
    label_en: str


class ECertificateTypeOut(BaseModel):
    code: str = Field(examples=["marriage_cert"])
    name: str = Field(examples=["结婚证"], description="Matches e_cert_type of service materials")
    name_en: str
    issuer: str = Field(description="Usual issuing authority")
    fields: list[ECertFieldDef]


class ECertificateTypeList(BaseModel):
    items: list[ECertificateTypeOut]


class ECertificateOut(BaseModel):
    id: str = Field(description="Opaque id, e.g. ec_…")
    type_code: str
    type_name: str
    number: str = Field(description="证照编号")
    issuer: str
    issued_on: dt.date
    valid_until: dt.date | None = Field(description="null: no end date (长期)")
    status: CertStatus
    trust_level: TrustLevel = Field(description="A: issued and sealed by the issuing authority; B: paper "
                                                "certificate scanned and sealed by the issuer; C: scanned and "
                                                "checked by service-hall staff; D: uploaded by the holder, unchecked "
                                                "(国办函〔2016〕108号). Materials accept A–C.")
    holder_name_masked: str
    data: dict[str, Any] = Field(description="The type's fields (see /e-certificate-types)")
    pdf_url: str = Field(description="Path of the PDF (citizen session needed)")


class ECertificateList(BaseModel):
    items: list[ECertificateOut]


class PhotoQuery(_In):
    id_number: str = Field(min_length=15, max_length=18)
    name: str = Field(min_length=1, max_length=50)
    document_kind: DocumentKind


# --- uploads and online filing -------------------------------------------------------------------------------------

class UploadOut(BaseModel):
    id: str = Field(description="Opaque id, e.g. up_…; attach it to an application within 72 hours")
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    created_at: dt.datetime


class MaterialRef(_In):
    """How one service material is provided: exactly one of e_certificate_id, upload_ids, defer."""

    index: int = Field(ge=0, le=99, description="Index of the material in the service guide")
    e_certificate_id: str | None = Field(default=None, max_length=40)
    upload_ids: list[Annotated[str, Field(max_length=40)]] | None = Field(default=None, min_length=1,
                                                                          max_length=20)
    defer: bool = Field(default=False, description="Supply it later (容缺受理; only deferrable materials)")

    @model_validator(mode="after")
    def _exactly_one(self) -> "MaterialRef":
        given = sum([self.e_certificate_id is not None, self.upload_ids is not None, self.defer])
        if given != 1:
            raise ValueError("give exactly one of e_certificate_id, upload_ids, defer")
        return self


class ApplicationDraft(_In):
    service_code: str = Field(max_length=60)
    form: dict[str, Any] = Field(default_factory=dict, description="Data for the service's form_schema")
    materials: list[MaterialRef] = Field(default_factory=list, max_length=50)
    commitment: bool = Field(default=False, description="The citizen promises to supply deferred materials by "
                                                        "the deadline (告知承诺); needed when anything is deferred")


class MaterialState(BaseModel):
    index: int
    name: str
    required: bool
    status: Literal["provided", "outstanding", "missing", "not_provided"] = Field(
        description="missing: required and absent (a problem); not_provided: optional and absent")
    source: Literal["e_certificate", "upload", "identity", "form"] | None = None
    e_certificate_id: str | None = None
    upload_ids: list[str] = Field(default_factory=list)


class PreReviewOut(BaseModel):
    acceptable: bool = Field(description="True: submitting this draft will be accepted")
    problems: list[Problem] = Field(description="Every missing or wrong item, all at once (一次性告知)")
    materials: list[MaterialState]
    supplement_due: dt.date | None = Field(description="Deadline for deferred materials, if any are deferred")


class PaymentOrderOut(BaseModel):
    order_no: str = Field(examples=["PO20261102000001"])
    application_number: str
    purpose: str
    amount_fen: int = Field(ge=1)
    payer_masked: str
    payee: str
    status: OrderStatus
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="A pending order expires then (a new one can be created)")
    paid_at: dt.datetime | None
    method: PaymentMethod | None
    txn_ref: str | None
    card_masked: str | None
    cancelled_at: dt.datetime | None


class ApplicationFiled(BaseModel):
    """A filed application: its progress, materials and fees."""

    number: str
    progress: ApplicationProgress
    materials: list[MaterialState]
    outstanding: list[int] = Field(description="Indexes of materials still to be supplied")
    supplement_due: dt.date | None
    form: dict[str, Any] = Field(description="The form data as filed")
    payment_orders: list[PaymentOrderOut]


class SupplementIn(_In):
    materials: list[MaterialRef] = Field(min_length=1, max_length=50)


class PrefillOut(BaseModel):
    service_code: str
    form: dict[str, Any] = Field(description="Values pre-filled from the identity and the citizen's e-certificates")
    sources: dict[str, str] = Field(description="JSON pointer → identity | e_certificate:<id>")
    materials: list[MaterialState] = Field(
        description="Suggested provision: identity/form satisfied, an e-certificate for materials one replaces")


# --- payments ------------------------------------------------------------------------------------------------------

class PaymentOrderList(BaseModel):
    items: list[PaymentOrderOut]


class PaymentOrderCreate(_In):
    application_number: str = Field(max_length=24)


class PaymentConfirm(_In):
    method: PaymentMethod
    txn_ref: str = Field(min_length=1, max_length=64, description="The payment terminal's transaction reference")
    amount_fen: int = Field(ge=1, description="Amount actually taken; must equal the order's")
    card_masked: str | None = Field(default=None, max_length=30, examples=["6222 **** **** 1234"])
    paid_at: dt.datetime | None = Field(default=None, description="Time at the terminal (default: now)")


class PaymentCancel(_In):
    reason: str = Field(default="cancelled at the kiosk", min_length=1, max_length=200)


class CashierPay(_In):
    method: Literal["wechat_pay", "alipay", "ecny"] = Field(description="The wallet the citizen's phone pays with")


class ReconciliationTotals(BaseModel):
    paid_count: int
    paid_fen: int
    cancelled_count: int
    pending_count: int
    expired_count: int


class Reconciliation(BaseModel):
    date: dt.date = Field(description="Business day, China Standard Time")
    kiosk_id: str
    items: list[PaymentOrderOut] = Field(description="Orders of this kiosk created, paid or cancelled that day")
    totals: ReconciliationTotals


# --- halls, appointments, queue ------------------------------------------------------------------------------------

class HallQueueOut(BaseModel):
    prefix: str = Field(examples=["A"])
    name: str = Field(examples=["综合受理"])
    windows: list[str]


class HallOut(BaseModel):
    code: str
    name: str
    address: str
    hours: str
    phone: str
    slot_minutes: int
    booking_days: int
    queues: list[HallQueueOut]


class HallList(BaseModel):
    items: list[HallOut]


class SlotOut(BaseModel):
    start: str = Field(examples=["09:00"])
    end: str = Field(examples=["09:30"])
    starts_at: dt.datetime
    capacity: int
    available: int


class SlotDay(BaseModel):
    date: dt.date
    slots: list[SlotOut] = Field(description="Empty when the hall is closed that day")


class SlotList(BaseModel):
    hall_code: str
    service_code: str | None
    days: list[SlotDay]


class AppointmentCreate(_In):
    hall_code: str = Field(max_length=40)
    service_code: str = Field(max_length=60)
    date: dt.date
    start: str = Field(pattern=r"^[0-9]{2}:[0-9]{2}$", examples=["09:30"])


class AppointmentOut(BaseModel):
    appointment_no: str = Field(examples=["AP20261102000001"])
    hall_code: str
    hall_name: str
    hall_address: str
    service_code: str
    service_name: str
    date: dt.date
    start: str
    end: str
    starts_at: dt.datetime
    status: AppointmentStatus
    created_at: dt.datetime
    ticket_id: str | None


class AppointmentList(BaseModel):
    items: list[AppointmentOut]


class QueueTicketCreate(_In):
    hall_code: str = Field(max_length=40)
    service_code: str = Field(max_length=60)


class QueueTicketOut(BaseModel):
    id: str = Field(description="Opaque id for the progress link on the slip")
    ticket_no: str = Field(examples=["A012"])
    hall_code: str
    hall_name: str
    queue_name: str
    windows: list[str]
    service_code: str
    service_name: str
    service_date: dt.date = Field(description="The day the ticket is for (the next opening day when the hall has "
                                              "closed for today)")
    waiting_before: int = Field(ge=0, description="Tickets of the same queue and day still waiting before this one")
    appointment_no: str | None
    status: Literal["waiting"]
    issued_at: dt.datetime
    hall_open_now: bool
    next_open_at: dt.datetime | None = Field(description="When the hall next opens (null: open now)")


# --- delivery ------------------------------------------------------------------------------------------------------

class DeliveryConsentText(BaseModel):
    version: str
    text: str
    text_en: str


class Address(_In):
    recipient_name: str = Field(min_length=1, max_length=30)
    phone: str = Field(pattern=r"^1[3-9][0-9]{9}$", description="Mainland mobile number")
    province: str = Field(min_length=2, max_length=20)
    city: str = Field(min_length=2, max_length=20)
    district: str = Field(min_length=2, max_length=20)
    detail: str = Field(min_length=4, max_length=120)
    postcode: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class DeliveryConsent(_In):
    agreed: bool = Field(description="The citizen tapped 'I agree' to the consent text; false is refused")
    version: str = Field(max_length=40, description="Version of the consent text shown")


class DeliveryCreate(_In):
    application_number: str = Field(max_length=24)
    address: Address
    consent: DeliveryConsent


class TrackingEvent(BaseModel):
    status: DeliveryStatus
    at: dt.datetime
    note: str


class DeliveryOut(BaseModel):
    delivery_no: str = Field(examples=["DL20261102000001"])
    waybill_no: str = Field(examples=["EA200000019CN"], description="EMS waybill number (UPU S10)")
    carrier: Literal["EMS"]
    application_number: str
    recipient_masked: str
    phone_masked: str
    address_masked: str
    status: DeliveryStatus
    tracking: list[TrackingEvent] = Field(description="Oldest first")
    created_at: dt.datetime


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
