"""ORM tables: catalogue (categories, services, materials, places), kiosks, applications with their timeline,
citizen sessions, ratings and idempotency records."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint
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
    """A registered self-service terminal; its key is stored only as a salted scrypt hash."""

    __tablename__ = "kiosks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    location: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


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
