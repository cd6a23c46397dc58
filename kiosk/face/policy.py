"""Never a dead end: after K failed attempts (default 3) — or at once when the camera or the face worker does not
work — the citizen is offered another route (staff assistance, or the services that need no identity).

:class:`FaceSession` ties one citizen's reference face, attempts and policy together and wipes them at session end.
"""
from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kiosk.face.verifier import FaceEvent, FaceVerifier, ReferenceFace, ReferenceUnusable, VerificationResult
from kiosk.face.worker import FaceEngineError

#: failures of the kiosk, not of the citizen: no use trying again, go to another route at once
TECHNICAL_REASONS = frozenset({"camera_unavailable", "engine_error", "reference_no_face"})
#: endings that are nobody's failure and do not count as an attempt
NOT_COUNTED = frozenset({"cancelled"})


class Next(str, enum.Enum):
    VERIFIED = "verified"
    RETRY = "retry"
    ALTERNATIVE_ROUTE = "alternative_route"


@dataclass(frozen=True)
class Decision:
    """What the kiosk does after an attempt. ``alternatives`` is set when ``next`` is ALTERNATIVE_ROUTE."""

    next: Next
    failures: int
    attempts_left: int
    reason_code: str
    alternatives: tuple[str, ...] = ()

    @property
    def translation_key(self) -> str:
        if self.next is Next.ALTERNATIVE_ROUTE:
            return "face.route.technical" if self.reason_code in TECHNICAL_REASONS else "face.route.too_many_failures"
        if self.next is Next.RETRY:
            return f"face.retry.{self.reason_code}"
        return "face.result.ok"


class AttemptPolicy:
    def __init__(self, max_attempts: int = 3,
                 alternatives: tuple[str, ...] = ("staff_assistance", "continue_without_identity")) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not alternatives:
            raise ValueError("at least one alternative route is required (never a dead end)")
        self.max_attempts = max_attempts
        self.alternatives = tuple(alternatives)
        self.failures = 0

    def record(self, reason_code: str) -> Decision:
        if reason_code == "ok":
            return Decision(Next.VERIFIED, self.failures, self.max_attempts - self.failures, reason_code)
        if reason_code in TECHNICAL_REASONS:
            return Decision(Next.ALTERNATIVE_ROUTE, self.failures, 0, reason_code, self.alternatives)
        if reason_code not in NOT_COUNTED:
            self.failures += 1
        left = self.max_attempts - self.failures
        if left <= 0:
            return Decision(Next.ALTERNATIVE_ROUTE, self.failures, 0, reason_code, self.alternatives)
        return Decision(Next.RETRY, self.failures, left, reason_code)

    def reset(self) -> None:
        self.failures = 0


class FaceSession:
    """One citizen's face verification: the reference photo is encoded on the first attempt (on the calling worker
    thread), attempts follow the policy, :meth:`wipe` drops everything (call it when the kiosk session ends)."""

    def __init__(self, verifier: FaceVerifier, reference_image: Any, source: str = "card") -> None:
        self.verifier = verifier
        self.policy = AttemptPolicy(verifier.settings.max_attempts, verifier.settings.alternatives)
        self._image: Any = reference_image   # bytes, BGR array or DecodedPhoto; dropped once encoded
        self._source = source
        self._reference: ReferenceFace | None = None
        self._lock = threading.Lock()
        self.results: list[VerificationResult] = []   # reason codes and distances only
        self.last_decision: Decision | None = None

    @property
    def wiped(self) -> bool:
        return self._image is None and self._reference is None

    def attempt(self, camera: Any, *, cancel: threading.Event | None = None,
                on_event: Callable[[FaceEvent], None] | None = None,
                deadline: float | None = None, challenges: tuple[str, ...] | None = None
                ) -> tuple[VerificationResult, Decision]:
        """One attempt and what to do next. Blocking: run it on a worker thread."""
        with self._lock:
            if self.last_decision is not None and self.last_decision.next is not Next.RETRY:
                raise RuntimeError(f"no more attempts: {self.last_decision.next.value}")
            if self.wiped:
                raise RuntimeError("face session was wiped")
            try:
                if self._reference is None:
                    assert self._image is not None
                    self._reference = self.verifier.prepare_reference(self._image, self._source)
                    self._image = None  # the encoding is all we keep
                result = self.verifier.verify(self._reference, camera, cancel=cancel, on_event=on_event,
                                              deadline=deadline, challenges=challenges)
            except ReferenceUnusable:
                result = _technical("reference_no_face", self.verifier.threshold)
            except FaceEngineError:
                result = _technical("engine_error", self.verifier.threshold)
            self.results.append(result)
            self.last_decision = self.policy.record(result.reason_code)
            return result, self.last_decision

    def wipe(self) -> None:
        """Session end: drop the photo and zero the reference encoding (a running attempt should be cancelled
        first; wipe waits for it)."""
        with self._lock:
            if isinstance(self._image, np.ndarray) and self._image.flags.writeable:
                self._image.fill(0)
            self._image = None
            if self._reference is not None:
                self._reference.wipe()
                self._reference = None
            self.results.clear()


def _technical(reason: str, threshold: float) -> VerificationResult:
    return VerificationResult(match=False, distance=None, liveness_passed=False, reason_code=reason,
                              threshold=threshold)
