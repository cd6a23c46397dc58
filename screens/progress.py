"""Progress query: by application number (no card needed, on-screen keypad) or the citizen's own applications after
the card. By number alone the platform tells only the state; with the last 4 characters of the applicant's ID number
(typed on the same keypad, ``X`` included) the application is shown with its timeline, printable."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from kiosk.session import RatingTarget
from kiosk.usecases.supplement import SUPPLEMENTABLE
from screens.widgets import KButton, KeyButton, KLabel, KScreen

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "SP", "0", "X")  # backspace (key_DEL) sits under the keypad


class ProgressScreen(KScreen):
    number = StringProperty("")
    last4 = StringProperty("")
    field = StringProperty("number")  # which field the keypad types into: "number" | "last4"
    status = StringProperty("")
    application = ObjectProperty(None, allownone=True)
    mine = BooleanProperty(False)

    def on_kv_post(self, base_widget: Any) -> None:
        for key in KEYS:
            label = {"DEL": App.get_running_app().t("progress.backspace"), "SP": "SP/FB"}.get(key, key)
            btn = KeyButton(text=label, aid=f"key_{key}")   # keys share the keypad's height
            btn.bind(on_release=lambda b, k=key: self.press(k))
            self.ids.keypad.add_widget(btn)

    def on_go(self, mine: bool = False, **_: Any) -> None:
        self.open(mine=mine)

    def open(self, mine: bool = False) -> None:
        self.mine = mine
        self.application = None
        self.ids.timeline.clear_widgets()
        if mine:
            self.load_mine()

    def press(self, key: str) -> None:
        App.get_running_app().core.touch()
        if self.field == "last4":
            if key == "DEL":
                self.last4 = self.last4[:-1]
            elif len(self.last4) < 4 and (key.isdigit() or (key == "X" and len(self.last4) == 3)):
                self.last4 += key
        elif key == "DEL":
            self.number = self.number[:-1]
        elif key == "SP" and self.number in ("SP", "FB"):   # a second tap: a complaint/question reference (FB…)
            self.number = "FB" if self.number == "SP" else "SP"
        elif key != "X" and len(self.number) < 20:
            self.number += key

    def choose(self, field: str) -> None:
        App.get_running_app().core.touch()
        self.field = field

    def clear(self) -> None:
        self.number, self.last4, self.field = "", "", "number"

    def query(self) -> None:
        app = App.get_running_app()
        if not self.number:
            return
        self.status = app.t("common.loading")
        last4 = self.last4 if len(self.last4) == 4 else None
        app.core.query_progress(self.number, last4, on_result=self.show, on_error=self._failed)

    def load_mine(self) -> None:
        app = App.get_running_app()
        self.status = app.t("common.loading")
        app.core.my_applications(on_result=self._show_mine, on_error=self._failed)

    def _show_mine(self, applications: list[Any]) -> None:
        app = App.get_running_app()
        box = self.ids.timeline
        box.clear_widgets()
        self.status = app.t("progress.my_title", count=len(applications)) if applications else app.t("progress.none")
        for i, a in enumerate(applications):
            btn = KButton(text=f"{a.service_name}\n{a.number}  ·  {app.t('application.status.' + a.status)}",
                          aid=f"application_{i}", height=max(app.fs(3.4), 120))
            btn.bind(on_release=lambda b, a=a: self.show(a))
            box.add_widget(btn)
        if any(a.status in SUPPLEMENTABLE for a in applications):   # 补正: those waiting for materials, on top
            app.core.supplement.waiting(on_result=self._show_waiting, on_error=lambda _exc: None)

    def _show_waiting(self, cases: list[Any]) -> None:
        """The applications that wait for materials, with what is missing, above the list (one tap to supply)."""
        app = App.get_running_app()
        if not self.mine or self.application is not None or not cases:
            return
        box = self.ids.timeline
        for i, case in enumerate(cases):
            btn = KButton(text=app.t("supplement.case_line", service=case.service_name, number=case.number,
                                     count=case.to_supply) + "  ·  " + app.t("supplement.open_button"),
                          aid=f"supplement_{i}", primary=True, height=max(app.fs(3.4), 120))
            btn.bind(on_release=lambda b, n=case.number: app.open_feature("apply", "supplement", number=n))
            box.add_widget(btn, index=len(box.children))

    def show(self, application: Any) -> None:
        app = App.get_running_app()
        t = app.t
        box = self.ids.timeline
        box.clear_widgets()

        def add(text: str, **kw: Any) -> None:
            box.add_widget(KLabel(text=text, **kw))

        if getattr(application, "status_only", False):   # by number alone: the state, nothing that names anyone
            self.application = None
            self.status = ""
            add(f"{t('progress.number')}：{application.number}", aid="app_number")
            add(f"{t('progress.status')}：{t('application.status.' + application.status)}", bold=True,
                aid="app_status")
            if application.updated_at:
                add(f"{t('progress.updated')}：{application.updated_at[:16].replace('T', ' ')}")
            add(t("progress.status_only"), aid="status_only_hint")
            return
        self.application = application
        self.status = ""
        add(application.service_name, bold=True, font_size=app.fs(1.4), aid="app_service")
        add(f"{t('progress.number')}：{application.number}", aid="app_number")
        add(f"{t('progress.applicant')}：{application.applicant_masked}")
        add(f"{t('progress.submitted')}：{application.submitted_at[:16].replace('T', ' ')}")
        add(f"{t('progress.status')}：{t('application.status.' + application.status)}", bold=True, aid="app_status")
        if self.mine and application.status == "supplement_required":   # 补正 at this kiosk
            btn = KButton(text=t("supplement.open_button"), aid="open_supplement", primary=True,
                          height=max(app.fs(2.6), 96))
            btn.bind(on_release=lambda b, n=application.number: app.open_feature("apply", "supplement", number=n))
            box.add_widget(btn)
        add(t("progress.timeline"), bold=True, font_size=app.fs(1.2))
        for step in application.timeline:
            line = f"●  {step.at[:16].replace('T', ' ')}  {t('application.status.' + step.status)}"
            if step.department:
                line += f"\n     {step.department}" + (f"：{step.note}" if step.note else "")
            add(line)

    def _failed(self, exc: BaseException) -> None:
        app = App.get_running_app()
        code = getattr(exc, "platform_code", "")
        if code == "too_many_attempts":
            self.status = app.t("progress.too_many_attempts")
        elif code == "not_found" and self.last4:
            self.status = app.t("progress.lookup_not_found")
        else:
            self.status = app.core.translator.error_text(exc)

    def done(self) -> None:
        app = App.get_running_app()
        if self.application is not None:
            app.core.complete_action(RatingTarget("application", self.application.number, "query_progress"))
        else:
            app.go("menu")

    def reset(self) -> None:
        self.number = ""
        self.last4 = ""
        self.field = "number"
        self.status = ""
        self.application = None
        self.mine = False
        self.ids.timeline.clear_widgets()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"progress": ProgressScreen}
