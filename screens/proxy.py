"""代办 (applying for someone else): place the principal's card → services that allow an agent → the form pre-filled
for the principal, the relationship → submit → number and both masked names (the flow: kiosk/usecases/proxy.py)."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.forms import InvalidValue
from kiosk.usecases.booking import rejection_text
from kiosk.usecases.proxy import RELATIONSHIPS, FormIncomplete, Step
from screens.apply import ChoiceDialog, field_aid, open_field_editor
from screens.widgets import KButton, KLabel, KScreen

ERROR_COLOR = (0.72, 0.1, 0.1, 1)


def _app() -> Any:
    return App.get_running_app()


class ProxyScreen(KScreen):
    step = StringProperty("")
    status = StringProperty("")
    busy = BooleanProperty(False)

    def on_kv_post(self, base_widget: Any) -> None:
        _app().core.subscribe(self._on_core_event)

    def on_go(self, **_: Any) -> None:
        app = _app()
        self.step, self.status, self.busy = "", app.t("common.loading"), True
        self.ids.body.clear_widgets()
        app.core.proxy.begin(on_result=lambda _s: self._render(), on_error=self._failed)

    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        if self.manager is None or self.manager.current != self.name:
            return
        if name == "proxy_principal":
            self._load_services()
        elif name == "proxy_principal_error":
            self.status = _app().core.translator.error_text(payload["error"])

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        if isinstance(exc, FormIncomplete):
            self.status = "\n".join(e.text(_app().core.translator) for e in exc.errors)
            return
        self.status = rejection_text(_app().core, exc, "proxy")

    # --- steps --------------------------------------------------------------------------------------------------
    def _load_services(self) -> None:
        self.busy, self.status = True, _app().t("common.loading")
        _app().core.proxy.services(on_result=self._show_services, on_error=self._failed)

    def _show_services(self, services: list[Any]) -> None:
        self.busy, self.status = False, ""
        self._services = services
        self._render()

    def choose(self, code: str) -> None:
        self.busy, self.status = True, _app().t("common.loading")
        _app().core.proxy.choose(code, on_result=lambda _s: self._chosen(), on_error=self._failed)

    def _chosen(self) -> None:
        self.busy, self.status = False, ""
        self._render()

    def submit(self) -> None:
        self.busy, self.status = True, _app().t("common.loading")
        _app().core.proxy.submit(on_result=lambda _r: self._chosen(), on_error=self._failed)

    def done(self) -> None:
        app = _app()
        app.core.proxy.done()
        app.go("rating") if app.core.session.data.rating_target else app.go("menu")

    # --- drawing ------------------------------------------------------------------------------------------------
    def _render(self) -> None:
        app = _app()
        state = app.core.proxy.state
        self.busy = False
        body = self.ids.body
        body.clear_widgets()
        if state is None:
            self.step = ""
            return
        self.step = state.step.value
        citizen = app.core.session.citizen
        add = lambda text, **kw: body.add_widget(KLabel(text=text, **kw))  # noqa: E731
        if state.step is not Step.FORM:   # (the form's title names the principal)
            who = app.t("proxy.agent", name=citizen.name_masked if citizen else "")
            if state.principal is not None:
                who += "    " + app.t("proxy.principal", name=state.principal.name_masked)
            add(who, aid="proxy_parties", bold=True)
        if state.step is Step.WAIT_PRINCIPAL:
            add(app.t("proxy.intro"), font_size=app.fs(1.4), aid="proxy_intro")
            add(app.t("proxy.waiting"), aid="proxy_waiting")
        elif state.step is Step.SERVICES:
            services = getattr(self, "_services", [])
            add(app.t("proxy.services_title") if services else app.t("proxy.no_services"), bold=True,
                font_size=app.fs(1.2))
            for s in services:
                btn = KButton(text=s.name if app.lang == "zh_CN" else s.name_en, aid=f"proxy_service_{s.code}")
                btn.bind(on_release=lambda b, code=s.code: self.choose(code))
                body.add_widget(btn)
        elif state.step is Step.FORM and state.form is not None and state.detail is not None:
            name = state.principal.name_masked if state.principal else ""
            service = state.detail.summary.name if app.lang == "zh_CN" else state.detail.summary.name_en
            add(app.t("proxy.form_title", name=name, service=service), bold=True, font_size=app.fs(1.2),
                aid="proxy_form_title")
            rows = {spec.pointer: self._field_row(state.form, spec) for spec in state.form.fields}
            self._relationship_row(state.relationship)
            if any(m.deferrable and not m.satisfied_by for m in state.detail.materials):
                add(app.t("proxy.deferred_note"), aid="proxy_deferred_note")
            # the next field still to fill in comes into view (a long form on a short screen)
            todo = next((rows[s.pointer] for s in state.form.missing() if not s.read_only), None)
            if todo is not None:
                Clock.schedule_once(lambda _dt: self.ids.scroll.scroll_to(todo, animate=False), 0)
        elif state.step is Step.RESULT and state.result is not None:
            r = state.result
            if r.submitted:
                add(app.t("proxy.result_title"), bold=True, font_size=app.fs(1.5), aid="proxy_result_title")
                add(app.t("proxy.result_number", number=r.number), font_size=app.fs(1.4), aid="proxy_number")
            else:   # in the outbox: said honestly, with the reference the agent keeps
                add(app.t("proxy.result_queued"), bold=True, font_size=app.fs(1.3), aid="proxy_result_title")
                add(app.t("proxy.result_reference", reference=r.reference), font_size=app.fs(1.4),
                    aid="proxy_number")
                add(app.t("proxy.queued_detail"), aid="proxy_queued_detail")
            add(app.t("proxy.result_both", principal=r.principal_masked, agent=r.agent_masked), aid="proxy_both")
            receipt = ("proxy.receipt_" if r.submitted else "proxy.receipt_queued_") + (
                "failed" if r.print_error else "printed")
            add(app.t(receipt), aid="proxy_receipt")

    def _relationship_row(self, current: str) -> None:
        app = _app()
        row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.5))
        row.add_widget(KLabel(text=app.t("proxy.relationship_label"), size_hint_x=0.38, size_hint_y=1))
        btn = KButton(text=app.t(f"proxy.relationship.{current}"), aid="proxy_relationship", height=row.height)
        btn.bind(on_release=lambda b: ChoiceDialog(
            app.t("proxy.relationship_label"), [(r, app.t(f"proxy.relationship.{r}")) for r in RELATIONSHIPS],
            self._set_relationship).open())
        row.add_widget(btn)
        self.ids.body.add_widget(row)

    def _set_relationship(self, value: str) -> None:
        _app().core.proxy.set_relationship(value)
        self._render()

    def _field_row(self, form: Any, spec: Any) -> BoxLayout:
        app = _app()
        lang = app.lang
        row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.5))
        label = spec.label_in(lang)
        if spec.group:
            label = f"{spec.group if lang == 'zh_CN' else spec.group_en}·{label}"
        row.add_widget(KLabel(text=("* " if spec.required else "") + label, size_hint_x=0.38, size_hint_y=1))
        shown = form.display(spec.pointer, lang)
        text = shown + (app.t("proxy.read_only") if spec.read_only else "") if shown else app.t("proxy.tap_to_edit")
        btn = KButton(text=text, aid=f"proxy_field_{field_aid(spec.pointer)}", disabled=spec.read_only,
                      height=row.height)
        btn.bind(on_release=lambda b, s=spec: self.edit(s))
        row.add_widget(btn)
        self.ids.body.add_widget(row)
        return row

    def edit(self, spec: Any) -> None:
        app = _app()
        open_field_editor(spec, app.core.proxy.state.form, app.lang, lambda v, typed: self._set(spec, v, typed))

    def _set(self, spec: Any, value: Any, typed: bool) -> None:
        try:
            _app().core.proxy.set_field(spec.pointer, value, typed=typed)
        except InvalidValue as exc:
            self.status = _app().core.translator.error_text(exc)
            return
        self.status = ""
        self._render()

    def back(self) -> None:
        app = _app()
        app.core.proxy.cancel()
        app.go("menu")

    def reset(self) -> None:
        self.step = self.status = ""
        self.busy = False
        self._services = []
        self.ids.body.clear_widgets()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"proxy": ProxyScreen}
