"""The face check in the citizen flow (kiosk/usecases/face_check.py), without Kivy: real clips through the OpenCV
camera driver (and the MJPEG camera simulator for the core's journey), the real face worker, the real platform
serving the holder's registered photo."""
from __future__ import annotations

import os
import json
import queue
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from device_profiles.loader import load_profile, parse_profile
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.camera.samples import sample_photo_path
from drivers.idcard.simulator import load_identities
from drivers.sim.process import SimulatorProcess
from kiosk.core import KioskCore
from kiosk.errors import InvalidSessionState
from kiosk.face.config import FaceSettings
from kiosk.face.liveness import LivenessSettings
from kiosk.face.verifier import FaceVerifier
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.session import Citizen, Session, State
from kiosk.usecases.face_check import FaceCheck, FaceCheckNotNeeded, FaceOutcome, face_settings_for
from kiosk.workers import Workers

ROOT = Path(__file__).resolve().parents[3]
ZHANG_ID = "340302195803172018"   # the holder: the platform's registered photo of zhang is the astronaut photo


@pytest.fixture(scope="module")
def platform_server(make_platform_server, face_packages: None):
    """Overrides the shared platform for this module: same seed, 张明华's registered photo is a real face."""
    return make_platform_server(photos={ZHANG_ID: str(sample_photo_path("astronaut"))})


def profile_data(platform_url: str, camera: dict[str, Any] | None) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["platform"].update(url=platform_url, key_file=os.environ["KIOSK_TEST_SIGNING_KEY"])
    data["devices"].pop("camera", None)
    data["kiosk"].pop("nightly_restart_at", None)   # no restart at the profile's quiet hour in the middle of a check
    if camera is not None:
        data["devices"]["camera"] = camera
    return data


def flow_settings(**changes: Any) -> FaceSettings:
    """Kiosk defaults, with liveness steps long enough for the looping test clip (4.6 s) in either order."""
    base = dict(attempt_timeout_s=25.0, challenges=("blink", "turn_left"),
                liveness=LivenessSettings(step_timeout_s=8.0))
    base.update(changes)
    return FaceSettings(**base)


class Flow:
    """A FaceCheck wired as the core wires it, with its events, audit entries and a swappable camera."""

    def __init__(self, platform: Any, verifier: FaceVerifier, camera: OpenCvCamera | None) -> None:
        self.profile = parse_profile(profile_data(platform.url, {"driver": "opencv",
                                                                 "settings": {"source": "unused.avi"}}), environ={})
        self.session = Session()
        self.platform = PlatformClient(
            platform.url, self.profile.kiosk.id,
            KioskRequestSigner.from_file(self.profile.kiosk.id, self.profile.platform.key_file), 5.0, 1)
        self.cameras: dict[str, Any] = {"camera": camera}
        self.workers = Workers()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.audit: list[tuple[str, dict[str, Any]]] = []
        self.check = FaceCheck(self.profile, self.session, self.platform, devices=self.cameras.get,
                               workers=self.workers, emit=lambda name, **p: self.events.append((name, p)),
                               audit=lambda event, session_id=None, **f: self.audit.append((event, f)),
                               verifier=verifier)

    def identify(self, who: str = "zhang") -> Citizen:
        doc = load_identities()[who]
        citizen = Citizen(document=doc, name_masked=doc.masked_name(), id_masked=doc.masked_id())
        self.session.identify(citizen)
        return citizen

    def attempt(self, timeout: float = 40.0) -> tuple[FaceOutcome, list[Any]]:
        box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
        seen: list[Any] = []
        self.check.attempt(on_event=seen.append, on_done=lambda o: box.put((True, o)),
                           on_error=lambda e: box.put((False, e)))
        ok, value = box.get(timeout=timeout)
        if not ok:
            raise value
        return value, seen

    def close(self) -> None:
        self.check.close()
        self.workers.shutdown()
        self.platform.close()


@pytest.fixture
def flow(platform_server: Any, face_worker) -> Iterator[Callable[..., Flow]]:
    made: list[Flow] = []

    def make(camera: OpenCvCamera | None, **settings: Any) -> Flow:
        f = Flow(platform_server, FaceVerifier(flow_settings(**settings), worker=face_worker), camera)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def test_live_holder_passes_and_the_platform_session_records_the_face_match(flow, camera_for, platform_server):
    f = flow(camera_for("live"))
    citizen = f.identify("zhang")
    assert f.check.needs_check(citizen) and not f.check.identity_confirmed()
    assert f.check.begin(citizen)
    f.check.consent(True)   # the citizen agreed on the consent screen
    outcome, seen = f.attempt()
    assert outcome.next == "verified", outcome
    assert outcome.translation_key == "face.result.ok"
    challenges = [e.code for e in seen if e.type == "challenge"]
    assert sorted(challenges) == ["blink", "turn_left"], "both requests asked, in a random order"
    assert f.check.identity_confirmed() and not f.check.pending
    assert [name for name, _ in f.events] == ["face_verified"]
    result = f.session.data.scratch["face_result"]
    assert result["match"] is True and result["liveness_passed"] is True and 0 < result["distance"] <= 0.5
    assert set(result) == {"match", "distance", "liveness_passed", "reason_code", "threshold"}, \
        "the result only: no image, no encoding"
    token = f.session.data.scratch["token_future"].result(timeout=10)
    assert token and citizen.platform_token == token
    rows = platform_server.query("SELECT verification_method, face_match FROM citizen_sessions "
                                 "WHERE id_number = ? ORDER BY id DESC LIMIT 1", ZHANG_ID)
    assert rows == [("card+face", 1)]
    assert ("face_attempt", {"reason": "ok", "next": "verified", "failures": 0, "liveness": True,
                             "match": True}) in f.audit
    assert ZHANG_ID not in json.dumps(f.audit, ensure_ascii=False) and "张明华" not in json.dumps(f.audit,
                                                                                                 ensure_ascii=False)
    assert f.cameras["camera"].paused, "the camera stops grabbing once the check is done"


def test_spoof_then_impostor_offer_another_route_never_a_dead_end(flow, camera_for):
    f = flow(camera_for("spoof"), max_attempts=2, liveness=LivenessSettings(step_timeout_s=3.0))
    citizen = f.identify("zhang")
    f.check.begin(citizen)
    f.check.consent(True)   # the citizen agreed on the consent screen
    first, _ = f.attempt()
    assert (first.next, first.reason_code, first.attempts_left) == ("retry", "liveness_timeout", 1)
    assert first.translation_key == "face.retry.liveness_timeout"
    assert first.result["match"] is True and first.result["liveness_passed"] is False
    f.cameras["camera"] = camera_for("impostor")
    second, seen = f.attempt()
    assert (second.next, second.reason_code) == ("alternative_route", "mismatch")
    assert second.alternatives == ("staff_assistance", "continue_without_identity")
    assert second.translation_key == "face.route.too_many_failures"
    assert not [e for e in seen if e.type == "challenge"], "another person is refused before any gesture"
    with pytest.raises(FaceCheckNotNeeded):
        f.attempt()
    assert not f.check.identity_confirmed() and "face_verified" not in [n for n, _ in f.events]

    f.check.choose("staff_assistance")
    assert f.events[-1] == ("staff_assistance", {"reason": "face_check"})
    assert f.session.citizen is citizen and not f.check.identity_confirmed()

    f.check.choose("continue_without_identity")
    assert f.session.citizen is None and citizen.document is None, "the citizen's data is dropped"
    assert f.session.state is State.IN_SERVICE, "the session goes on, anonymous"
    assert f.events[-1] == ("identity_dropped", {})
    assert [e for e, _ in f.audit].count("face_attempt") == 2
    assert ("face_route", {"route": "continue_without_identity", "failures": 2}) in f.audit
    assert "token_future" not in f.session.data.scratch, "no platform session was opened"


def test_a_citizen_without_a_usable_reference_photo_gets_another_route_at_once(flow, camera_for):
    f = flow(camera_for("live"))
    f.check.begin(f.identify("li"))    # the registry draws a placeholder for 李*英: no face in it
    f.check.consent(True)   # the citizen agreed on the consent screen
    outcome, _ = f.attempt()
    assert (outcome.next, outcome.reason_code) == ("alternative_route", "reference_no_face")
    assert outcome.translation_key == "face.route.technical" and outcome.failures == 0


def test_session_end_cancels_the_attempt_and_wipes_the_face_data(flow, camera_for, wait_for):
    f = flow(camera_for("live"))
    f.check.begin(f.identify("zhang"))
    f.check.consent(True)   # the citizen agreed on the consent screen
    check = f.check._check
    done: list[Any] = []
    events: list[Any] = []
    f.check.attempt(on_event=events.append, on_done=done.append, on_error=done.append)
    wait_for(lambda: any(e.type == "challenge" for e in events), timeout=20, what="a liveness request")
    face_session = check.face_session.result(timeout=5)
    f.session.end("timeout")
    assert check.cancel.is_set() and not f.check.running
    wait_for(lambda: face_session.wiped, timeout=10, what="the face data wiped")
    wait_for(lambda: not check.running, timeout=10, what="the attempt ended")
    assert face_session.results == [] and f.cameras["camera"].paused
    assert f.cameras["camera"].latest_frame() is None, "no frame left in memory"
    assert done == [], "nobody is told about an attempt of a session that ended"
    assert not f.check.pending and f.check._check is None


def test_no_camera_no_face_check(platform_server):
    profile = parse_profile(profile_data(platform_server.url, None), environ={})
    session = Session()
    workers = Workers()
    check = FaceCheck(profile, session, None, devices={}.get, workers=workers, emit=lambda *a, **k: None,
                      audit=lambda *a, **k: None)
    doc = load_identities()["zhang"]
    citizen = Citizen(document=doc)
    session.identify(citizen)
    assert not check.enabled and not check.needs_check(citizen)
    assert check.begin(citizen) is False and check.identity_confirmed()
    workers.shutdown()


def test_face_settings_come_from_the_profile(make_profile):
    profile = load_profile(make_profile(face={"max_attempts": 2, "challenges": ["blink"]}), environ={})
    settings = face_settings_for(profile)
    assert (settings.max_attempts, settings.challenges, settings.threshold) == (2, ("blink",), 0.55)
    with pytest.raises(ValueError, match="max_attempts"):
        face_settings_for(load_profile(make_profile(face={"max_attempts": 0}), environ={}))


def test_the_profile_schema_checks_the_face_block(make_profile):
    from device_profiles.loader import ProfileError
    from kiosk.face.config import FACE_SETTINGS_SCHEMA

    schema = json.loads((ROOT / "device_profiles" / "schema.json").read_text("utf-8"))["properties"]["face"]
    assert {k: v for k, v in schema.items() if k != "description"} == \
        {k: v for k, v in FACE_SETTINGS_SCHEMA.items() if k not in ("$schema", "title")}
    with pytest.raises(ProfileError) as refused:
        load_profile(make_profile(face={"threshold": 0.9, "liveness": {"blink": 1}}), environ={})
    assert any(p.startswith("face.threshold") for p in refused.value.problems), refused.value.problems
    assert any(p.startswith("face.liveness") for p in refused.value.problems), refused.value.problems


def test_every_face_text_exists_in_both_languages():
    from kiosk.face.liveness import CHALLENGES
    from kiosk.face.policy import TECHNICAL_REASONS
    from kiosk.face.verifier import GUIDANCE, REASONS
    from kiosk.i18n import table

    keys = {f"face.result.{r}" for r in REASONS} | {f"face.guide.{g}" for g in GUIDANCE + ("checking",)}
    keys |= {f"face.challenge.{c}" for c in CHALLENGES} | {f"face.challenge_ok.{c}" for c in CHALLENGES}
    keys |= {f"face.retry.{r}" for r in REASONS if r not in TECHNICAL_REASONS and r != "ok"}
    keys |= {"face.route.technical", "face.route.too_many_failures", FaceCheckNotNeeded.translation_key}
    keys |= {f"face.button.{r}" for r in ("staff_assistance", "continue_without_identity")}
    for language in ("zh_CN", "en"):
        missing = keys - set(table(language))
        assert not missing, (language, sorted(missing))


# --- through the kiosk core: card → face check → personal services -------------------------------------------------

@pytest.fixture
def camera_sim(clips) -> Iterator[SimulatorProcess]:
    """``kiosk-sim camera`` playing the live clip over MJPEG/HTTP, as the kiosk's IP camera."""
    sim = SimulatorProcess("camera", "--video", str(clips["live"]), "--tcp", "127.0.0.1:0")
    try:
        yield sim
    finally:
        sim.stop()


def test_core_journey_card_then_face_check_then_my_applications(make_profile, camera_sim, clock, face_packages,
                                                                 platform_server):
    profile = load_profile(make_profile(devices__camera={"driver": "opencv",
                                                         "settings": {"source": camera_sim.endpoints["url"]}},
                                        face={"challenges": ["blink", "turn_left"],
                                              "liveness": {"step_timeout_s": 8}}), environ={})
    core = KioskCore(profile, clock=clock)
    events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
    core.subscribe(lambda name, payload: events.put((name, payload)))
    core.start()
    try:
        def next_event(name: str, timeout: float = 15.0) -> dict[str, Any]:
            while True:
                got, payload = events.get(timeout=timeout)
                if got == name:
                    return payload

        core.devices.simulators["idcard"].control("place_card", identity="zhang")
        next_event("identified")
        assert core.face_check.pending, "a camera in the profile: the face check comes first"
        assert core.face_check.consent_pending and core.face_check.camera.paused, "no camera before consent"
        refused: "queue.Queue[Any]" = queue.Queue()
        core.my_applications(on_result=refused.put, on_error=refused.put)
        assert isinstance(refused.get(timeout=5), InvalidSessionState), "no personal service before the check"
        core.payments.my_unpaid(on_result=refused.put, on_error=refused.put)
        assert isinstance(refused.get(timeout=5), InvalidSessionState), "no unpaid orders before the check"
        with pytest.raises(InvalidSessionState):
            core.citizen_token()

        core.face_check.consent(True)
        done: "queue.Queue[Any]" = queue.Queue()
        for _ in range(core.face_check.max_attempts):
            # on a loaded machine the analysed frames can miss a gesture: the citizen then simply tries again,
            # as the policy allows — the journey must end verified within the attempts
            core.face_check.attempt(on_done=done.put, on_error=done.put)
            outcome = done.get(timeout=60)
            assert isinstance(outcome, FaceOutcome), outcome
            if outcome.next != "retry" or outcome.reason_code != "liveness_timeout":
                break
        assert outcome.next == "verified", outcome
        next_event("face_verified")
        apps: "queue.Queue[Any]" = queue.Queue()
        core.my_applications(on_result=apps.put, on_error=apps.put)
        got = apps.get(timeout=15)
        assert isinstance(got, list) and got, got
        # a platform session opened again later (the first expired) still carries the face check's result
        assert core.citizen_token(fresh=True)
        assert platform_server.query("SELECT verification_method, face_match FROM citizen_sessions WHERE "
                                     "id_number = ? ORDER BY id DESC LIMIT 1", ZHANG_ID) == [("card+face", 1)]
    finally:
        core.stop()


# --- consent before the camera (PIPL: facial data is sensitive personal information) ---------------------------------

def test_nothing_is_captured_or_fetched_before_consent_and_a_refusal_offers_other_routes(flow, camera_for):
    from kiosk.usecases.face_check import CONSENT_NOTICE, FaceConsentRequired

    f = flow(camera_for("live"))
    camera = f.cameras["camera"]
    camera.pause()
    citizen = f.identify("zhang")
    assert f.check.begin(citizen) and f.check.consent_pending and not f.check.consent_given
    assert camera.paused and f.check._check.face_session is None, "no frame grabbed, no photo fetched"
    with pytest.raises(FaceConsentRequired):
        f.attempt()

    f.check.consent(False)
    assert not f.check.consent_pending and camera.paused and f.check._check.face_session is None
    with pytest.raises(FaceConsentRequired):
        f.attempt()
    assert ("face_consent", {"decision": "refused", "notice": CONSENT_NOTICE}) in f.audit
    f.check.choose("staff_assistance")
    assert f.events[-1] == ("staff_assistance", {"reason": "face_consent"}), "the help request says why"
    f.check.choose("continue_without_identity")
    assert f.session.citizen is None and f.events[-1] == ("identity_dropped", {})
    assert "face_attempt" not in [e for e, _ in f.audit]
    blob = json.dumps(f.audit, ensure_ascii=False)
    assert ZHANG_ID not in blob and "张明华" not in blob


def test_agreeing_starts_the_camera_and_records_the_decision(flow, camera_for):
    from kiosk.usecases.face_check import CONSENT_NOTICE

    f = flow(camera_for("live"))
    f.cameras["camera"].pause()
    citizen = f.identify("zhang")
    f.check.consent(True)   # the screen may answer before the card handler began the check
    assert f.check._check.citizen is citizen and f.check.consent_given
    assert not f.cameras["camera"].paused and f.check._check.face_session is not None
    f.check.consent(True)   # a second tap changes nothing
    assert [e for e in f.audit if e[0] == "face_consent"] == [
        ("face_consent", {"decision": "agreed", "notice": CONSENT_NOTICE})]
