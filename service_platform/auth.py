"""Kiosk authentication (Ed25519 signed requests, scheme ``KIOSK-ED25519-V1``) and citizen sessions
(``Authorization: Bearer``).

**Kiosks** sign every request with their own Ed25519 key; the platform stores only public keys (table
``kiosk_keys``, enrolled with ``service-platform kiosk add``). Headers: ``X-Kiosk-Id``, ``X-Kiosk-Key-Id`` (first 16
hex characters of SHA-256 of the raw 32-byte public key), ``X-Kiosk-Timestamp`` (Unix seconds), ``X-Kiosk-Nonce``
(16–64 base64url characters, at least 128 random bits) and ``X-Kiosk-Signature`` (standard base64 of the 64-byte
signature) over these lines joined by ``\\n`` (UTF-8)::

    KIOSK-ED25519-V1
    <kiosk id>
    <key id>
    <HTTP method, upper case>
    <raw request path as sent: percent-encoded, without the query>
    <raw query string, possibly empty>
    <timestamp>
    <nonce>
    <lowercase hex SHA-256 of the body bytes (of b"" when there is no body)>

Checked here in two steps: :func:`signed_request` (async: headers and body, no database) builds the signed string;
:func:`require_kiosk` (sync) looks the key up in the database on EVERY request (no cache, so a revocation or a
disabled kiosk takes effect from the next request), verifies the signature before trusting the kiosk id, then the
timestamp (±300 s of the server's real clock → else 401 ``request_expired``) and the nonce (seen from that kiosk
within the window → 401 ``replayed_request``). Every failure of the credentials themselves (missing or malformed
headers, unknown kiosk or key, key of another kiosk, revoked key, wrong signature) is the same 401 ``unauthorized``
with the same message, so an answer never tells whether a kiosk exists. A disabled kiosk is 403 ``kiosk_disabled``.

Residual risk: the nonce store is in memory, per process. Several processes (or hosts) behind one address would
each accept a request once, so a captured request could be replayed up to once per process within the window: a
multi-process deployment needs a shared store (e.g. Redis ``SET NX EX``) or sticky routing per kiosk.

**Citizen tokens** are random (``secrets.token_urlsafe``); only their SHA-256 is stored (they are high-entropy, so a
fast hash is enough), and a session only works from the kiosk that opened it.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import heapq
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError
from service_platform.models import CitizenSession, Kiosk, KioskKey
from service_platform.schemas import ISO_DATETIME_PATTERN, parse_iso_datetime

SCHEME = "KIOSK-ED25519-V1"
MAX_SKEW_S = 300
#: a signed request's body is read (to hash it) before anything else: bodies above this are refused at once
#: (the largest body the API takes is an 8 MB page image)
MAX_SIGNED_BODY = 9 * 1024 * 1024
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")

_SCHEME_DOC = (
    "Scheme KIOSK-ED25519-V1: every kiosk call carries X-Kiosk-Id, X-Kiosk-Key-Id, X-Kiosk-Timestamp, X-Kiosk-Nonce "
    "and X-Kiosk-Signature. The signature (Ed25519, standard base64 of the 64 bytes) is over these lines joined by "
    "\"\\n\" (UTF-8): KIOSK-ED25519-V1, the kiosk id, the key id, the HTTP method upper-case, the raw request path "
    "as sent (percent-encoded, without the query), the raw query string (may be empty), the timestamp, the nonce, "
    "and the lowercase hex SHA-256 of the body bytes (of the empty string without a body). The timestamp must be "
    "within 300 s of the platform's clock (else 401 request_expired); a nonce may be used once per kiosk within "
    "that window (else 401 replayed_request). Keys are enrolled with `service-platform kiosk add`.")
kiosk_id_header = APIKeyHeader(name="X-Kiosk-Id", auto_error=False, scheme_name="KioskId",
                               description="Registered kiosk id, e.g. KSK-340302-0001. " + _SCHEME_DOC)
kiosk_key_id_header = APIKeyHeader(
    name="X-Kiosk-Key-Id", auto_error=False, scheme_name="KioskKeyId",
    description="Id of the kiosk's signing key: the first 16 lowercase hex characters of SHA-256 of the raw 32-byte "
                "Ed25519 public key (KIOSK-ED25519-V1).")
kiosk_timestamp_header = APIKeyHeader(
    name="X-Kiosk-Timestamp", auto_error=False, scheme_name="KioskTimestamp",
    description="Unix time in whole seconds when the request was signed; within ±300 s of the platform's clock "
                "(KIOSK-ED25519-V1).")
kiosk_nonce_header = APIKeyHeader(
    name="X-Kiosk-Nonce", auto_error=False, scheme_name="KioskNonce",
    description="16–64 base64url characters carrying at least 128 random bits, never reused by the kiosk "
                "(KIOSK-ED25519-V1).")
kiosk_signature_header = APIKeyHeader(name="X-Kiosk-Signature", auto_error=False, scheme_name="KioskSignature",
                                      description="Standard base64 of the 64-byte Ed25519 signature. " + _SCHEME_DOC)
citizen_bearer = HTTPBearer(auto_error=False, scheme_name="CitizenToken",
                            description="Token from POST /api/v1/citizen-sessions")

_UNAUTHORIZED_MESSAGE = "kiosk request signature missing or not valid"
#: a well-formed key nobody holds the private half of: unknown kiosks/keys cost one verification too
_DUMMY_KEY = Ed25519PublicKey.from_public_bytes(hashlib.sha256(b"no kiosk has this key").digest())


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", _UNAUTHORIZED_MESSAGE)


def signed_message(kiosk_id: str, key_id: str, method: str, raw_path: str, query: str, timestamp: str, nonce: str,
                   body: bytes) -> bytes:
    """The string a kiosk signs (KIOSK-ED25519-V1), as bytes."""
    lines = [SCHEME, kiosk_id, key_id, method.upper(), raw_path, query, timestamp, nonce,
             hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode("utf-8")


@dataclass(frozen=True)
class SignedRequest:
    """What :func:`signed_request` read: well-formed headers and the message they claim to sign."""

    kiosk_id: str
    key_id: str
    timestamp: int
    nonce: str
    signature: bytes
    message: bytes


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if raw:
        return raw.split(b"?", 1)[0].decode("latin-1")
    return quote(request.scope.get("root_path", "") + request.scope["path"], safe="/:@!$&'()*+,;=-._~%")


async def _body(request: Request) -> bytes:
    """The whole body (kept on the request for the route), refused above :data:`MAX_SIGNED_BODY`."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_SIGNED_BODY:
        raise ApiError(413, "payload_too_large", "the request body is too large")
    if hasattr(request, "_body"):
        return request._body  # type: ignore[no-any-return]  # read already (FastAPI reads JSON bodies first)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_SIGNED_BODY:
            raise ApiError(413, "payload_too_large", "the request body is too large")
    request._body = bytes(data)  # what Request.body() caches: the route reads the same bytes
    return request._body


async def signed_request(request: Request,
                         kiosk_id: str | None = Depends(kiosk_id_header),
                         key_id: str | None = Depends(kiosk_key_id_header),
                         timestamp: str | None = Depends(kiosk_timestamp_header),
                         nonce: str | None = Depends(kiosk_nonce_header),
                         signature: str | None = Depends(kiosk_signature_header)) -> SignedRequest:
    """Headers and body of a kiosk request (no database): 401 ``unauthorized`` unless all are there and
    well-formed. Nothing here is trusted yet: :func:`require_kiosk` verifies the signature."""
    if not (kiosk_id and key_id and timestamp and nonce and signature):
        raise _unauthorized()
    if not _KEY_ID.match(key_id) or not _TIMESTAMP.match(timestamp) or not _NONCE.match(nonce) \
            or len(kiosk_id) > 64:
        raise _unauthorized()
    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise _unauthorized() from None
    if len(sig) != 64:
        raise _unauthorized()
    body = await _body(request)
    query = request.scope.get("query_string", b"").decode("latin-1")
    message = signed_message(kiosk_id, key_id, request.method, _raw_path(request), query, timestamp, nonce, body)
    return SignedRequest(kiosk_id=kiosk_id, key_id=key_id, timestamp=int(timestamp), nonce=nonce, signature=sig,
                         message=message)


@dataclass
class _KioskNonces:
    heap: list[tuple[int, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    floor: int = -1  # requests signed at or before this second are refused (their nonces were evicted)


class NonceStore:
    """Nonces seen per kiosk within the freshness window: in memory, bounded, expiring.

    Each kiosk keeps at most ``per_kiosk`` nonces; past that the oldest are evicted and the kiosk's *floor* rises to
    their timestamp, so a replay of an evicted nonce is refused as expired instead of being accepted. Only
    authenticated kiosks get entries, so the total is bounded by the enrolled kiosks. One process only: see the
    module docstring for several processes."""

    def __init__(self, window_s: int = MAX_SKEW_S, per_kiosk: int = 50_000) -> None:
        self.window_s = window_s
        self.per_kiosk = per_kiosk
        self._kiosks: dict[str, _KioskNonces] = {}
        self._lock = threading.Lock()

    def check_and_add(self, kiosk_id: str, timestamp: int, nonce: str, now: float) -> str | None:
        """None when the nonce is fresh (and is now recorded); else the error code."""
        with self._lock:
            entry = self._kiosks.setdefault(kiosk_id, _KioskNonces())
            oldest = int(now) - self.window_s - 1
            while entry.heap and entry.heap[0][0] < oldest:
                _, old = heapq.heappop(entry.heap)
                entry.seen.discard(old)
            if timestamp <= entry.floor:
                return "request_expired"
            if nonce in entry.seen:
                return "replayed_request"
            entry.seen.add(nonce)
            heapq.heappush(entry.heap, (timestamp, nonce))
            while len(entry.heap) > self.per_kiosk:
                ts, old = heapq.heappop(entry.heap)
                entry.seen.discard(old)
                entry.floor = max(entry.floor, ts)
            return None


def require_kiosk(request: Request, signed: SignedRequest = Depends(signed_request),
                  db: Session = Depends(get_db)) -> Kiosk:
    """The kiosk whose enrolled, unrevoked key signed this request (see the module docstring)."""
    row = db.execute(select(KioskKey, Kiosk).join(Kiosk, Kiosk.id == KioskKey.kiosk_id)
                     .where(KioskKey.key_id == signed.key_id)).first()
    key = None
    if row is not None:
        key_row, kiosk = row
        if key_row.kiosk_id == signed.kiosk_id and key_row.revoked_at is None:
            try:
                key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_row.public_key))
            except ValueError:
                key = None
    try:
        (key or _DUMMY_KEY).verify(signed.signature, signed.message)
    except InvalidSignature:
        key = None
    if key is None:
        raise _unauthorized()
    now = request.app.state.auth_clock()
    if abs(now - signed.timestamp) > MAX_SKEW_S:
        raise ApiError(401, "request_expired",
                       f"X-Kiosk-Timestamp is more than {MAX_SKEW_S} s away from the platform's clock")
    store: NonceStore = request.app.state.nonce_store
    problem = store.check_and_add(kiosk.id, signed.timestamp, signed.nonce, now)
    if problem == "replayed_request":
        raise ApiError(401, "replayed_request", "this signed request was already received")
    if problem is not None:
        raise ApiError(401, "request_expired", "this signed request is too old")
    if not kiosk.active:
        raise ApiError(403, "kiosk_disabled", "this kiosk has been disabled")
    return kiosk


def wall_clock() -> float:
    """The server's real time for the freshness window (apps' business clocks may be simulated in tests)."""
    return time.time()


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


def optional_citizen_request(db: Session, kiosk: Kiosk, creds: HTTPAuthorizationCredentials | None, body: Any
                             ) -> tuple[CitizenSession | None, dict[str, Any]]:
    """For a create that may be anonymous: the citizen session of the optional Bearer token (this kiosk's, whatever
    its state: 401 ``session_invalid`` when unknown) and the request's idempotency payload (kiosk, session, body)."""
    citizen = find_session(db, kiosk, creds.credentials) if creds is not None else None
    return citizen, {"kiosk_id": kiosk.id, "citizen_session": citizen.id if citizen else None,
                     "body": body.model_dump(mode="json")}


def require_live_if_any(citizen: CitizenSession | None, now: dt.datetime) -> None:
    """A create linked to a citizen session needs it live (401 ``session_expired``); an idempotent replay does not
    get here, so a result stays readable after the session has ended."""
    if citizen is not None and not is_live(citizen, now):
        raise ApiError(401, "session_expired", "the citizen session has expired or was ended")


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
    # typed ``str`` (default None) so that the spec says string, not "string or null": a header is never null
    captured_at: str = Header(  # type: ignore[assignment]
        default=None, alias="X-Captured-At", pattern=ISO_DATETIME_PATTERN,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601 time (with offset) at which the citizen confirmed this request at the kiosk. Only for "
                    "requests submitted later from the kiosk's outbox: the citizen session must have been live then "
                    "(up to 72 hours ago; else 422 captured_at_out_of_range). RFC 3339 date-time: the offset "
                    "(`Z` or `±hh:mm`) is required, e.g. 2026-11-02T09:30:00+08:00."),
) -> dt.datetime | None:
    if captured_at is None:
        return None
    try:
        value = parse_iso_datetime(captured_at.strip())
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
