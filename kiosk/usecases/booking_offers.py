"""Booking in three taps from the menu: the kiosk's own hall first, its services most used first, then the earliest
free times as offers that book on tap.

    menu → appointment (services of the kiosk's hall, most used first) → a service → an offer (day + time + hall)
    = booked, slip printed; "cancel this booking" on the result page

No choice is lost: "other hall" picks any hall, "other days and times" lists every free slot, "my appointments" and
"take a queue number" stay one tap away (screens/appointment.py).

* :func:`home_hall` — the hall of the profile's ``kiosk.hall`` (the hall whose staff answer this kiosk's help button),
  None when the profile names none or the platform does not know it (the citizen picks a hall then).
* :func:`earliest_offers` — the first free slots of the next days that have any.
* :class:`ServiceUsage` — how often each service was booked or queued for at this kiosk, per hall (counts only: a
  service code and a number, nothing of a person), kept in ``data_dir/booking-usage.json`` across restarts.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kiosk.elderly import order_by_usage
from kiosk.platform_client import Hall, ServiceSummary, Slot

log = logging.getLogger(__name__)

#: the offers shown after a service: the first OFFERS_PER_DAY free slots of each of the next OFFER_DAYS days
OFFER_DAYS = 3
OFFERS_PER_DAY = 1
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SlotOffer:
    """A free time offered as one button: tapping it books ``slot`` at ``hall``."""

    hall: Hall
    slot: Slot


@dataclass(frozen=True)
class BookingStart:
    """What the appointment screen opens on: every hall, the kiosk's own (None: the citizen picks one) and the
    services it handles, most used first."""

    halls: list[Hall]
    hall: Hall | None
    services: list[ServiceSummary]


def home_hall(halls: Sequence[Hall], code: str) -> Hall | None:
    """The hall whose place code is ``code`` (the profile's ``kiosk.hall``), None if there is none."""
    return next((h for h in halls if code and h.code == code), None)


def earliest_offers(slots: Sequence[Slot], hall: Hall, days: int = OFFER_DAYS,
                    per_day: int = OFFERS_PER_DAY) -> list[SlotOffer]:
    """The first ``per_day`` free slots of each of the first ``days`` days that have a free place (``slots`` oldest
    first, as the platform lists them)."""
    offers: list[SlotOffer] = []
    taken: dict[str, int] = {}
    for slot in slots:
        if slot.available <= 0:
            continue
        if slot.date not in taken:
            if len(taken) >= days:
                break
            taken[slot.date] = 0
        if taken[slot.date] < per_day:
            taken[slot.date] += 1
            offers.append(SlotOffer(hall, slot))
    return offers


def offer_text(t: Callable[..., str], offer: SlotOffer) -> str:
    """An offer's button text in the citizen's language (``t``: the translator's ``t``): day, time and hall."""
    slot = offer.slot
    day = dt.date.fromisoformat(slot.date)
    date = t("booking.offer_date", month=t(f"booking.month.m{day.month}"), day=day.day)
    return t("booking.offer_line", date=date, weekday=t(f"booking.weekday.{WEEKDAYS[day.weekday()]}"),
             start=slot.start, end=slot.end, hall=offer.hall.name)


class ServiceUsage:
    """Bookings and queue tickets per hall and service at this kiosk (counts only), saved as JSON.

    A missing or unreadable file starts from nothing; a failed write is logged and the counts kept in memory (an
    ordering hint is never worth refusing a booking for)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = self._load()

    def _load(self) -> dict[str, dict[str, int]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return {str(hall): {str(s): int(n) for s, n in services.items()}
                    for hall, services in data.items() if isinstance(services, dict)}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("booking usage counts not read: %s", type(exc).__name__)
            return {}

    def counts(self, hall_code: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(hall_code, {}))

    def record(self, hall_code: str, service_code: str) -> None:
        """One more booking or ticket for ``service_code`` at ``hall_code``."""
        with self._lock:
            hall = self._counts.setdefault(hall_code, {})
            hall[service_code] = hall.get(service_code, 0) + 1
            snapshot = json.dumps(self._counts, sort_keys=True)
        self._save(snapshot)

    def _save(self, text: str) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, "utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("booking usage counts not saved: %s", type(exc).__name__)

    def ordered(self, hall_code: str, services: Sequence[ServiceSummary]) -> list[ServiceSummary]:
        """``services`` most used at ``hall_code`` first (ties keep the catalogue's order)."""
        return order_by_usage(services, self.counts(hall_code), key=lambda s: s.code)
