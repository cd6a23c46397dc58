"""补正材料: the citizen's applications waiting for materials → the one-time list of what is missing → attach an
e-certificate, photograph pages under the live document-camera preview (or send them from the phone), fill in the
form fields the department asked for (the apply flow's keyboard and choice dialog) → submit → the new state and the
timeline → print the 补正回执. The flow is :class:`kiosk.usecases.supplement.SupplementFlow` (``core.supplement``);
this screen shows its steps and forwards taps. Laid out by the ``<FlowScreen>`` rule (appointment.kv)."""
from __future__ import annotations

from typing import Any

from kiosk.forms import InvalidValue, by_field
from screens.apply import ERROR_COLOR, field_aid, open_field_editor
from screens.flow_screen import UseCaseScreen
from screens.page_preview import DocumentPreview, start_preview, stop_preview


class SupplementScreen(UseCaseScreen):
    """Steps: home (waiting applications) · case (the missing materials and fields) · photo (the live preview, one
    page per tap) · phone · result (state, timeline, receipt)."""

    prefix = "supplement"
    flow_name = "supplement"

    def forget(self) -> None:
        self.watch: Any = None
        self.phone_index = -1
        self.cases: list[Any] = []
        self.number = ""
        self.printed = False
        self.photo_index = -1
        self.preview: DocumentPreview | None = None

    @property
    def finished(self) -> bool:
        return self.flow.state.outcome is not None

    def on_go(self, number: str = "", **_: Any) -> None:
        """From "my applications": straight to one application (``number``), else the list of those waiting."""
        self.forget()
        self.done_text = ""
        self.number = number
        self.start("open" if number else "home")

    # --- home: applications waiting for materials ---------------------------------------------------------------
    def show_home(self) -> None:
        self.heading = self.t("supplement.title")
        self.working()
        self.flow.waiting(on_result=self._listed, on_error=self.fail)

    def _listed(self, cases: list[Any]) -> None:
        self.cases = cases
        self.ok()
        if self.step != "home":
            return
        self.heading = self.t("supplement.list_title", count=len(cases)) if cases else self.t("supplement.none")
        for i, case in enumerate(cases):
            self.add_button(self.t("supplement.case_line", service=case.service_name, number=case.number,
                                   count=case.to_supply), f"supplement_case_{i}",
                            lambda c=case: self._open(c.number), lines=2)

    def _open(self, number: str) -> None:
        self.number = number
        self.go_step("open")

    # --- open: load one application, then show its missing materials --------------------------------------------
    def show_open(self) -> None:
        self.heading = self.t("supplement.title")
        self.working()
        self.flow.open(self.number, on_result=lambda _case: self._opened(), on_error=self.fail)

    def _opened(self) -> None:
        self.ok()
        if self.step == "open":
            self.step = "case"          # (replaces the loading step: Back returns to the list)
            self.clear()
            self.show_case()

    def show_case(self) -> None:
        case = self.flow.state.case
        if case is None:
            self.go_step("home", remember=False)
            return
        self.heading = f"{case.service_name}  {case.number}"
        if case.missing:        # (fields only: no "materials still needed" heading over nothing)
            self.add_label(self.t("supplement.missing_title"), aid="supplement_missing_title", bold=True)
        if case.reason:
            self.add_label(self.t("supplement.reason", reason=case.reason), aid="supplement_reason")
        if case.due:
            self.add_label(self.t("supplement.due", due=case.due), aid="supplement_due")
        can_capture = self.flow.can_capture
        for slot in self.flow.slots:
            self.add_label(self.t("supplement.material_line", name=slot.material.name, how=self._how(slot)),
                           aid=f"supplement_material_{slot.index}", bold=True)
            if slot.candidates and not slot.e_certificate_id:
                self.add_button(self.t("supplement.attach", type=slot.candidates[0].type_name),
                                f"supplement_attach_{slot.index}", lambda s=slot: self._attach(s.index))
            if can_capture:
                key = "supplement.capture_more" if slot.upload_ids else "supplement.capture"
                self.add_button(self.t(key), f"supplement_capture_{slot.index}",
                                lambda s=slot: self._capture(s.index))
            self.add_button(self.t("supplement.phone"), f"supplement_phone_{slot.index}",
                            lambda s=slot: self._phone(s.index))
            if slot.provided:
                self.add_button(self.t("supplement.detach"), f"supplement_detach_{slot.index}",
                                lambda s=slot: self._detach(s.index))
        if self.flow.slots and not can_capture and not any(s.candidates for s in self.flow.slots):
            self.add_label(self.t("supplement.no_camera"), aid="supplement_no_camera")
        self._show_fields(case)
        for p in self.flow.state.problems:
            if not p.field:      # (a field's problem is shown under that field)
                self.add_label(p.message if self.app.lang == "zh_CN" else (p.message_en or p.message),
                               color=ERROR_COLOR)
        form = self.flow.form
        if any(s.provided for s in self.flow.slots) or (form is not None and form.to_json()):
            self.set_action(self.t("supplement.submit"), "supplement_submit", self._submit)

    # --- the form fields the department asked for: the apply flow's keyboard and choice dialog -----------------
    def _show_fields(self, case: Any) -> None:
        form = self.flow.form
        if form is None:
            return
        lang = self.app.lang
        notes = {f.name: f.note or "" for f in case.fields if f.note != case.reason}   # (said once, above)
        errors = by_field(self.flow.state.field_errors)
        translator = self.app.core.translator
        self.add_label(self.t("supplement.fields_title"), aid="supplement_fields_title", bold=True)
        for spec in form.fields:
            aid = field_aid(spec.pointer)
            label = spec.label_in(lang)
            if spec.group:
                label = f"{spec.group if lang == 'zh_CN' else spec.group_en}·{label}"
            self.add_label(self.t("supplement.field_line", title=label, note=notes.get(spec.path[0], "")).strip(),
                           aid=f"supplement_field_note_{aid}", bold=True)
            shown = form.display(spec.pointer, lang)
            hint = self.t("supplement.field_prefilled") if shown and form.sources.get(spec.pointer) else ""
            button = self.add_button((shown or self.t("supplement.field_tap")) + (f"  [{hint}]" if hint else ""),
                                     f"supplement_field_{aid}", lambda s=spec: self._edit(s))
            button.disabled = spec.read_only
            for e in errors.get(spec.pointer, []):
                self.add_label("⚠ " + e.text(translator), aid=f"supplement_field_error_{aid}", color=ERROR_COLOR)

    def _edit(self, spec: Any) -> None:
        open_field_editor(spec, self.flow.form, self.app.lang, lambda v, typed: self._set(spec, v, typed))

    def _set(self, spec: Any, value: Any, typed: bool) -> None:
        if self.step != "case":
            return
        try:
            self.flow.set_field(spec.pointer, value, typed=typed)
        except InvalidValue as exc:
            self._refresh_case()
            self.failed, self.status = True, self.app.core.translator.error_text(exc)
            return
        self._refresh_case()

    def _how(self, slot: Any) -> str:
        if slot.e_certificate_id:
            return self.t("supplement.how.e_certificate")
        if slot.upload_ids:
            return self.t("supplement.how.upload", pages=len(slot.upload_ids))
        return self.t("supplement.how.missing")

    def _refresh_case(self, status: str = "") -> None:
        self.clear()
        self.show_case()
        self.ok(status)

    def _attach(self, index: int) -> None:
        self.flow.attach(index)
        self._refresh_case()

    def _detach(self, index: int) -> None:
        self.flow.detach(index)
        self._refresh_case()

    # --- photo: the document camera's live picture with the page outlined; one page per tap ---------------------
    def _capture(self, index: int) -> None:
        self.photo_index = index
        self.go_step("photo")

    def show_photo(self) -> None:
        slot = self.flow.slot(self.photo_index)
        self.heading = self.t("supplement.photo_title", name=slot.material.name)
        self.add_label(self.t("supplement.photo_hint"), aid="supplement_photo_hint")
        preview = DocumentPreview(size_hint_y=None, height=max(self.app.fs(14), self.height * 0.5))
        preview.aid = "supplement_preview"
        self.ids.choices.add_widget(preview)
        self.preview = preview
        if start_preview(preview, self.app.core.devices.get) is None:
            self.add_label(self.t("supplement.photo_no_preview"), aid="supplement_no_preview")
        if slot.upload_ids:
            self.add_label(self.t("supplement.how.upload", pages=len(slot.upload_ids)), aid="supplement_photo_pages")
        self.set_action(self.t("supplement.shoot"), f"supplement_shoot_{slot.index}", self._shoot)

    def _shoot(self) -> None:
        index = self.photo_index
        self.working()
        self.status = self.t("supplement.capturing")
        self.flow.capture(index, on_result=self._shot, on_error=self.fail)

    def _shot(self, slot: Any) -> None:
        """A page is in: back to the list of what is missing (再拍一页 there photographs the next)."""
        if self.step == "photo":
            if self._history and self._history[-1] == "case":
                self._history.pop()
            self.go_step("case", remember=False)
        self.ok(self.t("supplement.captured", pages=len(slot.upload_ids)))

    def _stop_preview(self) -> None:
        """The camera idles again and the preview goes (leaving the photo step, the screen or the session)."""
        if self.preview is not None:
            stop_preview(self.preview, self.app.core.devices.get)
            self.preview = None

    def clear(self) -> None:
        self._stop_preview()
        super().clear()

    def on_leave(self, *args: Any) -> None:
        self._stop_preview()

    def reset(self) -> None:
        self._stop_preview()
        super().reset()

    # --- phone: a one-time QR; photos sent from the phone provide the material ----------------------------------
    def _phone(self, index: int) -> None:
        self.working()
        self.phone_index = index
        self.flow.phone(index, on_result=self._phone_ready, on_error=self.fail,
                        on_files=lambda slot: self._phone_files(slot), on_end=lambda _status: self._phone_files(None))

    def _phone_ready(self, watch: Any) -> None:
        self.watch = watch
        self._arrived("phone")

    def show_phone(self) -> None:
        from kivy.uix.image import Image

        from screens.payment import qr_texture

        watch = getattr(self, "watch", None)
        if watch is None:
            return
        slot = self.flow.slot(self.phone_index)
        self.heading = self.t("supplement.phone_title", name=slot.material.name)
        self.add_label(self.t("supplement.phone_hint"), aid="supplement_phone_hint")
        qr = Image(texture=qr_texture(watch.url), size_hint_y=None, height=max(self.app.fs(12), 360),
                   fit_mode="contain")
        qr.aid = "supplement_phone_qr"
        self.ids.choices.add_widget(qr)
        self.add_label(self.t("supplement.phone_received", count=len(watch.received)), aid="supplement_phone_count",
                       bold=True)
        self.set_action(self.t("supplement.phone_done"), "supplement_phone_done", self._phone_done)

    def _phone_files(self, _slot: Any) -> None:
        if self.step == "phone":
            self.clear()
            self.show_phone()

    def _phone_done(self) -> None:
        watch = getattr(self, "watch", None)
        if watch is not None:
            self.flow.phone_stop(watch)
            self.watch = None
        self.back()

    def _submit(self) -> None:
        self.working()
        self.status = self.t("supplement.submitting")
        self.flow.submit(on_result=lambda _o: self._arrived("result"), on_error=self._refused)

    def _refused(self, exc: BaseException) -> None:
        state = self.flow.state
        if state.problems or state.field_errors:   # the one-time list of what is wrong: shown on the case step
            self._refresh_case()
            self.failed, self.status = True, self.error_text(exc)
        else:
            self.fail(exc)

    # --- result ----------------------------------------------------------------------------------------------------
    def show_result(self) -> None:
        outcome = self.flow.state.outcome
        case = self.flow.state.case
        self.heading = f"{case.service_name}  {case.number}" if case else self.t("supplement.title")
        if outcome is None:
            return
        if outcome.status == "queued":
            self.add_label(self.t("supplement.queued", reference=outcome.reference), aid="supplement_result",
                           bold=True, font_size=self.app.fs(1.2))
        else:
            result = outcome.result or {}
            outstanding = len(result.get("outstanding") or []) + len(result.get("outstanding_fields") or [])
            complete = "supplement.complete_fields" if case and case.fields else "supplement.complete"
            self.add_label(self.t(complete) if not outstanding else
                           self.t("supplement.still_missing", count=outstanding), aid="supplement_result",
                           bold=True, font_size=self.app.fs(1.3), color=(0.1, 0.45, 0.2, 1))
            status = self.app.core.status_texts().get(result.get("status", ""), result.get("status", ""))
            self.add_label(self.t("supplement.status_now", status=status), aid="supplement_state")
            self.add_label(self.t("supplement.timeline"), bold=True)
            steps = result.get("timeline") or []
            for i, step in enumerate(steps):
                line = f"●  {str(step.get('at', ''))[:16].replace('T', ' ')}  " \
                       f"{self.t('application.status.' + step.get('status', ''))}"
                if step.get("note"):
                    line += f"\n     {step.get('department') or ''}：{step['note']}"
                self.add_label(line, aid="supplement_timeline_last" if i == len(steps) - 1 else "")
        if self.printed:
            self.add_label(self.t("supplement.printed"), aid="supplement_printed", color=(0.1, 0.45, 0.2, 1))
        else:
            self.set_action(self.t("supplement.print"), "supplement_print", self._print)
        self.done_text = self.t("supplement.done")

    def _print(self) -> None:
        self.working()
        self.flow.print_receipt(on_result=self._printed, on_error=self.fail)

    def _printed(self, _result: Any) -> None:
        self.printed = True
        self.ok()
        self.clear()
        self.show_result()

    def back(self) -> None:
        if self.step == "phone" and self.watch is not None:
            self.flow.phone_stop(self.watch)
            self.watch = None
        if self.step == "result":   # submitted: nothing to go back to
            self.done()
            return
        super().back()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"supplement": SupplementScreen}
