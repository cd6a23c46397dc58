"""Operator accounts, roles and sessions for the dashboard and the API.

Passwords: scrypt (n=2^14, r=8, p=1, 16-byte salt) — in the standard library, memory-hard.

Roles, each including the one before: ``viewer`` reads everything; ``operator`` also acknowledges alerts, publishes
announcements and takes kiosks out of / back into service; ``admin`` also restarts kiosks, pushes profiles, runs
self-tests and manages operators (create, disable, change role, revoke sessions). The server checks the role of every
request (:data:`COMMAND_ROLE` for remote commands); pages only hide what a role cannot use.

Sessions are server-side: a random token (32 bytes) goes to the browser (an HttpOnly, SameSite=Strict cookie,
``Secure`` over TLS) or to a script (``Authorization: Bearer``); the database keeps only its SHA-256 with the
operator, the client address, when it was created and last used, when it expires and whether it was revoked. A
session ends after :data:`IDLE_S` without use or :data:`ABSOLUTE_S` after login, at logout, or when an admin revokes
it; disabling an operator or changing its role (or password) revokes all of its sessions. Every controller sharing
the database sees a revocation at once. Forms and cookie-authenticated API calls carry a CSRF token derived (HMAC)
from the session token with a key shared through the database.

Login throttling (shared through the database, so it holds across controllers): :data:`ACCOUNT_LIMIT` failures for
one user name within :data:`WINDOW_S` lock that name for :data:`WINDOW_S` after the last failure, and
:data:`ADDRESS_LIMIT` failures from one client address lock that address — answered 429 with ``Retry-After``, the
same for a name that does not exist, and before the password is looked at (so the right password does not help).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1

ROLES = ("viewer", "operator", "admin")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
# the role a remote command needs; a command not listed needs admin
COMMAND_ROLE = {"out_of_service": "operator", "back_in_service": "operator", "show_announcement": "operator",
                "rebirth": "operator", "restart_app": "admin", "push_profile": "admin", "self_test": "admin",
                "assistance_acknowledged": "operator"}

IDLE_S = 30 * 60  # a session unused this long ends
ABSOLUTE_S = 12 * 3600  # and every session ends this long after login
TOUCH_EVERY_MS = 10_000  # last-seen writes at most this often per session
WINDOW_S = 15 * 60  # login failures are counted over this window, and a lock lasts this long
ACCOUNT_LIMIT = 5  # failures per user name within the window
ADDRESS_LIMIT = 20  # failures per client address within the window
MIN_PASSWORD = 8

log = logging.getLogger("fleet.controller.auth")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(SCRYPT_N, SCRYPT_R, SCRYPT_P, base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A hash to check unknown names against, so that they take as long as known ones."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_hex(16)))
    return _DUMMY_HASH[0]


def role_at_least(role: str | None, needed: str) -> bool:
    return role in ROLE_RANK and ROLE_RANK[role] >= ROLE_RANK[needed]


def command_role(name: str) -> str:
    return COMMAND_ROLE.get(name, "admin")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def safe_next(target: Any, default: str = "/") -> str:
    """Where to go after a login or a form: only a local path (one leading ``/``, not ``//``, no backslash, no
    control characters, no scheme or host); anything else → ``default``."""
    if not isinstance(target, str) or not target or len(target) > 2000:
        return default
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return target



def _who(row: Any) -> str:
    """How a login attempt is logged: an existing operator by name; anything else typed into the name field (it may be
    a mistyped password) is never written to the log."""
    return f"user {row.username!r}" if row is not None else "an unknown user name"

class Csrf:
    """CSRF tokens derived from the session token (HMAC-SHA256 with a key shared by every controller)."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def token(self, session_token: str) -> str:
        return hmac.new(self._key, ("csrf:" + session_token).encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, session_token: str, given: str | None) -> bool:
        return bool(session_token) and bool(given) and hmac.compare_digest(self.token(session_token), given or "")


@dataclass(frozen=True)
class Principal:
    """The operator behind a request, through one session."""

    username: str
    role: str
    token: str
    token_hash: str
    kind: str  # cookie | bearer
    expires_at: int

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)

    def can_command(self, name: str) -> bool:
        return self.can(command_role(name))


class LoginThrottled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_s} s")
        self.retry_after_s = max(1, int(retry_after_s))


class LoginFailed(Exception):
    pass


class Sessions:
    """Login (with throttling), session lookup, logout and revocation on top of the store."""

    def __init__(self, store: Any, idle_s: int = IDLE_S, absolute_s: int = ABSOLUTE_S, window_s: int = WINDOW_S,
                 account_limit: int = ACCOUNT_LIMIT, address_limit: int = ADDRESS_LIMIT) -> None:
        self.store = store
        self.idle_ms, self.absolute_ms, self.window_ms = idle_s * 1000, absolute_s * 1000, window_s * 1000
        self.account_limit, self.address_limit = account_limit, address_limit

    # login ---------------------------------------------------------------------------------------------------
    def throttled(self, username: str, addr: str, now: int) -> int | None:
        """Seconds until a login may be tried again for this name or from this address, or None."""
        since = now - self.window_ms
        waits = []
        for times, limit in ((self.store.login_failures(username=username[:64], since=since), self.account_limit),
                             (self.store.login_failures(addr=addr[:64], since=since), self.address_limit)):
            if len(times) >= limit:
                waits.append(max(times) + self.window_ms - now)
        return -(-max(waits) // 1000) if waits else None

    def login(self, username: str, password: str, addr: str, kind: str, now: int) -> tuple[str, Principal]:
        """A new session for a right name and password; raises :class:`LoginThrottled` or :class:`LoginFailed`."""
        username = username.strip()
        wait = self.throttled(username, addr, now)
        if wait is not None:
            row = self.store.operator(username) if username else None
            log.warning("login refused (throttled, %d s left) for %s from %s", wait, _who(row), addr)
            raise LoginThrottled(wait)
        row = self.store.operator(username) if username else None
        ok = verify_password(password, row.password_hash if row is not None else _dummy_hash())
        if row is None or not ok or row.disabled_at is not None or row.role not in ROLE_RANK:
            self.store.record_login_failure(username[:64], addr[:64], now, prune_before=now - 2 * self.window_ms)
            log.warning("login failed for %s from %s", _who(row), addr)
            raise LoginFailed()
        token = secrets.token_urlsafe(32)
        h = token_hash(token)
        expires = now + self.absolute_ms
        self.store.create_session(h, row.username, kind, now, expires, addr[:64])
        log.info("login: %s (%s) from %s, %s session", row.username, row.role, addr, kind)
        return token, Principal(row.username, row.role, token, h, kind, expires)

    # requests ------------------------------------------------------------------------------------------------
    def principal(self, token: str | None, now: int, touch: bool = True) -> Principal | None:
        if not token or len(token) > 200:
            return None
        h = token_hash(token)
        row = self.store.session(h)
        if row is None or row.revoked_at is not None or row.expires_at <= now \
                or row.last_seen_at + self.idle_ms <= now or row.role is None or row.disabled_at is not None \
                or row.role not in ROLE_RANK:
            return None
        if touch and now - row.last_seen_at >= TOUCH_EVERY_MS:
            self.store.touch_session(h, now)
        return Principal(row.username, row.role, token, h, row.kind, min(row.expires_at,
                                                                         max(now, row.last_seen_at) + self.idle_ms))

    def logout(self, token: str | None, now: int) -> None:
        if token:
            if self.store.revoke_session(token_hash(token), now, "logout"):
                log.info("logout")

    def revoke_operator(self, username: str, now: int, reason: str) -> int:
        n = self.store.revoke_sessions(username, now, reason)
        log.info("revoked %d session(s) of %s (%s)", n, username, reason)
        return n
