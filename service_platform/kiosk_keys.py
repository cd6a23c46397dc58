"""Kiosk enrolment: the Ed25519 public keys kiosks sign their requests with (table ``kiosk_keys``).

Used by ``service-platform kiosk add|revoke|list|disable|enable`` and by ``serve --demo`` (the demo kiosk's key).
Keys are given as PEM (``-----BEGIN PUBLIC KEY-----``) or as the raw 32-byte key in standard base64 (what
``kiosk keygen`` prints). The key id is the first 16 hex characters of SHA-256 of the raw key.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.db import utcnow
from service_platform.models import Kiosk, KioskKey


class InvalidPublicKey(ValueError):
    """A public key that is not an Ed25519 key in PEM or raw base64."""


def key_id_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(data: bytes | str) -> bytes:
    """The raw 32-byte Ed25519 public key from PEM or base64 text (raises :class:`InvalidPublicKey`)."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError) as exc:
            raise InvalidPublicKey(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidPublicKey("the PEM key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPublicKey("not PEM and not base64") from exc
    if len(raw) != 32:
        raise InvalidPublicKey(f"a raw Ed25519 public key has 32 bytes, this one {len(raw)}")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidPublicKey(f"not an Ed25519 public key: {exc}") from exc
    return raw


@dataclass(frozen=True)
class KeyInfo:
    kiosk_id: str
    key_id: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def add_key(db: Session, kiosk_id: str, raw: bytes, *, name: str | None = None, location: str = "",
            now: dt.datetime | None = None) -> tuple[str, bool]:
    """Register ``raw`` for ``kiosk_id`` (creating the kiosk, named ``name`` or its id, when missing); returns
    (key id, added). A key already registered for this kiosk and not revoked is left as it is (added False); a key
    registered for another kiosk, or revoked, is refused (ValueError): keys are never reused."""
    now = now or utcnow()
    kid = key_id_of(raw)
    existing = db.scalar(select(KioskKey).where(KioskKey.key_id == kid))
    if existing is not None:
        if existing.kiosk_id != kiosk_id:
            raise ValueError(f"key {kid} is registered for another kiosk")
        if existing.revoked_at is not None:
            raise ValueError(f"key {kid} was revoked; generate a new key pair")
        return kid, False
    if db.get(Kiosk, kiosk_id) is None:
        db.add(Kiosk(id=kiosk_id, name=name or kiosk_id, location=location, key_hash="", active=True,
                     created_at=now))
        db.flush()
    db.add(KioskKey(kiosk_id=kiosk_id, key_id=kid, public_key=base64.b64encode(raw).decode("ascii"),
                    created_at=now))
    db.flush()
    return kid, True


def revoke_keys(db: Session, kiosk_id: str, key_id: str | None = None, *, now: dt.datetime | None = None) -> list[str]:
    """Revoke one key of ``kiosk_id`` (``key_id``) or all its active keys (None); the key ids revoked."""
    now = now or utcnow()
    query = select(KioskKey).where(KioskKey.kiosk_id == kiosk_id, KioskKey.revoked_at.is_(None))
    if key_id is not None:
        query = query.where(KioskKey.key_id == key_id)
    revoked = []
    for row in db.scalars(query).all():
        row.revoked_at = now
        revoked.append(row.key_id)
    db.flush()
    return revoked


def list_keys(db: Session) -> list[tuple[Kiosk, list[KeyInfo]]]:
    kiosks = db.scalars(select(Kiosk).order_by(Kiosk.id)).all()
    keys: dict[str, list[KeyInfo]] = {}
    for row in db.scalars(select(KioskKey).order_by(KioskKey.kiosk_id, KioskKey.id)).all():
        keys.setdefault(row.kiosk_id, []).append(KeyInfo(row.kiosk_id, row.key_id, row.created_at, row.revoked_at))
    return [(k, keys.get(k.id, [])) for k in kiosks]


def active_key_count(db: Session) -> int:
    """Active keys of active kiosks: what can authenticate at all."""
    return int(db.scalar(select(func.count()).select_from(KioskKey).join(Kiosk, Kiosk.id == KioskKey.kiosk_id)
                         .where(KioskKey.revoked_at.is_(None), Kiosk.active.is_(True))) or 0)
