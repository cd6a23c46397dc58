"""Print confirmation: say what will be printed, print on confirm (in a worker), show the outcome — never a frozen
'printing…': every path ends in 'done, take your receipt' or a clear error with what to do."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty

from screens.widgets import KScreen


class PrintConfirmScreen(KScreen):
    what = StringProperty("")
    status = StringProperty("")
    busy = BooleanProperty(False)
    failed = BooleanProperty(False)

    def on_go(self, kind: str, payload: Any, **_: Any) -> None:
        self.prepare(kind, payload)

    def prepare(self, kind: str, payload: Any) -> None:
        app = App.get_running_app()
        self.kind, self.payload = kind, payload
        self.what = app.t("print.what_notice") if kind == "notice" else app.t("print.what_progress")
        self.status = ""
        self.busy = self.failed = False
        self.last_error: BaseException | None = None
        self.return_to = "guide_detail" if kind == "notice" else "progress"

    def confirm(self) -> None:
        app = App.get_running_app()
        self.busy, self.failed = True, False
        self.status = app.t("print.printing")
        failed, self.last_error = self.last_error, None
        if failed is not None and app.core.needs_reprint(failed):  # paper ran out part-way: reprint that job
            app.core.reprint(failed, self.kind, self.payload, on_result=self._done, on_error=self._failed)
        elif self.kind == "notice":
            app.core.print_service_notice(self.payload, on_result=self._done, on_error=self._failed)
        else:
            app.core.print_progress(self.payload, on_result=self._done, on_error=self._failed)

    def _done(self, result: Any) -> None:
        self.busy = False
        self.status = App.get_running_app().t("print.done")
        # the core asks for a rating next (event 'rating_requested'); the app navigates

    def _failed(self, exc: BaseException) -> None:
        app = App.get_running_app()
        self.last_error = exc
        self.busy, self.failed = False, True
        self.status = app.t("print.failed") + "：" + app.core.translator.error_text(exc)

    def reset(self) -> None:
        self.last_error = None
        self.kind, self.payload = "", None
        self.what = self.status = ""
        self.busy = self.failed = False


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"print_confirm": PrintConfirmScreen}
