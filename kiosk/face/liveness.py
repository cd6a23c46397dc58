"""Active liveness from 68-point landmarks across frames: the citizen is asked to blink and to turn the head, in a
random order, and each request must be answered within a time limit.

Measures (per frame, from :func:`face_metrics`):

* **eye aspect ratio** (EAR, Soukupová & Čech 2016): (|p2−p6| + |p3−p5|) / (2 |p1−p4|), averaged over both eyes;
  ~0.25–0.35 open, falling by half or more when the eye closes. A blink = the EAR seen open, then below
  ``blink_closed_ratio`` × the citizen's own open-eye baseline, then open again.
* **yaw proxy**: the nose tip's horizontal offset from the midpoint between the eyes, divided by the distance between
  the eyes. The nose stands ~2 cm in front of the eyes, so a real head turn moves it relative to them (about 0.15 at
  20°); a flat photo moved, scaled, rotated or tilted in front of the camera keeps that ratio nearly unchanged (an
  affine change of the picture does not change ratios of horizontal distances; a perspective tilt changes it a little,
  ≤ 0.07 at 20° in our measurements). Positive = the citizen's own left (nose toward the right of the unmirrored
  camera image; the mirrored preview shows the head turning to the screen's left).

What this check refuses: a printed photo or a still picture on a phone held up (no blink, no parallax), and a
replayed clip whose gestures do not come in the order asked for: a head turn to the wrong side during a turn request
fails the attempt at once. What it cannot refuse: a replay that happens to show the requested gestures in the
requested order within the time limits (random order makes this a matter of luck per attempt, not certainty), a
video on a screen driven live by an attacker, a 3-D mask. Presentation-attack detection for those needs other
sensors or models (IR/depth camera, texture/moiré classifiers) — see the README table in tests/data/README.md.

Blinks while a turn is requested and turns while a blink is requested are ignored (elderly people blink all the
time and move while they listen); EAR is not judged while the head is turned (it is unreliable there).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

CHALLENGES = ("blink", "turn_left", "turn_right")


@dataclass(frozen=True)
class FaceMetrics:
    ear: float      # mean eye-aspect ratio of both eyes
    yaw: float      # nose-tip offset from the eyes' midpoint / inter-ocular distance (+ = citizen's left)
    iod: float      # inter-ocular distance, px


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """EAR of one eye's six landmarks (outer corner, two upper-lid points, inner corner, two lower-lid points)."""
    eye = np.asarray(eye, dtype=np.float64)
    horizontal = np.linalg.norm(eye[0] - eye[3])
    if horizontal < 1e-6:
        return 0.0
    return float((np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / (2.0 * horizontal))


def face_metrics(landmarks: np.ndarray) -> FaceMetrics:
    """EAR and yaw proxy from 68×2 landmarks (iBUG 300-W order)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68×2 landmarks, got {pts.shape}")
    left_eye, right_eye = pts[36:42], pts[42:48]
    c_left, c_right = left_eye.mean(axis=0), right_eye.mean(axis=0)
    iod = float(np.linalg.norm(c_right - c_left))
    mid_x = (c_left[0] + c_right[0]) / 2.0
    yaw = float((pts[30, 0] - mid_x) / iod) if iod > 1e-6 else 0.0
    ear = (eye_aspect_ratio(left_eye) + eye_aspect_ratio(right_eye)) / 2.0
    return FaceMetrics(ear=ear, yaw=yaw, iod=iod)


@dataclass(frozen=True)
class LivenessSettings:
    """Thresholds of the challenge check (profile: ``face.liveness``)."""

    calibration_frames: int = 3        # frontal frames that set the citizen's open-eye EAR and straight-ahead yaw
    frontal_max_yaw: float = 0.12      # |yaw| below this counts as looking straight ahead (for calibration)
    blink_closed_ratio: float = 0.65   # EAR below ratio × baseline: eyes closed
    blink_open_ratio: float = 0.85     # EAR above ratio × baseline: eyes open
    turn_threshold: float = 0.11       # |yaw − baseline| beyond this: head turned
    return_threshold: float = 0.06     # |yaw − baseline| below this: back to straight ahead
    turn_frames: int = 2               # consecutive frames beyond the threshold that make a turn
    step_timeout_s: float = 8.0        # time to answer one request


def pick_challenges(pool: Sequence[str] = ("blink", "turn"), rng: random.Random | None = None) -> tuple[str, ...]:
    """The requests for one attempt in a random order. ``"turn"`` in the pool becomes ``turn_left`` or
    ``turn_right`` at random; names from :data:`CHALLENGES` are taken as they are."""
    rng = rng or random.SystemRandom()
    chosen = []
    for name in pool:
        if name == "turn":
            name = rng.choice(("turn_left", "turn_right"))
        if name not in CHALLENGES:
            raise ValueError(f"unknown liveness challenge {name!r}; choose from {CHALLENGES + ('turn',)}")
        chosen.append(name)
    rng.shuffle(chosen)
    return tuple(chosen)


@dataclass(frozen=True)
class LivenessEvent:
    """``type``: "challenge" (a request starts: show/say it), "passed" (a request was answered), "done" (all
    answered), "failed" (``reason``: liveness_timeout · wrong_gesture)."""

    type: str
    challenge: str | None = None
    reason: str | None = None


@dataclass
class _Step:
    name: str
    started: float
    stage: str = "wait"     # blink: wait → open → closed ; turn: counting frames
    count: int = 0
    wrong: int = 0


@dataclass
class LivenessCheck:
    """The challenge state machine. Feed it one :class:`FaceMetrics` (or None: no usable face) per analysed frame
    with its time; it answers with the events that frame caused. Pure logic: no models, no clocks of its own."""

    challenges: tuple[str, ...]
    settings: LivenessSettings = field(default_factory=LivenessSettings)
    state: str = "calibrating"          # calibrating · waiting_frontal · in_step · done · failed
    reason: str | None = None
    passed: list[str] = field(default_factory=list)
    baseline_ear: float | None = None
    baseline_yaw: float | None = None
    _samples: list[FaceMetrics] = field(default_factory=list)
    _step: _Step | None = None
    _index: int = 0
    _since: float | None = None         # when the current wait (calibration / return to frontal) began

    def __post_init__(self) -> None:
        for name in self.challenges:
            if name not in CHALLENGES:
                raise ValueError(f"unknown liveness challenge {name!r}")
        if not self.challenges:
            self.state = "done"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def current(self) -> str | None:
        return self._step.name if self._step else None

    def update(self, metrics: FaceMetrics | None, now: float) -> list[LivenessEvent]:
        if self.finished:
            return []
        s = self.settings
        if self._since is None:
            self._since = now
        if self.state == "calibrating":
            if metrics is not None and abs(metrics.yaw) < s.frontal_max_yaw:
                self._samples.append(metrics)
            if len(self._samples) >= s.calibration_frames:
                self.baseline_ear = float(np.median([m.ear for m in self._samples]))
                self.baseline_yaw = float(np.median([m.yaw for m in self._samples]))
                return self._start_step(now)
            if now - self._since > s.step_timeout_s:
                return self._fail("liveness_timeout")
            return []
        if self.state == "waiting_frontal":
            if metrics is not None and abs(self._dyaw(metrics)) < s.return_threshold:
                return self._start_step(now)
            if now - self._since > s.step_timeout_s:
                return self._fail("liveness_timeout")
            return []
        # in_step
        step = self._step
        assert step is not None
        if now - step.started > s.step_timeout_s:
            return self._fail("liveness_timeout")
        if metrics is None:
            return []
        if step.name == "blink":
            if abs(self._dyaw(metrics)) > s.turn_threshold:
                return []   # EAR is unreliable on a turned face
            assert self.baseline_ear is not None
            if metrics.ear >= s.blink_open_ratio * self.baseline_ear:
                if step.stage == "closed":
                    return self._pass(now)
                step.stage = "open"
            elif metrics.ear <= s.blink_closed_ratio * self.baseline_ear and step.stage == "open":
                step.stage = "closed"
            return []
        sign = 1.0 if step.name == "turn_left" else -1.0
        d = self._dyaw(metrics) * sign
        if d > s.turn_threshold:
            step.count += 1
            step.wrong = 0
            if step.count >= s.turn_frames:
                return self._pass(now)
        elif d < -s.turn_threshold:
            step.wrong += 1
            step.count = 0
            if step.wrong >= s.turn_frames:
                return self._fail("wrong_gesture")
        else:
            step.count = step.wrong = 0
        return []

    # -----------------------------------------------------------------------------------------------------------------
    def _dyaw(self, metrics: FaceMetrics) -> float:
        return metrics.yaw - (self.baseline_yaw or 0.0)

    def _start_step(self, now: float) -> list[LivenessEvent]:
        name = self.challenges[self._index]
        self._step = _Step(name=name, started=now)
        self.state = "in_step"
        return [LivenessEvent("challenge", challenge=name)]

    def _pass(self, now: float) -> list[LivenessEvent]:
        assert self._step is not None
        name = self._step.name
        self.passed.append(name)
        self._step = None
        self._index += 1
        events = [LivenessEvent("passed", challenge=name)]
        if self._index >= len(self.challenges):
            self.state = "done"
            events.append(LivenessEvent("done"))
        else:
            self.state = "waiting_frontal"
            self._since = now
        return events

    def _fail(self, reason: str) -> list[LivenessEvent]:
        self.state = "failed"
        self.reason = reason
        challenge = self._step.name if self._step else None
        self._step = None
        return [LivenessEvent("failed", challenge=challenge, reason=reason)]
