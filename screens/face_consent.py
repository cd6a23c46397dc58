"""Consent before the face check (PIPL: facial data is sensitive personal information): one screen that says what is
captured, why, and that nothing is kept, with "agree" or "use another way" (staff help, services without identity).
The camera is not switched on before "agree". The flow and the audit entry are
:meth:`kiosk.usecases.face_check.FaceCheck.consent`; this screen forwards taps."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import OptionProperty, StringProperty

from kiosk.usecases.face_check import FaceCheckNotNeeded
from screens.widgets import KButton, KScreen


class FaceConsentScreen(KScreen):
    phase = OptionProperty("ask", options=["ask", "refused"])
    greeting = StringProperty("")

    def on_go(self, **_: Any) -> None:
        app = App.get_running_app()
        self.phase = "ask"
        citizen = app.core.session.citizen
        self.greeting = app.t("face.greeting", name=citizen.name_masked) if citizen is not None else ""
        self._show_routes([])

    # taps -----------------------------------------------------------------------------------------------------------
    def agree(self) -> None:
        app = App.get_running_app()
        try:
            app.core.face_check.consent(True)
        except FaceCheckNotNeeded:   # verified or the session moved on meanwhile
            app.go("menu")
            return
        app.go("face_check")

    def refuse(self) -> None:
        app = App.get_running_app()
        try:
            app.core.face_check.consent(False)
        except FaceCheckNotNeeded:
            app.go("menu")
            return
        self.phase = "refused"
        app.core.speak("consent.refused")
        routes = [r for r in ("staff_assistance", "continue_without_identity", "card_only")
                  if r in app.core.face_check.settings.alternatives]
        self._show_routes(routes)

    def choose(self, route: str) -> None:
        app = App.get_running_app()
        try:
            app.core.face_check.choose(route)
        except FaceCheckNotNeeded:
            app.go("menu")
            return
        if route == "continue_without_identity":
            app.go("menu")   # guides, progress by number: services that need no identity
        # staff_assistance: the help panel opens (core event "assistance"); card_only: the menu opens on
        # "identity_card_only"

    # helpers --------------------------------------------------------------------------------------------------------
    def _show_routes(self, routes: list[str]) -> None:
        """Ask phase (no routes): agree | use another way. Refused: the routes, then agree (after all) | finish."""
        if "routes" not in self.ids:
            return
        from kivy.uix.boxlayout import BoxLayout

        app = App.get_running_app()
        box = self.ids.routes
        box.clear_widgets()

        def button(aid: str, key: str, action: Any, primary: bool = False) -> KButton:
            btn = KButton(text=app.t(key), aid=aid, primary=primary)
            btn.bind(on_release=lambda _b: action())
            return btn

        for route in routes:
            box.add_widget(button(f"consent_route_{route}", f"consent.route.{route}",
                                  lambda r=route: self.choose(r), primary=route == "staff_assistance"))
        row = BoxLayout(size_hint_y=None, spacing=app.fs(0.6))
        row.add_widget(button("consent_agree", "consent.agree", self.agree, primary=not routes))
        row.add_widget(button("consent_finish", "consent.finish", app.finish) if routes else
                       button("consent_other", "consent.other", self.refuse))
        row.bind(minimum_height=row.setter("height"))
        row.height = max(c.height for c in row.children)
        box.add_widget(row)

    def reset(self) -> None:
        self.phase = "ask"
        self.greeting = ""
        self._show_routes([])


#: the screens this module adds to the shell (name → class)
SCREENS = {"face_consent": FaceConsentScreen}
