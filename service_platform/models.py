"""ORM tables: catalogue (categories, services, materials, places), kiosks, applications with their timeline,
citizen sessions, ratings and idempotency records; the identity registry with e-certificates (电子证照), online filing
(form schemas, attached materials, uploads), payments, halls with appointment slots and queue tickets, deliveries.

Tables added after the first release are new tables (never new columns on old ones), so an existing database is
upgraded by ``create_all`` plus seeding the new parts (see ``seed/loader.py``)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON, Boolean, Column, Date, ForeignKey, Integer, LargeBinary, String, Table, Text, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service_platform.db import Base, UTCDateTime

service_categories = Table(
    "service_categories",
    Base.metadata,
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
    Column("category_code", ForeignKey("categories.code", ondelete="CASCADE"), primary_key=True),
)


class Category(Base):
    """A life event (出生, 上学, 就业…) used to browse the catalogue."""

    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(40))
    name_en: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)

    services: Mapped[list[Service]] = relationship(secondary=service_categories, back_populates="categories")


class Place(Base):
    """A service hall / window where a service can be handled in person."""

    __tablename__ = "places"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(200))
    hours: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(60))


class ServicePlace(Base):
    __tablename__ = "service_places"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    place_code: Mapped[str] = mapped_column(ForeignKey("places.code"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    place: Mapped[Place] = relationship(lazy="joined")


class Service(Base):
    """One government service item (政务服务事项) with its guide (办事指南)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(120))
    primary_category: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    online_depth: Mapped[int] = mapped_column(Integer)
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    fee_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    legal_days: Mapped[int] = mapped_column(Integer)
    promised_days: Mapped[int] = mapped_column(Integer)
    basis: Mapped[str] = mapped_column(Text)
    conditions: Mapped[list[str]] = mapped_column(JSON, default=list)
    faqs: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Precomputed at seed time by search.build_keys: "|"-separated segments, the first one is the name's.
    search_initials: Mapped[str] = mapped_column(Text, default="")
    search_pinyin: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    categories: Mapped[list[Category]] = relationship(
        secondary=service_categories, back_populates="services", order_by=Category.position)
    materials: Mapped[list[ServiceMaterial]] = relationship(
        order_by="ServiceMaterial.position", cascade="all, delete-orphan")
    place_links: Mapped[list[ServicePlace]] = relationship(
        order_by=ServicePlace.position, cascade="all, delete-orphan")


class ServiceMaterial(Base):
    """A document the applicant must bring (申请材料)."""

    __tablename__ = "service_materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(200))
    originals: Mapped[int] = mapped_column(Integer, default=1)
    copies: Mapped[int] = mapped_column(Integer, default=0)
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    e_cert_type: Mapped[str | None] = mapped_column(String(60), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Kiosk(Base):
    """A registered self-service terminal. It authenticates by Ed25519 signed requests with one of its
    :class:`KioskKey` rows (scheme KIOSK-ED25519-V1, see auth.py)."""

    __tablename__ = "kiosks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    location: Mapped[str] = mapped_column(String(200), default="")
    #: the scrypt hash of the static key of the first releases: kept (NOT NULL in older databases) but never
    #: checked any more; new kiosks store "" here
    key_hash: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KioskKey(Base):
    """An Ed25519 public key a kiosk signs its requests with. A kiosk may have several active keys (rotation: add
    the new one, then revoke the old); a revoked key is refused from the next request on."""

    __tablename__ = "kiosk_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id", ondelete="CASCADE"), index=True)
    #: first 16 hex characters of SHA-256 of the raw 32-byte public key (what X-Kiosk-Key-Id carries)
    key_id: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    #: the raw 32-byte public key, standard base64
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Application(Base):
    """A case (办件) filed for one service by one applicant."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"), index=True)
    applicant_id_number: Mapped[str] = mapped_column(String(18), index=True)
    applicant_name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(30))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    department: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(40), default="window")

    service: Mapped[Service] = relationship(lazy="joined")
    events: Mapped[list[ApplicationEvent]] = relationship(
        order_by="ApplicationEvent.at, ApplicationEvent.id", cascade="all, delete-orphan")


class ApplicationEvent(Base):
    """One step of an application's progress timeline."""

    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(30))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    department: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CitizenSession(Base):
    """A citizen identified at one kiosk; only the SHA-256 of the bearer token is kept."""

    __tablename__ = "citizen_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(80))
    document_kind: Mapped[str] = mapped_column(String(40))
    verification_method: Mapped[str] = mapped_column(String(20))
    face_match: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Rating(Base):
    """A 好差评 evaluation."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_type: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[str] = mapped_column(String(80))
    stars: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id"), index=True)
    citizen_token_id: Mapped[int | None] = mapped_column(ForeignKey("citizen_sessions.id"), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class StaffMember(Base):
    """A member of a department's staff (差评整改): authenticates on ``/api/v1/staff/…`` with a random API token
    (``Authorization: Bearer``) of which only the SHA-256 is kept; sees only their own department's items."""

    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    department: Mapped[str] = mapped_column(String(120), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class RatingFollowUp(Base):
    """The follow-up (差评整改) of a ★1–2 rating by the responsible department: open → assigned → closed."""

    __tablename__ = "rating_followups"

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"), unique=True)
    department: Mapped[str] = mapped_column(String(120), index=True)
    service_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    assignee: Mapped[str | None] = mapped_column(String(80), nullable=True)
    action_taken: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    rating: Mapped[Rating] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """The stored outcome of a creating call, replayed when the same Idempotency-Key comes again."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Counter(Base):
    """Named sequences (application numbers per day, ticket numbers per hall/queue/day, …), incremented in the
    caller's transaction (see ``numbering.py``)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


# --- filing rules of a service ------------------------------------------------------------------------------------

class ServiceFilingRule(Base):
    """How a service is applied for online: the form's JSON Schema, which materials the form or the identity check
    satisfies, which may be supplied later (容缺受理) and within how many working days, and the fee's purpose."""

    __tablename__ = "service_filing_rules"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    form_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    form_materials: Mapped[list[int]] = mapped_column(JSON, default=list)
    deferrable_materials: Mapped[list[int]] = mapped_column(JSON, default=list)
    supplement_days: Mapped[int] = mapped_column(Integer, default=5)
    fee_purpose: Mapped[str | None] = mapped_column(String(120), nullable=True)

    service: Mapped[Service] = relationship()


# --- identity registry and e-certificates -------------------------------------------------------------------------

class RegisteredCitizen(Base):
    """A person known to the population registry (synthetic in the demo); ``photo`` names the source of the
    registered photo (``placeholder`` or a file path; the app's photo source may override it)."""

    __tablename__ = "registered_citizens"

    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    sex: Mapped[str] = mapped_column(String(10))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    nation: Mapped[str | None] = mapped_column(String(40), nullable=True)
    address: Mapped[str] = mapped_column(String(200))
    photo: Mapped[str] = mapped_column(String(300), default="placeholder")


class ECertificateType(Base):
    """A kind of electronic certificate (居民户口簿, 结婚证, …) with the fields its data carries."""

    __tablename__ = "e_certificate_types"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    issuer: Mapped[str] = mapped_column(String(120))
    fields: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ECertificate(Base):
    """One electronic certificate (电子证照) of one holder; ``trust_level`` A–D (国办函〔2016〕108号)."""

    __tablename__ = "e_certificates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("e_certificate_types.code"), index=True)
    holder_id_number: Mapped[str] = mapped_column(String(18), index=True)
    holder_name: Mapped[str] = mapped_column(String(80))
    number: Mapped[str] = mapped_column(String(60))
    issuer: Mapped[str] = mapped_column(String(120))
    issued_on: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    trust_level: Mapped[str] = mapped_column(String(1))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)

    type: Mapped[ECertificateType] = relationship(lazy="joined")


# --- online filing ------------------------------------------------------------------------------------------------

class Upload(Base):
    """A page image captured by a kiosk camera for one citizen; attached to at most one application."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id_number: Mapped[str] = mapped_column(String(18), index=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id"))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    blank: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApplicationFiling(Base):
    """What an online filing adds to an application: the form data, the kiosk, the supplement deadline."""

    __tablename__ = "application_filings"

    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"),
                                                primary_key=True)
    form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kiosk_id: Mapped[str | None] = mapped_column(ForeignKey("kiosks.id"), nullable=True)
    citizen_session_id: Mapped[int | None] = mapped_column(ForeignKey("citizen_sessions.id"), nullable=True)
    supplement_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class ApplicationMaterial(Base):
    """One material of an application: provided (how) or outstanding (容缺 or asked for by the department)."""

    __tablename__ = "application_materials"
    __table_args__ = (UniqueConstraint("application_id", "material_index", name="uq_application_material"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    material_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # provided | outstanding
    source: Mapped[str | None] = mapped_column(String(20), nullable=True)  # e_certificate | upload | identity | form
    e_certificate_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    upload_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    provided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApplicationFieldRequest(Base):
    """A form field (top-level property of the service's form schema) the department asks to be filled in or
    corrected in a supplement (补正): outstanding until the citizen supplies a value the schema accepts."""

    __tablename__ = "application_field_requests"
    __table_args__ = (UniqueConstraint("application_id", "name", name="uq_application_field_request"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # outstanding | provided
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    provided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- payments -----------------------------------------------------------------------------------------------------

class PaymentOrder(Base):
    """An order for one fee of one application (amount in fen). Status: pending → paid | cancelled | expired."""

    __tablename__ = "payment_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(120))
    amount_fen: Mapped[int] = mapped_column(Integer)
    payer_id_number: Mapped[str] = mapped_column(String(18), index=True)
    payer_name: Mapped[str] = mapped_column(String(80))
    payee: Mapped[str] = mapped_column(String(120))
    kiosk_id: Mapped[str | None] = mapped_column(ForeignKey("kiosks.id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    method: Mapped[str | None] = mapped_column(String(30), nullable=True)
    txn_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_masked: Mapped[str | None] = mapped_column(String(30), nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)

    application: Mapped[Application] = relationship(lazy="joined")


# --- halls, appointments, queue -----------------------------------------------------------------------------------

class Hall(Base):
    """A place that takes appointments and issues queue tickets: opening sessions, slot length and capacity."""

    __tablename__ = "halls"

    place_code: Mapped[str] = mapped_column(ForeignKey("places.code"), primary_key=True)
    schedule: Mapped[dict[str, list[list[str]]]] = mapped_column(JSON)  # weekday "0".."6" → [[start, end], …]
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    slot_capacity: Mapped[int] = mapped_column(Integer, default=3)
    booking_days: Mapped[int] = mapped_column(Integer, default=7)
    position: Mapped[int] = mapped_column(Integer, default=0)

    place: Mapped[Place] = relationship(lazy="joined")
    queues: Mapped[list[HallQueue]] = relationship(order_by="HallQueue.position", cascade="all, delete-orphan",
                                                   lazy="selectin")


class HallQueue(Base):
    """A queue of a hall (ticket prefix, windows) serving some departments or service codes (empty list: every
    other service)."""

    __tablename__ = "hall_queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    place_code: Mapped[str] = mapped_column(ForeignKey("halls.place_code", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(60))
    windows: Mapped[list[str]] = mapped_column(JSON, default=list)
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)


class AppointmentSlot(Base):
    """Bookings of one slot; ``booked`` only grows with a conditional UPDATE (``booked < capacity``)."""

    __tablename__ = "appointment_slots"
    __table_args__ = (UniqueConstraint("place_code", "day", "start", name="uq_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    place_code: Mapped[str] = mapped_column(ForeignKey("halls.place_code"))
    day: Mapped[dt.date] = mapped_column(Date)
    start: Mapped[str] = mapped_column(String(5))
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_no: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    citizen_id_number: Mapped[str] = mapped_column(String(18), index=True)
    citizen_name: Mapped[str] = mapped_column(String(80))
    place_code: Mapped[str] = mapped_column(ForeignKey("halls.place_code"))
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    day: Mapped[dt.date] = mapped_column(Date)
    start_time: Mapped[str] = mapped_column(String(5))
    end_time: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(20))  # booked | cancelled | checked_in
    kiosk_id: Mapped[str | None] = mapped_column(ForeignKey("kiosks.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ticket_id: Mapped[str | None] = mapped_column(String(40), nullable=True)

    hall: Mapped[Hall] = relationship(lazy="joined")
    service: Mapped[Service] = relationship(lazy="joined")


class QueueTicket(Base):
    __tablename__ = "queue_tickets"
    __table_args__ = (UniqueConstraint("place_code", "prefix", "day", "seq", name="uq_ticket"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ticket_no: Mapped[str] = mapped_column(String(8))
    place_code: Mapped[str] = mapped_column(ForeignKey("halls.place_code"))
    prefix: Mapped[str] = mapped_column(String(2))
    queue_name: Mapped[str] = mapped_column(String(60))
    windows: Mapped[list[str]] = mapped_column(JSON, default=list)
    day: Mapped[dt.date] = mapped_column(Date)
    seq: Mapped[int] = mapped_column(Integer)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    citizen_id_number: Mapped[str | None] = mapped_column(String(18), nullable=True, index=True)
    appointment_no: Mapped[str | None] = mapped_column(String(24), nullable=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id"))
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    hall: Mapped[Hall] = relationship(lazy="joined")
    service: Mapped[Service] = relationship(lazy="joined")


# --- delivery -----------------------------------------------------------------------------------------------------

class Delivery(Base):
    """EMS delivery of an application's result (证照寄送), with the citizen's recorded consent."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_no: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    waybill_no: Mapped[str] = mapped_column(String(13), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    owner_id_number: Mapped[str] = mapped_column(String(18), index=True)
    recipient_name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(20))
    province: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(40))
    district: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(6), nullable=True)
    consent_version: Mapped[str] = mapped_column(String(40))
    consent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kiosk_id: Mapped[str | None] = mapped_column(ForeignKey("kiosks.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    application: Mapped[Application] = relationship(lazy="joined")


# --- payment provider notifications -------------------------------------------------------------------------------

class ProviderNotification(Base):
    """Every signed payment notification of the unified-payment provider that passed the signature and time checks
    (see ``payment_provider.py``), accepted or not: its transaction id and nonce are used up for good, so a replay is
    refused even after a restart."""

    __tablename__ = "provider_notifications"

    provider_txn_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    order_no: Mapped[str] = mapped_column(String(24), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(30))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(40))  # "paid", or the error code answered


# --- identity checks: who asked for which citizen, per kiosk --------------------------------------------------------

class IdentityAuditEntry(Base):
    """Every attempt of a kiosk to open a citizen session or to fetch a registered photo, opened or refused. Never
    the clear ID number or name: ``id_hash`` is an HMAC-SHA256 of the ID number under the platform's audit key
    (:class:`AuditKey`), enough to count distinct citizens per kiosk (rate limit) and to find one person's entries
    when their number is known, useless to enumerate numbers from."""

    __tablename__ = "identity_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    kiosk_id: Mapped[str] = mapped_column(String(40), index=True)
    id_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(20))          # session | photo_query
    method: Mapped[str | None] = mapped_column(String(20), nullable=True)   # card | card+face | card+pin
    outcome: Mapped[str] = mapped_column(String(40))         # opened | served | the error code answered
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AuditKey(Base):
    """Secrets of the platform created on first use (``identity``: the HMAC key of ``identity_audit.id_hash``)."""

    __tablename__ = "audit_keys"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- applying for someone else (代办), sample forms, complaints and consultations -------------------------------------

class ServiceAgentRule(Base):
    """Whether a service may be applied for by an agent on behalf of someone else (代办); a service without a row
    may not."""

    __tablename__ = "service_agent_rules"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    agent_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ServiceSampleForm(Base):
    """A sample filled form (示范文本) of a service's guide: fields with example values."""

    __tablename__ = "service_sample_forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(120))
    title_en: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{label, label_en, value}]
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ApplicationAgent(Base):
    """The agent (代办人) who filed an application for its applicant (the principal, 委托人): both persons are on
    record — the applicant in ``applications``, the agent here, with the kiosk and the agent's citizen session."""

    __tablename__ = "application_agents"

    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True)
    agent_id_number: Mapped[str] = mapped_column(String(18), index=True)
    agent_name: Mapped[str] = mapped_column(String(80))
    relationship: Mapped[str] = mapped_column(String(20))
    principal_document_kind: Mapped[str] = mapped_column(String(40))
    kiosk_id: Mapped[str | None] = mapped_column(ForeignKey("kiosks.id"), nullable=True)
    citizen_session_id: Mapped[int | None] = mapped_column(ForeignKey("citizen_sessions.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Feedback(Base):
    """A complaint (投诉) or consultation (咨询) sent from a kiosk, anonymous or with the citizen's session; handled
    by the responsible department's staff: received → in_progress → answered → closed."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(20))  # complaint | consultation
    service_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(String(120), index=True)
    kiosk_id: Mapped[str] = mapped_column(ForeignKey("kiosks.id"), index=True)
    citizen_session_id: Mapped[int | None] = mapped_column(ForeignKey("citizen_sessions.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="received")
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
