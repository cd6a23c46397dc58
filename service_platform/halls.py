"""Opening hours of halls: appointment slots per day, the queue that serves a service, the day a ticket is for."""
from __future__ import annotations

import datetime as dt

from service_platform.db import CHINA_TZ
from service_platform.models import Hall, HallQueue, Service

LOOKAHEAD_DAYS = 14


def at_local(day: dt.date, hhmm: str) -> dt.datetime:
    hh, mm = (int(x) for x in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=CHINA_TZ)


def sessions_on(hall: Hall, day: dt.date) -> list[tuple[str, str]]:
    return [(a, b) for a, b in (hall.schedule or {}).get(str(day.weekday()), [])]


def slots_on(hall: Hall, day: dt.date) -> list[tuple[str, str]]:
    """(start, end) of every slot of ``day`` (each opening session cut into slot_minutes; a short rest is dropped)."""
    out = []
    step = dt.timedelta(minutes=hall.slot_minutes)
    for start, end in sessions_on(hall, day):
        t, close = at_local(day, start), at_local(day, end)
        while t + step <= close:
            out.append((t.strftime("%H:%M"), (t + step).strftime("%H:%M")))
            t += step
    return out


def serves(hall: Hall, service: Service) -> bool:
    return any(link.place_code == hall.place_code for link in service.place_links)


def queue_for(hall: Hall, service: Service) -> HallQueue | None:
    """The queue for the service (by code) or its department, else the hall's general queue (None: not handled
    here)."""
    if not serves(hall, service):
        return None
    general = None
    for queue in hall.queues:
        if service.code in (queue.departments or []):
            return queue
    for queue in hall.queues:
        if service.department in (queue.departments or []):
            return queue
        if not queue.departments and general is None:
            general = queue
    return general


def service_day(hall: Hall, now: dt.datetime) -> tuple[dt.date, bool, dt.datetime | None]:
    """(the day a ticket taken now is for, whether the hall is open now, when it next opens if not)."""
    local = now.astimezone(CHINA_TZ)
    today = local.date()
    for start, end in sessions_on(hall, today):
        if at_local(today, start) <= local < at_local(today, end):
            return today, True, None
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        for start, _end in sessions_on(hall, day):
            opens = at_local(day, start)
            if opens > local:
                return day, False, opens
    return today, False, None
