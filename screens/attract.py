"""Attract/idle screen: time, kiosk name and place, 'place your ID card', start without a card, language."""
from __future__ import annotations

from kivy.animation import Animation
from kivy.properties import NumericProperty, StringProperty

from screens.widgets import KScreen


class AttractScreen(KScreen):
    message = StringProperty("")
    announcement = StringProperty("")
    pulse = NumericProperty(1.0)

    def on_enter(self, *args) -> None:
        self._anim = (Animation(pulse=0.55, duration=0.9) + Animation(pulse=1.0, duration=0.9))
        self._anim.repeat = True
        self._anim.start(self)

    def on_leave(self, *args) -> None:
        Animation.cancel_all(self)
        self.message = ""

    def show_card_error(self, text: str) -> None:
        self.message = text

    def reset(self) -> None:
        self.message = ""


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"attract": AttractScreen}
