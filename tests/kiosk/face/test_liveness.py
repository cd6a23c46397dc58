"""Liveness: the challenge state machine on metric sequences, and the metrics on landmarks of real-photo frames."""
from __future__ import annotations

import random

import numpy as np
import pytest

from drivers.camera import synthetic as synth
from kiosk.face.liveness import (
    CHALLENGES, FaceMetrics, LivenessCheck, LivenessSettings, eye_aspect_ratio, face_metrics, pick_challenges,
)

OPEN, CLOSED = 0.30, 0.12


def feed(check: LivenessCheck, seq: list[FaceMetrics | None], t0: float = 0.0, dt: float = 0.1) -> list:
    events = []
    for i, m in enumerate(seq):
        events += check.update(m, t0 + i * dt)
    return events


def m(ear: float = OPEN, yaw: float = 0.0) -> FaceMetrics:
    return FaceMetrics(ear=ear, yaw=yaw, iod=60.0)


def calibrated(challenges: tuple[str, ...], **settings) -> tuple[LivenessCheck, list]:
    check = LivenessCheck(challenges, LivenessSettings(**settings))
    events = feed(check, [m(), m(), m()])
    return check, events


def test_calibration_then_first_challenge():
    check, events = calibrated(("blink",))
    assert [(e.type, e.challenge) for e in events] == [("challenge", "blink")]
    assert check.baseline_ear == pytest.approx(OPEN)
    assert check.current == "blink"


def test_calibration_waits_for_a_frontal_face():
    check = LivenessCheck(("blink",))
    assert feed(check, [m(yaw=0.3)] * 5 + [None] * 3) == []
    assert check.state == "calibrating"


def test_blink_is_open_closed_open():
    check, _ = calibrated(("blink",))
    events = feed(check, [m(), m(CLOSED), m(CLOSED), m()], t0=1.0)
    assert [e.type for e in events] == ["passed", "done"]
    assert check.finished and check.state == "done" and check.passed == ["blink"]


def test_half_closed_eyes_are_not_a_blink():
    check, _ = calibrated(("blink",), step_timeout_s=1.0)
    events = feed(check, [m(), m(0.24), m(0.23), m()] * 5, t0=1.0)
    assert events[-1].type == "failed" and events[-1].reason == "liveness_timeout"


def test_eyes_closed_from_the_start_must_open_first():
    check, _ = calibrated(("blink",))
    assert feed(check, [m(CLOSED), m(CLOSED)], t0=1.0) == []
    assert check.state == "in_step"


def test_turn_left_then_back_to_frontal_before_next():
    check, _ = calibrated(("turn_left", "blink"))
    events = feed(check, [m(yaw=0.05), m(yaw=0.15), m(yaw=0.16)], t0=1.0)
    assert [(e.type, e.challenge) for e in events] == [("passed", "turn_left")]
    assert check.state == "waiting_frontal"
    events = feed(check, [m(yaw=0.1), m(yaw=0.02)], t0=2.0)
    assert [(e.type, e.challenge) for e in events] == [("challenge", "blink")]


def test_turn_to_the_wrong_side_fails_at_once():
    check, _ = calibrated(("turn_right",))
    events = feed(check, [m(yaw=0.15), m(yaw=0.16)], t0=1.0)
    assert events[-1].type == "failed" and events[-1].reason == "wrong_gesture"
    assert check.reason == "wrong_gesture"
    assert check.update(m(yaw=-0.2), 9.0) == [], "a finished check ignores further frames"


def test_one_noisy_frame_is_not_a_turn():
    check, _ = calibrated(("turn_right",))
    assert feed(check, [m(yaw=0.15), m(yaw=0.0), m(yaw=0.15), m(yaw=0.0)], t0=1.0) == []


def test_blinks_during_a_turn_request_and_turns_during_a_blink_request_are_ignored():
    check, _ = calibrated(("turn_left", "blink"))
    assert feed(check, [m(CLOSED), m(), m(CLOSED)], t0=1.0) == []
    check2, _ = calibrated(("blink",))
    # closed eyes on a turned face do not count (EAR unreliable there), nor do turns fail a blink request
    assert feed(check2, [m(), m(CLOSED, yaw=-0.3), m(CLOSED, yaw=-0.3), m(yaw=-0.3), m()], t0=1.0) == []


def test_no_face_lets_the_step_time_run_out():
    check, _ = calibrated(("blink",), step_timeout_s=0.5)
    events = feed(check, [None] * 10, t0=1.0)
    assert events[-1].reason == "liveness_timeout"


def test_pick_challenges_random_order_and_side():
    seen_orders, seen_sides = set(), set()
    for seed in range(40):
        chosen = pick_challenges(("blink", "turn"), random.Random(seed))
        assert sorted(c[:4] for c in chosen) == ["blin", "turn"]
        seen_orders.add(chosen[0] == "blink")
        seen_sides.update(c for c in chosen if c.startswith("turn"))
    assert seen_orders == {True, False}
    assert seen_sides == {"turn_left", "turn_right"}
    with pytest.raises(ValueError):
        pick_challenges(("smile",))
    with pytest.raises(ValueError):
        LivenessCheck(("nod",))
    assert set(pick_challenges(CHALLENGES)) == set(CHALLENGES)


def test_eye_aspect_ratio_geometry():
    eye = np.array([[0, 0], [3, -2], [7, -2], [10, 0], [7, 2], [3, 2]], float)
    assert eye_aspect_ratio(eye) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        face_metrics(np.zeros((5, 2)))


# --- the measures on real face texture (landmarks from the face worker) --------------------------------------------

def test_metrics_on_synthetic_blink_turn_and_held_photo(face_worker, bases):
    """What the synthetic clips prove: on the real photo's texture the landmark model sees the edited eyes close
    (EAR falls below the blink threshold) and the edited head turn (yaw proxy beyond the turn threshold, with the
    sign of the side), while a photo moved and tilted in 3-D keeps the yaw proxy inside the threshold."""
    settings = LivenessSettings()
    holder = bases["holder"]
    base = face_metrics(holder.landmarks)
    closed = face_metrics(face_worker.analyze(synth.close_eyes(holder.frame, holder.landmarks, 1.0)).landmarks)
    assert closed.ear < settings.blink_closed_ratio * base.ear
    left = face_metrics(face_worker.analyze(synth.turn_head(holder.frame, holder.landmarks, 1.0)).landmarks)
    right = face_metrics(face_worker.analyze(synth.turn_head(holder.frame, holder.landmarks, -1.0)).landmarks)
    assert left.yaw - base.yaw > settings.turn_threshold
    assert right.yaw - base.yaw < -settings.turn_threshold
    held = [face_worker.analyze(synth.hold_photo(holder.frame, t)) for t in np.linspace(0, 4, 9)]
    yaws = [face_metrics(a.landmarks).yaw - base.yaw for a in held if a.landmarks is not None]
    ears = [face_metrics(a.landmarks).ear for a in held if a.landmarks is not None]
    assert len(yaws) >= 7
    assert max(abs(y) for y in yaws) < settings.turn_threshold
    assert min(ears) > settings.blink_closed_ratio * base.ear
