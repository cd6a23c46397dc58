"""Main menu: the citizen's greeting and one tile per service; later capabilities are shown greyed. Tiles the
citizen's identity level cannot use (a card-only session: kiosk/identity_levels.py) are marked with the reason and,
when tapped, explain it in a :class:`LockedNotice` that offers the face check where the kiosk has a camera."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from kiosk.elderly import TILES_PER_PAGE, paginate
from screens.widgets import KModal, KScreen, Tile

#: a tile's feature in the platform's usage counts (service_platform/routes/usage.py), when not its aid's tail
USAGE_FEATURE = {"my_applications": "progress"}


def tile_feature(tile: Tile) -> str:
    name = tile.aid.removeprefix("tile_")
    return USAGE_FEATURE.get(name, name)


class MenuScreen(KScreen):
    """In elderly mode the tiles show :data:`~kiosk.elderly.TILES_PER_PAGE` a page, the most used services first."""

    page = NumericProperty(0)
    pages = NumericProperty(1)

    def on_kv_post(self, base_widget: Any) -> None:
        grid = self.ids.tiles
        self._tiles: list[Tile] = [w for w in reversed(grid.children) if isinstance(w, Tile)]   # kv order
        App.get_running_app().bind(elderly=lambda *_: self.arrange(first_page=True))

    def arrange(self, first_page: bool = False) -> None:
        """Put the tiles of the current page into the grid (all of them, in kv order, outside elderly mode)."""
        app = App.get_running_app()
        if first_page:
            self.page = 0
        if app.elderly:
            order = app.core.elderly.ordered([tile_feature(t) for t in self._tiles])
            ranked = sorted(self._tiles, key=lambda t: order.index(tile_feature(t)))
            pages = paginate(ranked, TILES_PER_PAGE)
        else:
            pages = [list(self._tiles)]
        self.pages = len(pages)
        self.page = max(0, min(self.page, self.pages - 1))
        grid = self.ids.tiles
        shown = pages[self.page]
        if [w for w in reversed(grid.children)] != shown:
            grid.clear_widgets()
            for tile in shown:
                grid.add_widget(tile)

    def turn(self, step: int) -> None:
        App.get_running_app().core.touch()
        self.page = max(0, min(self.page + step, self.pages - 1))
        self.arrange()

    def reset(self) -> None:
        self.arrange(first_page=True)


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
