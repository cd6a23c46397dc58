"""人证核验 screen: the mirrored camera preview with a face-position guide, one large prompt (also spoken when the
kiosk has voice prompts), the progress of the liveness steps, and buttons — try again, cancel, staff assistance,
continue without identity, finish. The flow is :class:`kiosk.usecases.face_check.FaceCheck`; this screen shows its
events and forwards taps."""
from __future__ import annotations

from typing import Any, Callable

from kivy.app import App
from kivy.properties import NumericProperty, OptionProperty, StringProperty

from kiosk.face.verifier import FaceEvent
from kiosk.usecases.face_check import FaceCheckNotNeeded, FaceOutcome
from screens.camera_preview import CameraPreview  # noqa: F401  (used by face_check.kv)
from screens.widgets import KButton, KScreen

#: guidance that means "something is wrong with how you stand" (amber guide) vs "good, go on" (green)
WARN = frozenset({"no_face", "multiple_faces", "look_straight"})


class FaceCheckScreen(KScreen):
    phase = OptionProperty("idle", options=["idle", "running", "retry", "route", "staff", "verified"])
    prompt = StringProperty("")
    detail = StringProperty("")
    greeting = StringProperty("")
    steps_text = StringProperty("")
    steps_done = NumericProperty(0)
    steps_total = NumericProperty(0)

    def on_go(self, **_: Any) -> None:
        app = App.get_running_app()
        self._clear()
        citizen = app.core.session.citizen
        self.greeting = app.t("face.greeting", name=citizen.name_masked) if citizen is not None else ""
        self.steps_total = app.core.face_check.challenge_count
        self.start_attempt()

    def on_enter(self, *_: Any) -> None:
        camera = App.get_running_app().core.face_check.camera
        preview = self.ids.preview
        preview.frame_source = camera.latest_frame if camera is not None else None
        preview.start()

    def on_leave(self, *_: Any) -> None:
        App.get_running_app().core.face_check.cancel_attempt()
        self.ids.preview.stop()

    # taps -----------------------------------------------------------------------------------------------------------
    def start_attempt(self) -> None:
        app = App.get_running_app()
        self.phase = "running"
        self.steps_done = 0
        self._say("face.preparing", speak=False)
        self.detail = ""
        self._update_steps()
        self._buttons([("face_cancel", "face.button.cancel", self.cancel, False)])
        app.core.face_check.attempt(on_event=self.on_face_event, on_done=self.on_outcome, on_error=self._failed)

    def cancel(self) -> None:
        App.get_running_app().core.face_check.cancel_attempt()

    def choose(self, route: str) -> None:
        app = App.get_running_app()
        try:
            app.core.face_check.choose(route)
        except FaceCheckNotNeeded:   # nothing pending any more (verified meanwhile, or the session moved on)
            app.go("menu")
            return
        if route in ("continue_without_identity", "card_only"):
            app.go("menu")
            return
        self.phase = "staff"
        self.steps_text = ""
        self._say("face.staff.title")
        self.detail = app.t("face.staff.detail")
        self.ids.preview.guide_state = "idle"
        buttons = [("face_finish", "face.button.finish", App.get_running_app().finish, False)]
        if "continue_without_identity" in app.core.face_check.settings.alternatives:
            buttons.insert(0, ("face_route_continue_without_identity", "face.button.continue_without_identity",
                               lambda: self.choose("continue_without_identity"), True))
        self._buttons(buttons)

    # from the flow (UI thread) ----------------------------------------------------------------------------------------
    def on_face_event(self, event: FaceEvent) -> None:
        if self.phase != "running":
            return
        if event.type == "challenge_passed":
            self.steps_done += 1
            self._update_steps()
        if event.type == "result":
            return   # on_outcome says what comes next
        self._say(event.translation_key)
        self.ids.preview.guide_state = "warn" if event.code in WARN else \
            ("idle" if event.code == "look_at_camera" else "ok")

    def on_outcome(self, outcome: FaceOutcome) -> None:
        if self.phase != "running":
            return   # the citizen already took another route (an attempt they left was cancelled)
        app = App.get_running_app()
        self.steps_text = ""
        if outcome.next == "verified":
            self.phase = "verified"
            self._say("face.verified")
            self.ids.preview.guide_state = "ok"
            self._buttons([])
            return   # the app goes to the menu on the core's "face_verified" event
        self.ids.preview.guide_state = "warn"
        self._say(outcome.translation_key)
        finish = ("face_finish", "face.button.finish", app.finish, False)
        if outcome.next == "retry":
            self.phase = "retry"
            self.detail = app.t("face.attempts_left", left=outcome.attempts_left)
            buttons = [("face_retry", "face.button.retry", self.start_attempt, True)]
            if "continue_without_identity" in app.core.face_check.settings.alternatives:
                # whoever cannot or will not go on still has the services that need no identity
                buttons.append(("face_route_continue_without_identity", "face.button.continue_without_identity",
                                lambda: self.choose("continue_without_identity"), False))
            self._buttons(buttons + [finish])
            return
        self.phase = "route"
        self.detail = ""
        self._buttons([(f"face_route_{r}", f"face.button.{r}", lambda r=r: self.choose(r), True)
                       for r in outcome.alternatives] + [finish])

    def _failed(self, exc: BaseException) -> None:
        app = App.get_running_app()
        self.phase = "route"
        self.prompt = app.core.translator.error_text(exc)
        self._buttons([("face_route_continue_without_identity", "face.button.continue_without_identity",
                        lambda: self.choose("continue_without_identity"), True),
                       ("face_finish", "face.button.finish", app.finish, False)])

    # helpers --------------------------------------------------------------------------------------------------------
    def _say(self, key: str, speak: bool = True) -> None:
        app = App.get_running_app()
        self.prompt = app.t(key)
        speak_fn = getattr(app.core, "speak", None)   # spoken prompts where the kiosk has them (kiosk/voice.py)
        if speak and speak_fn is not None:
            speak_fn(key)

    def _update_steps(self) -> None:
        app = App.get_running_app()
        total = int(self.steps_total)
        if not total or self.phase != "running":
            self.steps_text = ""
            return
        n = min(total, int(self.steps_done) + 1)
        self.steps_text = "●" * int(self.steps_done) + "○" * (total - int(self.steps_done)) + "   " + \
            app.t("face.step", n=n, total=total)

    def _buttons(self, specs: list[tuple[str, str, Callable[[], Any], bool]]) -> None:
        app = App.get_running_app()
        box = self.ids.buttons
        box.clear_widgets()
        for aid, key, action, primary in specs:
            btn = KButton(text=app.t(key), aid=aid, primary=primary)
            btn.bind(on_release=lambda _b, a=action: a())
            box.add_widget(btn)

    def _clear(self) -> None:
        self.phase = "idle"
        self.prompt = self.detail = self.greeting = self.steps_text = ""
        self.steps_done = 0
        if "buttons" in self.ids:
            self.ids.buttons.clear_widgets()
        if "preview" in self.ids:
            self.ids.preview.guide_state = "idle"

    def reset(self) -> None:
        """Session end: nothing of the citizen stays on screen (the preview drops its last frame)."""
        if "preview" in self.ids:
            self.ids.preview.stop()
        self._clear()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"face_check": FaceCheckScreen}
