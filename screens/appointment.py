"""Appointments and queue tickets, three taps from the menu: the kiosk's hall opens with its services (most used
first) → a service → one of the earliest free times (day + time + hall) books it and prints the slip, which offers
"cancel this booking". One tap away: another hall, other days and times, my appointments (cancel, check in), take a
queue number now. The flow is :class:`kiosk.usecases.booking.BookingFlow` (``core.booking``); this screen
shows its steps and forwards taps.

:class:`FlowScreen` is the step-by-step layout the citizen flows share (appointment, delivery, certificates, staff):
a heading, a status line, a scrolling column of large choice buttons and labels, and a bottom bar (back, one
primary action, done). Its kv rule is in ``appointment.kv`` and applies to every subclass.
"""
from __future__ import annotations

from typing import Any, Callable

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty

from screens.widgets import FitRow, KButton, KLabel, KScreen


class FlowScreen(KScreen):
    """Steps shown one at a time; ``back()`` returns to the previous step (or the menu from the first)."""

    title_key = StringProperty("")
    heading = StringProperty("")
    status = StringProperty("")
    failed = BooleanProperty(False)
    busy = BooleanProperty(False)
    action_text = StringProperty("")
    action_aid = StringProperty("flow_action")
    done_text = StringProperty("")
    prefix = "flow"
    #: the core's use case this screen shows (``app.core.<flow_name>``), and the step ``on_go`` starts at
    flow_name = ""
    first_step = "home"

    def on_kv_post(self, base_widget: Any) -> None:
        self.step = ""
        self._history: list[str] = []
        self._action: Callable[[], None] | None = None

    # --- helpers ------------------------------------------------------------------------------------------------
    @property
    def app(self) -> Any:
        return App.get_running_app()

    def t(self, key: str, **kw: Any) -> str:
        return self.app.t(key, **kw)

    def clear(self) -> None:
        self.ids.choices.clear_widgets()
        self.action_text = ""
        self._action = None

    def add_label(self, text: str, aid: str = "", **kw: Any) -> KLabel:
        label = KLabel(text=text, aid=aid, **kw)
        self.ids.choices.add_widget(label)
        return label

    def add_button(self, text: str, aid: str, on_press: Callable[[], None], primary: bool = False,
                   lines: int = 1) -> KButton:
        app = self.app
        button = KButton(text=text, aid=aid, primary=primary, height=max(app.fs(1.5 + 1.1 * lines), 96))
        button.bind(on_release=lambda *_: self._pressed(on_press))
        self.ids.choices.add_widget(button)
        return button

    def set_action(self, text: str, aid: str, fn: Callable[[], None]) -> None:
        self.action_text, self.action_aid, self._action = text, aid, fn

    def _pressed(self, fn: Callable[[], None]) -> None:
        if self.busy:
            return
        self.app.core.touch()
        fn()

    def action(self) -> None:
        if self._action is not None and not self.busy:
            self._pressed(self._action)

    def go_step(self, step: str, remember: bool = True) -> None:
        """Show ``step`` (method ``show_<step>``); remembered for Back unless ``remember`` is False."""
        if remember and self.step and self.step != step:
            self._history.append(self.step)
        self.step = step
        self.status, self.failed = "", False
        self.clear()
        getattr(self, f"show_{step}")()

    def back(self) -> None:
        if self.busy:
            return
        if self._history:
            self.go_step(self._history.pop(), remember=False)
        else:
            self.app.go("menu")

    def working(self) -> None:
        self.busy, self.failed = True, False
        self.status = self.t("common.loading")

    def ok(self, text: str = "") -> None:
        self.busy, self.failed = False, False
        self.status = text

    def fail(self, exc: BaseException) -> None:
        self.busy, self.failed = False, True
        self.status = self.error_text(exc)

    def fail_text(self, text: str) -> None:
        """A step that ended without success though nothing raised (a self-test that failed): said as a failure."""
        self.busy, self.failed = False, True
        self.status = text

    @property
    def flow(self) -> Any:
        return getattr(self.app.core, self.flow_name)

    def error_text(self, exc: BaseException) -> str:
        flow_text = getattr(self.flow, "error_text", None) if self.flow_name else None
        return flow_text(exc) if flow_text else self.app.core.translator.error_text(exc)

    def forget(self) -> None:
        """Drop what the citizen chose or was shown (called when the screen opens and at session end)."""

    def on_go(self, **_: Any) -> None:
        self.forget()
        self.done_text = ""
        self.start(self.first_step)

    def start(self, first: str) -> None:
        self._history = []
        self.step = ""
        self.busy = False
        self.go_step(first)

    def done(self) -> None:
        self.app.go("menu")

    def reset(self) -> None:
        self._history = []
        self.step = ""
        self.heading = self.status = self.action_text = self.done_text = ""
        self.busy = self.failed = False
        self._action = None
        self.ids.choices.clear_widgets()


class EvenRow(FitRow):
    """Buttons side by side, all as tall as the one whose text needs the most lines (not a tall one among short)."""

    def add_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        widget.size_hint_y = 1
        super().add_widget(widget, *args, **kwargs)
        widget.fbind("texture_size", self._fit_height)

    def remove_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        widget.funbind("texture_size", self._fit_height)
        super().remove_widget(widget, *args, **kwargs)

    def _fit_height(self, *_: Any) -> None:
        tallest = max((c.texture_size[1] + 12 for c in self.children), default=0.0)
        self.height = max(self.min_height, tallest + self.padding[1] + self.padding[3])


class AppointmentScreen(FlowScreen):
    """Steps: book (services of the hall) · hall · offers · day · slot · booked · mine · appointment ·
    service (for a queue ticket) · ticketed. The choices and their order come from the flow
    (``BookingFlow.start`` / ``services_at`` / ``offers``)."""

    prefix = "booking"
    flow_name = "booking"
    first_step = "book"

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        self.title_key = "booking.title"
        self.forget()

    def forget(self) -> None:
        self.halls: list[Any] = []
        self.started = False
        self.hall = self.ticket_hall = self.service = self.day = self.slot = None
        self.booked = self.ticketed = self.appointment = None
        self.appointments: list[Any] = []
        self.hall_services: dict[str, list[Any]] = {}
        self.offers: list[Any] = []
        self.days: list[Any] = []
        self.ticket_mode = False

    def add_row(self, *buttons: tuple[str, str, Callable[[], None]]) -> FitRow:
        """Secondary choices side by side (text, aid, what a tap does): one row above the list."""
        row = EvenRow(min_height=max(self.app.fs(2.6), self.app.touch_min), spacing=self.app.font_base * 0.4)
        for text, aid, fn in buttons:
            button = KButton(text=text, aid=aid)
            button.bind(on_release=lambda *_, fn=fn: self._pressed(fn))
            row.add_widget(button)
        self.ids.choices.add_widget(row)
        return row

    def _service_name(self, service: Any) -> str:
        return self.app.pick({"zh_CN": service.name, "en": service.name_en})

    # --- steps --------------------------------------------------------------------------------------------------
    def show_book(self) -> None:
        """The services of the chosen hall (the kiosk's own at first), or the halls when none is chosen."""
        self.ticket_mode = False
        self.add_row((self.t("booking.other_hall"), "booking_other_hall", self._other_hall),
                     (self.t("booking.mine"), "booking_mine", lambda: self.go_step("mine")),
                     (self.t("booking.ticket"), "booking_ticket", self._start_ticket))
        if not self.started:
            self.heading = self.t("booking.home_hint")
            self.working()
            self.flow.start(on_result=self._started, on_error=self.fail)
            return
        if self.hall is None:
            self.heading = self.t("booking.pick_hall")
            self._show_halls(self.halls)
            return
        self.heading = self.hall.name      # where; what to do is the status line (one line each, for large text)
        if self.hall.code in self.hall_services:
            self._show_services(self.hall_services[self.hall.code])
            return
        self.working()
        self.flow.services_at(self.hall, on_result=lambda s, h=self.hall: self._services(h, s), on_error=self.fail)

    def _started(self, start: Any) -> None:
        self.started = True
        self.halls = start.halls
        if start.hall is not None:
            self.hall = start.hall
            self.hall_services[start.hall.code] = start.services
        self.ok()
        if self.step == "book":
            self.go_step("book", remember=False)

    def _services(self, hall: Any, services: list[Any]) -> None:
        self.hall_services[hall.code] = services
        self.ok()
        if self.step == "book" and self.hall is hall or self.step == "service" and self.ticket_hall is hall:
            self._show_services(services)

    def _show_services(self, services: list[Any]) -> None:
        if not services:
            self.status = self.t("booking.no_services")
        elif self.step == "book":
            self.status = self.t("booking.pick_service_here" if self.app.core.session.citizen else
                                 "booking.card_needed")
        for service in services:
            self.add_button(self._service_name(service), f"service_{service.code}",
                            lambda s=service: self._pick_service(s))

    def _other_hall(self) -> None:
        self.ticket_mode = False
        self.go_step("hall")

    def _start_ticket(self) -> None:
        self.ticket_mode = True
        self.go_step("hall")

    def show_hall(self) -> None:
        self.heading = self.t("booking.pick_hall")
        if self.halls:
            self._show_halls(self.halls)
            return
        self.working()
        self.flow.halls(on_result=self._halls, on_error=self.fail)

    def _halls(self, halls: list[Any]) -> None:
        self.halls = halls
        self.ok()
        if self.step == "hall":
            self._show_halls(halls)

    def _show_halls(self, halls: list[Any]) -> None:
        for hall in halls:
            self.add_button(f"{hall.name}\n{hall.address}", f"hall_{hall.code}", lambda h=hall: self._pick_hall(h),
                            lines=2)

    def _pick_hall(self, hall: Any) -> None:
        if self.ticket_mode:
            self.ticket_hall = hall
            self.go_step("service")
        else:
            self.hall = hall
            self.go_step("book", remember=self.step != "book")

    def show_service(self) -> None:
        """A queue ticket's service (a booking's services are on the "book" step)."""
        hall = self.ticket_hall
        self.heading = self.t("booking.pick_service_ticket", hall=hall.name)
        if hall.code in self.hall_services:
            self._show_services(self.hall_services[hall.code])
            return
        self.working()
        self.flow.services_at(hall, on_result=lambda s, h=hall: self._services(h, s), on_error=self.fail)

    def _pick_service(self, service: Any) -> None:
        self.service = service
        if self.ticket_mode:
            self.working()
            self.flow.take_ticket(self.ticket_hall, service, on_result=self._ticketed, on_error=self.fail)
        elif not self.app.core.session.citizen:
            self.failed, self.status = True, self.t("booking.error.not_identified")
        else:
            self.go_step("offers")

    def show_offers(self) -> None:
        self.heading = self._service_name(self.service)
        self.working()
        self.flow.offers(self.hall, self.service, on_result=self._offers, on_error=self.fail)

    def _offers(self, offers: list[Any]) -> None:
        self.offers = offers
        self.ok(self.t("booking.offers_hint") if offers else self.t("booking.no_offers"))
        if self.step != "offers":
            return
        if not offers:
            return
        for i, offer in enumerate(offers):
            self.add_button(self.flow.offer_text(offer), f"offer_{i}", lambda o=offer: self._book_slot(o.slot),
                            primary=True, lines=2)
        self.add_button(self.t("booking.more_times"), "booking_more_times", lambda: self.go_step("day"))
        self.app.core.speak("booking.voice.offers")

    def show_day(self) -> None:
        self.heading = self.t("booking.pick_day", service=self._service_name(self.service))
        self.working()
        self.flow.days(self.hall, self.service, on_result=self._days, on_error=self.fail)

    def _days(self, days: list[Any]) -> None:
        self.days = days
        self.ok("" if days else self.t("booking.no_days"))
        if self.step != "day":
            return
        for i, day in enumerate(days):
            self.add_button(self.t("booking.day_line", day=day.date, count=day.available), f"day_{i}",
                            lambda d=day: self._pick_day(d))

    def _pick_day(self, day: Any) -> None:
        self.day = day
        self.go_step("slot")

    def show_slot(self) -> None:
        self.heading = self.t("booking.pick_slot_book", day=self.day.date)
        for i, slot in enumerate(self.day.slots):
            self.add_button(self.t("booking.slot_line", start=slot.start, end=slot.end, count=slot.available),
                            f"slot_{i}", lambda s=slot: self._book_slot(s))

    def _book_slot(self, slot: Any) -> None:
        """A tap on a time books it (the result page offers to cancel)."""
        self.slot = slot
        self.working()
        self.flow.book(self.hall, self.service, slot, on_result=self._booked, on_error=self.fail)

    def _booked(self, booked: Any) -> None:
        self.booked = booked
        self.busy = False
        self._history = ["book"]  # Back from here never books again
        self.go_step("booked", remember=False)

    def show_booked(self) -> None:
        booked, a = self.booked, self.booked.appointment
        self.heading = self.t("booking.booked") if booked.print_error is None else \
            self.t("booking.booked_not_printed", reason=self.error_text(booked.print_error))
        self.failed = booked.print_error is not None
        self.add_label(self.t("booking.appointment_no", number=a.appointment_no), aid="appointment_no",
                       font_size=self.app.fs(1.6), bold=True)
        self.add_label(self.t("booking.appointment_time", day=a.date, start=a.start, end=a.end))
        self.add_label(self.t("booking.appointment_place", hall=a.hall_name))
        self.add_button(self.t("booking.cancel_booking"), "booking_cancel", self._cancel_booked)
        if booked.print_error is not None:
            self.set_action(self.t("booking.reprint"), "booking_reprint", self._reprint_slip)
        self.done_text = self.t("booking.done")
        self.app.core.speak("booking.voice.booked")

    def _cancel_booked(self) -> None:
        self.appointment = self.booked.appointment
        self._cancel()

    def _reprint_slip(self) -> None:
        self.working()
        self.flow.reprint_slip(self.booked, on_result=self._booked, on_error=self.fail)

    def show_mine(self) -> None:
        self.heading = self.t("booking.mine")
        if not self.app.core.session.citizen:
            self.failed, self.status = True, self.t("booking.error.not_identified")
            return
        self.working()
        self.flow.my_appointments(on_result=self._mine, on_error=self.fail)

    def _mine(self, appointments: list[Any]) -> None:
        self.appointments = appointments
        self.ok(self.t("booking.mine_title", count=len(appointments)) if appointments else self.t("booking.mine_none"))
        if self.step != "mine":
            return
        for i, a in enumerate(appointments):
            self.add_button(self.t("booking.mine_line", service=a.service_name, day=a.date, start=a.start,
                                   end=a.end, hall=a.hall_name, status=self.t(f"booking.status.{a.status}")),
                            f"mine_{i}", lambda a=a: self._pick_appointment(a), lines=2)

    def _pick_appointment(self, appointment: Any) -> None:
        self.appointment = appointment
        self.go_step("appointment")

    def show_appointment(self) -> None:
        a = self.appointment
        self.heading = a.service_name
        self.add_label(self.t("booking.appointment_no", number=a.appointment_no), aid="appointment_no",
                       font_size=self.app.fs(1.4), bold=True)
        self.add_label(self.t("booking.appointment_time", day=a.date, start=a.start, end=a.end))
        self.add_label(self.t("booking.appointment_place", hall=a.hall_name))
        self.add_label(self.t(f"booking.status.{a.status}"), aid="appointment_status")
        if a.status == "booked":
            self.add_button(self.t("booking.check_in"), "booking_check_in", self._check_in)
            self.set_action(self.t("booking.cancel"), "booking_cancel", self._cancel)

    def _cancel(self) -> None:
        self.working()
        self.flow.cancel(self.appointment, on_result=self._cancelled, on_error=self.fail)

    def _cancelled(self, appointment: Any) -> None:
        self.appointment = appointment
        self.busy = False
        self.go_step("appointment", remember=False)
        self.status = self.t("booking.cancelled")
        self.done_text = self.t("booking.done")

    def _check_in(self) -> None:
        self.working()
        self.flow.check_in(self.appointment, on_result=self._ticketed, on_error=self.fail)

    def _ticketed(self, ticketed: Any) -> None:
        self.ticketed = ticketed
        self.busy = False
        self._history = ["book"]
        self.go_step("ticketed", remember=False)

    def show_ticketed(self) -> None:
        ticketed, ticket = self.ticketed, self.ticketed.ticket
        self.heading = self.t("booking.ticket_taken") if ticketed.print_error is None else \
            self.t("booking.ticket_not_printed", reason=self.error_text(ticketed.print_error))
        self.failed = ticketed.print_error is not None
        self.add_label(self.t("booking.ticket_no", number=ticket.ticket_no), aid="ticket_no",
                       font_size=self.app.fs(2.2), bold=True)
        self.add_label(self.t("booking.ticket_window", queue=ticket.queue_name, windows="、".join(ticket.windows)),
                       aid="ticket_window")
        self.add_label(self.t("booking.ticket_ahead", count=ticket.waiting_before), aid="ticket_ahead")
        if not ticket.hall_open_now and ticket.next_open_at:
            self.add_label(self.t("booking.ticket_later", at=ticket.next_open_at[:16].replace("T", " ")))
        if ticketed.print_error is not None:
            self.set_action(self.t("booking.reprint"), "booking_reprint", self._reprint_ticket)
        self.done_text = self.t("booking.done")

    def _reprint_ticket(self) -> None:
        self.working()
        self.flow.reprint_ticket(self.ticketed, on_result=self._ticketed, on_error=self.fail)

    def done(self) -> None:
        """The citizen has read the outcome: rate the service (booked, cancelled or queued for)."""
        if self.step == "booked" and self.booked is not None:
            self.flow.done(self.booked.appointment.service_code, "book_appointment")
        elif self.step == "ticketed" and self.ticketed is not None:
            self.flow.done(self.ticketed.ticket.service_code, "queue_ticket")
        elif self.step == "appointment" and self.appointment is not None:
            self.flow.done(self.appointment.service_code, "cancel_appointment")
        else:
            self.app.go("menu")

    def reset(self) -> None:
        super().reset()
        self.forget()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"appointment": AppointmentScreen}
