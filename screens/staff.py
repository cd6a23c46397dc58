"""The staff screen (PIN-locked): print jobs the journal holds as unfinished or failed — kind, time, reason, reprint
count, never personal data — with "reprint" for receipts and "hand over" / "mark handled" for licences, each action
audited (:class:`kiosk.usecases.printing.StaffDesk`, ``core.staff_desk``).

Reached by a hidden gesture staff know: five taps within three seconds in the top-left corner of any screen. The PIN
is checked against the profile's ``kiosk.maintenance_pin_hash``; the screen locks again when staff leave it or the
session ends."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from kivy.core.window import Window
from kivy.uix.boxlayout import BoxLayout

from screens.flow_screen import UseCaseScreen
from screens.pin_pad import PinKeys
from screens.widgets import KButton

CORNER_PX = 120
TAPS, WITHIN_S = 5, 3.0


class StaffScreen(UseCaseScreen):
    """Steps: pin · jobs."""

    prefix = "staff"
    _keys: PinKeys | None = None

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        self._taps: list[float] = []
        Window.bind(on_touch_down=self._corner_tap)

    @property
    def desk(self) -> Any:
        return self.app.core.staff_desk

    def _corner_tap(self, _window: Any, touch: Any) -> None:
        if touch.x > CORNER_PX or touch.y < Window.height - CORNER_PX:
            self._taps.clear()
            return
        now = time.monotonic()
        self._taps = [t for t in self._taps if now - t < WITHIN_S] + [now]
        if len(self._taps) >= TAPS and self.app.sm.current != self.name:
            self._taps.clear()
            self.app.go(self.name)

    def on_go(self, **_: Any) -> None:
        self.done_text = ""
        self.start("jobs" if self.desk.unlocked else "pin")

    # --- PIN ----------------------------------------------------------------------------------------------------
    def show_pin(self) -> None:
        self.heading = self.t("staff.pin_title")
        if not self.desk.configured:
            self.failed, self.status = True, self.t("staff.no_pin")
        hint = self.t("staff.pin_hint")
        dots = self.add_label(hint, aid="staff_pin_dots", font_size=self.app.fs(1.6), halign="center")
        # the pad's free cell: a technician opens maintenance with their own card + PIN instead
        maintenance = KButton(text=self.t("maintenance.enter"), aid="staff_maintenance")
        maintenance.bind(on_release=lambda _b: self.app.go("maintenance"))
        self._keys = PinKeys("staff", free=maintenance, size_hint_y=None)
        self._keys.mirror(dots, hint)
        self.ids.choices.add_widget(self._keys)
        self.set_action(self.t("common.confirm"), "staff_pin_ok", self._submit)

    def _submit(self) -> None:
        pin = self._keys.take()
        # PBKDF2 (200,000 rounds) takes tens of milliseconds: never on the UI thread
        self.busy = True
        self.app.core.workers.submit(self.desk.unlock, pin, on_result=self._unlocked, on_error=self.fail)

    def _unlocked(self, ok: bool) -> None:
        self.busy = False
        if ok:
            self._history = []
            self.go_step("jobs", remember=False)
        else:
            self.failed, self.status = True, self.t("staff.wrong_pin")

    # --- jobs ---------------------------------------------------------------------------------------------------
    def show_jobs(self) -> None:
        self.heading = self.t("staff.jobs_title")
        self.working()
        self.app.core.workers.submit(self.desk.jobs, on_result=self._jobs, on_error=self.fail)

    def _jobs(self, jobs: list[Any]) -> None:
        note, self._note = getattr(self, "_note", ""), ""
        count = self.t("staff.jobs_count", count=len(jobs)) if jobs else self.t("staff.jobs_none")
        self.ok(f"{note}  ·  {count}" if note else count)
        if self.step != "jobs":
            return
        self.clear()
        app = self.app
        for i, job in enumerate(jobs):
            when = datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M")
            self.add_label(self.t("staff.job_line", kind=self.t(f"staff.kind.{job.kind}"), summary=job.summary,
                                  at=when, state=self.t(f"staff.state.{job.state}"), reason=job.reason or "—", count=job.reprint_count),
                           aid=f"staff_job_{i}")
            row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.4))
            for action in job.actions:
                btn = KButton(text=self.t(f"staff.action.{action}"), aid=f"staff_{action}_{i}",
                              primary=action in ("reprint", "handed_over"))
                btn.bind(on_release=lambda _b, j=job, a=action: self._act(j, a))
                row.add_widget(btn)
            self.ids.choices.add_widget(row)

    def _act(self, job: Any, action: str) -> None:
        if self.busy:
            return
        self.app.core.touch()
        self.working()
        if action == "reprint":
            self.app.core.workers.submit(self.desk.reprint, job.id, on_result=lambda _r: self._acted("reprinted"),
                                         on_error=self.fail)
        else:
            self.app.core.workers.submit(self.desk.settle, job.id, action, on_result=lambda _r: self._acted("settled"),
                                         on_error=self.fail)

    def _acted(self, what: str) -> None:
        self.busy = False
        self._note = self.t(f"staff.done_{what}")   # shown with the refreshed list
        self.go_step("jobs", remember=False)

    def back(self) -> None:
        if not self.busy:
            self.desk.lock()
            self.app.go("menu")

    def forget(self) -> None:
        if self._keys is not None:   # nothing of a PIN left behind
            self._keys.digits = ""

    def reset(self) -> None:
        super().reset()
        self.desk.lock()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"staff": StaffScreen}
