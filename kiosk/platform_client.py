"""Client of the service platform API (``/api/v1``), over httpx.

Timeouts on every call; idempotent calls (GET, DELETE, and POSTs that carry an ``Idempotency-Key`` or create nothing)
are retried with back-off on connection errors and 5xx; anything that still fails becomes :class:`PlatformUnavailable`.
4xx answers become :class:`PlatformRejected` (or a subclass) carrying the platform's stable error code and its
``details``; a refused filing is :class:`PreReviewFailed` with every problem. Blocking: call it from a worker, never
from the UI thread.

Every request is signed with the kiosk's own Ed25519 key (``signer``: :class:`kiosk.request_signing.KioskRequestSigner`,
scheme KIOSK-ED25519-V1). Answers are bounded: a JSON answer above :data:`MAX_JSON_BYTES`, a PDF/image above
:data:`MAX_RAW_BYTES`, or a 2xx answer that is not the JSON expected is :class:`PlatformUnavailable` (a proxy's page,
a broken or hostile server), never half-parsed.

Creating calls take ``idempotency_key`` (default: a new UUID — an outbox must store its own key and pass it on every
attempt) and ``captured_at`` (when the citizen confirmed; only for requests sent later from an outbox).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import httpx

from kiosk.errors import (
    CitizenSessionExpired, IdentityNotRecognised, KioskRateLimited, NotFound, PlatformRejected, PlatformUnavailable,
    VerificationLevelInsufficient)
from kiosk.identity_levels import STRONG as STRONG_LEVELS  # the levels that confirm the card holder
from kiosk.platform_proofs import ProofsApi  # proofs, public verification URLs, phone upload (docs/protocols/proofs.md)

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024  # largest JSON answer accepted (the whole catalogue page is ~100 KB)
MAX_RAW_BYTES = 16 * 1024 * 1024  # largest PDF / image accepted


@dataclass(frozen=True)
class ServiceSummary:
    code: str
    name: str
    name_en: str
    department: str
    category: str
    fee_fen: int
    promised_days: int | None
    online_depth: int = 0   # 1 information only … 4 fully online (0: not said)
    agent_allowed: bool = False  # an agent may apply for someone else (代办)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ServiceSummary":
        return cls(code=d["code"], name=d["name"], name_en=d.get("name_en") or d["name"],
                   department=d.get("department", ""), category=d.get("category", ""),
                   fee_fen=int(d.get("fee_fen") or 0), promised_days=d.get("promised_days"),
                   online_depth=int(d.get("online_depth") or 0), agent_allowed=bool(d.get("agent_allowed")))


@dataclass(frozen=True)
class Material:
    name: str
    originals: int
    copies: int
    required: bool
    e_cert_type: str | None
    note: str = ""
    index: int = -1
    satisfied_by: str | None = None  # "form" | "identity": nothing to attach when filing online
    deferrable: bool = False  # may be supplied later (容缺受理)


@dataclass(frozen=True)
class ServiceDetail:
    summary: ServiceSummary
    conditions: list[str]
    materials: list[Material]
    legal_days: int | None
    promised_days: int | None
    fee_fen: int
    fee_note: str
    basis: str
    places: list[dict[str, str]]
    faqs: list[dict[str, str]]
    form_schema: dict[str, Any] | None = None  # JSON Schema of the online form; None: cannot be filed online
    supplement_days: int | None = None
    agent_note: str = ""  # who may apply as an agent (代办), when allowed
    sample_forms: list[dict[str, Any]] = field(default_factory=list)  # 示范文本: {title, title_en, note, fields}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ServiceDetail":
        return cls(
            summary=ServiceSummary.from_json(d),
            conditions=list(d.get("conditions") or []),
            materials=[Material(name=m["name"], originals=int(m.get("originals", 0)), copies=int(m.get("copies", 0)),
                                required=bool(m.get("required", True)), e_cert_type=m.get("e_cert_type"),
                                note=m.get("note") or "", index=int(m.get("index", i)),
                                satisfied_by=m.get("satisfied_by"), deferrable=bool(m.get("deferrable", False)))
                       for i, m in enumerate(d.get("materials") or [])],
            legal_days=d.get("legal_days"), promised_days=d.get("promised_days"),
            fee_fen=int(d.get("fee_fen") or 0), fee_note=d.get("fee_note") or "", basis=d.get("basis") or "",
            places=list(d.get("places") or []), faqs=list(d.get("faqs") or []),
            form_schema=d.get("form_schema"), supplement_days=d.get("supplement_days"),
            agent_note=d.get("agent_note") or "", sample_forms=list(d.get("sample_forms") or []),
        )


@dataclass(frozen=True)
class ProgressStep:
    status: str
    at: str
    department: str
    note: str


@dataclass(frozen=True)
class Application:
    number: str
    service_code: str
    service_name: str
    status: str
    status_text: str
    applicant_masked: str
    submitted_at: str
    department: str
    promised_date: str | None
    timeline: list[ProgressStep] = field(default_factory=list)
    updated_at: str = ""
    status_only: bool = False  # progress by number alone: the state and its time, nothing else (no name/service)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Application":
        timeline = [ProgressStep(status=s["status"], at=s.get("at", ""), department=s.get("department") or "",
                                 note=s.get("note") or "") for s in d.get("timeline") or []]
        return cls(
            number=d["number"], service_code=d.get("service_code", ""), service_name=d.get("service_name", ""),
            status=d["status"], status_text=d.get("status_text_zh") or d["status"],
            applicant_masked=d.get("applicant_masked", ""), submitted_at=d.get("submitted_at", ""),
            department=d.get("department") or "", promised_date=d.get("promised_date"), timeline=timeline,
            updated_at=d.get("updated_at") or (timeline[-1].at if timeline else ""),
            status_only="timeline" not in d,
        )


@dataclass(frozen=True)
class CitizenSession:
    token: str = field(repr=False)
    expires_at: str
    name_masked: str
    level: str = "card"  # card | card+face | card+pin (kiosk/identity_levels.py)


# --- e-certificates and registered photos -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ECertificateType:
    code: str
    name: str
    name_en: str
    issuer: str
    fields: list[dict[str, str]]  # [{key, label, label_en}]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ECertificateType":
        return cls(code=d["code"], name=d["name"], name_en=d.get("name_en", ""), issuer=d.get("issuer", ""),
                   fields=list(d.get("fields") or []))


@dataclass(frozen=True)
class ECertificate:
    id: str
    type_code: str
    type_name: str
    number: str = field(repr=False)
    issuer: str
    issued_on: str
    valid_until: str | None  # None: 长期
    status: str  # valid | expired | revoked
    trust_level: str  # A–D; materials accept A–C
    holder_name_masked: str
    data: dict[str, Any] = field(repr=False)
    pdf_url: str = ""

    @property
    def usable_as_material(self) -> bool:
        return self.status == "valid" and self.trust_level in ("A", "B", "C")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ECertificate":
        return cls(id=d["id"], type_code=d["type_code"], type_name=d["type_name"], number=d.get("number", ""),
                   issuer=d.get("issuer", ""), issued_on=d.get("issued_on", ""), valid_until=d.get("valid_until"),
                   status=d["status"], trust_level=d["trust_level"], holder_name_masked=d.get("holder_name_masked", ""),
                   data=dict(d.get("data") or {}), pdf_url=d.get("pdf_url", ""))


@dataclass(frozen=True)
class RegisteredPhoto:
    data: bytes = field(repr=False)
    content_type: str
    source: str  # "placeholder" (drawn, useless for face matching) | "file"


# --- online filing ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageUpload:
    id: str
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    created_at: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PageUpload":
        return cls(id=d["id"], content_type=d["content_type"], size=int(d["size"]), width=int(d["width"]),
                   height=int(d["height"]), sha256=d["sha256"], created_at=d.get("created_at", ""))


@dataclass(frozen=True)
class MaterialRef:
    """How one material of the guide (by ``index``) is provided: an e-certificate, page uploads, or deferred."""

    index: int
    e_certificate_id: str | None = None
    upload_ids: tuple[str, ...] = ()
    defer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        if self.e_certificate_id is not None:
            out["e_certificate_id"] = self.e_certificate_id
        if self.upload_ids:
            out["upload_ids"] = list(self.upload_ids)
        if self.defer:
            out["defer"] = True
        return out


@dataclass(frozen=True)
class MaterialState:
    index: int
    name: str
    required: bool
    status: str  # provided | outstanding | missing | not_provided
    source: str | None = None  # e_certificate | upload | identity | form
    e_certificate_id: str | None = None
    upload_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "MaterialState":
        return cls(index=int(d["index"]), name=d["name"], required=bool(d.get("required", True)), status=d["status"],
                   source=d.get("source"), e_certificate_id=d.get("e_certificate_id"),
                   upload_ids=tuple(d.get("upload_ids") or ()))


@dataclass(frozen=True)
class OutstandingField:
    """A form field the department asked to be filled in or corrected (补正)."""

    name: str        # top-level property of the service's form schema
    title: str
    title_en: str
    note: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "OutstandingField":
        return cls(name=d["name"], title=d.get("title") or d["name"], title_en=d.get("title_en") or d["name"],
                   note=d.get("note"))


@dataclass(frozen=True)
class Problem:
    """One missing or wrong item of a filing (一次性告知)."""

    code: str
    message: str  # zh, for the citizen
    message_en: str
    field: str | None = None  # JSON pointer into the form
    material_index: int | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Problem":
        return cls(code=d["code"], message=d.get("message", ""), message_en=d.get("message_en", ""),
                   field=d.get("field"), material_index=d.get("material_index"))


class PreReviewFailed(PlatformRejected):
    """The platform refused a filing or supplement; ``problems`` lists every missing or wrong item at once."""

    code = "pre_review_failed"

    def __init__(self, message: str = "", problems: Sequence[Problem] = (),
                 materials: Sequence[MaterialState] = (), **kwargs: Any) -> None:
        super().__init__(message, status=422, platform_code="pre_review_failed", **kwargs)
        self.problems = list(problems)
        self.materials = list(materials)


@dataclass(frozen=True)
class PreReview:
    acceptable: bool
    problems: list[Problem]
    materials: list[MaterialState]
    supplement_due: str | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PreReview":
        return cls(acceptable=bool(d["acceptable"]), problems=[Problem.from_json(p) for p in d.get("problems") or []],
                   materials=[MaterialState.from_json(m) for m in d.get("materials") or []],
                   supplement_due=d.get("supplement_due"))


@dataclass(frozen=True)
class FormPrefill:
    service_code: str
    form: dict[str, Any] = field(repr=False)
    sources: dict[str, str]  # JSON pointer → identity | e_certificate:<id>
    materials: list[MaterialState]  # suggested provision (one tap to attach)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "FormPrefill":
        return cls(service_code=d["service_code"], form=dict(d.get("form") or {}), sources=dict(d.get("sources") or {}),
                   materials=[MaterialState.from_json(m) for m in d.get("materials") or []])


# --- payments ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaymentOrder:
    order_no: str
    application_number: str
    purpose: str
    amount_fen: int
    payer_masked: str
    payee: str
    status: str  # pending | paid | cancelled | expired
    created_at: str
    expires_at: str
    paid_at: str | None = None
    method: str | None = None
    txn_ref: str | None = None
    card_masked: str | None = None
    cancelled_at: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PaymentOrder":
        return cls(order_no=d["order_no"], application_number=d.get("application_number", ""),
                   purpose=d.get("purpose", ""), amount_fen=int(d["amount_fen"]),
                   payer_masked=d.get("payer_masked", ""),
                   payee=d.get("payee", ""), status=d["status"], created_at=d.get("created_at", ""),
                   expires_at=d.get("expires_at", ""), paid_at=d.get("paid_at"), method=d.get("method"),
                   txn_ref=d.get("txn_ref"), card_masked=d.get("card_masked"), cancelled_at=d.get("cancelled_at"))


@dataclass(frozen=True)
class FiledApplication:
    number: str
    progress: "Application"
    materials: list[MaterialState]
    outstanding: list[int]  # material indexes still to supply
    supplement_due: str | None
    form: dict[str, Any] = field(repr=False)
    payment_orders: list[PaymentOrder] = field(default_factory=list)
    outstanding_fields: list[OutstandingField] = field(default_factory=list)  # form fields asked for (补正)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "FiledApplication":
        return cls(number=d["number"], progress=Application.from_json(d["progress"]),
                   materials=[MaterialState.from_json(m) for m in d.get("materials") or []],
                   outstanding=[int(i) for i in d.get("outstanding") or []], supplement_due=d.get("supplement_due"),
                   form=dict(d.get("form") or {}),
                   payment_orders=[PaymentOrder.from_json(o) for o in d.get("payment_orders") or []],
                   outstanding_fields=[OutstandingField.from_json(f) for f in d.get("outstanding_fields") or []])


@dataclass(frozen=True)
class Reconciliation:
    date: str
    kiosk_id: str
    items: list[PaymentOrder]
    paid_count: int
    paid_fen: int
    cancelled_count: int
    pending_count: int
    expired_count: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Reconciliation":
        t = d.get("totals") or {}
        return cls(date=d["date"], kiosk_id=d.get("kiosk_id", ""),
                   items=[PaymentOrder.from_json(o) for o in d.get("items") or []],
                   paid_count=int(t.get("paid_count", 0)), paid_fen=int(t.get("paid_fen", 0)),
                   cancelled_count=int(t.get("cancelled_count", 0)), pending_count=int(t.get("pending_count", 0)),
                   expired_count=int(t.get("expired_count", 0)))


# --- halls, appointments, queue ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HallQueue:
    prefix: str
    name: str
    windows: list[str]


@dataclass(frozen=True)
class Hall:
    code: str
    name: str
    address: str
    hours: str
    phone: str
    slot_minutes: int
    booking_days: int
    queues: list[HallQueue]
    #: open at the moment of the answer (None: the platform did not say)
    open_now: bool | None = None
    #: when it next opens (ISO 8601), while closed
    next_open_at: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Hall":
        return cls(code=d["code"], name=d["name"], address=d.get("address", ""), hours=d.get("hours", ""),
                   phone=d.get("phone", ""), slot_minutes=int(d.get("slot_minutes", 30)),
                   booking_days=int(d.get("booking_days", 7)),
                   queues=[HallQueue(q["prefix"], q["name"], list(q.get("windows") or []))
                           for q in d.get("queues") or []],
                   open_now=bool(d["open_now"]) if isinstance(d.get("open_now"), bool) else None,
                   next_open_at=str(d.get("next_open_at") or ""))


@dataclass(frozen=True)
class Slot:
    date: str
    start: str
    end: str
    starts_at: str
    capacity: int
    available: int


@dataclass(frozen=True)
class Appointment:
    appointment_no: str
    hall_code: str
    hall_name: str
    hall_address: str
    service_code: str
    service_name: str
    date: str
    start: str
    end: str
    starts_at: str
    status: str  # booked | cancelled | checked_in
    created_at: str
    ticket_id: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Appointment":
        return cls(appointment_no=d["appointment_no"], hall_code=d["hall_code"], hall_name=d.get("hall_name", ""),
                   hall_address=d.get("hall_address", ""), service_code=d["service_code"],
                   service_name=d.get("service_name", ""), date=d["date"], start=d["start"], end=d["end"],
                   starts_at=d.get("starts_at", ""), status=d["status"], created_at=d.get("created_at", ""),
                   ticket_id=d.get("ticket_id"))


@dataclass(frozen=True)
class QueueTicket:
    id: str
    ticket_no: str
    hall_code: str
    hall_name: str
    queue_name: str
    windows: list[str]
    service_code: str
    service_name: str
    service_date: str
    waiting_before: int
    issued_at: str
    hall_open_now: bool
    next_open_at: str | None = None
    appointment_no: str | None = None
    status: str = "waiting"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "QueueTicket":
        return cls(id=d["id"], ticket_no=d["ticket_no"], hall_code=d["hall_code"], hall_name=d.get("hall_name", ""),
                   queue_name=d.get("queue_name", ""), windows=list(d.get("windows") or []),
                   service_code=d["service_code"], service_name=d.get("service_name", ""),
                   service_date=d.get("service_date", ""), waiting_before=int(d.get("waiting_before", 0)),
                   issued_at=d.get("issued_at", ""), hall_open_now=bool(d.get("hall_open_now", False)),
                   next_open_at=d.get("next_open_at"), appointment_no=d.get("appointment_no"),
                   status=d.get("status", "waiting"))


# --- delivery ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryConsent:
    version: str
    text: str
    text_en: str


@dataclass(frozen=True)
class Address:
    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    postcode: str | None = None

    def __repr__(self) -> str:  # personal data: never in logs or tracebacks
        return "Address(<redacted>)"

    def to_json(self) -> dict[str, Any]:
        out = {"recipient_name": self.recipient_name, "phone": self.phone, "province": self.province,
               "city": self.city, "district": self.district, "detail": self.detail}
        if self.postcode:
            out["postcode"] = self.postcode
        return out


@dataclass(frozen=True)
class TrackingEvent:
    status: str
    at: str
    note: str


@dataclass(frozen=True)
class Delivery:
    delivery_no: str
    waybill_no: str
    carrier: str
    application_number: str
    recipient_masked: str
    phone_masked: str
    address_masked: str
    status: str  # awaiting_item | posted | in_transit | out_for_delivery | delivered
    tracking: list[TrackingEvent]
    created_at: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Delivery":
        return cls(delivery_no=d["delivery_no"], waybill_no=d["waybill_no"], carrier=d.get("carrier", "EMS"),
                   application_number=d["application_number"], recipient_masked=d.get("recipient_masked", ""),
                   phone_masked=d.get("phone_masked", ""), address_masked=d.get("address_masked", ""),
                   status=d["status"], created_at=d.get("created_at", ""),
                   tracking=[TrackingEvent(t["status"], t.get("at", ""), t.get("note", ""))
                             for t in d.get("tracking") or []])


def _captured(at: dt.datetime | None) -> dict[str, str]:
    if at is None:
        return {}
    if at.tzinfo is None:
        raise ValueError("captured_at must be timezone-aware")
    return {"X-Captured-At": at.isoformat()}


class PlatformClient(ProofsApi):
    def __init__(self, base_url: str, kiosk_id: str, signer: httpx.Auth, timeout_s: float = 5.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None) -> None:
        """``signer`` signs every request: a :class:`kiosk.request_signing.KioskRequestSigner` for ``kiosk_id``
        (e.g. ``KioskRequestSigner.from_file(kiosk_id, profile.platform.key_file)``)."""
        self.kiosk_id = kiosk_id
        self.retries = retries
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
            headers={"Accept": "application/json"}, auth=signer, transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # transport ------------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, idempotent: bool, token: str | None = None,
                 headers: Mapping[str, str] | None = None, raw: bool = False, **kwargs: Any) -> Any:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        attempts = 1 + (self.retries if idempotent else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
            try:
                response = self._send(method, path, hdrs, MAX_RAW_BYTES if raw else MAX_JSON_BYTES, **kwargs)
            except httpx.HTTPError as exc:  # connect/read timeouts, refused, reset
                last = exc
                log.warning("platform %s %s failed (attempt %d/%d): %s", method, path.split("?")[0],
                            attempt + 1, attempts, type(exc).__name__)
                continue
            if response.status_code >= 500:
                last = PlatformUnavailable(f"platform answered {response.status_code}")
                continue
            if response.status_code >= 400:
                raise self._rejection(response)
            if raw:
                return response
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:  # also UnicodeDecodeError
                raise PlatformUnavailable(f"{method} {path.split('?')[0]}: the answer is not JSON") from None
        raise PlatformUnavailable(f"{method} {path.split('?')[0]}: {type(last).__name__ if last else 'failed'}")

    def _send(self, method: str, path: str, headers: Mapping[str, str], limit: int, **kwargs: Any) -> httpx.Response:
        """One request whose answer is read up to ``limit`` bytes (more: :class:`PlatformUnavailable`)."""
        request = self._http.build_request(method, path, headers=headers, **kwargs)
        response = self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PlatformUnavailable(f"{method} {path.split('?')[0]}: answer larger than {limit} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise PlatformUnavailable(f"{method} {path.split('?')[0]}: answer larger than {limit} bytes")
            response._content = bytes(body)  # what Response.read() would have kept
        finally:
            response.close()
        return response

    @staticmethod
    def _rejection(response: httpx.Response) -> PlatformRejected:
        try:
            err = response.json().get("error", {})
        except ValueError:
            err = {}
        code = err.get("code", "") if isinstance(err, dict) else ""
        message = err.get("message", response.reason_phrase) if isinstance(err, dict) else response.reason_phrase
        details = err.get("details") if isinstance(err, dict) else None
        rejection: PlatformRejected
        if response.status_code == 404:
            rejection = NotFound(message, status=404, platform_code=code)
        elif response.status_code == 401 and code == "session_expired":
            rejection = CitizenSessionExpired(message, status=401, platform_code=code)
        elif code == "verification_level_insufficient":
            info = details if isinstance(details, dict) else {}
            rejection = VerificationLevelInsufficient(message, required=tuple(info.get("required") or STRONG_LEVELS),
                                                      have=str(info.get("have") or "card"))
        elif code in ("unknown_person", "identity_mismatch"):
            rejection = IdentityNotRecognised(message, status=response.status_code, platform_code=code)
        elif response.status_code == 429:
            try:
                retry = int(response.headers.get("retry-after", "0"))
            except ValueError:
                retry = 0
            rejection = KioskRateLimited(message, retry_after_s=retry)
        elif code == "pre_review_failed" and isinstance(details, dict):
            rejection = PreReviewFailed(message, [Problem.from_json(p) for p in details.get("problems") or []],
                                        [MaterialState.from_json(m) for m in details.get("materials") or []])
        else:
            rejection = PlatformRejected(message, status=response.status_code, platform_code=code)
        rejection.details = details  # type: ignore[attr-defined]
        return rejection

    # API ------------------------------------------------------------------------------------------------------------
    def health(self) -> bool:
        try:
            return (self._request("GET", "/healthz", idempotent=False) or {}).get("status") == "ok"
        except (PlatformUnavailable, PlatformRejected):
            return False

    def search_services(self, query: str = "", category: str = "", limit: int = 50,
                        agent_allowed: bool | None = None) -> list[ServiceSummary]:
        params: dict[str, Any] = {k: v for k, v in {"q": query, "category": category, "limit": limit}.items() if v}
        if agent_allowed is not None:
            params["agent_allowed"] = "true" if agent_allowed else "false"
        data = self._request("GET", "/api/v1/services", idempotent=True, params=params)
        return [ServiceSummary.from_json(item) for item in data["items"]]

    def service_detail(self, code: str) -> ServiceDetail:
        return ServiceDetail.from_json(self.service_detail_json(code))

    def service_detail_json(self, code: str) -> dict[str, Any]:
        """One guide as the platform sends it (what the kiosk's offline copy stores)."""
        return dict(self._request("GET", f"/api/v1/services/{code}", idempotent=True))

    def catalogue(self, page_size: int = 100) -> list[dict[str, Any]]:
        """Every service's summary as the platform sends it, in catalogue order (all pages)."""
        items: list[dict[str, Any]] = []
        while True:
            data = self._request("GET", "/api/v1/services", idempotent=True,
                                 params={"limit": page_size, "offset": len(items)})
            items += data["items"]
            if not data["items"] or len(items) >= int(data.get("total", 0)):
                return items

    def categories(self) -> list[dict[str, Any]]:
        """Life-event categories: ``[{code, name_zh, name_en, service_count}]``."""
        return list(self._request("GET", "/api/v1/categories", idempotent=True)["items"])

    def application_progress(self, number: str, id_last4: str | None = None) -> Application:
        """By number alone: the state only (``status_only``). With the last 4 characters of the applicant's ID number:
        the full progress (POST, so they stay out of URLs and logs; a wrong last 4 is :class:`NotFound`, like an
        unknown number; too many wrong tries from this kiosk: ``PlatformRejected`` ``too_many_attempts``)."""
        if id_last4:
            return Application.from_json(self._request("POST", f"/api/v1/applications/{number}/lookup",
                                                       idempotent=True, json={"id_last4": id_last4}))
        return Application.from_json(self._request("GET", f"/api/v1/applications/{number}", idempotent=True))

    def open_citizen_session(self, id_number: str, name: str, document_kind: str,
                             face_match: bool | None = None, pin_verified: bool = False) -> CitizenSession:
        """``face_match``: the face check's result (``card+face``); else ``pin_verified``: a social-security card
        accepted its PIN (``card+pin``); else ``card`` (what the session may do: kiosk/identity_levels.py).
        Refusals: :class:`IdentityNotRecognised` (not in the registry), :class:`KioskRateLimited` (429)."""
        if face_match is not None:
            verification: dict[str, Any] = {"method": "card+face", "face_match": face_match}
        elif pin_verified:
            verification = {"method": "card+pin", "pin_verified": True}
        else:
            verification = {"method": "card", "face_match": None}
        body = {"id_number": id_number, "name": name, "document_kind": document_kind, "verification": verification}
        data = self._request("POST", "/api/v1/citizen-sessions", idempotent=False, json=body)
        return CitizenSession(token=data["token"], expires_at=data.get("expires_at", ""),
                              name_masked=(data.get("citizen") or {}).get("name_masked", ""),
                              level=data.get("verification_method") or verification["method"])

    def close_citizen_session(self, token: str) -> None:
        try:
            self._request("DELETE", "/api/v1/citizen-sessions/current", idempotent=True, token=token)
        except CitizenSessionExpired:
            pass

    def feature_usage(self, days: int = 90) -> dict[str, Any]:
        """Platform-wide usage counts per kiosk feature (``{"window_days", "features": {feature: count}}``): the
        elderly-mode menu shows the most used first (kiosk/elderly.py)."""
        return dict(self._request("GET", "/api/v1/kiosk/feature-usage", idempotent=True, params={"days": days}))

    def technician_lookup(self, card_hash: str) -> bool:
        """Whether the card (by its hash, kiosk/maintenance.py) is a technician of this kiosk: yes/no."""
        return bool(self._request("POST", "/api/v1/kiosk/technicians/lookup", idempotent=True,
                                  json={"card_hash": card_hash})["technician"])

    def technician_verify(self, card_hash: str, pin: str) -> bool:
        """Card + PIN of this kiosk's technician: yes/no (KioskRateLimited while the platform locks them out)."""
        return bool(self._request("POST", "/api/v1/kiosk/technicians/verify", idempotent=False,
                                  json={"card_hash": card_hash, "pin": pin})["technician"])

    def kiosk_usage(self) -> dict[str, Any]:
        """This kiosk's own identity-check counts in the rolling hour (distinct citizens, limit, rate_limited)."""
        return dict(self._request("GET", "/api/v1/kiosk/usage", idempotent=True))

    def my_applications(self, token: str) -> list[Application]:
        data = self._request("GET", "/api/v1/me/applications", idempotent=True, token=token)
        return [Application.from_json(item) for item in data["items"]]

    def rating_tags(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/rating-tags", idempotent=True)

    def submit_rating(self, target_type: str, target_id: str, stars: int, tags: list[str] | None = None,
                      comment: str | None = None, token: str | None = None,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        body = {"target_type": target_type, "target_id": target_id, "stars": stars, "tags": tags or [],
                "comment": comment, "kiosk_id": self.kiosk_id}
        key = idempotency_key or str(uuid.uuid4())
        return self._request("POST", "/api/v1/ratings", idempotent=True, token=token,
                             headers={"Idempotency-Key": key}, json=body)

    # e-certificates and registered photos ---------------------------------------------------------------------------
    def e_certificate_types(self) -> list[ECertificateType]:
        data = self._request("GET", "/api/v1/e-certificate-types", idempotent=True)
        return [ECertificateType.from_json(t) for t in data["items"]]

    def my_e_certificates(self, token: str, cert_type: str | None = None) -> list[ECertificate]:
        """The citizen's certificates; ``cert_type`` is a type code (marriage_cert) or name (结婚证)."""
        params = {"type": cert_type} if cert_type else None
        data = self._request("GET", "/api/v1/me/e-certificates", idempotent=True, token=token, params=params)
        return [ECertificate.from_json(c) for c in data["items"]]

    def e_certificate(self, token: str, cert_id: str) -> ECertificate:
        return ECertificate.from_json(self._request("GET", f"/api/v1/me/e-certificates/{cert_id}", idempotent=True,
                                                    token=token))

    def e_certificate_pdf(self, token: str, cert_id: str) -> bytes:
        response = self._request("GET", f"/api/v1/me/e-certificates/{cert_id}/pdf", idempotent=True, token=token,
                                 raw=True)
        return response.content

    @staticmethod
    def _photo(response: httpx.Response) -> RegisteredPhoto:
        return RegisteredPhoto(data=response.content, content_type=response.headers.get("content-type", ""),
                               source=response.headers.get("x-photo-source", ""))

    def registered_photo(self, id_number: str, name: str, document_kind: str) -> RegisteredPhoto | None:
        """The registry's photo of the person whose card was read (before a session exists); None when the registry
        does not know them. The face check asks for it only when the card's own photo cannot be decoded (no WLT
        decoder configured, or decoding failed): the card's photo wins (kiosk/usecases/face_check.py)."""
        body = {"id_number": id_number, "name": name, "document_kind": document_kind}
        try:
            response = self._request("POST", "/api/v1/registered-photos/query", idempotent=True, json=body, raw=True)
        except NotFound:
            return None
        return self._photo(response)

    def my_photo(self, token: str) -> RegisteredPhoto | None:
        try:
            return self._photo(self._request("GET", "/api/v1/me/photo", idempotent=True, token=token, raw=True))
        except NotFound:
            return None

    # online filing ---------------------------------------------------------------------------------------------------
    def upload_page(self, token: str, data: bytes, content_type: str = "image/jpeg", *,
                    idempotency_key: str | None = None, captured_at: dt.datetime | None = None) -> PageUpload:
        headers = {"Content-Type": content_type, "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
                   **_captured(captured_at)}
        return PageUpload.from_json(self._request("POST", "/api/v1/me/uploads", idempotent=True, token=token,
                                                  headers=headers, content=data))

    def form_prefill(self, token: str, service_code: str) -> FormPrefill:
        return FormPrefill.from_json(self._request("GET", f"/api/v1/me/services/{service_code}/prefill",
                                                   idempotent=True, token=token))

    @staticmethod
    def _draft(service_code: str, form: Mapping[str, Any], materials: Sequence[MaterialRef],
               commitment: bool) -> dict[str, Any]:
        return {"service_code": service_code, "form": dict(form), "materials": [m.to_json() for m in materials],
                "commitment": commitment}

    def pre_review(self, token: str, service_code: str, form: Mapping[str, Any],
                   materials: Sequence[MaterialRef] = (), commitment: bool = False) -> PreReview:
        """Every problem of a draft at once; files nothing."""
        body = self._draft(service_code, form, materials, commitment)
        return PreReview.from_json(self._request("POST", "/api/v1/me/applications/pre-review", idempotent=True,
                                                 token=token, json=body))

    def file_application(self, token: str, service_code: str, form: Mapping[str, Any],
                         materials: Sequence[MaterialRef] = (), commitment: bool = False, *,
                         idempotency_key: str | None = None,
                         captured_at: dt.datetime | None = None) -> FiledApplication:
        """Accepted with its number, or :class:`PreReviewFailed` listing every problem."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        body = self._draft(service_code, form, materials, commitment)
        return FiledApplication.from_json(self._request("POST", "/api/v1/me/applications", idempotent=True,
                                                        token=token, headers=headers, json=body))

    def my_application(self, token: str, number: str) -> FiledApplication:
        return FiledApplication.from_json(self._request("GET", f"/api/v1/me/applications/{number}", idempotent=True,
                                                        token=token))

    def supplement_materials(self, token: str, number: str, materials: Sequence[MaterialRef], *,
                             fields: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                             captured_at: dt.datetime | None = None) -> FiledApplication:
        """Supply outstanding materials and/or the form fields the department asked for (``fields``: name →
        value)."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        body: dict[str, Any] = {"materials": [m.to_json() for m in materials]}
        if fields:
            body["fields"] = dict(fields)
        return FiledApplication.from_json(self._request("POST", f"/api/v1/me/applications/{number}/supplements",
                                                        idempotent=True, token=token, headers=headers, json=body))

    # payments --------------------------------------------------------------------------------------------------------
    def my_payment_orders(self, token: str) -> list[PaymentOrder]:
        data = self._request("GET", "/api/v1/me/payment-orders", idempotent=True, token=token)
        return [PaymentOrder.from_json(o) for o in data["items"]]

    def create_payment_order(self, token: str, application_number: str, *, idempotency_key: str | None = None,
                             captured_at: dt.datetime | None = None) -> PaymentOrder:
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        return PaymentOrder.from_json(self._request("POST", "/api/v1/me/payment-orders", idempotent=True, token=token,
                                                    headers=headers, json={"application_number": application_number}))

    def payment_order(self, order_no: str) -> PaymentOrder:
        return PaymentOrder.from_json(self._request("GET", f"/api/v1/payment-orders/{order_no}", idempotent=True))

    def confirm_payment(self, order_no: str, method: str, txn_ref: str, amount_fen: int, *,
                        card_masked: str | None = None, paid_at: dt.datetime | None = None,
                        idempotency_key: str | None = None) -> PaymentOrder:
        """``method``: unionpay_card | wechat_pay | alipay | ecny. Safe to repeat with the same ``txn_ref``."""
        body: dict[str, Any] = {"method": method, "txn_ref": txn_ref, "amount_fen": amount_fen,
                                "card_masked": card_masked}
        if paid_at is not None:
            body["paid_at"] = paid_at.isoformat()
        return PaymentOrder.from_json(self._request(
            "POST", f"/api/v1/payment-orders/{order_no}/confirm", idempotent=True,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}, json=body))

    def cancel_payment(self, order_no: str, reason: str = "cancelled at the kiosk") -> PaymentOrder:
        return PaymentOrder.from_json(self._request("POST", f"/api/v1/payment-orders/{order_no}/cancel",
                                                    idempotent=True, json={"reason": reason}))

    def order_qr_url(self, order_no: str) -> str:
        """What the kiosk shows as a QR for the citizen's phone: the platform cashier page of the order. The wallet's
        payment provider then notifies the platform with a signed notification (the kiosk holds no key that could
        mark an order paid) and the kiosk learns the payment by polling the order."""
        urls = getattr(self, "public_urls", None)   # the core sets it: the platform's PUBLIC address (a phone)
        if urls is not None:
            return urls.cashier(order_no)
        return f"{self._http.base_url}".rstrip("/") + f"/cashier/{order_no}"

    def reconciliation(self, day: dt.date) -> Reconciliation:
        return Reconciliation.from_json(self._request("GET", "/api/v1/payment-reconciliation", idempotent=True,
                                                      params={"date": day.isoformat()}))

    # halls, appointments, queue --------------------------------------------------------------------------------------
    def halls(self) -> list[Hall]:
        return [Hall.from_json(h) for h in self._request("GET", "/api/v1/halls", idempotent=True)["items"]]

    def hall_slots(self, hall_code: str, day: dt.date | None = None, service_code: str | None = None) -> list[Slot]:
        """Bookable slots (all days of the window, or one ``day``), oldest first."""
        params = {k: v for k, v in {"date": day.isoformat() if day else None, "service_code": service_code}.items()
                  if v}
        data = self._request("GET", f"/api/v1/halls/{hall_code}/slots", idempotent=True, params=params)
        return [Slot(date=d["date"], start=s["start"], end=s["end"], starts_at=s.get("starts_at", ""),
                     capacity=int(s["capacity"]), available=int(s["available"]))
                for d in data["days"] for s in d["slots"]]

    def book_appointment(self, token: str, hall_code: str, service_code: str, day: dt.date, start: str, *,
                         idempotency_key: str | None = None, captured_at: dt.datetime | None = None) -> Appointment:
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        body = {"hall_code": hall_code, "service_code": service_code, "date": day.isoformat(), "start": start}
        return Appointment.from_json(self._request("POST", "/api/v1/me/appointments", idempotent=True, token=token,
                                                   headers=headers, json=body))

    def my_appointments(self, token: str) -> list[Appointment]:
        data = self._request("GET", "/api/v1/me/appointments", idempotent=True, token=token)
        return [Appointment.from_json(a) for a in data["items"]]

    def cancel_appointment(self, token: str, appointment_no: str) -> Appointment:
        return Appointment.from_json(self._request("POST", f"/api/v1/me/appointments/{appointment_no}/cancel",
                                                   idempotent=True, token=token))

    def check_in(self, token: str, appointment_no: str, *, idempotency_key: str | None = None) -> QueueTicket:
        return QueueTicket.from_json(self._request(
            "POST", f"/api/v1/me/appointments/{appointment_no}/check-in", idempotent=True, token=token,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}))

    def take_queue_ticket(self, hall_code: str, service_code: str, token: str | None = None, *,
                          idempotency_key: str | None = None) -> QueueTicket:
        return QueueTicket.from_json(self._request(
            "POST", "/api/v1/queue-tickets", idempotent=True, token=token,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
            json={"hall_code": hall_code, "service_code": service_code}))

    def queue_ticket(self, ticket_id: str) -> QueueTicket:
        return QueueTicket.from_json(self._request("GET", f"/api/v1/queue-tickets/{ticket_id}", idempotent=True))

    # delivery --------------------------------------------------------------------------------------------------------
    def delivery_consent(self) -> DeliveryConsent:
        d = self._request("GET", "/api/v1/delivery-consent", idempotent=True)
        return DeliveryConsent(version=d["version"], text=d["text"], text_en=d.get("text_en", ""))

    def request_delivery(self, token: str, application_number: str, address: Address, consent_version: str,
                         agreed: bool, *, idempotency_key: str | None = None,
                         captured_at: dt.datetime | None = None) -> Delivery:
        """``agreed`` is what the citizen answered to the consent text of ``consent_version`` (False is refused)."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        body = {"application_number": application_number, "address": address.to_json(),
                "consent": {"agreed": agreed, "version": consent_version}}
        return Delivery.from_json(self._request("POST", "/api/v1/me/deliveries", idempotent=True, token=token,
                                                headers=headers, json=body))

    def my_deliveries(self, token: str) -> list[Delivery]:
        data = self._request("GET", "/api/v1/me/deliveries", idempotent=True, token=token)
        return [Delivery.from_json(d) for d in data["items"]]

    def delivery(self, token: str, delivery_no: str) -> Delivery:
        return Delivery.from_json(self._request("GET", f"/api/v1/me/deliveries/{delivery_no}", idempotent=True,
                                                token=token))

    # applying for someone else (代办) ---------------------------------------------------------------------------------
    def proxy_prefill(self, token: str, service_code: str, principal: Mapping[str, str]) -> FormPrefill:
        """The service's form pre-filled for the principal (``{id_number, name, document_kind}`` from their card);
        the platform checks them against the registry (refused: ``principal_not_recognised``)."""
        body = {"service_code": service_code, "principal": dict(principal)}
        return FormPrefill.from_json(self._request("POST", "/api/v1/me/proxy-applications/prefill", idempotent=True,
                                                   token=token, json=body))

    def file_proxy_application(self, token: str, service_code: str, principal: Mapping[str, str],
                               relationship: str, form: Mapping[str, Any], materials: Sequence[MaterialRef] = (),
                               commitment: bool = False, *, idempotency_key: str | None = None,
                               captured_at: dt.datetime | None = None) -> tuple[FiledApplication, dict[str, str]]:
        """File for the principal; the answer and its ``proxy`` part (both names masked, the relationship).
        ``captured_at``: when the agent confirmed (sent by the outbox on every attempt, as ``file_application``)."""
        body = {**self._draft(service_code, form, materials, commitment), "principal": dict(principal),
                "relationship": relationship}
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), **_captured(captured_at)}
        data = self._request("POST", "/api/v1/me/proxy-applications", idempotent=True, token=token,
                             headers=headers, json=body)
        return FiledApplication.from_json(data), dict(data.get("proxy") or {})

    # complaints and consultations ------------------------------------------------------------------------------------
    def submit_feedback(self, kind: str, text: str, service_code: str | None = None, token: str | None = None, *,
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """A complaint or a question (anonymous without ``token``): ``{reference, status: received, message_zh,
        message_en, answer_due, …}``."""
        body: dict[str, Any] = {"kind": kind, "text": text}
        if service_code:
            body["service_code"] = service_code
        return dict(self._request("POST", "/api/v1/feedback", idempotent=True, token=token,
                                  headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}, json=body))

    def feedback_status(self, reference: str) -> dict[str, Any]:
        """The public state of a complaint or question (``{reference, kind, status, status_text_zh, …}``)."""
        return dict(self._request("GET", f"/api/v1/feedback/{reference}", idempotent=True))
