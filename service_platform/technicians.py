"""Technicians per kiosk: who may open a kiosk's maintenance mode with their card and PIN.

A technician is listed for one kiosk by the **hash of their card's number** (ID card or social-security card: the
social security number is the ID number) and the PBKDF2 hash of a PIN. The platform never holds the number in clear;
the kiosk sends only the hash, so neither side logs a number:

    card_hash = SHA-256("kiosk-technician-card-v1:" + number, upper-cased, no spaces)   (hex)

Who may call what:

* ``POST /api/v1/kiosk/technicians/lookup`` — the **kiosk itself** (signed request, KIOSK-ED25519-V1): is this card a
  technician of *this* kiosk (the signing kiosk; another kiosk's list is never consulted)? Answers yes/no only.
  Unknown cards count as failures of the kiosk (at most 20 per 10 min, then 429 ``too_many_attempts``).
* ``POST /api/v1/kiosk/technicians/verify`` — the same kiosk: card hash + PIN → yes/no. Wrong PINs are counted per
  technician **in the database** (a restart does not forget them): after 5 in a row the technician is locked for
  15 minutes (429 ``too_many_attempts`` with Retry-After, right PIN included, so the lock cannot be probed).
* ``service-platform technician add|remove|list|card-hash`` — the platform's operators on its host.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import secrets
import sys
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from service_platform.auth import require_kiosk
from service_platform.db import Base, UTCDateTime
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses
from service_platform.models import Kiosk

CARD_HASH_CONTEXT = "kiosk-technician-card-v1:"
CARD_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")
PBKDF2_ROUNDS = 200_000
MAX_PIN_FAILURES = 5
LOCK = dt.timedelta(minutes=15)


def card_hash(number: str) -> str:
    """The hash a technician is listed by (the kiosk computes the same from the card it reads)."""
    return hashlib.sha256((CARD_HASH_CONTEXT + "".join(number.split()).upper()).encode("utf-8")).hexdigest()


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt, PBKDF2_ROUNDS)
    return f"pbkdf2_sha256${PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"


def pin_ok(pin: str, stored: str) -> bool:
    try:
        scheme, rounds, salt, digest = stored.split("$")
        got = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), bytes.fromhex(salt), int(rounds))
    except (ValueError, TypeError):
        return False
    return scheme == "pbkdf2_sha256" and hmac.compare_digest(got.hex(), digest)


class Technician(Base):
    """One technician listed for one kiosk (card hash + PIN hash; a label such as 王工 for the list)."""

    __tablename__ = "kiosk_technicians"
    __table_args__ = (UniqueConstraint("kiosk_id", "card_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kiosk_id: Mapped[str] = mapped_column(String(40), ForeignKey("kiosks.id"), index=True)
    card_hash: Mapped[str] = mapped_column(String(64))
    pin_hash: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(60), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- API ---------------------------------------------------------------------------------------------------------------
router = APIRouter(prefix="/api/v1", tags=["kiosks"])


class CardQuery(BaseModel):
    card_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of 'kiosk-technician-card-v1:' + "
                                                                  "the card's number (upper case)")


class PinQuery(CardQuery):
    pin: str = Field(pattern=r"^[0-9]{4,12}$", description="the technician's PIN (4–12 digits)")


class TechnicianAnswer(BaseModel):
    technician: bool = Field(description="yes/no only: nothing else about the technician is disclosed")


def _listed(db: Session, kiosk_id: str, hashed: str) -> Technician | None:
    return db.scalar(select(Technician).where(Technician.kiosk_id == kiosk_id, Technician.card_hash == hashed,
                                              Technician.active.is_(True)))


def _too_many(retry_after: int) -> ApiError:
    return ApiError(429, "too_many_attempts", "too many failed attempts; try again later",
                    headers={"Retry-After": str(max(1, retry_after))})


def _kiosk_throttle(request: Request, kiosk_id: str, now: dt.datetime) -> None:
    wait = request.app.state.technician_throttle.retry_after(kiosk_id, now)
    if wait is not None:
        raise _too_many(wait)


@router.post("/kiosk/technicians/lookup", response_model=TechnicianAnswer, responses=error_responses(401, 422, 429),
             summary="Is this card a technician of the calling kiosk? (yes/no)")
def lookup(body: CardQuery, request: Request, kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
           now: dt.datetime = Depends(get_now)) -> TechnicianAnswer:
    """Only the signing kiosk's own list is consulted. Unknown cards count against the kiosk (throttled)."""
    _kiosk_throttle(request, kiosk.id, now)
    found = _listed(db, kiosk.id, body.card_hash) is not None
    if not found:
        request.app.state.technician_throttle.failed(kiosk.id, now)
    return TechnicianAnswer(technician=found)


@router.post("/kiosk/technicians/verify", response_model=TechnicianAnswer, responses=error_responses(401, 422, 429),
             summary="Card + PIN of a technician of the calling kiosk (yes/no; wrong PINs lock the technician)")
def verify(body: PinQuery, request: Request, kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
           now: dt.datetime = Depends(get_now)) -> TechnicianAnswer:
    _kiosk_throttle(request, kiosk.id, now)
    tech = _listed(db, kiosk.id, body.card_hash)
    if tech is None:
        request.app.state.technician_throttle.failed(kiosk.id, now)
        return TechnicianAnswer(technician=False)
    if tech.locked_until is not None and tech.locked_until > now:
        raise _too_many(math.ceil((tech.locked_until - now).total_seconds()))
    if pin_ok(body.pin, tech.pin_hash):
        tech.pin_failures, tech.locked_until = 0, None
        db.commit()
        return TechnicianAnswer(technician=True)
    tech.pin_failures += 1
    if tech.pin_failures >= MAX_PIN_FAILURES:
        tech.pin_failures, tech.locked_until = 0, now + LOCK
    db.commit()
    return TechnicianAnswer(technician=False)


def add_technician(db: Session, kiosk_id: str, hashed: str, pin: str, label: str, now: dt.datetime) -> Technician:
    """List (or re-list, with a new PIN) a technician for a kiosk; the caller commits."""
    tech = db.scalar(select(Technician).where(Technician.kiosk_id == kiosk_id, Technician.card_hash == hashed))
    if tech is None:
        tech = Technician(kiosk_id=kiosk_id, card_hash=hashed, created_at=now)
        db.add(tech)
    tech.pin_hash, tech.label, tech.active = hash_pin(pin), label[:60], True
    tech.pin_failures, tech.locked_until = 0, None
    return tech


# --- CLI: service-platform technician … ----------------------------------------------------------------------------
def add_cli(sub: Any, db_help: str) -> None:
    tech = sub.add_parser("technician", help="technicians per kiosk: who opens its maintenance mode by card + PIN",
                          description="A technician is listed for one kiosk by the SHA-256 hash of their card's "
                                      "number (`technician card-hash` computes it from stdin) and a PIN read from "
                                      "stdin; the platform keeps only hashes.")
    tsub = tech.add_subparsers(dest="technician_command", required=True)
    add = tsub.add_parser("add", help="list a technician for a kiosk (the PIN is read from stdin)")
    add.add_argument("--kiosk", required=True, help="kiosk id, e.g. KSK-340302-0001")
    add.add_argument("--card-hash", required=True, help="the hash of the card's number (technician card-hash)")
    add.add_argument("--label", default="", help="how the list shows them, e.g. 王工 (no ID numbers)")
    rm = tsub.add_parser("remove", help="take a technician off a kiosk's list")
    rm.add_argument("--kiosk", required=True)
    rm.add_argument("--card-hash", required=True)
    ls = tsub.add_parser("list", help="a kiosk's technicians, as JSON lines (hash prefixes and labels only)")
    ls.add_argument("--kiosk", required=True)
    tsub.add_parser("card-hash", help="read a card number from stdin, print its hash (nothing is stored)")
    for p in (add, rm, ls):
        p.add_argument("--db", default=None, help=db_help)


def cli_command(args: argparse.Namespace) -> int:
    if args.technician_command == "card-hash":
        number = sys.stdin.readline().strip()
        if not number:
            print("service-platform: give the card number on stdin", file=sys.stderr)
            return 2
        print(card_hash(number))
        return 0
    hashed = args.card_hash.strip().lower()
    if not CARD_HASH_RE.match(hashed):
        print("service-platform: --card-hash must be 64 hex digits (technician card-hash)", file=sys.stderr)
        return 2
    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow

    engine = make_engine(normalize_db_url(args.db))
    try:
        create_tables(engine)
        with make_sessionmaker(engine)() as db:
            if db.get(Kiosk, args.kiosk) is None:
                print(f"service-platform: no kiosk {args.kiosk} (service-platform kiosk add first)", file=sys.stderr)
                return 1
            tech = db.scalar(select(Technician).where(Technician.kiosk_id == args.kiosk,
                                                      Technician.card_hash == hashed))
            if args.technician_command == "add":
                pin = sys.stdin.readline().strip()
                if not PIN_RE.match(pin):
                    print("service-platform: give a PIN of 4–12 digits on stdin", file=sys.stderr)
                    return 2
                tech = add_technician(db, args.kiosk, hashed, pin, args.label, utcnow())
                db.commit()
                print(json.dumps({"kiosk": args.kiosk, "card_hash": hashed[:12], "label": tech.label,
                                  "active": True}, ensure_ascii=False))
                return 0
            if args.technician_command == "list":
                for t in db.scalars(select(Technician).where(Technician.kiosk_id == args.kiosk)):
                    print(json.dumps({"card_hash": t.card_hash[:12], "label": t.label, "active": t.active},
                                     ensure_ascii=False))
                return 0
            if tech is None:
                print("service-platform: no such technician on this kiosk", file=sys.stderr)
                return 1
            tech.active = False
            db.commit()
            print(json.dumps({"kiosk": args.kiosk, "card_hash": hashed[:12], "active": False}))
            return 0
    finally:
        engine.dispose()


__all__ = ["Technician", "add_technician", "card_hash", "hash_pin", "pin_ok", "router", "add_cli", "cli_command"]
