"""Online application (在线申报): pick a service (search or life event) → one-time notice → pre-filled form (on-screen
keyboard where the citizen corrects or adds) → attach e-certificates with one tap → pre-review → submit → the number
(or the outbox reference, honestly said) → printed receipt → rating. The flow is :class:`kiosk.usecases.apply.ApplyFlow`;
these screens only show its state and forward taps."""
from __future__ import annotations

import weakref
from typing import Any, Callable, ClassVar

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.forms import InputKind, InvalidValue, by_field
from kiosk.usecases.apply import Step
from screens.keyboard import OnScreenKeyboard
from screens.page_preview import DocumentPreview, start_preview, stop_preview  # noqa: F401 (apply.kv uses it)
from screens.widgets import KButton, KLabel, KModal, KPanel, KScreen

ERROR_COLOR = (0.75, 0.1, 0.1, 1)
OK_COLOR = (0.1, 0.45, 0.2, 1)


def field_aid(pointer: str) -> str:
    return pointer.strip("/").replace("/", "__")


def _app() -> Any:
    return App.get_running_app()


def _name(app: Any, summary: Any) -> str:
    return summary.name if app.lang == "zh_CN" else summary.name_en


class ApplyPickScreen(KScreen):
    """Search by name / pinyin initials, or choose a life event; only services that can be filed online are listed."""

    query = StringProperty("")
    status = StringProperty("")

    def on_go(self, **_: Any) -> None:
        app = _app()
        app.core.apply.start()
        self.ids.results.clear_widgets()
        self.status = ""
        if not self.ids.events.children:
            app.core.apply.categories(on_result=self._show_events, on_error=self._failed)

    def _show_events(self, categories: list[dict[str, Any]]) -> None:
        app = _app()
        box = self.ids.events
        box.clear_widgets()
        for cat in categories:
            btn = KButton(text=cat["name_zh"] if app.lang == "zh_CN" else cat["name_en"], aid=f"event_{cat['code']}",
                          font_size=app.fs(1.0))
            btn.bind(on_release=lambda b, code=cat["code"]: self.search("", code))
            box.add_widget(btn)

    def type_query(self) -> None:
        app = _app()
        OnScreenKeyboard(app.t("apply.pick.search_hint"), self.query, "text", on_done=self._typed,
                         max_length=20).open()

    def _typed(self, text: str) -> None:
        self.query = text
        self.search(text)

    def search(self, query: str, category: str = "") -> None:
        app = _app()
        self.status = app.t("common.loading")
        self.ids.results.clear_widgets()
        app.core.apply.search(query, category, on_result=self._show, on_error=self._failed)

    def _show(self, services: list[Any]) -> None:
        app = _app()
        box = self.ids.results
        box.clear_widgets()
        self.status = app.t("apply.pick.results", count=len(services)) if services else app.t("apply.pick.none")
        for i, s in enumerate(services):
            btn = KButton(text=f"{_name(app, s)}\n[size={int(app.fs(0.8))}]{s.department}[/size]", markup=True,
                          aid=f"service_{i}", height=max(app.fs(3.4), 120))
            btn.bind(on_release=lambda b, code=s.code: self.choose(code))
            box.add_widget(btn)

    def choose(self, code: str) -> None:
        app = _app()
        self.status = app.t("common.loading")
        app.core.apply.choose(code, on_result=lambda _flow: app.go("apply_notice"), on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.status = _app().core.translator.error_text(exc)

    def reset(self) -> None:
        OnScreenKeyboard.close_all()  # a keyboard left open holds what the citizen typed
        self.query = self.status = ""
        self.ids.results.clear_widgets()


class ApplyNoticeScreen(KScreen):
    """The one-time notice (一次性告知): conditions and every material, and how each will be provided here."""

    def on_go(self, **_: Any) -> None:
        app = _app()
        t = app.t
        flow = app.core.apply
        body = self.ids.body
        body.clear_widgets()
        if flow.detail is None:
            return
        add = lambda text, **kw: body.add_widget(KLabel(text=text, **kw))  # noqa: E731
        add(_name(app, flow.detail.summary), font_size=app.fs(1.5), bold=True, aid="apply_service_name")
        add(f"{t('guide.department')}：{flow.detail.summary.department}")
        if flow.detail.conditions:
            add(t("guide.conditions"), bold=True)
            for i, cond in enumerate(flow.detail.conditions, 1):
                add(f"{i}. {cond}")
        add(t("apply.notice.materials"), bold=True, aid="notice_title")
        for i, slot in enumerate(flow.slots, 1):
            m = slot.material
            if slot.automatic:
                how = t(f"apply.notice.auto_{m.satisfied_by}")
            elif slot.candidates:
                how = t("apply.notice.e_cert_ready", name=slot.candidates[0].type_name)
            elif m.deferrable:
                how = t("apply.notice.deferrable")
            elif not m.required:
                how = t("guide.optional")
            else:
                how = t("apply.notice.bring")
            add(f"{i}. {m.name}\n     {how}", aid=f"notice_material_{i}")

    def reset(self) -> None:
        self.ids.body.clear_widgets()


class ChoiceDialog(KModal):
    """Options of an enum field, one big button each."""

    _open: ClassVar["weakref.WeakSet[ChoiceDialog]"] = weakref.WeakSet()

    @classmethod
    def close_all(cls) -> None:
        for dialog in list(cls._open):
            dialog.dismiss(animation=False)

    def open(self, *args: Any, **kwargs: Any) -> None:
        ChoiceDialog._open.add(self)
        super().open(*args, **kwargs)

    def on_dismiss(self) -> None:
        ChoiceDialog._open.discard(self)

    def __init__(self, title: str, options: list[tuple[Any, str]], on_choose: Any, **kw: Any) -> None:
        super().__init__(size_hint=(0.6, None), **kw)
        app = _app()
        panel = KPanel(padding=app.fs(1), spacing=app.fs(0.4), size_hint_y=None)
        panel.add_widget(KLabel(text=title, bold=True, font_size=app.fs(1.3)))
        for i, (value, label) in enumerate(options):
            btn = KButton(text=label, aid=f"choice_{i}")
            btn.bind(on_release=lambda b, v=value: (self.dismiss(animation=False), on_choose(v)))
            panel.add_widget(btn)
        cancel = KButton(text=app.t("common.cancel"), aid="choice_cancel")
        cancel.bind(on_release=lambda b: self.dismiss(animation=False))
        panel.add_widget(cancel)
        panel.height = sum(max(c.height, 60) for c in panel.children) + app.fs(0.4) * len(panel.children) + app.fs(2)
        self.height = panel.height
        self.add_widget(panel)


def open_field_editor(spec: Any, form: Any, lang: str, set_value: Callable[[Any, bool], None]) -> None:
    """The editor a form field takes (the apply, proxy and supplement screens alike): the choice dialog, a tap that
    flips a yes/no, or the on-screen keyboard in the field's layout. ``set_value(value, typed)``."""
    if spec.input is InputKind.CHOICE:
        ChoiceDialog(spec.label_in(lang), [(c.value, c.label if lang == "zh_CN" else c.label_en)
                                           for c in spec.choices], lambda v: set_value(v, False)).open()
        return
    if spec.input is InputKind.BOOLEAN:
        set_value(not bool(form.get(spec.pointer)), False)
        return
    layout = {InputKind.DIGITS: "digits", InputKind.ID_NUMBER: "id_number", InputKind.DATE: "date"}.get(
        spec.input, "text")
    current = form.get(spec.pointer)
    OnScreenKeyboard(spec.label_in(lang), "" if current is None else str(current), layout,
                     on_done=lambda text: set_value(text, True), max_length=spec.max_length).open()


class ApplyFormScreen(KScreen):
    """The form generated from the service's schema, pre-filled; each field opens the keyboard or its choices."""

    status = StringProperty("")
    busy = BooleanProperty(False)

    def on_go(self, **_: Any) -> None:
        app = _app()
        flow = app.core.apply
        if flow.form is not None and flow.step is Step.NOTICE:
            flow.accept_notice()
        elif flow.form is not None and flow.step is not Step.FORM:  # back from materials or review
            flow.edit_form()
        self.status = ""
        self.render()

    def render(self) -> None:
        app = _app()
        flow = app.core.apply
        box = self.ids.fields
        box.clear_widgets()
        if flow.form is None:
            return
        errors = by_field(flow.field_errors)
        lang = app.lang
        translator = app.core.translator
        for spec in flow.form.fields:
            aid = field_aid(spec.pointer)
            row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.5))
            label = spec.label_in(lang)
            if spec.group:
                label = f"{spec.group if lang == 'zh_CN' else spec.group_en}·{label}"
            row.add_widget(KLabel(text=("* " if spec.required else "") + label, size_hint_x=0.38,
                                  size_hint_y=1, height=row.height))
            shown = flow.form.display(spec.pointer, lang)
            source = flow.form.sources.get(spec.pointer, "")
            hint = app.t("apply.form.prefilled") if source and shown else ""
            btn = KButton(text=(shown or app.t("apply.form.tap_to_fill")) + (f"  [{hint}]" if hint else ""),
                          aid=f"field_{aid}", disabled=spec.read_only, height=row.height)
            btn.bind(on_release=lambda b, s=spec: self.edit(s))
            row.add_widget(btn)
            box.add_widget(row)
            for e in errors.get(spec.pointer, []):
                box.add_widget(KLabel(text="⚠ " + e.text(translator), color=ERROR_COLOR, aid=f"error_{aid}"))

    def edit(self, spec: Any) -> None:
        app = _app()
        open_field_editor(spec, app.core.apply.form, app.lang, lambda v, typed: self._set(spec, v, typed=typed))

    def _set(self, spec: Any, value: Any, typed: bool = True) -> None:
        app = _app()
        try:
            problems = app.core.apply.set_field(spec.pointer, value, typed=typed)
        except InvalidValue as exc:
            self.status = app.core.translator.error_text(exc)
            return
        app.core.apply.field_errors += problems
        self.status = ""
        self.render()

    def check(self) -> None:
        """Ask the platform's pre-review now: every missing or wrong item at once."""
        app = _app()
        self.busy = True
        self.status = app.t("common.loading")
        app.core.apply.pre_review(on_result=self._reviewed, on_error=self._failed)

    def _reviewed(self, review: Any) -> None:
        app = _app()
        self.busy = False
        others = [p for p in review.problems if not p.field]
        if review.acceptable:
            self.status = app.t("apply.form.complete")
        else:
            self.status = app.t("apply.form.problems", count=len(review.problems))
            if others:
                self.status += "\n" + "\n".join(app.core.translator.pick({"zh_CN": p.message, "en": p.message_en})
                                                for p in others)
        self.render()

    def next(self) -> None:
        app = _app()
        errors = app.core.apply.finish_form()
        if errors:
            self.status = app.t("apply.error.form_incomplete")
            self.render()
            return
        app.go("apply_attach")

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = _app().core.translator.error_text(exc)

    def reset(self) -> None:
        OnScreenKeyboard.close_all()
        ChoiceDialog.close_all()
        self.status = ""
        self.busy = False
        self.ids.fields.clear_widgets()


class ApplyAttachScreen(KScreen):
    """Materials: attach the citizen's e-certificates with one tap, supply later where allowed (容缺), photograph
    pages when the kiosk has a camera."""

    status = StringProperty("")

    def on_go(self, **_: Any) -> None:
        self.status = ""
        self.render()

    def render(self) -> None:
        app = _app()
        t = app.t
        flow = app.core.apply
        box = self.ids.slots
        box.clear_widgets()
        slots = flow.open_slots
        if not slots:
            box.add_widget(KLabel(text=t("apply.attach.nothing")))
        for slot in slots:
            state = {"e_certificate": t("apply.attach.attached"), "upload": t("apply.attach.photographed",
                                                                                 count=len(slot.upload_ids)),
                     "deferred": t("apply.attach.deferred"), "missing": t("apply.attach.missing") if
                     slot.material.required else t("guide.optional")}[slot.how()]
            box.add_widget(KLabel(text=f"{slot.material.name}：{state}", bold=True, aid=f"slot_{slot.index}",
                                  color=OK_COLOR if slot.provided else (0.1, 0.12, 0.16, 1)))
            row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.4))
            if slot.candidates:
                attached = bool(slot.e_certificate_id)
                btn = KButton(text=t("apply.attach.remove") if attached else
                              t("apply.attach.use", name=slot.candidates[0].type_name), aid=f"attach_{slot.index}",
                              primary=not attached)
                btn.bind(on_release=lambda b, s=slot: self.toggle(s))
                row.add_widget(btn)
            if flow.camera_available:
                btn = KButton(text=t("apply.attach.capture"), aid=f"capture_{slot.index}")
                btn.bind(on_release=lambda b, s=slot: self.capture(s))
                row.add_widget(btn)
            if slot.material.deferrable:
                btn = KButton(text=t("apply.attach.undefer") if slot.defer else t("apply.attach.defer"),
                              aid=f"defer_{slot.index}")
                btn.bind(on_release=lambda b, s=slot: self.toggle_defer(s))
                row.add_widget(btn)
            if row.children:
                box.add_widget(row)

    def attach_all(self) -> None:
        app = _app()
        count = app.core.apply.attach_suggested()
        self.status = app.t("apply.attach.attached_count", count=count)
        self.render()

    def toggle(self, slot: Any) -> None:
        flow = _app().core.apply
        flow.detach(slot.index) if slot.e_certificate_id else flow.attach(slot.index)
        self.render()

    def toggle_defer(self, slot: Any) -> None:
        _app().core.apply.defer(slot.index, not slot.defer)
        self.render()

    def capture(self, slot: Any) -> None:
        app = _app()
        app.core.apply.to_capture()
        app.go("apply_capture", index=slot.index)

    def next(self) -> None:
        app = _app()
        step = app.core.apply.next_after_attach()
        app.go("apply_capture" if step is Step.CAPTURE else "apply_review")

    def reset(self) -> None:
        self.status = ""
        self.ids.slots.clear_widgets()


class ApplyCaptureScreen(KScreen):
    """Document capture: the live picture with a frame guide; one button per material still wanting pages."""

    status = StringProperty("")
    busy = BooleanProperty(False)

    def on_go(self, index: int | None = None, **_: Any) -> None:
        self.status = ""
        self.busy = False
        self.focus_index = index
        self.render()

    def on_enter(self, *args: Any) -> None:
        start_preview(self.ids.preview, _app().core.devices.get)   # the document camera when there is one

    def on_leave(self, *args: Any) -> None:
        stop_preview(self.ids.preview, _app().core.devices.get)

    def render(self) -> None:
        app = _app()
        t = app.t
        box = self.ids.pages
        box.clear_widgets()
        flow = app.core.apply
        slots = [s for s in flow.open_slots if self.focus_index in (None, s.index)]
        for slot in slots:
            if slot.upload_ids:
                state = t("apply.attach.photographed", count=len(slot.upload_ids))
            elif slot.provided:
                state = t("apply.attach.deferred") if slot.defer else t("apply.attach.attached")
            else:
                state = t("apply.attach.missing") if slot.material.required else t("guide.optional")
            box.add_widget(KLabel(text=f"{slot.material.name}：{state}", aid=f"capture_state_{slot.index}",
                                  color=OK_COLOR if slot.provided else (0.1, 0.12, 0.16, 1)))
            btn = KButton(text=t("apply.capture.shoot"), aid=f"shoot_{slot.index}",
                          primary=slot.material.required and not slot.provided, disabled=self.busy)
            btn.bind(on_release=lambda b, s=slot: self.shoot(s))
            box.add_widget(btn)

    def shoot(self, slot: Any) -> None:
        app = _app()
        self.busy = True
        self.status = app.t("apply.attach.capturing")
        self.render()
        app.core.apply.capture_page(slot.index, on_result=self._shot, on_error=self._failed)

    def _shot(self, _slot: Any) -> None:
        self.busy = False
        self.status = _app().t("apply.capture.done")
        self.render()

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = _app().core.translator.error_text(exc)
        self.render()

    def next(self) -> None:
        app = _app()
        app.core.apply.to_review()
        app.go("apply_review")

    def reset(self) -> None:
        self.status = ""
        self.busy = False
        self.focus_index = None
        self.ids.preview.stop()
        self.ids.pages.clear_widgets()


class ApplyReviewScreen(KScreen):
    """The platform's pre-review: accepted, or every problem at once; then submit."""

    status = StringProperty("")
    acceptable = BooleanProperty(False)
    busy = BooleanProperty(False)

    def on_go(self, **_: Any) -> None:
        app = _app()
        self.acceptable = False
        self.busy = True
        self.status = app.t("apply.review.checking")
        self.ids.problems.clear_widgets()
        app.core.apply.pre_review(on_result=self._reviewed, on_error=self._failed)

    def _reviewed(self, review: Any) -> None:
        app = _app()
        self.busy = False
        self.acceptable = review.acceptable
        box = self.ids.problems
        box.clear_widgets()
        if review.acceptable:
            self.status = app.t("apply.review.accepted")
            for slot in app.core.apply.slots:
                box.add_widget(KLabel(text=f"✓ {slot.material.name}：{app.t('apply.how.' + slot.how())}"))
            return
        self.status = app.t("apply.form.problems", count=len(review.problems))
        for i, p in enumerate(review.problems):
            box.add_widget(KLabel(text=f"{i + 1}. " + app.core.translator.pick({"zh_CN": p.message,
                                                                                 "en": p.message_en}),
                                  color=ERROR_COLOR, aid=f"problem_{i}"))

    def submit(self) -> None:
        app = _app()
        self.busy = True
        self.status = app.t("apply.review.submitting")
        app.core.apply.submit(on_result=lambda outcome: app.go("apply_result"), on_error=self._submit_failed)

    def _submit_failed(self, exc: BaseException) -> None:
        review = getattr(_app().core.apply, "review", None)
        if getattr(exc, "problems", None) and review is not None:
            self._reviewed(review)
        else:
            self._failed(exc)

    def fix(self) -> None:
        app = _app()
        app.core.apply.edit_form()
        app.go("apply_form")

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = _app().core.translator.error_text(exc)

    def reset(self) -> None:
        self.status = ""
        self.acceptable = self.busy = False
        self.ids.problems.clear_widgets()


class ApplyResultScreen(KScreen):
    """Submitted with its number — or kept in the outbox with a reference, and the citizen told so honestly."""

    headline = StringProperty("")
    number_text = StringProperty("")
    detail = StringProperty("")
    status = StringProperty("")
    submitted = BooleanProperty(False)
    busy = BooleanProperty(False)
    #: the pending payment order of this application's fee ("" when nothing is to be paid now)
    fee_order = StringProperty("")

    def on_go(self, **_: Any) -> None:
        app = _app()
        t = app.t
        outcome = app.core.apply.outcome
        self.status = ""
        self.busy = False
        orders = ((outcome.result or {}).get("payment_orders") or []) if outcome is not None else []
        self.fee_order = orders[0]["order_no"] if orders else ""
        if outcome is None:
            return
        self.submitted = outcome.status == "submitted"
        if self.submitted:
            result = outcome.result or {}
            self.headline = t("apply.result.submitted")
            self.number_text = t("apply.result.number", number=outcome.number)
            lines = [t("apply.result.department", department=result.get("department", ""))]
            if result.get("promised_date"):
                lines.append(t("apply.result.promised", date=result["promised_date"]))
            if result.get("outstanding"):
                lines.append(t("apply.result.outstanding", count=len(result["outstanding"]),
                               due=result.get("supplement_due") or ""))
            self.detail = "\n".join(lines)
        else:
            self.headline = t("apply.result.queued")
            self.number_text = t("apply.result.reference", reference=outcome.reference)
            self.detail = t("apply.result.queued_detail")

    def pay_fee(self) -> None:
        """The application has a fee: pay it now on the payment screen (its order is already at the platform)."""
        if self.fee_order:
            _app().go("payment", order_no=self.fee_order)

    def print_receipt(self) -> None:
        app = _app()
        self.busy = True
        self.status = app.t("print.printing")
        app.core.apply.print_receipt(on_result=self._printed, on_error=self._failed)

    def _printed(self, _result: Any) -> None:
        self.busy = False
        self.status = _app().t("print.done")  # the core asks for the rating next; the app navigates

    def _failed(self, exc: BaseException) -> None:
        app = _app()
        self.busy = False
        self.status = app.t("print.failed") + "：" + app.core.translator.error_text(exc)

    def finish(self) -> None:
        _app().core.apply.finish()

    def reset(self) -> None:
        self.headline = self.number_text = self.detail = self.status = self.fee_order = ""
        self.submitted = self.busy = False


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"apply": ApplyPickScreen, "apply_notice": ApplyNoticeScreen, "apply_form": ApplyFormScreen,
           "apply_attach": ApplyAttachScreen, "apply_capture": ApplyCaptureScreen, "apply_review": ApplyReviewScreen,
           "apply_result": ApplyResultScreen}
