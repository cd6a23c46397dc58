"""投诉/咨询: choose complaint or question, type the text with the pinyin keyboard, send; the platform answers
"received" with a reference, printed on a receipt with its QR (the flow: kiosk/usecases/feedback.py). Opened from the
menu, and from the rating screen after ★1–2 (with the rated service)."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty

from kiosk.usecases.booking import rejection_text
from kiosk.usecases.feedback import MAX_TEXT
from screens.keyboard import OnScreenKeyboard
from screens.widgets import KScreen


class FeedbackScreen(KScreen):
    kind = StringProperty("complaint")
    text = StringProperty("")
    service_code = StringProperty("")
    service_name = StringProperty("")
    reference = StringProperty("")
    message = StringProperty("")
    status = StringProperty("")
    busy = BooleanProperty(False)
    identified = BooleanProperty(False)

    def on_go(self, kind: str = "complaint", service_code: str = "", service_name: str = "", **_: Any) -> None:
        app = App.get_running_app()
        self.kind, self.service_code, self.service_name = kind, service_code, service_name
        self.text = self.reference = self.message = self.status = ""
        self.busy = False
        self.identified = app.core.feedback.identified

    def choose_kind(self, kind: str) -> None:
        App.get_running_app().core.touch()
        self.kind = kind

    def type_text(self) -> None:
        app = App.get_running_app()
        OnScreenKeyboard(app.t("feedback.keyboard_title"), self.text, "text", on_done=self._typed,
                         max_length=MAX_TEXT).open()

    def _typed(self, text: str) -> None:
        self.text = text
        self.status = ""

    def send(self) -> None:
        app = App.get_running_app()
        if not self.text.strip():
            self.status = app.t("feedback.error.text", limit=MAX_TEXT)
            return
        self.busy = True
        self.status = app.t("common.loading")
        app.core.feedback.send(self.kind, self.text, self.service_code or None, on_result=self._sent,
                               on_error=self._failed)

    def _sent(self, filed: Any) -> None:
        app = App.get_running_app()
        self.busy = False
        self.text = ""   # typed text is personal data: not kept on screen once sent
        self.reference = filed.reference
        self.message = filed.message
        self.status = app.t("feedback.receipt_failed") if filed.print_error else app.t("feedback.receipt_printed")

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = rejection_text(App.get_running_app().core, exc, "feedback")

    def reset(self) -> None:
        self.kind, self.text, self.service_code, self.service_name = "complaint", "", "", ""
        self.reference = self.message = self.status = ""
        self.busy = False


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"feedback": FeedbackScreen}
