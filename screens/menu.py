"""Main menu: the citizen's greeting and one tile per service; later capabilities are shown greyed. Tiles the
citizen's identity level cannot use (a card-only session: kiosk/identity_levels.py) are marked with the reason and,
when tapped, explain it in a :class:`LockedNotice` that offers the face check where the kiosk has a camera."""
from __future__ import annotations

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty

from screens.widgets import KModal, KScreen


class MenuScreen(KScreen):
    pass


class LockedNotice(KModal):
    """Why a service is not available to this session (``reason``: a translation key, or ``text`` as is), with
    "verify my face now" when ``can_verify``."""

    reason = StringProperty("")
    text = StringProperty("")
    can_verify = BooleanProperty(False)

    def verify(self) -> None:
        self.dismiss()
        App.get_running_app().verify_face_again()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"menu": MenuScreen}
