"""Whether a hall is open now (``GET /api/v1/halls``: ``open_now``, ``next_open_at``), from its opening sessions in
China time — what a kiosk's Help button needs (kiosk/assistance.py): "staff are coming" or the hall's phone. The
answer is built by ``hall_out`` from the hall's schedule and the request's clock; here at chosen moments (the route
itself answers over HTTP in tests/kiosk/test_assistance.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from service_platform.models import Hall, Place
from service_platform.routes.halls import hall_out

CST = dt.timezone(dt.timedelta(hours=8))
#: as the seed has it for lzh-hall: Monday to Friday, 09:00–12:00 and 13:30–17:00
WEEKDAYS = {str(d): [["09:00", "12:00"], ["13:30", "17:00"]] for d in range(5)}


def lzh_hall() -> Hall:
    place = Place(code="lzh-hall", name="蚌埠市龙子湖区政务服务中心", address="解放路", hours="周一至周五",
                  phone="12345（蚌埠市政务服务便民热线）")
    return Hall(place_code=place.code, place=place, schedule=WEEKDAYS, slot_minutes=30, booking_days=7, queues=[])


@pytest.mark.parametrize("local, open_now, next_open", [
    ((2026, 11, 2, 9, 0), True, None),                          # Monday, the morning session starts
    ((2026, 11, 2, 8, 59), False, (2026, 11, 2, 9, 0)),         # a minute before
    ((2026, 11, 2, 12, 30), False, (2026, 11, 2, 13, 30)),      # lunch break
    ((2026, 11, 2, 17, 0), False, (2026, 11, 3, 9, 0)),         # closed at 17:00 sharp
    ((2026, 11, 6, 21, 0), False, (2026, 11, 9, 9, 0)),         # Friday night: the weekend
])
def test_a_hall_says_whether_it_is_open_and_when_it_opens(local, open_now, next_open):
    now = dt.datetime(*local, tzinfo=CST).astimezone(dt.timezone.utc)   # the platform's clock is UTC
    out = hall_out(lzh_hall(), now)
    assert out.open_now is open_now
    assert out.next_open_at == (dt.datetime(*next_open, tzinfo=CST) if next_open else None)
    assert out.phone, "the phone the help screen gives while it is closed"
