"""Halls: appointments (预约) in slots of a day, and queue tickets (取号) with numbers per hall, queue and day.

A slot's bookings only grow through a conditional ``UPDATE … SET booked = booked + 1 WHERE booked < capacity``, so
concurrent bookings never overfill it (on SQLite and PostgreSQL alike).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from service_platform.auth import (
    CitizenWriter, citizen_bearer, citizen_writer, optional_citizen_request, require_citizen, require_kiosk,
    require_live_if_any)
from service_platform.db import CHINA_TZ, insert_ignore
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.levels import ANY, level_dependency, level_extra
from service_platform.halls import at_local, queue_for, service_day, slots_on
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.models import (
    Appointment, AppointmentSlot, CitizenSession, Hall, HallQueue, Kiosk, QueueTicket, Service)
from service_platform.numbering import daily_number, next_value, opaque_id
from service_platform.routes.applications import local
from service_platform.schemas import (
    AppointmentCreate, AppointmentList, AppointmentOut, HallList, HallOut, HallQueueOut, IsoDate, QueueTicketCreate,
    QueueTicketOut, SlotDay, SlotList, SlotOut)

router = APIRouter(prefix="/api/v1", tags=["halls, appointments and queue"])

CHECK_IN_EARLY = dt.timedelta(minutes=60)


def hall_out(hall: Hall, now: dt.datetime) -> HallOut:
    p = hall.place
    _day, open_now, next_open = service_day(hall, now)
    return HallOut(code=p.code, name=p.name, address=p.address, hours=p.hours, phone=p.phone,
                   slot_minutes=hall.slot_minutes, booking_days=hall.booking_days,
                   queues=[HallQueueOut(prefix=q.prefix, name=q.name, windows=list(q.windows)) for q in hall.queues],
                   open_now=open_now, next_open_at=next_open)


def get_hall(db: Session, code: str) -> Hall:
    hall = db.get(Hall, code)
    if hall is None:
        raise not_found(f"hall {code!r}")
    return hall


def get_service(db: Session, code: str) -> Service:
    service = db.scalar(select(Service).where(Service.code == code).options(selectinload(Service.place_links)))
    if service is None:
        raise not_found(f"service {code!r}")
    return service


def _queue(hall: Hall, service: Service) -> HallQueue:
    queue = queue_for(hall, service)
    if queue is None:
        raise ApiError(422, "service_not_at_hall", f"{service.name} is not handled at {hall.place.name}")
    return queue


def booking_window(hall: Hall, now: dt.datetime) -> list[dt.date]:
    today = now.astimezone(CHINA_TZ).date()
    return [today + dt.timedelta(days=i) for i in range(hall.booking_days + 1)]


def appointment_out(a: Appointment) -> AppointmentOut:
    return AppointmentOut(
        appointment_no=a.appointment_no, hall_code=a.place_code, hall_name=a.hall.place.name,
        hall_address=a.hall.place.address, service_code=a.service_code, service_name=a.service.name, date=a.day,
        start=a.start_time, end=a.end_time, starts_at=at_local(a.day, a.start_time),
        status=a.status, created_at=local(a.created_at), ticket_id=a.ticket_id)  # type: ignore[arg-type]


def ticket_out(db: Session, t: QueueTicket, now: dt.datetime) -> QueueTicketOut:
    waiting = db.scalars(select(QueueTicket.seq).where(
        QueueTicket.place_code == t.place_code, QueueTicket.prefix == t.prefix, QueueTicket.day == t.day,
        QueueTicket.status == "waiting", QueueTicket.seq < t.seq)).all()
    _day, open_now, next_open = service_day(t.hall, now)
    return QueueTicketOut(
        id=t.id, ticket_no=t.ticket_no, hall_code=t.place_code, hall_name=t.hall.place.name,
        queue_name=t.queue_name, windows=list(t.windows), service_code=t.service_code, service_name=t.service.name,
        service_date=t.day, waiting_before=len(waiting), appointment_no=t.appointment_no,
        status=t.status, issued_at=local(t.issued_at), hall_open_now=open_now,  # type: ignore[arg-type]
        next_open_at=next_open)


def issue_ticket(db: Session, hall: Hall, service: Service, *, kiosk_id: str, id_number: str | None,
                 appointment_no: str | None, now: dt.datetime) -> QueueTicket:
    queue = _queue(hall, service)
    day, _open, _next = service_day(hall, now)
    seq = next_value(db, f"ticket:{hall.place_code}:{queue.prefix}:{day:%Y%m%d}")
    ticket = QueueTicket(id=opaque_id("qt"), ticket_no=f"{queue.prefix}{seq % 1000:03d}", place_code=hall.place_code,
                         prefix=queue.prefix, queue_name=queue.name, windows=list(queue.windows), day=day, seq=seq,
                         service_code=service.code, citizen_id_number=id_number, appointment_no=appointment_no,
                         kiosk_id=kiosk_id, status="waiting", issued_at=now)
    ticket.hall, ticket.service = hall, service
    db.add(ticket)
    return ticket


# --- halls and slots -----------------------------------------------------------------------------------------------

@router.get("/halls", response_model=HallList, summary="Service halls with their queues and whether each is open now")
def list_halls(db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> HallList:
    return HallList(items=[hall_out(h, now) for h in db.scalars(select(Hall).order_by(Hall.position)).all()])


@router.get("/halls/{code}/slots", response_model=SlotList, responses=error_responses(404, 422),
            summary="Appointment slots of a hall with free places")
def list_slots(code: str = Path(max_length=40), db: Session = Depends(get_db), now: dt.datetime = Depends(get_now),
               date: Annotated[IsoDate | None, Query(description="One day (default: every bookable day)")] = None,
               service_code: str | None = Query(default=None, max_length=60,
                                                description="Only if the hall handles this service (else 422)"),
               ) -> SlotList:
    """Bookable days run from today to ``booking_days`` ahead; slots that have started are not listed; closed days
    have no slots. 422 ``date_out_of_range`` for a day outside the window."""
    hall = get_hall(db, code)
    if service_code:
        _queue(hall, get_service(db, service_code))
    days = booking_window(hall, now)
    if date is not None:
        if date not in days:
            raise ApiError(422, "date_out_of_range", f"appointments can be booked for {days[0]} to {days[-1]}")
        days = [date]
    booked = {(s.day, s.start): s.booked for s in db.scalars(select(AppointmentSlot).where(
        AppointmentSlot.place_code == code, AppointmentSlot.day.in_(days))).all()}
    out = []
    for day in days:
        slots = [SlotOut(start=start, end=end, starts_at=at_local(day, start), capacity=hall.slot_capacity,
                         available=max(hall.slot_capacity - booked.get((day, start), 0), 0))
                 for start, end in slots_on(hall, day) if at_local(day, start) > now]
        out.append(SlotDay(date=day, slots=slots))
    return SlotList(hall_code=code, service_code=service_code, days=out)


# --- appointments --------------------------------------------------------------------------------------------------

@router.post("/me/appointments", response_model=AppointmentOut, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422), summary="Book an appointment",
             dependencies=[level_dependency(*ANY)],
             openapi_extra=level_extra(*ANY))
def book(body: AppointmentCreate, kiosk: Kiosk = Depends(require_kiosk),
         writer: CitizenWriter = Depends(citizen_writer), idempotency_key: str = Depends(require_idempotency_key),
         db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """422 ``slot_unavailable`` (no such slot, past, or outside the booking window), ``service_not_at_hall``;
    409 ``slot_full``, ``appointment_exists`` (one booked appointment per citizen, service and day)."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        hall = get_hall(db, body.hall_code)
        service = get_service(db, body.service_code)
        _queue(hall, service)
        slot = dict(slots_on(hall, body.date))
        bookable = body.date in booking_window(hall, now) and body.start in slot
        if not bookable or at_local(body.date, body.start) <= now:  # now, even for a request from an outbox
            raise ApiError(422, "slot_unavailable", "no bookable slot at that time")
        existing = db.scalar(select(Appointment.appointment_no).where(
            Appointment.citizen_id_number == writer.id_number, Appointment.service_code == service.code,
            Appointment.day == body.date, Appointment.status == "booked"))
        if existing:
            raise ApiError(409, "appointment_exists", "you already have an appointment for this service that day",
                           details={"appointment_no": existing})
        insert_ignore(db, AppointmentSlot, [{"place_code": hall.place_code, "day": body.date, "start": body.start,
                                             "capacity": hall.slot_capacity, "booked": 0}])
        taken = db.execute(update(AppointmentSlot).where(
            AppointmentSlot.place_code == hall.place_code, AppointmentSlot.day == body.date,
            AppointmentSlot.start == body.start, AppointmentSlot.booked < AppointmentSlot.capacity)
            .values(booked=AppointmentSlot.booked + 1).execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            raise ApiError(409, "slot_full", "this slot is fully booked")
        appointment = Appointment(
            appointment_no=daily_number(db, "appointment", at), citizen_id_number=writer.id_number,
            citizen_name=writer.session.name, place_code=hall.place_code, service_code=service.code, day=body.date,
            start_time=body.start, end_time=slot[body.start], status="booked", kiosk_id=kiosk.id, created_at=at)
        appointment.hall, appointment.service = hall, service
        db.add(appointment)
        db.flush()
        return 201, appointment_out(appointment).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/appointments", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/me/appointments", response_model=AppointmentList, responses=error_responses(401, 403),
            summary="The citizen's appointments", dependencies=[level_dependency(*ANY)],
            openapi_extra=level_extra(*ANY))
def my_appointments(citizen: CitizenSession = Depends(require_citizen),
                    db: Session = Depends(get_db)) -> AppointmentList:
    """Newest first, cancelled ones included."""
    items = db.scalars(select(Appointment).where(Appointment.citizen_id_number == citizen.id_number)
                       .order_by(Appointment.id.desc())).all()
    return AppointmentList(items=[appointment_out(a) for a in items])


def _my_appointment(db: Session, id_number: str, number: str, *, for_update: bool = False) -> Appointment:
    stmt = select(Appointment).where(Appointment.appointment_no == number)
    if for_update:
        stmt = stmt.with_for_update(of=Appointment)
    appointment = db.scalar(stmt)
    if appointment is None or appointment.citizen_id_number != id_number:
        raise not_found(f"appointment {number!r}")
    return appointment


@router.post("/me/appointments/{appointment_no}/cancel", response_model=AppointmentOut,
             responses=error_responses(401, 403, 404, 409), summary="Cancel an appointment",
             dependencies=[level_dependency(*ANY)],
             openapi_extra=level_extra(*ANY))
def cancel_appointment(appointment_no: str = Path(max_length=24), citizen: CitizenSession = Depends(require_citizen),
                       db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> AppointmentOut:
    """Frees the place in the slot. Safe to repeat (a cancelled appointment is returned unchanged). 409
    ``too_late`` once the slot has started, ``already_checked_in``."""
    appointment = _my_appointment(db, citizen.id_number, appointment_no, for_update=True)
    if appointment.status == "checked_in":
        raise ApiError(409, "already_checked_in", "this appointment was already used")
    if appointment.status == "booked":
        if at_local(appointment.day, appointment.start_time) <= now:
            raise ApiError(409, "too_late", "the appointment has already started")
        appointment.status, appointment.cancelled_at = "cancelled", now
        db.execute(update(AppointmentSlot).where(
            AppointmentSlot.place_code == appointment.place_code, AppointmentSlot.day == appointment.day,
            AppointmentSlot.start == appointment.start_time, AppointmentSlot.booked > 0)
            .values(booked=AppointmentSlot.booked - 1).execution_options(synchronize_session=False))
        db.commit()
    return appointment_out(appointment)


@router.post("/me/appointments/{appointment_no}/check-in", response_model=QueueTicketOut, status_code=201,
             responses=error_responses(401, 403, 404, 409), summary="Check in for an appointment: a queue ticket",
             dependencies=[level_dependency(*ANY)],
             openapi_extra=level_extra(*ANY))
def check_in(appointment_no: str = Path(max_length=24), kiosk: Kiosk = Depends(require_kiosk),
             writer: CitizenWriter = Depends(citizen_writer), idempotency_key: str = Depends(require_idempotency_key),
             db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """From 60 minutes before the slot until its end (409 ``not_check_in_time``); 409 ``appointment_cancelled``,
    ``already_checked_in`` (a repeat with the same Idempotency-Key returns the ticket)."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "appointment_no": appointment_no}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        appointment = _my_appointment(db, writer.id_number, appointment_no, for_update=True)
        if appointment.status == "cancelled":
            raise ApiError(409, "appointment_cancelled", "this appointment was cancelled")
        if appointment.status == "checked_in":
            raise ApiError(409, "already_checked_in", "this appointment was already used",
                           details={"ticket_id": appointment.ticket_id})
        start = at_local(appointment.day, appointment.start_time)
        if not start - CHECK_IN_EARLY <= at < at_local(appointment.day, appointment.end_time):
            raise ApiError(409, "not_check_in_time", f"check in between {(start - CHECK_IN_EARLY):%H:%M} and "
                                                     f"{appointment.end_time} on {appointment.day}")
        ticket = issue_ticket(db, appointment.hall, appointment.service, kiosk_id=kiosk.id,
                              id_number=writer.id_number, appointment_no=appointment.appointment_no, now=at)
        appointment.status, appointment.ticket_id = "checked_in", ticket.id
        db.flush()
        return 201, ticket_out(db, ticket, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/appointments/{appointment_no}/check-in", key=idempotency_key,
                          payload=payload, now=now, create=create).response()


# --- queue tickets -------------------------------------------------------------------------------------------------

@router.post("/queue-tickets", response_model=QueueTicketOut, status_code=201,
             responses=error_responses(401, 404, 409, 422), summary="Take a queue ticket (取号)",
             openapi_extra={"x-citizen-session": "optional"})
def take_ticket(body: QueueTicketCreate, kiosk: Kiosk = Depends(require_kiosk),
                idempotency_key: str = Depends(require_idempotency_key),
                creds: HTTPAuthorizationCredentials | None = Depends(citizen_bearer),
                db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """With or without an identified citizen. Numbers run per hall, queue and day (A001, A002, …). When the hall
    has closed for today the ticket is for its next opening day (``service_date``, ``next_open_at``)."""
    citizen, payload = optional_citizen_request(db, kiosk, creds, body)

    def create() -> tuple[int, dict]:
        require_live_if_any(citizen, now)
        hall = get_hall(db, body.hall_code)
        service = get_service(db, body.service_code)
        ticket = issue_ticket(db, hall, service, kiosk_id=kiosk.id,
                              id_number=citizen.id_number if citizen else None, appointment_no=None, now=now)
        db.flush()
        return 201, ticket_out(db, ticket, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/queue-tickets", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/queue-tickets/{ticket_id}", response_model=QueueTicketOut, responses=error_responses(404),
            summary="A ticket's place in the queue (the link on the slip)")
def get_ticket(ticket_id: str = Path(max_length=40), db: Session = Depends(get_db),
               now: dt.datetime = Depends(get_now)) -> QueueTicketOut:
    """Public by its unguessable id; shows no personal data."""
    ticket = db.get(QueueTicket, ticket_id)
    if ticket is None:
        raise not_found(f"queue ticket {ticket_id!r}")
    return ticket_out(db, ticket, now)
