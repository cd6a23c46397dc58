"""Identify the citizen from a card read: check the document, open a citizen session on the platform."""
from __future__ import annotations

from datetime import date
from typing import Any

from drivers.errors import CardExpired
from kiosk.platform_client import PlatformClient
from kiosk.session import Citizen


def citizen_from_document(document: Any, today: date | None = None, source: str = "idcard") -> Citizen:
    """Accept a read :class:`IdentityDocument` or raise :class:`CardExpired` (an expired card is refused, not
    silently accepted)."""
    today = today or date.today()
    if document.is_expired(today):
        raise CardExpired("the identity document has expired", valid_to=str(document.valid_to))
    return Citizen(document=document, name_masked=document.masked_name(), id_masked=document.masked_id(),
                   source=source)


def open_platform_session(platform: PlatformClient, citizen: Citizen, face_match: bool | None = None) -> str:
    """Ask the platform for a citizen session token: card identification, with the face check's result when the
    kiosk made one (``None``: no face check on this kiosk), else ``card+pin`` when a social-security card accepted
    its PIN, else ``card``. The session's level is kept on the citizen (``citizen.level``)."""
    doc = citizen.document
    kind = getattr(doc.kind, "value", str(doc.kind))
    session = platform.open_citizen_session(doc.id_number, doc.name, kind, face_match=face_match,
                                            pin_verified=citizen.pin_verified)
    citizen.level = session.level
    return session.token
