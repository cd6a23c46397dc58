"""Rating (好差评) after every completed action: 1–5 stars, reason tags and, for ★1–2, a comment typed with the pinyin
keyboard (tags or a comment required for 1–2 stars; both go to the department's follow-up queue), submit or skip; after
a bad rating, a complaint or question (the feedback screen)."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from kiosk.journey import TAG_CODES_BAD, TAG_CODES_GOOD
from screens.widgets import KButton, KScreen


class RatingScreen(KScreen):
    stars = NumericProperty(0)
    selected = ListProperty([])
    banner = StringProperty("")
    status = StringProperty("")
    submitted = BooleanProperty(False)
    busy = BooleanProperty(False)
    comment = StringProperty("")   # ★1–2: typed with the pinyin keyboard, sent with the rating (staff follow-up queue)

    def open(self, banner: str = "") -> None:
        self.banner = banner
        self.stars = 0
        self.selected = []
        self.status = ""
        self.comment = ""
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
        codes = TAG_CODES_GOOD if stars >= 3 else TAG_CODES_BAD   # the platform's tag codes, not the text shown
        for i, (tag, code) in enumerate(zip(tags, codes)):
            btn = KButton(text=tag, aid=f"tag_{i}")
            btn.bind(on_release=lambda b, code=code: self.toggle(b, code))
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
        if self.stars <= 2 and not self.selected and not self.comment.strip():
            self.status = app.t("rating.reason_required")
            return
        self.busy = True
        comment = self.comment.strip() if self.stars <= 2 and self.comment.strip() else None
        app.core.submit_rating(int(self.stars), list(self.selected), comment, on_result=self._saved,
                               on_error=self._failed)

    def write_comment(self) -> None:
        """★1–2: the citizen explains in their own words (pinyin keyboard, at most 500 characters)."""
        from screens.keyboard import OnScreenKeyboard

        app = App.get_running_app()
        app.core.touch()
        OnScreenKeyboard(app.t("rating_comment.keyboard_title"), self.comment, "text",
                         on_done=self._commented, max_length=500).open()

    def _commented(self, text: str) -> None:
        self.comment = text.strip()
        self.status = ""

    def complain(self) -> None:
        """After a bad rating: a complaint or question about what was rated (the feedback screen)."""
        app = App.get_running_app()
        target = app.core.session.data.rating_target
        code = target.target_id if target is not None and target.target_type == "service" else ""
        app.core.rating_finished(continue_service=True)
        app.go("feedback", kind="complaint", service_code=code)

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
