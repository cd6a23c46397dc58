"""What the platform checks before it tells a kiosk anything about a person: the card's data must match the population
registry, a kiosk may ask about at most N distinct citizens per rolling hour, and every attempt is audited (kiosk,
HMAC of the ID number, outcome, time — never the clear number or name).

The HMAC key is created on first use and kept in ``audit_keys`` (so the hashes of one database stay comparable across
restarts); a leaked ``identity_audit`` table alone does not give the numbers back (a plain SHA-256 of an 18-digit
number with a known structure would: the space is small).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import threading
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service_platform.errors import ApiError
from service_platform.models import AuditKey, IdentityAuditEntry, RegisteredCitizen

DEFAULT_MAX_CITIZENS_PER_HOUR = 60
WINDOW = dt.timedelta(hours=1)
_KEY_NAME = "identity"
_DOTS = str.maketrans({"•": "·", "・": "·", "．": "·", "‧": "·", "∙": "·", "⋅": "·"})


def normalize_name(name: str) -> str:
    """For comparing a card's name with the registry's: NFKC, no whitespace, one kind of middle dot."""
    return "".join(unicodedata.normalize("NFKC", name).translate(_DOTS).split())


class IdentityGuard:
    """One per app (``app.state.identity_guard``): the audit key (cached after the first read) and the limit."""

    def __init__(self, max_citizens_per_hour: int = DEFAULT_MAX_CITIZENS_PER_HOUR) -> None:
        if max_citizens_per_hour < 1:
            raise ValueError("max_citizens_per_hour must be at least 1")
        self.max_citizens_per_hour = max_citizens_per_hour
        self._key: bytes | None = None
        self._lock = threading.Lock()

    # hashing -------------------------------------------------------------------------------------------------------
    def _audit_key(self, db: Session, now: dt.datetime) -> bytes:
        if self._key is not None:
            return self._key
        with self._lock:
            if self._key is None:
                row = db.get(AuditKey, _KEY_NAME)
                if row is None:
                    try:
                        db.add(AuditKey(name=_KEY_NAME, secret=secrets.token_hex(32), created_at=now))
                        db.commit()
                    except IntegrityError:  # another process created it first
                        db.rollback()
                    row = db.get(AuditKey, _KEY_NAME)
                assert row is not None
                self._key = bytes.fromhex(row.secret)
        return self._key

    def id_hash(self, db: Session, id_number: str, now: dt.datetime) -> str:
        return hmac.new(self._audit_key(db, now), id_number.encode("utf-8"), hashlib.sha256).hexdigest()

    # rate limit ----------------------------------------------------------------------------------------------------
    def _recent(self, db: Session, kiosk_id: str, now: dt.datetime) -> dict[str, dt.datetime]:
        """Distinct citizens this kiosk asked about within the window: id hash → their latest attempt."""
        rows = db.execute(select(IdentityAuditEntry.id_hash, func.max(IdentityAuditEntry.at))
                          .where(IdentityAuditEntry.kiosk_id == kiosk_id, IdentityAuditEntry.at > now - WINDOW,
                                 IdentityAuditEntry.outcome != "rate_limited")
                          .group_by(IdentityAuditEntry.id_hash)).all()
        return {h: at for h, at in rows}

    def usage(self, db: Session, kiosk_id: str, now: dt.datetime) -> dict[str, object]:
        recent = self._recent(db, kiosk_id, now)
        refused = db.scalar(select(func.count()).select_from(IdentityAuditEntry)
                            .where(IdentityAuditEntry.kiosk_id == kiosk_id, IdentityAuditEntry.at > now - WINDOW,
                                   IdentityAuditEntry.outcome == "rate_limited")) or 0
        return {"window_minutes": int(WINDOW.total_seconds() // 60), "distinct_citizens": len(recent),
                "limit": self.max_citizens_per_hour, "rate_limited": int(refused),
                "retry_after_s": self._retry_after(recent, now) if len(recent) >= self.max_citizens_per_hour
                else 0}

    @staticmethod
    def _retry_after(recent: dict[str, dt.datetime], now: dt.datetime) -> int:
        if not recent:
            return 0
        return max(1, math.ceil((min(recent.values()) + WINDOW - now).total_seconds()))

    def check_rate(self, db: Session, kiosk_id: str, id_hash: str, now: dt.datetime) -> ApiError | None:
        """429 ``rate_limited`` (with Retry-After) when this would be one citizen too many; a citizen already
        counted in the window may always come back (a retry, the session after the photo query)."""
        recent = self._recent(db, kiosk_id, now)
        if id_hash in recent or len(recent) < self.max_citizens_per_hour:
            return None
        retry = self._retry_after(recent, now)
        return ApiError(429, "rate_limited",
                        f"this kiosk asked about more than {self.max_citizens_per_hour} citizens within an hour",
                        details={"limit": self.max_citizens_per_hour, "retry_after_s": retry},
                        headers={"Retry-After": str(retry)})

    # audit ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def record(db: Session, kiosk_id: str, id_hash: str, action: str, outcome: str, now: dt.datetime,
               method: str | None = None) -> None:
        """Add the audit row to ``db``'s transaction (the caller commits)."""
        db.add(IdentityAuditEntry(kiosk_id=kiosk_id, id_hash=id_hash, action=action, method=method, outcome=outcome,
                                  at=now))


def registry_problem(db: Session, id_number: str, name: str) -> ApiError | None:
    """403 ``unknown_person`` when the registry does not know the number, ``identity_mismatch`` when it knows it
    under another name; None when the card's data matches."""
    person = db.get(RegisteredCitizen, id_number)
    if person is None:
        return ApiError(403, "unknown_person", "the population registry does not know this ID number")
    if normalize_name(person.name) != normalize_name(name):
        return ApiError(403, "identity_mismatch", "the name does not match the registry's for this ID number")
    return None
