"""Identity levels on the kiosk: a card-only session marks the features that need the holder confirmed as
unavailable (with the reason, offering the face check where there is a camera), and the platform's refusals become
typed errors with translation keys."""
from __future__ import annotations

from types import SimpleNamespace

import httpx

from kiosk import identity_levels as levels
from kiosk.core import KioskCore
from kiosk.errors import IdentityNotRecognised, KioskRateLimited, VerificationLevelInsufficient
from kiosk.i18n import Translator
from kiosk.platform_client import PlatformClient


def core_with(level_face: bool | None, pin: bool = False, camera: bool = True, citizen: bool = True) -> KioskCore:
    """A KioskCore shell with only what identity_level()/feature_lock() read (no devices, no platform)."""
    core = KioskCore.__new__(KioskCore)
    scratch = {"face_result": {"match": level_face}} if level_face is not None else {}
    who = SimpleNamespace(pin_verified=pin) if citizen else None
    core.session = SimpleNamespace(citizen=who, data=SimpleNamespace(scratch=scratch))
    core.face_check = SimpleNamespace(identity_confirmed=lambda: citizen, can_verify=camera)
    return core


def test_card_only_session_marks_face_only_features_unavailable() -> None:
    core = core_with(None, camera=True)
    assert core.identity_level() == "card"
    locked = {f: core.feature_lock(f) for f in levels.FEATURES}
    assert {f for f, why in locked.items() if why} == {"apply", "pay", "certificates", "delivery"}
    assert set(locked.values()) - {None} == {levels.NEEDS_FACE}
    for open_feature in ("guide", "progress", "my_applications", "appointment"):
        assert locked[open_feature] is None
    no_camera = core_with(None, camera=False)
    assert no_camera.feature_lock("certificates") == levels.NEEDS_FACE_NO_CAMERA


def test_confirmed_holders_and_anonymous_have_nothing_locked() -> None:
    for core in (core_with(True), core_with(None, pin=True), core_with(None, citizen=False)):
        assert all(core.feature_lock(f) is None for f in levels.FEATURES)
    assert core_with(True).identity_level() == "card+face"
    assert core_with(None, pin=True).identity_level() == "card+pin"
    assert core_with(None, citizen=False).identity_level() is None


def test_reasons_are_translated_in_both_languages() -> None:
    for language in ("zh_CN", "en"):
        t = Translator(language)
        for key in (levels.NEEDS_FACE, levels.NEEDS_FACE_NO_CAMERA, "identity.error.level_insufficient",
                    "identity.error.kiosk_limited", "identity.error.not_recognised", "face.button.card_only"):
            assert t.has(key), (language, key)
    assert "人脸核验" in Translator("zh_CN").t(levels.NEEDS_FACE)
    assert "face verification" in Translator("en").t(levels.NEEDS_FACE)


def answer(status: int, code: str, details: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    error = {"code": code, "message": code}
    if details is not None:
        error["details"] = details
    return httpx.Response(status, json={"error": error}, headers=headers)


def test_platform_refusals_become_typed_errors() -> None:
    level = PlatformClient._rejection(answer(403, "verification_level_insufficient",
                                             {"required": ["card+face", "card+pin"], "have": "card"}))
    assert isinstance(level, VerificationLevelInsufficient)
    assert level.required == ("card+face", "card+pin") and level.have == "card"
    assert level.translation_key == "identity.error.level_insufficient"
    limited = PlatformClient._rejection(answer(429, "rate_limited", {"limit": 60}, {"Retry-After": "120"}))
    assert isinstance(limited, KioskRateLimited) and limited.retry_after_s == 120
    assert limited.translation_key == "identity.error.kiosk_limited"
    for code in ("unknown_person", "identity_mismatch"):
        refused = PlatformClient._rejection(answer(403, code))
        assert isinstance(refused, IdentityNotRecognised) and refused.platform_code == code


def test_a_rate_limited_session_is_shown_and_raised_to_the_fleet() -> None:
    core = KioskCore.__new__(KioskCore)
    events, alarms, audits = [], [], []
    core.session = SimpleNamespace(data=SimpleNamespace(id="s1"))
    core._emit = lambda name, **payload: events.append((name, payload))
    core._audit = lambda event, *args, **fields: audits.append(event)
    core.fleet = SimpleNamespace(alarm=lambda code, severity, text="": alarms.append((code, severity)))
    core.session_refused(KioskRateLimited("too many", retry_after_s=30))
    assert events and events[0][0] == "kiosk_limited" and events[0][1]["retry_after_s"] == 30
    assert alarms == [("kiosk_rate_limited", "major")] and audits == ["kiosk_rate_limited"]
    events.clear()
    core.session_refused(IdentityNotRecognised("no"))
    assert not events
