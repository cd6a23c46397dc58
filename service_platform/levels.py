"""Identity levels (等级保护): how sure the platform is that the person at the kiosk holds the card.

* ``card`` — the kiosk read a card whose data matches the population registry, nothing more (no camera, or the
  citizen went on without the face check). Enough for what anyone holding the card may see: guides, the citizen's
  own application progress (``GET me/applications``, ``GET me/applications/{number}``), appointments and queue
  tickets.
* ``card+face`` — the live face matched the registered (or the card's) photo, with liveness.
* ``card+pin`` — a social-security card whose PIN the card itself verified.

Everything else under ``/me`` (e-certificates and their PDFs, the registered photo, deliveries with an address,
payment orders, filing) needs ``card+face`` or ``card+pin``: else 403 ``verification_level_insufficient`` with
``details: {"required": [...], "have": "card"}``. Each route says which levels it accepts with
``dependencies=[level_dependency(...)]`` and declares them in its spec as ``x-identity-level``
(``openapi_extra=level_extra(...)``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from service_platform.auth import citizen_bearer, find_session, require_kiosk
from service_platform.deps import get_db
from service_platform.errors import ApiError
from service_platform.models import Kiosk

CARD, CARD_FACE, CARD_PIN = "card", "card+face", "card+pin"
LEVELS = (CARD, CARD_FACE, CARD_PIN)
#: any identified citizen
ANY = LEVELS
#: the holder is confirmed (face or card PIN)
STRONG = (CARD_FACE, CARD_PIN)


def require_level(*allowed: str) -> Callable[..., None]:
    """A dependency refusing a citizen session whose verification method is not one of ``allowed``. It looks the
    session up without checking that it is live (the route's own ``require_citizen``/``citizen_writer`` does that,
    and an outbox request may legitimately come after the session ended); FastAPI shares the kiosk, database and
    bearer dependencies with the route's, so the lookup costs one query."""
    unknown = set(allowed) - set(LEVELS)
    if not allowed or unknown:
        raise ValueError(f"levels must be some of {LEVELS}, got {allowed}")
    required = [level for level in LEVELS if level in allowed]

    def check_level(kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                    creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer)) -> None:
        if creds is None:
            raise ApiError(401, "session_required", "Authorization: Bearer <citizen session token> is required")
        have = find_session(db, kiosk, creds.credentials).verification_method
        if have not in allowed:
            raise ApiError(403, "verification_level_insufficient",
                           f"this needs the card holder confirmed ({' or '.join(required)}); the session has {have}",
                           details={"required": required, "have": have})

    check_level.__name__ = "require_level_" + "_".join(r.replace("+", "_") for r in required)
    return check_level


_DEPENDENCIES: dict[tuple[str, ...], Any] = {}


def level_dependency(*allowed: str) -> Any:
    """``Depends(require_level(*allowed))``, one per set of levels."""
    key = tuple(sorted(allowed))
    if key not in _DEPENDENCIES:
        _DEPENDENCIES[key] = Depends(require_level(*allowed))
    return _DEPENDENCIES[key]


def level_extra(*allowed: str) -> dict[str, Any]:
    """The route's ``openapi_extra`` entries: a citizen session is required, at one of these levels."""
    return {"x-citizen-session": "required", "x-identity-level": [level for level in LEVELS if level in allowed]}
