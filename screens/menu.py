"""Main menu: the citizen's greeting and one tile per service; later capabilities are shown greyed."""
from __future__ import annotations

from screens.widgets import KScreen


class MenuScreen(KScreen):
    pass


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"menu": MenuScreen}
