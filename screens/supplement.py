"""补正材料: the citizen's applications waiting for materials → the one-time list of what is missing → attach an
e-certificate, photograph pages (or send them from the phone) → submit → the new state and the timeline → print the
补正回执. The flow is :class:`kiosk.usecases.supplement.SupplementFlow` (``core.supplement``); this screen shows its
steps and forwards taps. Laid out by the ``<FlowScreen>`` rule (appointment.kv)."""
from __future__ import annotations

from typing import Any

from screens.flow_screen import UseCaseScreen


class SupplementScreen(UseCaseScreen):
    """Steps: home (waiting applications) · case (the missing materials) · result (state, timeline, receipt)."""

    prefix = "supplement"
    flow_name = "supplement"

    def forget(self) -> None:
        self.watch: Any = None
        self.phone_index = -1
        self.cases: list[Any] = []
        self.number = ""
        self.printed = False

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
                                   count=len(case.missing)), f"supplement_case_{i}",
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
        if not can_capture and not any(s.candidates for s in self.flow.slots):
            self.add_label(self.t("supplement.no_camera"), aid="supplement_no_camera")
        for p in self.flow.state.problems:
            self.add_label(p.message if self.app.lang == "zh_CN" else (p.message_en or p.message),
                           color=(0.75, 0.1, 0.1, 1))
        if any(s.provided for s in self.flow.slots):
            self.set_action(self.t("supplement.submit"), "supplement_submit", self._submit)

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

    def _capture(self, index: int) -> None:
        self.working()
        self.status = self.t("supplement.capturing")
        self.flow.capture(index, on_result=lambda slot: self._refresh_case(
            self.t("supplement.captured", pages=len(slot.upload_ids))), on_error=self.fail)

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
        if self.flow.state.problems:   # the platform's one-time list of what is wrong: shown on the case step
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
            outstanding = len(result.get("outstanding") or [])
            self.add_label(self.t("supplement.complete") if not outstanding else
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
