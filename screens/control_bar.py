"""The control bar at the bottom of every screen (attract, services, errors, out of service alike), always in the same
place: repeat the prompt, quieter / louder, mute (kiosk/voice.py: for the session), and Help — a request for a member
of staff (kiosk/assistance.py) whose progress shows in :class:`HelpPanel`: "staff have been told", "someone is
coming" once an operator acknowledged it on the fleet dashboard, or the hall's phone / 12345 while the hall is closed.

Wired once into the shell's root (screens/app.py), not per screen. Thin: it forwards taps to the core and shows the
core's ``assistance`` events.
"""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.assistance import AssistanceRequest
from kiosk.voice import VOLUME_STEPS
from screens.widgets import KModal

#: what the panel says (and the kiosk says aloud) in each state of a request
STATE_KEYS = {"sending": "assist.sending", "waiting": "assist.waiting", "coming": "assist.coming",
              "hall_closed": "assist.hall_closed", "not_sent": "assist.not_sent"}
VOICE_KEYS = {"waiting": "assist.voice.waiting", "coming": "assist.voice.coming",
              "hall_closed": "assist.voice.hall_closed", "not_sent": "assist.voice.not_sent"}


class ControlBar(BoxLayout):
    """Voice controls and Help (layout in control_bar.kv)."""

    muted = BooleanProperty(False)
    level = NumericProperty(0)
    levels = NumericProperty(len(VOLUME_STEPS))
    #: the bar's height when its children need no more (control_bar.kv); taller when the tallest child needs it
    min_height = NumericProperty(0)

    def __init__(self, **kwargs: Any) -> None:
        self._panel: HelpPanel | None = None
        super().__init__(**kwargs)
        self.fbind("min_height", self._fit_height)
        self.fbind("padding", self._fit_height)
        self._fit_height()
        app = App.get_running_app()
        if app is not None:
            app.core.subscribe(self._on_core_event)
            self._show_volume()

    def add_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        super().add_widget(widget, *args, **kwargs)
        widget.fbind("height", self._fit_height)
        self._fit_height()

    def _fit_height(self, *_: Any) -> None:
        """As tall as the tallest child plus the padding: a button whose text wraps (elderly mode, portrait) stays
        inside the bar."""
        tallest = max((c.height for c in self.children if c.size_hint_y is None), default=0.0)
        self.height = max(self.min_height, tallest + self.padding[1] + self.padding[3])

    # taps -----------------------------------------------------------------------------------------------------------
    def repeat(self) -> None:
        app = App.get_running_app()
        app.core.touch()
        app.core.voice.repeat()
        self._show_volume()

    def louder(self) -> None:
        self._change(lambda voice: voice.louder())

    def quieter(self) -> None:
        self._change(lambda voice: voice.quieter())

    def toggle_mute(self) -> None:
        app = App.get_running_app()
        app.core.touch()
        voice = app.core.voice
        voice.set_muted(not voice.muted)
        self._show_volume()
        if not voice.muted:
            self._sample("controls.sound_on")

    def help(self) -> None:
        app = App.get_running_app()
        app.core.touch()
        app.core.assistance.request(app.sm.current if app.sm is not None else "unknown")

    # internals ------------------------------------------------------------------------------------------------------
    def _change(self, step: Any) -> None:
        app = App.get_running_app()
        app.core.touch()
        step(app.core.voice)
        self._show_volume()
        self._sample("controls.volume_sample")   # heard at the new volume

    @staticmethod
    def _sample(key: str) -> None:
        """A short sound check, not a prompt: "repeat" still says the screen's prompt."""
        app = App.get_running_app()
        app.core.voice.say(app.t(key), app.core.translator.language, remember=False)

    def _show_volume(self) -> None:
        voice = App.get_running_app().core.voice
        self.muted = voice.muted
        self.level = voice.level

    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "assistance":
            self._show_request(payload["request"])
        elif name == "ended":
            self._show_volume()   # the session's volume and mute are gone: the profile's again

    def _show_request(self, request: AssistanceRequest) -> None:
        app = App.get_running_app()
        if self._panel is None or self._panel.parent is None:
            self._panel = HelpPanel()
            self._panel.open(animation=False)
        before = self._panel.state
        self._panel.show(request)
        if request.state != before and request.state in VOICE_KEYS:
            app.core.speak(VOICE_KEYS[request.state], phone=request.hall.phone)


class HelpPanel(KModal):
    """What happens with the citizen's help request (layout in control_bar.kv)."""

    state = StringProperty("")
    status = StringProperty("")
    phone = StringProperty("")

    def show(self, request: AssistanceRequest) -> None:
        app = App.get_running_app()
        self.state = request.state
        hall = request.hall.name or app.t("assist.hall_default")
        self.status = app.t(STATE_KEYS.get(request.state, "assist.sending"), hall=hall, phone=request.hall.phone)
        self.phone = app.t("assist.phone_hint", phone=request.hall.phone) \
            if request.state in ("waiting", "sending") else ""

    def close(self) -> None:
        app = App.get_running_app()
        app.core.touch()
        app.core.assistance.dismiss()
        self.dismiss(animation=False)
