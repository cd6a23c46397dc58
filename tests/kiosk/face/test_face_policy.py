"""Never a dead end: K failed attempts → another route; technical failures → another route at once; the session's
face data wiped at its end."""
from __future__ import annotations

import cv2
import pytest

from kiosk.face.config import FaceSettings
from kiosk.face.policy import AttemptPolicy, FaceSession, Next
from kiosk.face.verifier import FaceVerifier


def test_three_failures_offer_another_route():
    policy = AttemptPolicy()
    first, second = policy.record("mismatch"), policy.record("liveness_timeout")
    assert (first.next, first.attempts_left) == (Next.RETRY, 2)
    assert (second.next, second.attempts_left) == (Next.RETRY, 1)
    assert second.translation_key == "face.retry.liveness_timeout"
    third = policy.record("no_face")
    assert third.next is Next.ALTERNATIVE_ROUTE
    assert third.alternatives == ("staff_assistance", "continue_without_identity")
    assert third.translation_key == "face.route.too_many_failures"


def test_cancelled_attempts_do_not_count_and_success_verifies():
    policy = AttemptPolicy(max_attempts=2)
    assert policy.record("cancelled").next is Next.RETRY
    assert policy.record("mismatch").attempts_left == 1
    decision = policy.record("ok")
    assert decision.next is Next.VERIFIED and decision.failures == 1


@pytest.mark.parametrize("reason", ["camera_unavailable", "engine_error", "reference_no_face"])
def test_kiosk_faults_go_to_another_route_at_once(reason):
    decision = AttemptPolicy().record(reason)
    assert decision.next is Next.ALTERNATIVE_ROUTE and decision.failures == 0
    assert decision.translation_key == "face.route.technical"


def test_policy_refuses_a_dead_end_configuration():
    with pytest.raises(ValueError):
        AttemptPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        AttemptPolicy(alternatives=())


def test_session_with_an_impostor_ends_in_another_route_and_wipes(face_worker, test_settings, photos, camera_for):
    verifier = FaceVerifier(FaceSettings(max_attempts=2, attempt_timeout_s=test_settings.attempt_timeout_s,
                                         liveness=test_settings.liveness), worker=face_worker)
    card_photo = cv2.imencode(".jpg", photos["holder"])[1].tobytes()
    session = FaceSession(verifier, card_photo)
    result, decision = session.attempt(camera_for("impostor"))
    assert (result.reason_code, decision.next) == ("mismatch", Next.RETRY)
    result, decision = session.attempt(camera_for("impostor"))
    assert decision.next is Next.ALTERNATIVE_ROUTE
    assert decision.alternatives == ("staff_assistance", "continue_without_identity")
    with pytest.raises(RuntimeError):
        session.attempt(camera_for("impostor"))
    reference = session._reference
    assert reference is not None
    encoding = reference.encoding
    session.wipe()
    assert session.wiped and reference.wiped
    assert not encoding.any(), "the reference encoding is zeroed, not just dropped"
    assert session.results == []


def test_session_with_an_unusable_card_photo_goes_to_another_route(verifier, camera_for):
    session = FaceSession(verifier, b"\x00" * 100)
    result, decision = session.attempt(camera_for("no_face"))
    assert result.reason_code == "reference_no_face"
    assert decision.next is Next.ALTERNATIVE_ROUTE
