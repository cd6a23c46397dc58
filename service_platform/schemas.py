"""Pydantic request/response models: the platform's HTTP contract (also the source of /openapi.json)."""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

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
    """A request body. Fields are as strict as the schema says: integers and booleans are JSON numbers and booleans
    (:data:`JsonInt`, ``StrictBool``: never ``"5"`` or ``1`` for true), dates and times are strings in the
    documented format (:data:`IsoDate`, :data:`IsoDateTime`): what the schema rejects, the platform rejects."""

    model_config = ConfigDict(extra="forbid")


_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO_DATETIME = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                 r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
ISO_DATE_PATTERN = _ISO_DATE
ISO_DATETIME_PATTERN = _ISO_DATETIME  # RFC 3339 with the offset required (also headers: X-Captured-At)


def parse_iso_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` (ValueError otherwise, also for a day that does not exist)."""
    if not re.fullmatch(_ISO_DATE, text):
        raise ValueError("must be an ISO 8601 date, YYYY-MM-DD")
    return dt.date.fromisoformat(text)


def parse_iso_datetime(text: str) -> dt.datetime:
    """An RFC 3339 time with its offset (:data:`ISO_DATETIME_PATTERN`); a leap second reads as :59."""
    if not re.fullmatch(_ISO_DATETIME, text):
        raise ValueError("must be an ISO 8601 time with an offset, e.g. 2026-11-02T09:30:00+08:00")
    if text[17:19] == "60":
        text = text[:17] + "59" + text[19:]
    return dt.datetime.fromisoformat(text)


def _iso_text(parse: Any) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, (dt.date, dt.datetime)):  # already parsed (tests, internal callers)
            return value
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return parse(value)

    return BeforeValidator(check)


def _json_integer(value: Any) -> Any:
    """A JSON Schema integer: a JSON number with no fractional part (``5`` or ``5.0``), never a string or boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a JSON integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a JSON integer")
        return int(value)
    return value


#: pydantic's lax ``int`` also takes ``"5"`` and ``true``; ``StrictInt`` refuses ``5.0``, which JSON Schema calls an
#: integer: this is what the schema says
JsonInt = Annotated[int, BeforeValidator(_json_integer)]

#: not blank: at least one character that is not (ECMAScript) white space; the same class in the spec's pattern
#: and in the server's check, so that both agree on every string
NOT_BLANK_PATTERN = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"

# pydantic's lax date/datetime also take numbers (Unix time) and other spellings; the contract is the ISO text
IsoDate = Annotated[dt.date, _iso_text(parse_iso_date),
                    Field(json_schema_extra={"pattern": _ISO_DATE})]
IsoDateTime = Annotated[dt.datetime, _iso_text(parse_iso_datetime),
                        Field(json_schema_extra={"pattern": _ISO_DATETIME})]


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
    agent_allowed: bool = Field(default=False, description=(
        "An agent may apply for it on behalf of someone else (代办: POST /api/v1/me/proxy-applications)"))


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


class SampleFormField(BaseModel):
    label: str
    label_en: str
    value: str = Field(description="A made-up example value")


class SampleFormOut(BaseModel):
    """A sample filled form (示范文本) of the guide."""

    title: str
    title_en: str
    note: str | None
    fields: list[SampleFormField]


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
    agent_note: str | None = Field(default=None, description="Who may apply as an agent (代办), when allowed")
    sample_forms: list[SampleFormOut] = Field(default_factory=list, description="Sample filled forms (示范文本)")


# --- applications ------------------------------------------------------------------------------------------------

class TimelineEntry(BaseModel):
    status: ApplicationStatus
    at: dt.datetime = Field(description="ISO 8601 with offset, China Standard Time (+08:00)")
    department: str
    note: str | None


class ApplicationProgress(BaseModel):
    number: str = Field(examples=["SP202611024718263"], description="办件编号: SP + yyyymmdd + 6 random digits + "
                                                                    "Luhn check digit (seeded: SP + yyyymmdd + 6)")
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


class ApplicationStatusOut(BaseModel):
    """Progress by number alone (no card, no proof of who applied): the state only — no service, no name, no
    kiosk, no timeline."""

    number: str = Field(examples=["SP20261027000102"])
    status: ApplicationStatus
    status_text_zh: str = Field(examples=["审查中"])
    status_text_en: str = Field(examples=["In review"])
    updated_at: dt.datetime = Field(description="Time of the last step")


class ApplicationLookup(_In):
    id_last4: str = Field(min_length=4, max_length=4, pattern=r"^[0-9]{3}[0-9Xx]$", examples=["201X"],
                          description="The last 4 characters of the applicant's ID number")


class ApplicationList(BaseModel):
    items: list[ApplicationProgress] = Field(description="Newest first")


# --- citizen sessions --------------------------------------------------------------------------------------------

class Verification(_In):
    method: Literal["card", "card+face", "card+pin"] = Field(
        description="card: the card's data only; card+face: the live face matched (with liveness); card+pin: a "
                    "social-security card whose PIN the card verified. What a session may do depends on it: see "
                    "each operation's x-identity-level")
    face_match: StrictBool | None = Field(default=None, description="Result of the kiosk's face comparison "
                                                                     "(required to be true when method is card+face); "
                                                                     "a JSON boolean, never a string or number")
    pin_verified: StrictBool | None = Field(default=None, description="The card accepted the PIN (required to be "
                                                                       "true when method is card+pin)")


class CitizenSessionCreate(_In):
    id_number: str = Field(min_length=15, max_length=18, examples=["340302195803172018"])
    name: str = Field(min_length=1, max_length=50, examples=["张明华"],
                      json_schema_extra={"pattern": NOT_BLANK_PATTERN},
                      description="As on the card; not blank (else 422 validation_failed)")
    document_kind: DocumentKind
    verification: Verification


class CitizenOut(BaseModel):
    name_masked: str = Field(examples=["张*华"])


class KioskUsage(BaseModel):
    """The calling kiosk's own counts in the rolling window (citizen sessions and registered-photo queries)."""

    window_minutes: int
    distinct_citizens: int = Field(description="Distinct citizens asked about (sessions or photos) in the window")
    limit: int = Field(description="At most this many distinct citizens per window, then 429 rate_limited")
    rate_limited: int = Field(description="Attempts refused as rate_limited in the window")
    retry_after_s: int = Field(description="0 while under the limit; else seconds until one more citizen fits")


class CitizenSessionOut(BaseModel):
    token: str = Field(description="Bearer token for /api/v1/me/*; send as `Authorization: Bearer <token>`")
    expires_at: dt.datetime
    citizen: CitizenOut
    verification_method: Literal["card", "card+face", "card+pin"] = Field(
        description="The session's identity level: what it may do is each operation's x-identity-level")


# --- ratings -----------------------------------------------------------------------------------------------------

class RatingCreate(_In):
    target_type: RatingTargetType
    target_id: str = Field(min_length=1, max_length=80, description="Application number, service code or a "
                                                                     "kiosk action name")
    stars: JsonInt = Field(ge=1, le=5)
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

    # the rule below, in the schema too: exactly one of the three is given (non-null, or defer true)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["e_certificate_id"], "properties": {"e_certificate_id": {"type": "string"}}},
        {"required": ["upload_ids"], "properties": {"upload_ids": {"type": "array"}}},
        {"required": ["defer"], "properties": {"defer": {"const": True}}},
    ]})

    index: JsonInt = Field(ge=0, le=99, description="Index of the material in the service guide")
    e_certificate_id: str | None = Field(default=None, max_length=40)
    upload_ids: list[Annotated[str, Field(max_length=40)]] | None = Field(default=None, min_length=1,
                                                                          max_length=20)
    defer: StrictBool = Field(default=False, description="Supply it later (容缺受理; only deferrable materials)")

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
    commitment: StrictBool = Field(default=False, description="The citizen promises to supply deferred materials by "
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


class OutstandingField(BaseModel):
    """A form field the department asked for in a supplement request, as the one-time list (一次性告知) shows it."""

    name: str = Field(description="Top-level property of the service's form schema", examples=["business_scope"])
    title: str = Field(description="The field's label, Chinese")
    title_en: str
    note: str | None = Field(default=None, description="What is missing or wrong, from the department")


class ApplicationFiled(BaseModel):
    """A filed application: its progress, materials and fees."""

    number: str
    progress: ApplicationProgress
    materials: list[MaterialState]
    outstanding: list[int] = Field(description="Indexes of materials still to be supplied")
    supplement_due: dt.date | None
    form: dict[str, Any] = Field(description="The form data as filed (with the fields supplemented since)")
    payment_orders: list[PaymentOrderOut]
    outstanding_fields: list[OutstandingField] = Field(
        default_factory=list, description="Form fields the department asked to be filled in or corrected (补正)")


class SupplementIn(_In):
    """Outstanding materials and/or the form fields the department asked for; at least one of the two (422
    ``supplement_empty``)."""

    materials: list[MaterialRef] = Field(default_factory=list, max_length=50)
    fields: dict[Annotated[str, Field(min_length=1, max_length=64)], Any] = Field(
        default_factory=dict, max_length=50,
        description="Field name → value, for fields listed in ``outstanding_fields``; each value is checked "
                    "against the service's form schema (422 ``pre_review_failed``, one problem per field)")


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
    amount_fen: JsonInt = Field(ge=1, description="Amount actually taken; must equal the order's")
    card_masked: str | None = Field(default=None, max_length=30, examples=["6222 **** **** 1234"])
    paid_at: IsoDateTime | None = Field(default=None, description="Time at the terminal, ISO 8601 with an offset "
                                                                   "(default: now)")


class PaymentCancel(_In):
    reason: str = Field(default="cancelled at the kiosk", min_length=1, max_length=200)


class CashierPay(_In):
    """The unified-payment provider's payment notification, signed with its Ed25519 key: header
    ``X-Provider-Signature: v1=<base64 signature>`` over the canonical string of these fields (service_platform/
    README.md, payment_provider.py)."""

    order_no: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9]+$",
                          description="Must equal the order number in the path")
    amount_fen: JsonInt = Field(ge=1, le=100_000_000, description="Amount the wallet took; must equal the order's")
    currency: Literal["CNY"] = "CNY"
    method: Literal["wechat_pay", "alipay", "ecny"] = Field(description="The wallet the citizen's phone pays with")
    provider_txn_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                 description="The provider's transaction id; used once, ever")
    timestamp: JsonInt = Field(ge=0, le=2**40, description="When the provider signed (Unix seconds); within ±300 s of "
                                                      "the platform's clock")
    nonce: str = Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                       description="Random, used once, ever")


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
    open_now: bool = Field(False, description="the hall is open at this moment (its opening sessions, China time): "
                                              "a kiosk's help button says staff are coming, else gives the phone")
    next_open_at: dt.datetime | None = Field(None, description="when it next opens, while it is closed")


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
    date: IsoDate
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
    agreed: StrictBool = Field(json_schema_extra={"const": True}, description="The citizen tapped 'I agree' to the consent text; false is refused")
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
