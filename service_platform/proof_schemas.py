"""Request/response models of proofs, public verification, kiosk configuration and phone uploads
(docs/protocols/proofs.md)."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProofTypeCode = Literal["social_insurance_payment", "medical_insurance", "housing_fund_deposit",
                        "real_estate_record", "household_record"]
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VerifyUrls(BaseModel):
    document: str
    application: str
    payment: str
    queue_ticket: str
    appointment: str
    feedback: str
    guide: str
    cashier: str


class KioskConfig(BaseModel):
    public_base_url: str = Field(description="The platform's PUBLIC base URL (what a phone can open); build every "
                                             "printed QR from it, never from the kiosk's internal API URL")
    verify_urls: VerifyUrls = Field(description="URL templates: replace {placeholder} with the URL-encoded value")


class ProofTypeOut(BaseModel):
    type: ProofTypeCode
    name: str
    name_en: str
    issuer: str
    periodic: bool
    earliest_month: str | None
    latest_month: str | None
    default_from: str | None
    default_to: str | None
    max_months: int | None
    has_records: bool = Field(description="false: the proof states that there is no record (e.g. 无房证明)")
    summary_zh: str
    summary_en: str


class ProofTypeList(BaseModel):
    items: list[ProofTypeOut]


class ProofIssue(_In):
    type: ProofTypeCode
    period_from: str | None = Field(default=None, pattern=MONTH_PATTERN, description="YYYY-MM (periodic types)")
    period_to: str | None = Field(default=None, pattern=MONTH_PATTERN, description="YYYY-MM (periodic types)")


class IssuedProofOut(BaseModel):
    code: str = Field(description="Verification code, XXXX-XXXX-XXXX-XXXX")
    type: str
    name: str
    issuer: str
    holder_name_masked: str
    issued_at: dt.datetime
    period_from: str | None
    period_to: str | None
    pages: int
    sha256: str = Field(description="SHA-256 (hex) of the PDF bytes")
    size_bytes: int
    status: Literal["valid", "revoked"]
    has_records: bool
    verify_url: str
    pdf_url: str
    preview_url: str


class IssuedProofList(BaseModel):
    items: list[IssuedProofOut]


class DocumentVerification(BaseModel):
    code: str
    kind: Literal["proof", "e_certificate"]
    type: str
    name: str
    issuer: str
    issued_at: dt.datetime
    holder_name_masked: str
    status: Literal["valid", "revoked"]
    revoked_at: dt.datetime | None
    sha256: str
    sha256_matches: bool | None = Field(description="Whether ?sha256= matches (null when not asked)")


class ApplicationVerification(BaseModel):
    number: str
    status: str
    status_text_zh: str
    status_text_en: str
    updated_at: dt.datetime


class PaymentVerification(BaseModel):
    order_no: str
    status: str
    paid: bool
    amount_fen: int
    payee: str
    paid_at: dt.datetime | None


class QueueTicketVerification(BaseModel):
    ticket_no: str
    hall: str
    queue_name: str
    day: dt.date
    status: str
    issued_at: dt.datetime


class AppointmentVerification(BaseModel):
    appointment_no: str
    hall: str
    service_name: str
    day: dt.date
    start: str
    end: str
    status: str


class RevokeIn(_In):
    reason: str = Field(min_length=1, max_length=200)


class PhoneUploadCreate(_In):
    purpose: str | None = Field(default=None, max_length=40)


class PhoneUploadFileOut(BaseModel):
    upload_id: str
    content_type: str
    size: int
    width: int
    height: int
    blank: bool
    received_at: dt.datetime


class PhoneUploadOut(BaseModel):
    id: str
    upload_url: str | None = Field(description="The phone page (show as QR); only in the answer that created it")
    status: Literal["open", "expired", "closed"]
    expires_at: dt.datetime
    max_files: int
    max_bytes: int
    files: list[PhoneUploadFileOut]
