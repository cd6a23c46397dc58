"""Rating (好差评) after every completed action: 1–5 stars, reason tags (required for 1–2 stars), submit or skip."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from screens.widgets import KButton, KScreen


class RatingScreen(KScreen):
    stars = NumericProperty(0)
    selected = ListProperty([])
    banner = StringProperty("")
    status = StringProperty("")
    submitted = BooleanProperty(False)
    busy = BooleanProperty(False)

    def open(self, banner: str = "") -> None:
        self.banner = banner
        self.stars = 0
        self.selected = []
        self.status = ""
        self.submitted = self.busy = False
        self.ids.tags.clear_widgets()

    def choose(self, stars: int) -> None:
        app = App.get_running_app()
        app.core.touch()
        self.stars = stars
        self.selected = []
        box = self.ids.tags
        box.clear_widgets()
        tags = app.t("rating.tags_good" if stars >= 3 else "rating.tags_bad").split("|")
        for i, tag in enumerate(tags):
            btn = KButton(text=tag, aid=f"tag_{i}")
            btn.bind(on_release=lambda b, tag=tag: self.toggle(b, tag))
            box.add_widget(btn)

    def toggle(self, button: KButton, tag: str) -> None:
        App.get_running_app().core.touch()
        if tag in self.selected:
            self.selected.remove(tag)
            button.primary = False
        else:
            self.selected.append(tag)
            button.primary = True

    def submit(self) -> None:
        app = App.get_running_app()
        if self.stars <= 2 and not self.selected:
            self.status = app.t("rating.reason_required")
            return
        self.busy = True
        app.core.submit_rating(int(self.stars), list(self.selected), on_result=self._saved, on_error=self._failed)

    def _saved(self, result: Any) -> None:
        self.busy = False
        self.submitted = True
        app = App.get_running_app()
        queued = isinstance(result, dict) and result.get("queued")
        # the platform is unreachable: the rating waits in the kiosk's outbox and is sent later (say so honestly)
        self.status = app.t("rating.thanks_queued", reference=result.get("reference", "")) if queued \
            else app.t("rating.thanks")

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = App.get_running_app().core.translator.error_text(exc)

    def leave(self, continue_service: bool) -> None:
        """Skip or, after submitting, continue with another service or finish (ends the session)."""
        app = App.get_running_app()
        app.core.rating_finished(continue_service=continue_service)
        if continue_service:
            app.go("menu")

    def reset(self) -> None:
        self.open("")


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"rating": RatingScreen}
