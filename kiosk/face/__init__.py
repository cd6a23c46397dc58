"""Face verification (人证核验) with active liveness, for the identify flow.

In the citizen flow this runs through :class:`kiosk.usecases.face_check.FaceCheck` (card → face check → personal
services; screen ``screens/face_check.py``). Importing this package loads no face model: the models live in a worker
process started lazily (:class:`FaceWorker`, :meth:`FaceVerifier.warm_up`). No Kivy here (kiosk/ never imports it).

Typical use (on a kiosk worker thread)::

    verifier = FaceVerifier(FaceSettings.from_mapping(profile.get("face")))   # at start-up; nothing loads yet
    verifier.warm_up()                                                        # after the attract screen shows
    session = FaceSession(verifier, card.photo_jpeg)                          # when the card was read
    result, decision = session.attempt(camera, on_event=..., cancel=...)     # blocking, off the UI thread
    ...
    session.wipe()                                                            # at session end
"""
from kiosk.face.config import DEFAULT_THRESHOLD, FACE_SETTINGS_SCHEMA, FaceSettings
from kiosk.face.policy import AttemptPolicy, Decision, FaceSession, Next
from kiosk.face.verifier import (
    REASONS, FaceEvent, FaceVerifier, ReferenceFace, ReferenceUnusable, VerificationResult,
)
from kiosk.face.worker import FaceEngineError, FaceWorker

__all__ = [
    "DEFAULT_THRESHOLD", "FACE_SETTINGS_SCHEMA", "FaceSettings", "AttemptPolicy", "Decision", "FaceSession", "Next",
    "REASONS", "FaceEvent", "FaceVerifier", "ReferenceFace", "ReferenceUnusable", "VerificationResult",
    "FaceEngineError", "FaceWorker",
]
