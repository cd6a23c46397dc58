"""Numbers people read (application, order, appointment, delivery, ticket and EMS waybill numbers) and opaque ids.

Application, order, appointment and delivery numbers (:func:`daily_number`) keep a shape a citizen can read out —
``SP`` + yyyymmdd (China Standard Time) + 6 RANDOM digits + 1 Luhn check digit, e.g. ``SP202611024718263`` — but
carry no sequence: knowing one number says nothing about the next (numbers looked up without a card are guessable
otherwise). The check digit catches a mistyped digit and most swapped neighbours before any lookup. A number is
drawn again while it is already used (the table's unique index is the last guard against a concurrent draw of the
same number, one chance in a million per pair created the same day). Seeded demo numbers keep their older
16-character sequential shape (``SP20261027000102``): 17 characters never collide with them.

Ticket and waybill serials still come from sequences in the ``counters`` table, incremented inside the caller's
transaction (``INSERT … ON CONFLICT DO NOTHING`` then ``UPDATE … RETURNING``).
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service_platform.db import CHINA_TZ, insert_ignore
from service_platform.models import Application, Appointment, Counter, Delivery, PaymentOrder

PREFIXES = {"application": "SP", "order": "PO", "appointment": "AP", "delivery": "DL"}
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def next_value(db: Session, name: str) -> int:
    insert_ignore(db, Counter, [{"name": name, "value": 0}])
    stmt = (update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
            .returning(Counter.value).execution_options(synchronize_session=False))
    return int(db.execute(stmt).scalar_one())


def luhn_check_digit(digits: str) -> str:
    """The Luhn (ISO/IEC 7812) check digit to append to ``digits``."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, starting with the rightmost (the check digit's left)
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def is_valid_number(number: str, kind: str | None = None) -> bool:
    """A number :func:`daily_number` makes: prefix (of ``kind``, or any), 8 + 6 digits, valid Luhn check digit."""
    prefixes = [PREFIXES[kind]] if kind else list(PREFIXES.values())
    return (len(number) == 17 and number[:2] in prefixes and number[2:].isdigit()
            and luhn_check_digit(number[2:16]) == number[16])


def _used(db: Session, kind: str, number: str) -> bool:
    column = {"application": Application.number, "order": PaymentOrder.order_no,
              "appointment": Appointment.appointment_no, "delivery": Delivery.delivery_no}[kind]
    return db.scalar(select(column).where(column == number).limit(1)) is not None


def daily_number(db: Session, kind: str, at: dt.datetime, taken: Callable[[str], bool] = lambda _n: False) -> str:
    """``SP`` + yyyymmdd (CST) + 6 random digits + Luhn check digit, not yet used (nor ``taken``)."""
    prefix = PREFIXES[kind]
    day = at.astimezone(CHINA_TZ).strftime("%Y%m%d")
    for _attempt in range(50):
        body = f"{day}{secrets.randbelow(1_000_000):06d}"
        number = f"{prefix}{body}{luhn_check_digit(body)}"
        if not taken(number) and not _used(db, kind, number):
            return number
    raise RuntimeError(f"no free {kind} number left for {day}")  # 50 collisions in a row: a million used today


def s10_check_digit(serial: str) -> str:
    """UPU S10 check digit of an 8-digit serial number."""
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS))
    check = 11 - total % 11
    return "0" if check == 10 else "5" if check == 11 else str(check)


def waybill_number(db: Session) -> str:
    """An EMS waybill number in the UPU S10 format: ``EA`` + 8 digits + check digit + ``CN``."""
    serial = f"{(20_000_000 + next_value(db, 'waybill')) % 100_000_000:08d}"
    return f"EA{serial}{s10_check_digit(serial)}CN"


def is_valid_s10(number: str) -> bool:
    return (len(number) == 13 and number[:2].isalpha() and number[11:].isalpha() and number[2:11].isdigit()
            and s10_check_digit(number[2:10]) == number[10])


def opaque_id(prefix: str) -> str:
    """``ec_`` + 24 random base32 characters: unguessable, says nothing about its owner."""
    return prefix + "_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
