"""人证核验 in the citizen flow: after the card is read, a kiosk with a camera asks the citizen to pass the face check
before any personal service (my applications, applying, paying, e-certificates). Services without identity (guides,
progress by number) stay open all the time.

    card read ──► core: session.identify(citizen) ──► FaceCheck.begin(citizen)     (nothing captured yet)
    consent   ──► FaceCheck.consent(agreed)        (PIPL: biometrics are sensitive personal information; the audit
                    │                               journal records the decision, never face data)
                    ├─ agreed   ──► reference photo fetched, camera on
                    └─ refused  ──► FaceCheck.choose(route): staff, services without identity (no camera ever)
    screen    ──► FaceCheck.attempt(on_event, on_done)                               (one attempt on a kiosk worker)
                    ├─ verified  ──► platform session opened with face_match=true ──► event "face_verified"
                    ├─ retry     ──► the screen offers "try again" (K attempts, profile face.max_attempts, default 3)
                    └─ alternative route (K failures, or the kiosk's own fault) ──► FaceCheck.choose(route):
                         "staff_assistance"           ──► audit + event "staff_assistance" (the screen says where)
                         "continue_without_identity"  ──► the citizen's data is dropped, the session goes on anonymous

Reference photo: the card's own photo when the ID reader has a WLT decoder configured, else the platform's
registered photo (``registered_photo``); neither → the kiosk cannot check → another route at once (never a dead end).

Privacy: the photo, frames and encodings live in memory only (:class:`kiosk.face.FaceSession`), are wiped when the
session ends; the camera is paused (no frames grabbed) whenever no check is running. Only the result — match yes/no,
distance, liveness passed, reason code — is kept in the session (``scratch["face_result"]``) and the platform is told
``face_match`` when it opens the citizen session. The audit journal gets reason codes and counts, never images,
encodings or the distance.

No Kivy here: callbacks come back through the core's dispatcher (the UI thread in the shell).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from kiosk.errors import KioskError, error_code
from kiosk.face.config import FaceSettings
from kiosk.face.policy import Decision, FaceSession, Next
from kiosk.face.verifier import FaceEvent, FaceVerifier, VerificationResult
from kiosk.usecases import identify

log = logging.getLogger(__name__)

Emit = Callable[..., None]
Audit = Callable[..., None]

#: the routes a citizen may take when the face check cannot confirm them (profile ``face.alternatives``);
#: ``card_only`` keeps the card's identity at the ``card`` level (progress, appointments: kiosk/identity_levels.py)
ROUTES = ("staff_assistance", "continue_without_identity", "card_only")


#: the version of the consent notice the citizen is shown (kiosk/locales/*/consent.yaml), recorded with the decision
CONSENT_NOTICE = "face-consent-v1"


class FaceConsentRequired(KioskError):
    """An attempt was asked for before the citizen agreed to the face check (or after they refused)."""

    code = "face_consent_required"
    translation_key = "consent.error.required"


class FaceCheckNotNeeded(KioskError):
    """A face-check step was asked for while no check is pending (no card read, already verified, session over)."""

    code = "face_check_not_pending"
    translation_key = "face.error.not_pending"


def face_settings_for(profile: Any) -> FaceSettings:
    """The profile's ``face:`` block as :class:`FaceSettings` (defaults when absent). Reads ``profile.face`` when
    the loader carries it, else the block from the profile's YAML file (``profile.source``)."""
    block = getattr(profile, "face", None)
    if block is None:
        block = _face_block_from_file(getattr(profile, "source", ""))
    if isinstance(block, FaceSettings):
        return block
    return FaceSettings.from_mapping(block if isinstance(block, Mapping) else None)


def _face_block_from_file(source: str) -> Mapping[str, Any] | None:
    if not source or not Path(source).is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(source).read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("face") if isinstance(data, dict) else None


@dataclass(frozen=True)
class FaceOutcome:
    """How an attempt ended, for the screen: what comes next, why (``translation_key``), and what is left."""

    next: str                     # "verified" · "retry" · "alternative_route"
    reason_code: str
    translation_key: str
    attempts_left: int
    failures: int
    alternatives: tuple[str, ...] = ()
    result: Mapping[str, Any] = field(default_factory=dict)   # VerificationResult.to_platform(): no biometrics

    @classmethod
    def of(cls, result: VerificationResult, decision: Decision) -> "FaceOutcome":
        return cls(next=decision.next.value, reason_code=result.reason_code,
                   translation_key=decision.translation_key, attempts_left=decision.attempts_left,
                   failures=decision.failures, alternatives=decision.alternatives, result=result.to_platform())


@dataclass(eq=False)
class _Check:
    """One citizen's face check (lives while their session lives)."""

    citizen: Any
    session_id: str
    face_session: "Future[FaceSession] | None" = None   # prepared once the citizen agreed
    consent: bool | None = None                          # None: not asked yet
    cancel: threading.Event = field(default_factory=threading.Event)
    running: bool = False
    verified: bool = False
    route: str | None = None
    outcome: FaceOutcome | None = None


class FaceCheck:
    """The face check of one kiosk. Created by the core; nothing loads until :meth:`start` warms the face worker up
    in the background (the shell never waits for the models)."""

    def __init__(self, profile: Any, session: Any, platform: Any, *, devices: Callable[[str], Any],
                 workers: Any, emit: Emit, audit: Audit, verifier: FaceVerifier | None = None,
                 settings: FaceSettings | None = None,
                 refused: Callable[[BaseException], None] | None = None) -> None:
        self.settings = settings or (verifier.settings if verifier is not None else face_settings_for(profile))
        self.enabled = bool(self.settings.enabled) and "camera" in getattr(profile, "devices", {})
        self._session = session
        self._platform = platform
        self._devices = devices
        self._workers = workers
        self._emit = emit
        self._audit = audit
        self._verifier = verifier
        self._own_verifier = verifier is None
        self._check: _Check | None = None
        self._lock = threading.RLock()
        self._refused = refused or (lambda exc: None)   # the platform refused a session/photo (rate limit)
        session.subscribe(self._on_session_event)

    # lifecycle ------------------------------------------------------------------------------------------------------
    @property
    def verifier(self) -> FaceVerifier:
        if self._verifier is None:
            self._verifier = FaceVerifier(self.settings)
        return self._verifier

    @property
    def camera(self) -> Any:
        return self._devices("camera")

    def start(self) -> None:
        """After the devices opened: pause the camera until a check needs it, load the models in the background."""
        if not self.enabled:
            return
        camera = self.camera
        if camera is not None and hasattr(camera, "pause"):
            camera.pause()
        self.verifier.warm_up()

    def close(self) -> None:
        self._end_check()
        if self._own_verifier and self._verifier is not None:
            self._verifier.close()

    # queries --------------------------------------------------------------------------------------------------------
    def needs_check(self, citizen: Any) -> bool:
        """Whether ``citizen`` (just identified by card) must still pass the face check before personal services."""
        if not self.enabled or citizen is None:
            return False
        check = self._check
        return not (check is not None and check.citizen is citizen and (check.verified or check.route == "card_only"))

    @property
    def can_verify(self) -> bool:
        """This kiosk can run the face check (a camera is configured): a card-only citizen may be offered it."""
        return self.enabled

    def verify_again(self) -> bool:
        """A citizen who went on with the card only asks for the face check after all (to reach a service that needs
        it): a new check begins (fresh attempts). False when there is nothing to upgrade or no camera."""
        citizen = self._session.citizen
        with self._lock:
            check = self._check
            if not self.enabled or citizen is None or check is None or check.citizen is not citizen \
                    or check.route != "card_only":
                return False
            self._end_check()
        return self.begin(citizen)

    def identity_confirmed(self) -> bool:
        """The session's citizen may use personal services: identified, and face-verified where a camera exists."""
        citizen = self._session.citizen
        return citizen is not None and not self.needs_check(citizen)

    @property
    def pending(self) -> bool:
        return self.needs_check(self._session.citizen)

    @property
    def consent_pending(self) -> bool:
        """The citizen still has to agree (or not) before the camera may start."""
        citizen = self._session.citizen
        if not self.needs_check(citizen):
            return False
        check = self._check
        return check is None or check.citizen is not citizen or check.consent is None

    @property
    def consent_given(self) -> bool:
        check = self._check
        return check is not None and check.citizen is self._session.citizen and check.consent is True

    @property
    def running(self) -> bool:
        check = self._check
        return check is not None and check.running

    @property
    def max_attempts(self) -> int:
        return self.settings.max_attempts

    @property
    def challenge_count(self) -> int:
        return len(self.settings.challenges)

    # the flow -------------------------------------------------------------------------------------------------------
    def begin(self, citizen: Any) -> bool:
        """The card of ``citizen`` was read. Returns False when no face check is needed (the caller goes on as before);
        else the check waits for the citizen's consent (:meth:`consent`) and returns True — nothing is captured or
        fetched before that."""
        with self._lock:   # the card handler and an early attempt() may both begin: one check per citizen
            if not self.needs_check(citizen):
                return False
            current = self._check
            if current is not None and current.citizen is citizen:
                return True   # already begun (an attempt asked for before the core got here)
            self._end_check()
            check = _Check(citizen=citizen, session_id=self._session.data.id)
            self._check = check
        self._audit("face_check_started", check.session_id)
        return True

    def consent(self, agreed: bool) -> None:
        """The citizen's answer on the consent screen (what is captured, why, that nothing is kept). Agreed: the
        reference photo is fetched and the camera switched on; refused: nothing is captured, the citizen picks another
        route (:meth:`choose`). The decision goes to the audit journal (with the notice version; no face data)."""
        citizen = self._session.citizen
        with self._lock:
            if (self._check is None or self._check.citizen is not citizen) and self.needs_check(citizen):
                self.begin(citizen)
            check = self._check
            if check is None or check.citizen is not citizen or check.verified:
                raise FaceCheckNotNeeded("no face check is pending")
            if check.consent is True and agreed:
                return   # a second tap on "agree"
            check.consent = bool(agreed)
            if agreed and check.route == "staff_assistance":
                check.route = None   # asked for staff, then agreed after all
            if agreed and check.face_session is None:
                check.face_session = self._workers.submit(self._prepare, citizen)
        self._session.touch()
        self._audit("face_consent", check.session_id, decision="agreed" if agreed else "refused",
                    notice=CONSENT_NOTICE)
        if agreed:
            camera = self.camera
            if camera is not None and hasattr(camera, "resume"):
                camera.resume()
        else:
            check.cancel.set()
            self._pause_camera()

    def attempt(self, on_event: Callable[[FaceEvent], None] | None = None,
                on_done: Callable[[FaceOutcome], None] | None = None,
                on_error: Callable[[BaseException], None] | None = None) -> None:
        """Run one attempt on a worker. ``on_event`` gets the guidance and challenges as they happen, ``on_done`` the
        :class:`FaceOutcome`; both through the dispatcher. Raises nothing: a missing check goes to ``on_error``."""
        citizen = self._session.citizen
        if (self._check is None or self._check.citizen is not citizen) and self.needs_check(citizen):
            self.begin(citizen)   # the screen may ask before the core's card handler has begun the check
        check = self._check
        if check is not None and check.citizen is citizen and not check.verified and check.consent is not True \
                and check.route is None:
            if on_error is not None:
                self._workers.dispatch(lambda: on_error(FaceConsentRequired("the citizen has not agreed")))
            return
        if check is None or check.citizen is not citizen or check.verified or check.running or \
                check.route is not None or (check.outcome is not None and check.outcome.next != Next.RETRY.value):
            if on_error is not None:
                self._workers.dispatch(lambda: on_error(FaceCheckNotNeeded("no face check to attempt")))
            return
        check.running = True
        check.cancel = threading.Event()
        self._session.touch()
        dispatch = self._workers.dispatch

        def forward(event: FaceEvent) -> None:
            if check.cancel.is_set():
                return
            self._session.touch()   # someone is in front of the camera, following the prompts: not idle
            if on_event is not None:
                dispatch(lambda: on_event(event))

        def run() -> FaceOutcome:
            try:
                return self._run_attempt(check, forward)
            finally:
                check.running = False

        def done(outcome: FaceOutcome) -> None:
            if self._check is not check:
                return   # the session ended meanwhile: nobody to tell
            if outcome.next == Next.VERIFIED.value:
                self._emit("face_verified", result=outcome.result)
            if on_done is not None:
                on_done(outcome)

        self._workers.submit(run, on_result=done, on_error=on_error)

    def cancel_attempt(self) -> None:
        """Stop a running attempt (the citizen pressed cancel or left the screen); it does not count as a failure."""
        check = self._check
        if check is not None:
            check.cancel.set()

    def choose(self, route: str) -> None:
        """The citizen picked another route after the check could not confirm them (or asked for staff at once)."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose one of {ROUTES}")
        check = self._check
        if check is None or check.verified:
            raise FaceCheckNotNeeded("no face check is pending")
        check.cancel.set()
        check.route = route
        self._audit("face_route", check.session_id, route=route, failures=check.outcome.failures if check.outcome
                    else 0)
        if route == "staff_assistance":   # the core raises the help request (kiosk/assistance.py)
            self._emit("staff_assistance", reason="face_consent" if check.consent is False else "face_check")
            return
        if route == "card_only":
            # the card's identity stays, at the card level: progress and appointments, nothing that needs the holder
            self._pause_camera()
            self._open_platform_session(check, face_match=None)
            self._emit("identity_card_only")
            return
        # continue without identity: the citizen's data is no longer needed by anything they can do now
        self._forget_citizen()
        self._end_check()
        self._emit("identity_dropped")

    # internals ------------------------------------------------------------------------------------------------------
    def _prepare(self, citizen: Any) -> FaceSession:
        """Worker: the reference photo (the card's decoded photo when the reader has a WLT decoder, else the
        platform's registered photo: :meth:`_reference_photo`)."""
        image, source = self._reference_photo(citizen)
        return FaceSession(self.verifier, image, source=source)

    def _reference_photo(self, citizen: Any) -> tuple[Any, str]:
        """The card's own photo when the reader has a WLT decoder (drivers/idcard/wlt.py: decoder first), else the
        platform's registered photo; neither → empty (the attempt ends in ``reference_no_face``)."""
        doc = citizen.document
        if doc is None:
            return b"", "none"
        reader = self._devices(getattr(citizen, "source", "idcard") or "idcard")
        decoder = getattr(reader, "wlt_decoder", None)
        wlt = getattr(doc, "photo_wlt", b"")
        if decoder is not None and wlt:
            try:
                return decoder.decode(wlt), "card"
            except Exception as exc:  # not decodable: the registry may still have a photo
                log.warning("card photo not decodable: %s", error_code(exc))
        kind = getattr(getattr(doc, "kind", None), "value", str(getattr(doc, "kind", "")))
        try:
            photo = self._platform.registered_photo(doc.id_number, doc.name, kind)
        except Exception as exc:  # platform down or refusing: nothing to compare with
            log.warning("registered photo unavailable: %s", error_code(exc))
            self._refused(exc)
            photo = None
        if photo is not None and photo.data:
            return photo.data, "registry"
        return b"", "none"   # FaceSession reports reference_no_face: another route at once

    def _run_attempt(self, check: _Check, forward: Callable[[FaceEvent], None]) -> FaceOutcome:
        timeout = self.settings.attempt_timeout_s
        if check.face_session is None:
            raise FaceConsentRequired("the citizen has not agreed")
        face_session = check.face_session.result(timeout=timeout)
        camera = self.camera
        if camera is None:
            result = VerificationResult(match=False, distance=None, liveness_passed=False,
                                        reason_code="camera_unavailable", threshold=self.settings.threshold)
            decision = face_session.policy.record(result.reason_code)
        else:
            if hasattr(camera, "resume"):
                camera.resume()
            result, decision = face_session.attempt(camera, cancel=check.cancel, on_event=forward,
                                                    deadline=time.monotonic() + timeout)
        outcome = FaceOutcome.of(result, decision)
        check.outcome = outcome
        self._audit("face_attempt", check.session_id, reason=result.reason_code, next=outcome.next,
                    failures=outcome.failures, liveness=result.liveness_passed, match=result.match)
        if self._check is not check:
            return outcome
        if decision.next is Next.VERIFIED:
            check.verified = True
            self._session.data.scratch["face_result"] = dict(outcome.result)
            self._open_platform_session(check)
            self._pause_camera()
        elif decision.next is Next.ALTERNATIVE_ROUTE:
            self._pause_camera()
        return outcome

    def _open_platform_session(self, check: _Check, face_match: bool | None = True) -> None:
        citizen = check.citizen

        def open_session() -> str:
            return identify.open_platform_session(self._platform, citizen, face_match=face_match)

        def opened(token: str) -> None:
            if self._session.citizen is citizen:
                citizen.platform_token = token

        def failed(exc: BaseException) -> None:
            self._audit("platform_session_failed", check.session_id, code=error_code(exc))
            self._refused(exc)

        # the core's my_applications() waits for this one instead of opening a second session
        self._session.data.scratch["token_future"] = self._workers.submit(open_session, on_result=opened,
                                                                          on_error=failed)

    def _forget_citizen(self) -> None:
        data = self._session.data
        citizen = data.citizen
        if citizen is not None:
            citizen.document = None
            citizen.platform_token = ""
            data.citizen = None
        data.scratch.pop("token_future", None)
        data.scratch.pop("face_result", None)
        self._session.begin_service()   # IDENTIFIED → IN_SERVICE, anonymous

    def _pause_camera(self) -> None:
        camera = self.camera
        if camera is not None and hasattr(camera, "pause"):
            camera.pause()

    def _end_check(self) -> None:
        """Cancel a running attempt, pause the camera and wipe the face data (off the calling thread: the wipe waits
        for the attempt to notice the cancel)."""
        with self._lock:
            check, self._check = self._check, None
        if check is None:
            return
        check.cancel.set()
        self._pause_camera()
        future = check.face_session
        if future is None:   # never agreed: nothing was captured or fetched
            check.citizen = None
            return

        def wipe() -> None:
            try:
                face_session = future.result(timeout=60)
            except Exception:
                return
            face_session.wipe()

        if future.done() and not check.running:
            wipe()
        else:
            threading.Thread(target=wipe, name="face-wipe", daemon=True).start()
        check.citizen = None

    def _on_session_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "ended":
            self._end_check()
