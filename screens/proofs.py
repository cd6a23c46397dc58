"""打印证明: the citizen's proofs (social insurance, medical insurance, housing fund, real estate, household) → the period
where it applies → the sealed proof issued and its first page shown → copies → printed on the licence printer; another
copy in the session is shown as a counted reprint. The flow is :class:`kiosk.usecases.proofs.ProofsFlow`
(``core.proofs``); this screen shows its steps and forwards taps. Laid out by the ``<FlowScreen>`` rule
(appointment.kv)."""
from __future__ import annotations

from typing import Any

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.image import Image

from screens.flow_screen import UseCaseScreen
from screens.widgets import KButton, KLabel


class ProofsScreen(UseCaseScreen):
    """Steps: home (proof types) · period · preview (first page, copies, print) · printed."""

    prefix = "proofs"
    flow_name = "proofs"

    def forget(self) -> None:
        self.types: list[Any] = []
        self.choices: list[Any] = []

    @property
    def finished(self) -> bool:
        return self.flow.state.printed is not None

    def name_of(self, proof_type: Any) -> str:
        return proof_type.name if self.app.lang == "zh_CN" or not proof_type.name_en else proof_type.name_en

    # --- home -------------------------------------------------------------------------------------------------------
    def show_home(self) -> None:
        self.heading = self.t("proofs.title")
        reason = self.flow.unavailable_reason()
        if reason is not None:
            self.failed, self.status = True, self.t(reason)
            return
        self.working()
        self.flow.types(on_result=self._listed, on_error=self.fail)

    def _listed(self, types: list[Any]) -> None:
        self.types = types
        self.ok()
        if self.step != "home":
            return
        self.heading = self.t("proofs.list_title") if types else self.t("proofs.none")
        for i, proof_type in enumerate(types):
            summary = proof_type.summary_zh if self.app.lang == "zh_CN" else (proof_type.summary_en or
                                                                               proof_type.summary_zh)
            self.add_button(self.t("proofs.line", name=self.name_of(proof_type), issuer=proof_type.issuer,
                                   summary=summary or ""), f"proof_{i}", lambda t=proof_type: self._pick(t), lines=2)

    def _pick(self, proof_type: Any) -> None:
        self.choices = self.flow.choose(proof_type.type)
        if self.choices:
            self.go_step("period")
        else:
            self._issue()

    # --- period -----------------------------------------------------------------------------------------------------
    def show_period(self) -> None:
        chosen = self.flow.state.chosen
        self.heading = self.name_of(chosen) if chosen else ""
        self.add_label(self.t("proofs.period_hint"), aid="proofs_period_hint")
        for i, period in enumerate(self.choices):
            key = "proofs.period_default" if period.default else "proofs.period_last"
            self.add_button(self.t(key, months=period.months, start=period.period_from, end=period.period_to),
                            f"proof_period_{i}", lambda p=period: self._period(p), primary=period.default)

    def _period(self, period: Any) -> None:
        self.flow.set_period(period)
        self._issue()

    # --- issue → preview --------------------------------------------------------------------------------------------
    def _issue(self) -> None:
        self.working()
        self.status = self.t("proofs.issuing")
        self.flow.issue(on_result=lambda _ready: self._arrived("preview"), on_error=self.fail)

    def show_preview(self) -> None:
        ready = self.flow.state.ready
        if ready is None:
            return
        proof = ready.proof
        self.heading = proof.name
        period = f"{proof.period_from} – {proof.period_to}" if proof.period_from else ""
        self.add_label(self.t("proofs.preview_line", issuer=proof.issuer, period=period, pages=ready.pages,
                              code=proof.code), aid="proofs_preview_line")
        self._copies_row()   # above the page: always in view
        if ready.preview_path is not None:
            # the first page as wide as the column (A4 proportions): readable, the citizen scrolls down it
            column = self.ids.choices
            page = Image(source=str(ready.preview_path), nocache=True, size_hint_y=None,
                         height=max(column.width, 600) * 1.414, fit_mode="contain")
            page.aid = "proofs_preview"
            column.add_widget(page)
        else:
            self.add_label(self.t("proofs.error.preview"), aid="proofs_preview_missing")
        self.set_action(self.t("proofs.print"), "proofs_print", self._print)

    def _copies_row(self) -> None:
        app = self.app
        row = BoxLayout(size_hint_y=None, height=max(app.fs(2.6), 96), spacing=app.fs(0.5))
        less = KButton(text="−", aid="proofs_copies_less", size_hint_x=0.25)
        more = KButton(text="+", aid="proofs_copies_more", size_hint_x=0.25)
        label = KLabel(text=self.t("proofs.copies", copies=self.flow.state.copies), aid="proofs_copies",
                       halign="center")
        less.bind(on_release=lambda *_: self._copies(-1, label))
        more.bind(on_release=lambda *_: self._copies(+1, label))
        for widget in (less, label, more):
            row.add_widget(widget)
        self.ids.choices.add_widget(row)

    def _copies(self, delta: int, label: Any) -> None:
        if self.busy:
            return
        copies = self.flow.set_copies(self.flow.state.copies + delta)
        label.text = self.t("proofs.copies", copies=copies)

    # --- print ------------------------------------------------------------------------------------------------------
    def _print(self) -> None:
        self.working()
        self.status = self.t("proofs.printing")
        self.flow.print_proof(on_result=lambda _p: self._arrived("printed"), on_error=self.fail)

    def show_printed(self) -> None:
        printed = self.flow.state.printed
        ready = self.flow.state.ready
        self.heading = ready.proof.name if ready else ""
        if printed is None:
            return
        text = self.t("proofs.reprinted", count=printed.reprint_count) if printed.is_reprint else \
            self.t("proofs.printed", copies=printed.copies)
        self.add_label(text, aid="proofs_printed", font_size=self.app.fs(1.4), bold=True, color=(0.1, 0.45, 0.2, 1))
        if ready is not None:
            self.add_label(self.t("proofs.verify_hint", code=ready.proof.code), aid="proofs_verify_hint")
        self.set_action(self.t("proofs.print_again"), "proofs_print", self._print)
        self.done_text = self.t("proofs.done")


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"proofs": ProofsScreen}
