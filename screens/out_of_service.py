"""Out of service: shown while the platform or a required device is down, saying why and what still works."""
from __future__ import annotations

from kivy.app import App
from kivy.properties import ListProperty, StringProperty

from screens.widgets import KScreen


class OutOfServiceScreen(KScreen):
    reasons = StringProperty("")
    working = ListProperty([])

    def update(self, availability) -> None:
        app = App.get_running_app()
        reasons = []
        if availability.maintenance:
            reasons.append(app.t("out_of_service.reason_maintenance"))
        if not availability.platform:
            reasons.append(app.t("out_of_service.reason_platform"))
        for kind in availability.required:
            if not availability.devices.get(kind, False):
                reasons.append(app.t("out_of_service.reason_device", device=app.t(f"device.{kind}")) +
                               f"（{availability.device_errors.get(kind, '')}）")
        self.reasons = "\n".join(reasons)
        self.working = availability.working_features()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"out_of_service": OutOfServiceScreen}
