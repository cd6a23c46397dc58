""":class:`UseCaseScreen`: the part the step-by-step screens over one of the core's use cases share (certificates,
proofs, supplement, staff, maintenance) on top of :class:`screens.appointment.FlowScreen` — the title named by the
screen's ``prefix``, what the citizen chose forgotten when the screen is built and at session end, and "done" that
closes the use case once it has finished. Laid out by the ``<FlowScreen>`` rule (appointment.kv)."""
from __future__ import annotations

from typing import Any

from screens.appointment import FlowScreen


class UseCaseScreen(FlowScreen):
    """A :class:`FlowScreen` titled ``<prefix>.title``; subclasses say what to drop in ``forget()`` and when the use
    case has ``finished`` (then "done" hands it back to the flow, which ends it; else back to the menu)."""

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        self.title_key = f"{self.prefix}.title"
        self.forget()

    @property
    def finished(self) -> bool:
        """The use case has done what the citizen came for (printed, submitted): "done" closes it."""
        return False

    def _arrived(self, step: str) -> None:
        """A worker's answer came: not busy any more, show ``step``."""
        self.ok()
        self.go_step(step)

    def done(self) -> None:
        if self.finished:
            self.flow.done()
        else:
            self.app.go("menu")

    def reset(self) -> None:
        super().reset()
        self.forget()
