"""Kiosk authentication (``X-Kiosk-Id`` + ``X-Kiosk-Key``) and citizen sessions (``Authorization: Bearer``).

Kiosk keys are stored as salted scrypt hashes. Verifying scrypt costs ~50 ms, so a successful check is remembered
in memory per (kiosk, SHA-256 of the key, stored hash): changing the stored hash invalidates it.
Citizen tokens are random (``secrets.token_urlsafe``); only their SHA-256 is stored (they are high-entropy, so a
fast hash is enough), and a session only works from the kiosk that opened it.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError
from service_platform.models import CitizenSession, Kiosk

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32

kiosk_id_header = APIKeyHeader(name="X-Kiosk-Id", auto_error=False, scheme_name="KioskId",
                               description="Registered kiosk id, e.g. KSK-340302-0001")
kiosk_key_header = APIKeyHeader(name="X-Kiosk-Key", auto_error=False, scheme_name="KioskKey",
                                description="The kiosk's secret key")
citizen_bearer = HTTPBearer(auto_error=False, scheme_name="CitizenToken",
                            description="Token from POST /api/v1/citizen-sessions")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 parts)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_key(key: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if algo != "scrypt":
            return False
        expected = base64.b64decode(hash_b64)
        digest = hashlib.scrypt(key.encode("utf-8"), salt=base64.b64decode(salt_b64), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


_DUMMY_HASH = hash_key("not-a-kiosk-key", salt=b"\0" * 16)


class KioskAuthCache:
    """Remembers successful key checks so only the first request of a kiosk pays for scrypt."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._ok: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._max = max_entries

    def check(self, kiosk: Kiosk, key: str) -> bool:
        entry = (kiosk.id, hashlib.sha256(key.encode("utf-8")).hexdigest(), kiosk.key_hash)
        with self._lock:
            if entry in self._ok:
                return True
        if not verify_key(key, kiosk.key_hash):
            return False
        with self._lock:
            if len(self._ok) >= self._max:
                self._ok.clear()
            self._ok.add(entry)
        return True


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def require_kiosk(request: Request, db: Session = Depends(get_db),
                  kiosk_id: str | None = Depends(kiosk_id_header),
                  kiosk_key: str | None = Depends(kiosk_key_header)) -> Kiosk:
    if not kiosk_id or not kiosk_key:
        raise _unauthorized("X-Kiosk-Id and X-Kiosk-Key headers are required")
    kiosk = db.get(Kiosk, kiosk_id)
    if kiosk is None:
        verify_key(kiosk_key, _DUMMY_HASH)  # same cost as a wrong key: no kiosk-id probing by timing
        raise _unauthorized("unknown kiosk or wrong key")
    cache: KioskAuthCache = request.app.state.kiosk_auth_cache
    if not cache.check(kiosk, kiosk_key):
        raise _unauthorized("unknown kiosk or wrong key")
    if not kiosk.active:
        raise ApiError(403, "kiosk_disabled", "this kiosk has been disabled")
    return kiosk


# --- citizen sessions --------------------------------------------------------------------------------------------

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def find_session(db: Session, kiosk: Kiosk, token: str) -> CitizenSession:
    """The session of ``token`` opened by ``kiosk`` (401 ``session_invalid`` otherwise), whatever its state."""
    session = db.scalar(select(CitizenSession).where(CitizenSession.token_hash == hash_token(token)))
    if session is None or session.kiosk_id != kiosk.id:
        raise ApiError(401, "session_invalid", "unknown citizen session token")
    return session


def is_live(session: CitizenSession, now: dt.datetime) -> bool:
    return session.ended_at is None and now < session.expires_at


def _live_session(db: Session, kiosk: Kiosk, creds: HTTPAuthorizationCredentials, now: dt.datetime
                  ) -> CitizenSession:
    session = find_session(db, kiosk, creds.credentials)
    if not is_live(session, now):
        raise ApiError(401, "session_expired", "the citizen session has expired or was ended")
    return session


def require_citizen(kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                    creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                    now: dt.datetime = Depends(get_now)) -> CitizenSession:
    if creds is None:
        raise ApiError(401, "session_required", "Authorization: Bearer <citizen session token> is required")
    return _live_session(db, kiosk, creds, now)


def optional_citizen(kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                     creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                     now: dt.datetime = Depends(get_now)) -> CitizenSession | None:
    """No Authorization header → None; a header with a bad/expired token is still an error."""
    if creds is None:
        return None
    return _live_session(db, kiosk, creds, now)


# --- creating calls of a citizen (also from a kiosk's offline outbox) ---------------------------------------------

CAPTURE_GRACE = dt.timedelta(hours=72)
CAPTURE_SKEW = dt.timedelta(minutes=2)


class CitizenWriter:
    """The citizen session behind a creating call, resolved without checking that it is still live, so that a
    repeat of the call (same Idempotency-Key) replays even after the session ended. ``check(now)`` is called inside
    the idempotent ``create``: the session must be live now — or, when the kiosk sends ``X-Captured-At`` (the moment
    the citizen confirmed at the kiosk, for requests kept in its outbox while the platform was unreachable), it must
    have been live then, and that moment must be at most 72 hours ago."""

    def __init__(self, session: CitizenSession, captured_at: dt.datetime | None) -> None:
        self.session = session
        self.captured_at = captured_at

    @property
    def id_number(self) -> str:
        return self.session.id_number

    def fingerprint(self) -> dict[str, object]:
        return {"citizen_session": self.session.id,
                "captured_at": self.captured_at.isoformat() if self.captured_at else None}

    def check(self, now: dt.datetime) -> dt.datetime:
        """Raise unless the citizen may act; return the moment of the action (captured or now)."""
        if self.captured_at is None:
            if not is_live(self.session, now):
                raise ApiError(401, "session_expired", "the citizen session has expired or was ended")
            return now
        at = self.captured_at.replace(microsecond=0)  # session times are kept to the second
        if at > now + CAPTURE_SKEW or at < now - CAPTURE_GRACE:
            raise ApiError(422, "captured_at_out_of_range",
                           "X-Captured-At must lie within the last 72 hours (and not in the future)")
        ended = min(self.session.expires_at, self.session.ended_at or self.session.expires_at)
        if not self.session.created_at <= at <= ended:
            raise ApiError(401, "session_expired", "the citizen session was not live at X-Captured-At")
        return at


def _captured_at(
    captured_at: str | None = Header(
        default=None, alias="X-Captured-At",
        description="ISO 8601 time (with offset) at which the citizen confirmed this request at the kiosk. Only for "
                    "requests submitted later from the kiosk's outbox: the citizen session must have been live then "
                    "(up to 72 hours ago)."),
) -> dt.datetime | None:
    if captured_at is None:
        return None
    try:
        value = dt.datetime.fromisoformat(captured_at.strip())
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ApiError(422, "validation_failed", "X-Captured-At must be an ISO 8601 time with an offset")
    return value.astimezone(dt.timezone.utc)


def citizen_writer(kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                   creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                   captured_at: dt.datetime | None = Depends(_captured_at)) -> CitizenWriter:
    if creds is None:
        raise ApiError(401, "session_required", "Authorization: Bearer <citizen session token> is required")
    return CitizenWriter(find_session(db, kiosk, creds.credentials), captured_at)
