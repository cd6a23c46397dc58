"""A simulated EMS carrier: tracking follows the application (posted once the result is ready, i.e. decided).

Until a real carrier interface exists, the tracking of a delivery is computed from the application's timeline and
the clock, so it moves on by itself in the demo and in tests with a settable clock.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from service_platform.models import Application

POSTED_AFTER = dt.timedelta(hours=2)
IN_TRANSIT_AFTER = dt.timedelta(hours=6)
OUT_FOR_DELIVERY_AFTER = dt.timedelta(hours=24)
DELIVERED_AFTER = dt.timedelta(hours=30)


@dataclass(frozen=True)
class Track:
    status: str
    at: dt.datetime
    note: str


def tracking(app: Application, created_at: dt.datetime, city: str, now: dt.datetime) -> list[Track]:
    ready = next((e.at for e in app.events if e.status in ("decided", "delivered")), None)
    events = [Track("awaiting_item", created_at, "已登记寄送信息，" + ("等待交寄" if ready else "办结后交寄"))]
    if ready is None:
        return events
    ready = max(ready, created_at)
    delivered = next((e.at for e in app.events if e.status == "delivered"), None)
    if delivered is not None and delivered > ready + IN_TRANSIT_AFTER:
        steps = [("posted", ready + POSTED_AFTER), ("in_transit", ready + IN_TRANSIT_AFTER),
                 ("out_for_delivery", delivered - dt.timedelta(hours=4)), ("delivered", delivered)]
    else:
        steps = [("posted", ready + POSTED_AFTER), ("in_transit", ready + IN_TRANSIT_AFTER),
                 ("out_for_delivery", ready + OUT_FOR_DELIVERY_AFTER), ("delivered", ready + DELIVERED_AFTER)]
    notes = {"posted": "邮政EMS已收寄", "in_transit": "运输中", "out_for_delivery": f"{city}投递员正在派送",
             "delivered": "已签收"}
    events += [Track(status, at, notes[status]) for status, at in steps if at <= now]
    return events
