"""Identity levels on the kiosk: a card-only session marks the features that need the holder confirmed as
unavailable (with the reason, offering the face check where there is a camera), and the platform's refusals become
typed errors with translation keys."""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from drivers.sim.process import ManagedProcess
from fleet.signing import generate_keypair
from kiosk import identity_levels as levels
from kiosk.errors import IdentityNotRecognised, KioskRateLimited, VerificationLevelInsufficient
from kiosk.i18n import Translator
from kiosk.platform_client import PlatformClient
from tests.conftest import DEMO_KIOSK_KEYS
from tests.kiosk.conftest import call_back

IDENTITIES = Path(__file__).resolve().parents[2] / "drivers" / "idcard" / "sim_identities.yaml"


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


@pytest.fixture(scope="module")
def limited_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A platform that lets a kiosk ask about two distinct citizens per rolling hour."""
    folder = tmp_path_factory.mktemp("limited-platform")
    proc = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db",
                           f"sqlite:///{folder / 'platform.db'}", "--host", "127.0.0.1", "--port", "0",
                           "--max-citizens-per-hour", "2", *DEMO_KIOSK_KEYS.platform_args], "service-platform",
                           start_timeout=30)
    try:
        yield proc.endpoints["url"]
    finally:
        proc.stop()


def test_a_rate_limited_session_is_shown_audited_and_raised_to_the_fleet(make_harness, limited_platform, tmp_path,
                                                                         wait_for) -> None:
    """The third distinct citizen within the hour is refused by the real platform: the citizen sees "ask staff"
    (event ``kiosk_limited``), the audit journal records it (no ID number) and the fleet alarm waits in the agent's
    disk outbox (the broker is away) — the first two citizens are served as usual."""
    _private, public = generate_keypair(tmp_path / "fleet-keys")
    h = make_harness(platform__url=limited_platform,
                     fleet={"broker_url": "mqtt://127.0.0.1:1", "verify_key": str(public)})
    reader = h.core.devices.simulators["idcard"]
    for who in ("zhang", "li"):
        h.identify(who)
        assert call_back(h.core.my_applications) is not None
        h.core.end_session("finished")
        h.next_event("ended")
        reader.control("remove_card")
    h.identify("chen")
    limited = h.next_event("kiosk_limited", timeout=20)
    assert isinstance(limited["error"], KioskRateLimited) and limited["retry_after_s"] > 0
    assert limited["error"].translation_key == "identity.error.kiosk_limited"

    h.core.flush_audit()
    data_dir = Path(h.core.profile.kiosk.data_dir)
    audit = (data_dir / "audit.jsonl").read_text("utf-8")
    assert '"kiosk_rate_limited"' in audit
    chen = yaml.safe_load(IDENTITIES.read_text("utf-8"))["chen"]
    assert chen["id_number"] not in audit and chen["name"] not in audit, "no ID number or name in the audit journal"

    def queued_alarm() -> list[str]:
        db = sqlite3.connect(f"file:{data_dir / 'fleet-outbox.sqlite3'}?mode=ro", uri=True)
        try:
            return [row[0] for row in db.execute("SELECT payload FROM outbox WHERE payload LIKE ?",
                                                 ("%kiosk_rate_limited%",))]
        finally:
            db.close()

    payload = json.loads(wait_for(queued_alarm, timeout=10, what="the fleet alarm in the agent's outbox")[0])
    text = json.dumps(payload, ensure_ascii=False)
    assert "major" in text and chen["id_number"] not in text and chen["name"] not in text
