"""Identity levels on the kiosk: what a citizen session may do, so the menu shows it before the citizen tries.

The platform enforces the same rule (service_platform/levels.py, ``x-identity-level`` of each operation); this copy
only spares the citizen a refusal half-way through a flow:

* ``card`` — the card was read and matches the registry, the holder is not confirmed (no camera, or the citizen went
  on with the card only): guides, progress, their own applications, appointments and queue tickets.
* ``card+face`` / ``card+pin`` — the holder is confirmed (face check passed, or a social-security card accepted its
  PIN): everything, including applying, paying, e-certificates and EMS delivery (an address).
"""
from __future__ import annotations

CARD, CARD_FACE, CARD_PIN = "card", "card+face", "card+pin"
STRONG = (CARD_FACE, CARD_PIN)

#: menu features that need the holder confirmed (the platform answers 403 verification_level_insufficient otherwise)
CONFIRMED_ONLY = frozenset({"apply", "pay", "certificates", "delivery"})
#: menu features a card-only session may use
CARD_FEATURES = frozenset({"guide", "progress", "my_applications", "appointment"})
FEATURES = CARD_FEATURES | CONFIRMED_ONLY

#: translation key of the reason a feature is locked at the card level
NEEDS_FACE = "identity.needs_face"
NEEDS_FACE_NO_CAMERA = "identity.needs_face_no_camera"


def level_of(face_match: bool | None, pin_verified: bool = False) -> str:
    """The level a platform session opens with, from what the kiosk checked."""
    if face_match:
        return CARD_FACE
    if pin_verified:
        return CARD_PIN
    return CARD


def lock_reason(level: str | None, feature: str, camera: bool) -> str | None:
    """Why ``feature`` is unavailable at ``level`` (a translation key), or None when it is available. ``camera``:
    the kiosk can run the face check, so the reason offers it."""
    if level != CARD or feature not in CONFIRMED_ONLY:
        return None
    return NEEDS_FACE if camera else NEEDS_FACE_NO_CAMERA
