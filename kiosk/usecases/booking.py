"""Appointments (预约) and queue tickets (取号) at the service halls, from the kiosk.

    the kiosk's hall → service (most used first) → an offered time (day + time + hall) → book (Idempotency-Key)
    → printed appointment slip → "cancel this booking" (kiosk/usecases/booking_offers.py: three taps from the menu)
    other hall / other days and times → the same, with every hall, day and slot to choose from
    my appointments → cancel
    take a queue ticket now → printed ticket (number, window, people ahead)

:class:`BookingFlow` is what screens call (``core.booking``). Every method takes ``on_result``/``on_error`` callbacks,
runs its platform calls and prints on the core's workers and answers through the core's dispatcher (the UI thread in
the shell). The blocking steps are plain functions/methods underneath (``*_now``), tested without Kivy.

An idempotency key is kept per choice in the session's scratch (wiped at session end), so a retry after a timeout or
a double tap books one appointment / issues one ticket, never two. Receipts go through the print journal
(:class:`~kiosk.usecases.printing.PrintService`).

:class:`CoreFlow` is the small base the citizen flows of this package share (booking, delivery, certificates): the
citizen's platform token (waiting for the one the card read is opening), one retry when the platform session expired,
audit, receipts printed without asking for the rating yet (the screen's "done" does, after the citizen read the
result).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from kiosk.errors import CitizenSessionExpired, InvalidSessionState, PlatformRejected
from kiosk.i18n import table
from kiosk.platform_client import Appointment, Hall, QueueTicket, ServiceSummary, Slot
from kiosk.session import RatingTarget
from kiosk.usecases.booking_offers import BookingStart, ServiceUsage, SlotOffer, earliest_offers, home_hall, offer_text

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)
T = TypeVar("T")
Callback = Callable[[Any], None] | None

#: how long the list of services each hall handles is kept (public catalogue data, no personal data)
CATALOGUE_TTL_S = 3600.0


class NotIdentified(InvalidSessionState):
    """The step needs the citizen's identity (card read first)."""

    code = "not_identified"
    translation_key = "booking.error.not_identified"


def rejection_text(ctx: "UseCaseContext", exc: BaseException, prefix: str) -> str:
    """Citizen text for an error: ``<prefix>.error.<platform code>`` when the platform refused with a code this
    feature explains (slot_full, delivery_exists, …), else the error's own translation."""
    code = getattr(exc, "platform_code", "") if isinstance(exc, PlatformRejected) else ""
    key = f"{prefix}.error.{code}"
    if code and key in table(ctx.translator.language) or code and key in table("zh_CN"):
        return ctx.translator.t(key)
    return ctx.translator.error_text(exc)


class CoreFlow:
    """What the citizen flows share: the core's workers, session, platform, print service and audit."""

    #: audit/action name prefix, e.g. "booking"
    name = "flow"

    def __init__(self, ctx: "UseCaseContext") -> None:
        self.ctx = ctx

    # --- citizen ------------------------------------------------------------------------------------------------
    @property
    def identified(self) -> bool:
        """A card was read (and, where the kiosk checks faces, the face check confirmed it)."""
        return self.ctx.session.citizen is not None and self.ctx.face_check.identity_confirmed()

    def token(self, fresh: bool = False) -> str:
        """The citizen's platform token (blocking: on a worker); ``fresh`` opens a new session (the previous
        expired). See :meth:`KioskCore.citizen_token`."""
        try:
            return self.ctx.citizen_token(fresh)
        except InvalidSessionState:
            raise NotIdentified("no identified citizen") from None

    def with_token(self, fn: Callable[[str], T]) -> T:
        """``fn(token)``; once more with a new platform session if the first one expired."""
        try:
            return fn(self.token())
        except CitizenSessionExpired:
            return fn(self.token(fresh=True))

    def key(self, *what: Any) -> str:
        """The idempotency key of one choice in this session (a retry reuses it)."""
        return self.ctx.session.data.scratch.setdefault((self.name + "_key", *what), str(uuid.uuid4()))

    # --- running ------------------------------------------------------------------------------------------------
    def run(self, action: str, fn: Callable[..., Any], *args: Any, on_result: Callback = None,
            on_error: Callback = None, service: bool = True) -> None:
        """Run ``fn(*args)`` on a worker (audited on failure); ``service`` marks the session as in service."""
        if service:
            self.ctx.session.begin_service()
        else:
            self.ctx.session.touch()
        self.ctx.run(action, fn, *args, on_result=on_result, on_error=on_error)

    def run_identified(self, action: str, fn: Callable[..., Any], *args: Any, on_result: Callback = None,
                       on_error: Callback = None) -> None:
        """As :meth:`run`, refused at once (``NotIdentified``) when no card was read."""
        if not self.identified:
            if on_error:
                self.ctx.dispatch(lambda: on_error(NotIdentified("no identified citizen")))
            return
        self.run(action, fn, *args, on_result=on_result, on_error=on_error)

    def audit(self, event: str, **fields: Any) -> None:
        """An audit entry in the current session (callers pass non-personal fields only)."""
        self.ctx.audit(event, self.ctx.session.data.id if self.ctx.session.active else None, **fields)

    def printed(self, action: str, result: Any) -> None:
        self.audit("printed", action=action, job=result.job_id, bytes=getattr(result, "bytes_sent", None),
                   paper=getattr(getattr(result, "paper", None), "value", None))
        paper = getattr(result, "paper", None)
        if paper is not None and getattr(paper, "value", "") == "low":
            self.ctx.check_health()

    def finish(self, target: RatingTarget) -> None:
        """The citizen has read the outcome: ask for a rating of it."""
        if self.ctx.session.active:
            self.ctx.complete_action(target)


# --- booking --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DaySlots:
    """One bookable day with its slots that still have places."""

    date: str
    slots: list[Slot]

    @property
    def available(self) -> int:
        return sum(s.available for s in self.slots)


@dataclass(frozen=True)
class Booked:
    """An appointment booked and its slip printed (``printed`` None if printing failed: the number is on screen)."""

    appointment: Appointment
    print_result: Any = None
    print_error: BaseException | None = None


@dataclass(frozen=True)
class Ticketed:
    ticket: QueueTicket
    print_result: Any = None
    print_error: BaseException | None = None


def group_days(slots: list[Slot]) -> list[DaySlots]:
    """Slots (oldest first) → days that still have a free place, each with its free slots."""
    days: dict[str, list[Slot]] = {}
    for slot in slots:
        if slot.available > 0:
            days.setdefault(slot.date, []).append(slot)
    return [DaySlots(d, s) for d, s in days.items()]


def appointment_view(appointment: Appointment, citizen_masked: str, query_url: str = "") -> dict[str, Any]:
    """What the slip shows (masked name only); ``query_url``: its QR, the appointment's public verify page (the
    appointment number is its last path segment, for the hall's check-in scanner)."""
    return {"number": appointment.appointment_no, "service_name": appointment.service_name,
            "hall_name": appointment.hall_name, "hall_address": appointment.hall_address,
            "date": appointment.date, "start": appointment.start, "end": appointment.end,
            "citizen_masked": citizen_masked, "query_url": query_url}


def ticket_view(ticket: QueueTicket, query_url: str = "") -> dict[str, Any]:
    """What the queue ticket template shows: number, service, hall/queue/windows, people ahead."""
    windows = "、".join(ticket.windows)
    area = ticket.queue_name + (f"（窗口 {windows}）" if windows else "")
    issued = ticket.issued_at[:16].replace("T", " ")
    return {"number": ticket.ticket_no, "service_name": ticket.service_name, "area": area,
            "waiting": ticket.waiting_before, "issued_at": issued, "query_url": query_url}


class BookingFlow(CoreFlow):
    name = "booking"

    def __init__(self, ctx: "UseCaseContext") -> None:
        super().__init__(ctx)
        self._catalogue_lock = threading.Lock()
        self._hall_services: dict[str, list[ServiceSummary]] = {}
        self._catalogue_at = -CATALOGUE_TTL_S
        data_dir = getattr(getattr(ctx.profile, "kiosk", None), "data_dir", "")
        self.usage = ServiceUsage(Path(data_dir) / "booking-usage.json" if data_dir else None)

    # --- blocking steps (workers) -------------------------------------------------------------------------------
    def halls_now(self) -> list[Hall]:
        return self.ctx.platform.halls()

    def _hall_services_now(self) -> dict[str, list[ServiceSummary]]:
        """Hall name → the services handled there (from the catalogue: a service lists its places), cached for an
        hour (~1 s to build: one request per service)."""
        with self._catalogue_lock:
            if time.monotonic() - self._catalogue_at > CATALOGUE_TTL_S:
                by_hall: dict[str, list[ServiceSummary]] = {}
                for summary in self.ctx.platform.search_services("", limit=100):
                    detail = self.ctx.platform.service_detail(summary.code)
                    for place in detail.places:
                        by_hall.setdefault(place.get("name", ""), []).append(summary)
                self._hall_services = by_hall
                self._catalogue_at = time.monotonic()
            return self._hall_services

    def services_at_now(self, hall: Hall) -> list[ServiceSummary]:
        """The services ``hall`` handles, the most booked or queued for at this kiosk first."""
        return self.usage.ordered(hall.code, self._hall_services_now().get(hall.name, []))

    def start_now(self) -> BookingStart:
        """Every hall, the kiosk's own (the profile's ``kiosk.hall``) and the services it handles."""
        halls = self.ctx.platform.halls()
        hall = home_hall(halls, getattr(self.ctx.profile.kiosk, "hall", ""))
        return BookingStart(halls, hall, self.services_at_now(hall) if hall else [])

    def days_now(self, hall: Hall, service: ServiceSummary) -> list[DaySlots]:
        return group_days(self.ctx.platform.hall_slots(hall.code, service_code=service.code))

    def offers_now(self, hall: Hall, service: ServiceSummary) -> list[SlotOffer]:
        """The earliest free times of ``service`` at ``hall`` in the next days (each books on one tap)."""
        return earliest_offers(self.ctx.platform.hall_slots(hall.code, service_code=service.code), hall)

    def offer_text(self, offer: SlotOffer) -> str:
        """An offer's button text: day, time and hall, in the citizen's language."""
        return offer_text(self.ctx.translator.t, offer)

    def book_now(self, hall: Hall, service: ServiceSummary, slot: Slot) -> Booked:
        """Book (one key per choice: a retry returns the same appointment) and print the slip."""
        key = self.key("book", hall.code, service.code, slot.date, slot.start)
        appointment = self.with_token(lambda token: self.ctx.platform.book_appointment(
            token, hall.code, service.code, dt.date.fromisoformat(slot.date), slot.start, idempotency_key=key))
        self.audit("appointment_booked", hall=hall.code, service=service.code, appointment=appointment.appointment_no)
        self.usage.record(hall.code, service.code)
        return Booked(appointment, *self._print_slip(appointment))

    def _print_slip(self, appointment: Appointment) -> tuple[Any, BaseException | None]:
        citizen = self.ctx.session.citizen
        try:
            result = self.ctx.print_service.print_receipt(
                "appointment_slip", summary=f"预约凭条 {appointment.appointment_no}",
                appointment=appointment_view(appointment, citizen.name_masked if citizen else "",
                                             self.ctx.public_urls.appointment(appointment.appointment_no)))
        except Exception as exc:  # booked all the same: the number is on screen; the citizen may print again
            log.warning("appointment slip not printed: %s", getattr(exc, "code", type(exc).__name__))
            self.ctx.check_health()
            return None, exc
        self.printed("print_appointment", result)
        return result, None

    def reprint_slip_now(self, booked: Booked) -> Booked:
        """Print the slip again after it failed (a partly printed one is reprinted through the journal, marked)."""
        failed = booked.print_error
        if failed is not None and getattr(failed, "job_id", "") and getattr(failed, "bytes_sent", 0):
            result = self.ctx.print_service.reprint(getattr(failed, "job_id"))
            self.printed("print_appointment", result)
            return Booked(booked.appointment, result, None)
        return Booked(booked.appointment, *self._print_slip(booked.appointment))

    def my_appointments_now(self) -> list[Appointment]:
        return self.with_token(self.ctx.platform.my_appointments)

    def cancel_now(self, appointment: Appointment) -> Appointment:
        cancelled = self.with_token(lambda token: self.ctx.platform.cancel_appointment(
            token, appointment.appointment_no))
        self.audit("appointment_cancelled", appointment=appointment.appointment_no)
        return cancelled

    def take_ticket_now(self, hall: Hall, service: ServiceSummary) -> Ticketed:
        """A queue ticket for now (with the citizen's identity if the card was read) and its printed slip."""
        key = self.key("ticket", hall.code, service.code)
        if self.identified:
            ticket = self.with_token(lambda token: self.ctx.platform.take_queue_ticket(
                hall.code, service.code, token, idempotency_key=key))
        else:
            ticket = self.ctx.platform.take_queue_ticket(hall.code, service.code, idempotency_key=key)
        self.audit("queue_ticket", hall=hall.code, service=service.code, ticket=ticket.ticket_no)
        self.usage.record(hall.code, service.code)
        return Ticketed(ticket, *self._print_ticket(ticket))

    def check_in_now(self, appointment: Appointment) -> Ticketed:
        """Arrived for an appointment at this hall's kiosk: the queue ticket for it."""
        key = self.key("check_in", appointment.appointment_no)
        ticket = self.with_token(lambda token: self.ctx.platform.check_in(token, appointment.appointment_no,
                                                                           idempotency_key=key))
        self.audit("queue_ticket", hall=appointment.hall_code, service=appointment.service_code,
                   ticket=ticket.ticket_no, appointment=appointment.appointment_no)
        return Ticketed(ticket, *self._print_ticket(ticket))

    def _print_ticket(self, ticket: QueueTicket) -> tuple[Any, BaseException | None]:
        url = self.ctx.public_urls.queue_ticket(ticket.id)   # the public verify page (kiosk/public_urls.py)
        try:
            result = self.ctx.print_service.print_receipt("queue_ticket", summary=f"排队取号凭条 {ticket.ticket_no}",
                                                           ticket=ticket_view(ticket, url))
        except Exception as exc:
            log.warning("queue ticket not printed: %s", getattr(exc, "code", type(exc).__name__))
            self.ctx.check_health()
            return None, exc
        self.printed("print_queue_ticket", result)
        return result, None

    def reprint_ticket_now(self, ticketed: Ticketed) -> Ticketed:
        failed = ticketed.print_error
        if failed is not None and getattr(failed, "job_id", "") and getattr(failed, "bytes_sent", 0):
            result = self.ctx.print_service.reprint(getattr(failed, "job_id"))
            self.printed("print_queue_ticket", result)
            return Ticketed(ticketed.ticket, result, None)
        return Ticketed(ticketed.ticket, *self._print_ticket(ticketed.ticket))

    # --- for screens (callbacks through the dispatcher) ---------------------------------------------------------
    def halls(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("booking_halls", self.halls_now, on_result=on_result, on_error=on_error, service=False)
        # while the citizen picks a hall, the services of every hall are loaded (if not cached)
        self.ctx.workers.submit(self._hall_services_now, on_error=lambda exc: None)

    def start(self, on_result: Callback = None, on_error: Callback = None) -> None:
        """What the appointment screen opens on (:meth:`start_now`)."""
        self.run("booking_start", self.start_now, on_result=on_result, on_error=on_error, service=False)

    def offers(self, hall: Hall, service: ServiceSummary, on_result: Callback = None,
               on_error: Callback = None) -> None:
        self.run("booking_slots", self.offers_now, hall, service, on_result=on_result, on_error=on_error)

    def services_at(self, hall: Hall, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("booking_services", self.services_at_now, hall, on_result=on_result, on_error=on_error,
                 service=False)

    def days(self, hall: Hall, service: ServiceSummary, on_result: Callback = None,
             on_error: Callback = None) -> None:
        self.run("booking_slots", self.days_now, hall, service, on_result=on_result, on_error=on_error)

    def book(self, hall: Hall, service: ServiceSummary, slot: Slot, on_result: Callback = None,
             on_error: Callback = None) -> None:
        self.run_identified("book_appointment", self.book_now, hall, service, slot, on_result=on_result,
                            on_error=on_error)

    def reprint_slip(self, booked: Booked, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("print_appointment", self.reprint_slip_now, booked, on_result=on_result, on_error=on_error)

    def my_appointments(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("my_appointments", self.my_appointments_now, on_result=on_result, on_error=on_error)

    def cancel(self, appointment: Appointment, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("cancel_appointment", self.cancel_now, appointment, on_result=on_result,
                            on_error=on_error)

    def take_ticket(self, hall: Hall, service: ServiceSummary, on_result: Callback = None,
                    on_error: Callback = None) -> None:
        self.run("queue_ticket", self.take_ticket_now, hall, service, on_result=on_result, on_error=on_error)

    def check_in(self, appointment: Appointment, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("check_in", self.check_in_now, appointment, on_result=on_result, on_error=on_error)

    def reprint_ticket(self, ticketed: Ticketed, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("print_queue_ticket", self.reprint_ticket_now, ticketed, on_result=on_result, on_error=on_error)

    def error_text(self, exc: BaseException) -> str:
        return rejection_text(self.ctx, exc, "booking")

    def done(self, service_code: str, action: str) -> None:
        """The citizen read the outcome (booked / ticket / cancelled): ask for the rating of that service."""
        self.finish(RatingTarget("service", service_code, action))
