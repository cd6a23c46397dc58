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


def test_the_rule_locks_only_what_needs_the_holder_confirmed() -> None:
    locked = {f: levels.lock_reason("card", f, camera=True) for f in levels.FEATURES}
    assert {f for f, why in locked.items() if why} == {"apply", "pay", "certificates", "delivery"}
    assert set(locked.values()) - {None} == {levels.NEEDS_FACE}
    for open_feature in ("guide", "progress", "my_applications", "appointment"):
        assert locked[open_feature] is None
    assert levels.lock_reason("card", "certificates", camera=False) == levels.NEEDS_FACE_NO_CAMERA
    for level in ("card+face", "card+pin", None):
        assert all(levels.lock_reason(level, f, camera=True) is None for f in levels.FEATURES)
    assert levels.level_of(True, False) == "card+face"
    assert levels.level_of(None, True) == "card+pin"
    assert levels.level_of(None, False) == "card"


def test_a_card_only_citizen_on_a_real_core_sees_the_locks(make_harness) -> None:
    """The simulated profile has no camera: a card read opens a ``card`` session, and the core says which tiles
    need face verification (and that this kiosk cannot do it) — before the citizen tries."""
    h = make_harness()
    h.identify("zhang")
    core = h.core
    assert core.identity_level() == "card"
    locked = {f for f in levels.FEATURES if core.feature_lock(f)}
    assert locked == {"apply", "pay", "certificates", "delivery"}
    assert core.feature_lock("apply") == levels.NEEDS_FACE_NO_CAMERA
    core.end_session("finished")
    core.start_anonymous()   # no card: guides only, nothing is "locked" by identity
    assert core.identity_level() is None
    assert all(core.feature_lock(f) is None for f in levels.FEATURES)


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
