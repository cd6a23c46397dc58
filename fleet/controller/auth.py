"""Operator accounts and sessions for the dashboard and the API.

Passwords: scrypt (n=2^14, r=8, p=1, 16-byte salt) — in the standard library, memory-hard. Sessions: a signed token
``base64(json{u, exp, n}).hmac`` (HMAC-SHA256 with a key shared by every controller through the database), carried
in an HttpOnly, SameSite=Strict cookie for the dashboard or as ``Authorization: Bearer`` for other tools. Forms carry
a CSRF token derived from the session token.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
SESSION_S = 12 * 3600


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


class SessionSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, username: str, ttl_s: int = SESSION_S) -> str:
        body = base64.urlsafe_b64encode(json.dumps({"u": username, "exp": int(time.time()) + ttl_s,
                                                    "n": secrets.token_hex(8)}).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str | None) -> str | None:
        if not token or "." not in token:
            return None
        body, mac = token.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("exp", 0) < time.time():
            return None
        user = data.get("u")
        return user if isinstance(user, str) else None

    def csrf(self, token: str) -> str:
        return self._mac("csrf:" + token)[:32]
