"""Tables of proofs (证明), sealed documents and phone uploads — new tables only (see models.py on upgrades).

* registry data the proofs are generated from (seeded with ``--demo`` from ``seed/records.yaml``): contribution
  spans of social insurance, medical insurance and the housing fund, registered properties, household records;
* :class:`IssuedDocument`: every sealed PDF the platform issued (proofs and e-certificate PDFs) with its
  verification code, hash and revocation;
* :class:`PhoneUploadToken` / :class:`PhoneUploadFile`: one-time phone upload links bound to a citizen session.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service_platform.db import Base, UTCDateTime


class ContributionSpan(Base):
    """Contributions of one person to one scheme (``pension`` 养老, ``medical`` 医疗, ``housing_fund`` 公积金) through
    one employer (or as flexible employment), month ``from_month``..``to_month`` (``YYYY-MM``; open-ended: still
    paying). ``base_fen`` is the monthly base in the first month; it rises by ``yearly_raise_permille`` every
    January (the yearly base adjustment); personal and employer shares are per mille of the base."""

    __tablename__ = "contribution_spans"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    scheme: Mapped[str] = mapped_column(String(20))
    employer: Mapped[str] = mapped_column(String(120))
    account_no: Mapped[str] = mapped_column(String(40))
    from_month: Mapped[str] = mapped_column(String(7))
    to_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    base_fen: Mapped[int] = mapped_column(Integer)
    yearly_raise_permille: Mapped[int] = mapped_column(Integer, default=0)
    personal_permille: Mapped[int] = mapped_column(Integer)
    employer_permille: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)


class PropertyRecord(Base):
    """A registered real-estate right (不动产权) of one person."""

    __tablename__ = "property_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    cert_no: Mapped[str] = mapped_column(String(60))
    location: Mapped[str] = mapped_column(String(200))
    area_m2: Mapped[str] = mapped_column(String(20))
    usage: Mapped[str] = mapped_column(String(40))
    ownership: Mapped[str] = mapped_column(String(40))
    registered_on: Mapped[dt.date] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer, default=0)


class HouseholdRecord(Base):
    """The household registration (户籍) of one person."""

    __tablename__ = "household_records"

    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    household_no: Mapped[str] = mapped_column(String(20))
    household_type: Mapped[str] = mapped_column(String(40))
    head_name: Mapped[str] = mapped_column(String(80))
    relation: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))
    registered_on: Mapped[dt.date] = mapped_column(Date)
    moved_from: Mapped[str | None] = mapped_column(String(200), nullable=True)
    police_station: Mapped[str] = mapped_column(String(120))


class IssuedDocument(Base):
    """A sealed PDF the platform issued: a proof, or the PDF of an e-certificate. ``code`` is its verification code
    (verification_codes.py); ``sha256`` the hash of ``pdf`` (the exact bytes handed out, every time)."""

    __tablename__ = "issued_documents"
    __table_args__ = (UniqueConstraint("source_id", "content_digest", name="uq_issued_source_digest"),)

    code: Mapped[str] = mapped_column(String(19), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # proof | e_certificate
    type_code: Mapped[str] = mapped_column(String(40))
    type_name: Mapped[str] = mapped_column(String(80))
    issuer: Mapped[str] = mapped_column(String(120))
    holder_id_number: Mapped[str] = mapped_column(String(18), index=True)
    holder_name: Mapped[str] = mapped_column(String(80))
    #: e-certificates: the certificate id (one document per certificate content); proofs: None
    source_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    content_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    period_from: Mapped[str | None] = mapped_column(String(7), nullable=True)
    period_to: Mapped[str | None] = mapped_column(String(7), nullable=True)
    has_records: Mapped[bool] = mapped_column(Boolean, default=True)
    pages: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, nullable=True)
    kiosk_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class PhoneUploadToken(Base):
    """A one-time phone upload link of one citizen session (only the SHA-256 of its secret is kept)."""

    __tablename__ = "phone_upload_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    citizen_session_id: Mapped[int] = mapped_column(ForeignKey("citizen_sessions.id", ondelete="CASCADE"),
                                                    index=True)
    kiosk_id: Mapped[str] = mapped_column(String(40))
    owner_id_number: Mapped[str] = mapped_column(String(18))
    purpose: Mapped[str | None] = mapped_column(String(40), nullable=True)
    max_files: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PhoneUploadFile(Base):
    """A photo received through a phone upload link: an ordinary page upload (``uploads``) of the citizen."""

    __tablename__ = "phone_upload_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("phone_upload_tokens.id", ondelete="CASCADE"), index=True)
    upload_id: Mapped[str] = mapped_column(String(40), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
