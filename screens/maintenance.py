"""The technician's maintenance screen (kiosk/maintenance.py has the flow; this screen shows it and forwards taps).

Reached from the staff screen's PIN pad ("technician: maintenance by card"): place the technician's card, type the
PIN (the same keypad as the staff screen), then each device's status, counters and last errors, self-tests at the
three levels (the interactive one asks its questions here, with yes/no buttons), the reprint queue (the staff
screen, unlocked), switching to another profile on the kiosk, restart, and leave. Laid out by the <FlowScreen> rule
(appointment.kv); steps: card · pin · home · results · profiles.
"""
from __future__ import annotations

import threading
from typing import Any

from kivy.clock import Clock
from kivy.uix.boxlayout import BoxLayout

from screens.flow_screen import UseCaseScreen
from screens.pin_pad import PinKeys
from screens.widgets import KButton

#: how long an interactive self-test question waits for the technician's answer
ANSWER_TIMEOUT_S = 300.0


class MaintenanceScreen(UseCaseScreen):
    prefix = "maintenance"
    _keys: PinKeys | None = None
    #: the interactive self-test's pending question (answered "no" if the technician goes back instead)
    _question: threading.Event | None = None
    _skip_questions = False

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        self.app.core.subscribe(self._on_core_event)

    @property
    def mode(self) -> Any:
        return self.app.core.maintenance

    def on_go(self, **_: Any) -> None:
        self.done_text = ""
        if self.mode.is_open:
            self.start("home")
            return
        try:
            self.mode.begin()
        except Exception as exc:  # noqa: BLE001 - a citizen still identified: say so
            self.start("card")
            self.fail(exc)
            return
        self.start("card")

    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        if self.app.sm.current != self.name:
            return
        if name == "maintenance":
            state = payload.get("state")
            if state == "pin" and self.step != "pin":
                self.go_step("pin", remember=False)
            elif state == "checking":
                self.working()
            elif state == "closed" and self.step in ("card", "pin"):
                self.app.go("staff")
        elif name == "maintenance_prompt" and self.busy:
            # a self-test now waits for the technician's card (or face): ask for it now, not before
            self.status = self.t("maintenance.place_card_for_test")
        elif name == "maintenance_refused":
            if self.step != "card":
                self.go_step("card", remember=False)
            self.failed, self.busy = True, False
            from kiosk.maintenance import MaintenanceError

            self.status = self.t(MaintenanceError(str(payload.get("code", "refused"))).translation_key)

    # --- card and PIN ---------------------------------------------------------------------------------------------
    def show_card(self) -> None:
        self.heading = self.t("maintenance.card_title")
        self.add_label(self.t("maintenance.card_hint"), aid="maintenance_card_hint")

    def show_pin(self) -> None:
        self.busy = False
        self.heading = self.t("maintenance.pin_title")
        hint = self.t("maintenance.pin_hint")
        dots = self.add_label(hint, aid="maintenance_pin_dots", font_size=self.app.fs(1.6), halign="center")
        self._keys = PinKeys("maintenance", size_hint_y=None)
        self._keys.mirror(dots, hint)
        self.ids.choices.add_widget(self._keys)
        self.set_action(self.t("common.confirm"), "maintenance_pin_ok", self._submit)

    def _submit(self) -> None:
        pin = self._keys.take()
        self.working()
        self.mode.submit_pin(pin, on_result=lambda _ok: self.go_step("home", remember=False), on_error=self._pin_failed)

    def _pin_failed(self, exc: BaseException) -> None:
        if self.mode.state == "pin":
            self.go_step("pin", remember=False)
        self.fail(exc)

    # --- home: devices and actions -----------------------------------------------------------------------------------
    def show_home(self) -> None:
        self.heading = self.t("maintenance.home_title")
        self.add_label(self.t("maintenance.technician", card=self.mode.card_masked), aid="maintenance_technician")
        self.working()
        self.app.core.workers.submit(self.mode.devices, on_result=self._devices, on_error=self.fail)

    def _devices(self, views: list[Any]) -> None:
        self.ok()
        if self.step != "home":
            return
        # the actions first (always in view), then one block per device
        row = BoxLayout(size_hint_y=None, height=max(self.app.fs(2.4), 90), spacing=self.app.fs(0.4))
        for level in ("internal", "external", "interactive"):
            btn = KButton(text=self.t(f"maintenance.self_test_{level}"), aid=f"maintenance_test_{level}")
            btn.bind(on_release=lambda _b, lv=level: self._pressed(lambda: self._self_test(lv)))
            row.add_widget(btn)
        self.ids.choices.add_widget(row)
        row = BoxLayout(size_hint_y=None, height=max(self.app.fs(2.4), 90), spacing=self.app.fs(0.4))
        for aid, key, fn in (("maintenance_reprints", "reprint_queue", self._reprints),
                             ("maintenance_profiles", "profiles", lambda: self.go_step("profiles")),
                             ("maintenance_restart", "restart", self._restart)):
            btn = KButton(text=self.t(f"maintenance.{key}"), aid=aid)
            btn.bind(on_release=lambda _b, f=fn: self._pressed(f))
            row.add_widget(btn)
        self.ids.choices.add_widget(row)
        none, sep = self.t("maintenance.none"), self.t("maintenance.list_sep")
        for view in views:
            counters = sep.join(f"{self._words('counter', k, with_code=False)} {v}"
                                 for k, v in sorted(view.counters.items())) or none
            errors = sep.join(f"{self._words('reason', k)} {v}" for k, v in sorted(view.errors.items())) or none
            self.add_label(self.t("maintenance.device_line", device=self._device_name(view.kind) +
                                  (self.t("maintenance.required") if view.required else ""),
                                  state=self._words("state", view.state), error=self._reason(view.error_code or ""),
                                  paper=self.t("maintenance.paper_line", paper=self._words("paper", view.paper))
                                  if view.paper else "", counters=counters, errors=errors),
                           aid=f"maintenance_device_{view.kind}")
        self.set_action(self.t("maintenance.exit"), "maintenance_exit", self._exit)

    def _words(self, group: str, code: str, with_code: bool = True) -> str:
        """A device state, paper level, counter or error in the technician's words — with its code, which operators
        see (``在线 · online``); the code alone when there are no words for it."""
        key = f"maintenance.{group}.{code}"
        if not self.app.core.translator.has(key):
            return code
        return f"{self.t(key)} · {code}" if with_code else self.t(key)

    def _device_name(self, kind: str) -> str:
        key = f"device.{kind}"
        return self.t(key) if self.app.core.translator.has(key) else kind

    def _self_test(self, level: str) -> None:
        self.working()   # the external tests ask for the card when they wait for it (maintenance_prompt)
        self._skip_questions = False
        self.app.core.workers.submit(self.mode.self_test, level, None,
                                     self._confirm if level == "interactive" else None,
                                     on_result=self._tested, on_error=self.fail)

    def _confirm(self, question: str) -> bool:
        """Called on a worker by the interactive self-test: ask on screen, wait for the technician's tap."""
        answered, box = threading.Event(), {"yes": False}
        if self._skip_questions or not self.mode.is_open:
            return False   # the technician left the self-test: the remaining questions are "no"
        self._question = answered

        def ask(_dt: float) -> None:
            self.clear()
            self.heading = self.t(f"maintenance.question.{question}")
            for yes in (True, False):
                self.add_button(self.t("maintenance.answer_yes" if yes else "maintenance.answer_no"),
                                f"maintenance_answer_{'yes' if yes else 'no'}",
                                lambda y=yes: (box.__setitem__("yes", y), answered.set()), primary=yes)
            self.ok()   # waiting for the technician now, not for the kiosk

        Clock.schedule_once(ask, 0)
        answered.wait(ANSWER_TIMEOUT_S)
        if self._question is answered:
            self._question = None
            Clock.schedule_once(lambda _dt: self.working(), 0)
        return box["yes"]

    def _drop_question(self) -> bool:
        """Going back from a question answers it "no" (and the rest of the run's): the test ends at once, with
        "not confirmed", instead of waiting for the technician who left. True if a question was open."""
        question, self._question = self._question, None
        if question is None:
            return False
        self._skip_questions = True
        question.set()
        return True

    def _tested(self, run: Any) -> None:
        self.run = run
        self.go_step("results")

    def show_results(self) -> None:
        run = self.run
        self.heading = self.t("maintenance.self_test_title",
                              level=self.t(f"maintenance.level.{run.level.value}"))
        for kind, result in run.results.items():
            self.add_label(self.t("maintenance.self_test_line", device=self._device_name(kind),
                                  result=self.t("maintenance.passed" if result.ok else "maintenance.failed"),
                                  reason=self._reason(result.reason)),
                           aid=f"maintenance_result_{kind}")
        if run.ok:
            self.ok(self.t("maintenance.passed"))
        else:
            self.fail_text(self.t("maintenance.failed"))

    def _reason(self, code: str) -> str:
        """Why a device failed, in words with its code for the records: ``（缺纸 · paper_out）``."""
        return f" ({self._words('reason', code)})" if code else ""

    def _reprints(self) -> None:
        self.app.core.staff_desk.open_for_technician()   # the staff desk, unlocked by the technician's card + PIN
        self.app.go("staff")

    # --- profiles, restart, exit ---------------------------------------------------------------------------------------
    def show_profiles(self) -> None:
        self.heading = self.t("maintenance.profiles_title")
        self.app.core.workers.submit(self.mode.profiles, on_result=self._profiles, on_error=self.fail)

    def _profiles(self, names: list[str]) -> None:
        if self.step != "profiles":
            return
        if not names:
            self.ok(self.t("maintenance.profiles_none"))
        for i, name in enumerate(names):
            self.add_button(name, f"maintenance_profile_{i}", lambda n=name: self._switch(n))

    def _switch(self, name: str) -> None:
        self.working()
        self.app.core.workers.submit(self.mode.switch_profile, name,
                                     on_result=lambda d: self.ok(self.t("maintenance.profile_switched", digest=d)),
                                     on_error=self.fail)

    def _restart(self) -> None:
        self.ok(self.t("maintenance.restarting"))
        self.mode.restart()

    def _exit(self) -> None:
        self.mode.exit()
        self.app.core.end_session("finished")

    def back(self) -> None:
        if self._drop_question():
            self.working()   # the run finishes at once with the remaining questions "no", then shows its results
            return
        if self.busy:
            return
        if self._history:
            super().back()
        elif self.mode.is_open:
            self._exit()
        else:
            self.mode.cancel()
            self.app.go("staff")

    def forget(self) -> None:
        self.run: Any = None
        self._drop_question()
        if self._keys is not None:   # nothing of a PIN left behind
            self._keys.digits = ""

    def reset(self) -> None:
        super().reset()
        if not self.mode.is_open:
            self.mode.cancel()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"maintenance": MaintenanceScreen}
