"""人证核验: is the person in front of the camera the holder of the card (or of the registered photo)?

One attempt (:meth:`FaceVerifier.verify`), run on a kiosk worker thread (never the UI thread; the models run in
the face worker process, so this thread mostly waits):

1. **match** — the first analysed frame with exactly one, roughly frontal face is encoded and compared with the
   reference encoding (128-d Euclidean distance ≤ ``threshold``). A mismatch ends the attempt at once (this is the
   "look at the camera → decision" latency the benchmark measures).
2. **liveness** — the citizen is asked for the challenges (blink, turn left/right) in a random order; landmarks of
   each analysed frame feed :class:`~kiosk.face.liveness.LivenessCheck`.
3. **final** — once the gestures are done, one more frontal frame is encoded and must match too.

Throughout, the face is tracked: when it disappears for more than ``max_gap_s``, jumps, or a second face appears,
the next face must match the reference again before any gesture counts (a photo of the holder cannot lend its
match to somebody else's gestures). Guidance (no face, several faces, look straight, each challenge) is reported
through ``on_event`` as it happens — on the verifying thread: the shell hands it to Kivy with ``Clock``.

Privacy: the reference encoding lives in a :class:`ReferenceFace` (memory only, :meth:`ReferenceFace.wipe` zeroes
it); live encodings are local to one attempt and zeroed before it returns; frames are never copied out of the
camera's one-frame buffer except into the worker's pipe. Results carry no biometric data, only the distance.
Logs carry reason codes and timings only.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from drivers.base import DeviceState
from kiosk.face.config import FaceSettings
from kiosk.face.engine import Analysis, FaceBox, decode_image, face_distance
from kiosk.face.liveness import LivenessCheck, face_metrics, pick_challenges
from kiosk.face.worker import FaceEngineError, FaceWorker

log = logging.getLogger(__name__)

#: every reason an attempt ends with; the citizen sees ``face.result.<code>`` (zh/en tables), operators the code
REASONS: dict[str, str] = {
    "ok": "verified: same person, liveness passed",
    "mismatch": "the face does not match the reference photo",
    "no_face": "no face was seen during the attempt",
    "multiple_faces": "more than one face in view until the time ran out",
    "liveness_timeout": "a liveness request was not answered in time",
    "wrong_gesture": "a head turn to the other side than requested",
    "timeout": "the attempt's time limit passed",
    "cancelled": "the attempt was cancelled (citizen left, session ended)",
    "camera_unavailable": "no frames from the camera",
    "engine_error": "the face worker failed",
    "reference_no_face": "no usable face in the reference photo",
}

#: guidance codes sent while an attempt runs (``face.guide.<code>``)
GUIDANCE = ("look_at_camera", "no_face", "multiple_faces", "look_straight", "hold_still")


class ReferenceUnusable(ValueError):
    code = "reference_no_face"


@dataclass(frozen=True)
class FaceEvent:
    """Progress of an attempt, for the screen and the spoken prompts.

    ``type``: "guidance" (``code`` in :data:`GUIDANCE`), "challenge" (``code`` = blink · turn_left · turn_right:
    ask for it now), "challenge_passed", "checking" (matching runs), "result" (``code`` = reason)."""

    type: str
    code: str

    @property
    def translation_key(self) -> str:
        prefix = {"guidance": "face.guide", "challenge": "face.challenge", "challenge_passed": "face.challenge_ok",
                  "checking": "face.guide", "result": "face.result"}[self.type]
        return f"{prefix}.{self.code}"


class ReferenceFace:
    """The reference encoding for one citizen session. Memory only; :meth:`wipe` zeroes it."""

    def __init__(self, encoding: np.ndarray, source: str = "card") -> None:
        self._encoding: np.ndarray | None = np.array(encoding, dtype=np.float64)
        self.source = source

    @property
    def encoding(self) -> np.ndarray:
        if self._encoding is None:
            raise RuntimeError("reference face was wiped")
        return self._encoding

    @property
    def wiped(self) -> bool:
        return self._encoding is None

    def wipe(self) -> None:
        if self._encoding is not None:
            self._encoding.fill(0.0)
            self._encoding = None

    def __repr__(self) -> str:
        return f"ReferenceFace(source={self.source!r}, wiped={self.wiped})"


@dataclass(frozen=True)
class VerificationResult:
    """How one attempt ended. ``distance`` is the largest distance measured in the attempt (None if no face was
    compared); ``decision_latency_s`` is the time from the frame that showed the decisive face (the first face for a
    match/mismatch decision, the end of the gestures for the final one) to the decision."""

    match: bool
    distance: float | None
    liveness_passed: bool
    reason_code: str
    threshold: float
    challenges: tuple[str, ...] = ()
    challenges_passed: tuple[str, ...] = ()
    duration_s: float = 0.0
    decision_latency_s: float | None = None
    match_latency_s: float | None = None
    frames_analyzed: int = 0

    @property
    def passed(self) -> bool:
        return self.match and self.liveness_passed and self.reason_code == "ok"

    @property
    def translation_key(self) -> str:
        return f"face.result.{self.reason_code}"

    def to_platform(self) -> dict[str, Any]:
        """What the platform may receive (signed into the citizen session): no image, no encoding."""
        return {"match": self.match, "distance": None if self.distance is None else round(self.distance, 4),
                "liveness_passed": self.liveness_passed, "reason_code": self.reason_code,
                "threshold": self.threshold}


@dataclass
class _Track:
    box: FaceBox | None = None
    seen_at: float = 0.0
    matched: bool = False

    def update(self, box: FaceBox, now: float, max_gap_s: float) -> None:
        """A new frame's single face: keep the match if it is plausibly the same face, else drop it."""
        prev = self.box
        if prev is None or now - self.seen_at > max_gap_s:
            self.matched = False
        else:
            (x0, y0), (x1, y1) = prev.center, box.center
            jump = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
            ratio = box.width / max(1, prev.width)
            if jump > 0.6 * prev.width or not (0.67 < ratio < 1.5):
                self.matched = False
        self.box, self.seen_at = box, now

    def lose(self) -> None:
        """Another face entered: whoever is left must match again."""
        self.matched = False
        self.box = None


class FaceVerifier:
    """Face verification with active liveness. One instance per kiosk (it owns the face worker process unless
    one is given). ``verify`` is blocking and thread-safe (attempts are serialised by the worker)."""

    def __init__(self, settings: FaceSettings | None = None, worker: FaceWorker | None = None, *,
                 rng: random.Random | None = None, max_gap_s: float = 0.7, camera_grace_s: float = 2.0,
                 analyze_timeout_s: float = 5.0) -> None:
        self.settings = settings or FaceSettings()
        self._own_worker = worker is None
        self.worker = worker or FaceWorker(self.settings.detection)
        self.rng = rng or random.SystemRandom()
        self.max_gap_s = max_gap_s
        self.camera_grace_s = camera_grace_s
        self.analyze_timeout_s = analyze_timeout_s

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    def warm_up(self) -> "Future[float]":
        """Start the worker and load the models in the background (call after the attract screen shows)."""
        return self.worker.warm_up()

    def close(self) -> None:
        if self._own_worker:
            self.worker.close()

    # reference --------------------------------------------------------------------------------------------------------
    def prepare_reference(self, image: Any, source: str = "card", timeout: float = 30.0) -> ReferenceFace:
        """Encode the reference photo: JPEG/PNG/BMP bytes, a BGR array, or the card's decoded photo
        (``drivers.idcard.wlt.DecodedPhoto``, 102×126 px — small photos are enlarged for the detector).
        Raises :class:`ReferenceUnusable` when it holds no face, :class:`FaceEngineError` when the worker fails."""
        try:
            bgr = decode_image(image)
        except ValueError as exc:
            raise ReferenceUnusable(f"reference photo unreadable: {exc}") from exc
        if min(bgr.shape[:2]) < 200:  # small card photos: enlarge so the 80 px detector window fits the face
            import cv2

            factor = 200 / min(bgr.shape[:2])
            bgr = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        analysis = self.worker.analyze(bgr, encode=True, landmarks=False, reference=True, timeout=timeout)
        if analysis.encoding is None:
            raise ReferenceUnusable("no face found in the reference photo")
        reference = ReferenceFace(analysis.encoding, source=source)
        analysis.encoding.fill(0.0)
        return reference

    # one attempt ------------------------------------------------------------------------------------------------------
    def verify(self, reference: ReferenceFace, camera: Any, *, challenges: tuple[str, ...] | None = None,
               deadline: float | None = None, cancel: threading.Event | None = None,
               on_event: Callable[[FaceEvent], None] | None = None) -> VerificationResult:
        """Run one attempt against ``camera`` (a :class:`drivers.camera.Camera`). ``deadline`` is a
        ``time.monotonic()`` instant (the attempt also ends after ``attempt_timeout_s``); ``challenges`` fixes the
        liveness requests (default: ``settings.challenges`` in a random order); ``cancel`` ends it early."""
        return _Attempt(self, reference, camera, challenges, deadline, cancel, on_event).run()


class _Attempt:
    def __init__(self, verifier: FaceVerifier, reference: ReferenceFace, camera: Any,
                 challenges: tuple[str, ...] | None, deadline: float | None, cancel: threading.Event | None,
                 on_event: Callable[[FaceEvent], None] | None) -> None:
        self.v = verifier
        self.s = verifier.settings
        self.reference = reference
        self.camera = camera
        self.start = time.monotonic()
        self.end = self.start + self.s.attempt_timeout_s
        if deadline is not None:
            self.end = min(self.end, deadline)
        self.cancel = cancel
        self.on_event = on_event
        self.challenges = tuple(challenges) if challenges is not None else pick_challenges(self.s.challenges,
                                                                                            verifier.rng)
        self.live = LivenessCheck(self.challenges, self.s.liveness)
        self.phase = "match"
        self.track = _Track()
        self.distances: list[float] = []
        self.frames = 0
        self.first_face_at: float | None = None
        self.match_latency: float | None = None
        self.final_from: float | None = None
        self.last_guidance: str | None = None
        self.last_count = -1
        self.seen_face = False
        self.last_frontal = True

    # -----------------------------------------------------------------------------------------------------------------
    def emit(self, event: FaceEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception as exc:  # a faulty listener must not end the attempt
            log.error("face event listener failed: %s", type(exc).__name__)

    def guide(self, code: str) -> None:
        if code != self.last_guidance:
            self.last_guidance = code
            self.emit(FaceEvent("guidance", code))

    def result(self, reason: str, *, decided_from: float | None = None) -> VerificationResult:
        now = time.monotonic()
        result = VerificationResult(
            match=bool(self.distances) and max(self.distances) <= self.s.threshold,
            distance=max(self.distances) if self.distances else None,
            liveness_passed=self.live.state == "done",
            reason_code=reason,
            threshold=self.s.threshold,
            challenges=self.challenges,
            challenges_passed=tuple(self.live.passed),
            duration_s=now - self.start,
            decision_latency_s=None if decided_from is None else now - decided_from,
            match_latency_s=self.match_latency,
            frames_analyzed=self.frames,
        )
        log.info("face attempt: %s after %.2f s (%d frames)", reason, result.duration_s, self.frames)
        self.emit(FaceEvent("result", reason))
        return result

    def timeout_reason(self) -> str:
        if self.phase == "liveness":
            return "liveness_timeout"
        if self.phase == "match" and not self.seen_face:
            return "no_face"
        if self.phase == "match" and self.last_count > 1:
            return "multiple_faces"
        return "timeout"

    def camera_ok(self) -> bool:
        try:
            return bool(self.camera.is_open) and self.camera.status().device in (DeviceState.ONLINE,
                                                                                 DeviceState.STARTING)
        except Exception:
            return False

    # -----------------------------------------------------------------------------------------------------------------
    def run(self) -> VerificationResult:
        if self.reference.wiped:
            return self.result("reference_no_face")
        latest = self.camera.latest_frame() if getattr(self.camera, "is_open", False) else None
        last_seq = latest.seq if latest is not None else 0   # only frames grabbed after the attempt began
        camera_bad_since: float | None = None
        self.guide("look_at_camera")
        while True:
            now = time.monotonic()
            if self.cancel is not None and self.cancel.is_set():
                return self.result("cancelled")
            if now >= self.end:
                return self.result(self.timeout_reason())
            frame = self.camera.wait_frame(last_seq, timeout=min(0.5, self.end - now)) \
                if getattr(self.camera, "is_open", False) else None
            if frame is None:
                if not self.camera_ok():
                    camera_bad_since = camera_bad_since or now
                    if time.monotonic() - camera_bad_since >= self.v.camera_grace_s:
                        return self.result("camera_unavailable")
                    if not getattr(self.camera, "is_open", False):
                        time.sleep(min(0.1, max(0.0, self.end - time.monotonic())))
                continue
            camera_bad_since = None
            last_seq = frame.seq
            # encodings cost ~100–150 ms: in the final phase only ask for one when the last face looked straight
            # (a still-turned head coming back is analysed fast, so the first frontal frame is not kept waiting)
            want_encode = self.phase == "match" or not self.track.matched or (
                self.phase == "final" and self.last_frontal)
            try:
                analysis = self.v.worker.analyze(frame.image, encode=want_encode,
                                                 timeout=self.v.analyze_timeout_s)
            except FaceEngineError as exc:
                log.error("face worker failed during an attempt: %s", exc)
                return self.result("engine_error")
            self.frames += 1
            outcome = self.step(analysis, frame.timestamp)
            if analysis.encoding is not None:
                analysis.encoding.fill(0.0)
            if outcome is not None:
                return outcome

    def step(self, a: Analysis, frame_time: float) -> VerificationResult | None:
        now = time.monotonic()
        self.last_count = a.face_count
        if a.face_count != 1 or a.landmarks is None:
            if a.face_count > 1:
                self.seen_face = True
                self.guide("multiple_faces")
                self.track.lose()
            else:
                self.guide("no_face")
            if self.phase == "liveness" and self.track.matched:
                return self.liveness_events(self.live.update(None, now))
            return None
        self.seen_face = True
        if self.first_face_at is None:
            self.first_face_at = frame_time
        self.track.update(a.faces[0], now, self.v.max_gap_s)
        metrics = face_metrics(a.landmarks)
        base_yaw = self.live.baseline_yaw if self.live.baseline_yaw is not None else 0.0
        self.last_frontal = abs(metrics.yaw - base_yaw) <= self.s.liveness.frontal_max_yaw
        if not self.track.matched:
            if abs(metrics.yaw - base_yaw) > self.s.liveness.frontal_max_yaw:
                self.guide("look_straight")
                return None
            if a.encoding is None:
                return None   # the encoding comes with the next frame
            distance = face_distance(self.reference.encoding, a.encoding)
            self.distances.append(distance)
            if self.match_latency is None:
                self.match_latency = now - self.first_face_at
            if distance > self.s.threshold:
                return self.result("mismatch", decided_from=self.first_face_at if len(self.distances) == 1
                                   else frame_time)
            self.track.matched = True
            if self.phase == "match":
                if self.live.state == "done":   # no challenges configured: the next frontal frame decides
                    self.phase = "final"
                    self.final_from = frame_time
                else:
                    self.phase = "liveness"
                    self.guide("hold_still")
            elif self.phase == "final":   # re-matched on a frontal frame after the gestures: that is the decision
                return self.result("ok", decided_from=frame_time)
        if self.phase == "liveness":
            return self.liveness_events(self.live.update(metrics, now))
        if self.phase == "final":
            if abs(metrics.yaw - base_yaw) > self.s.liveness.frontal_max_yaw:
                self.guide("look_straight")
                return None
            if self.final_from is None:
                self.final_from = frame_time   # the citizen looks straight again: "look → decision" starts here
            if a.encoding is None:
                return None
            distance = face_distance(self.reference.encoding, a.encoding)
            self.distances.append(distance)
            return self.result("ok" if distance <= self.s.threshold else "mismatch", decided_from=self.final_from)
        return None

    def liveness_events(self, events: list) -> VerificationResult | None:
        for event in events:
            if event.type == "challenge":
                self.last_guidance = None
                self.emit(FaceEvent("challenge", event.challenge))
            elif event.type == "passed":
                self.emit(FaceEvent("challenge_passed", event.challenge))
            elif event.type == "done":
                self.phase = "final"
                self.emit(FaceEvent("checking", "checking"))
            elif event.type == "failed":
                return self.result(event.reason)
        return None
