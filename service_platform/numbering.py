"""Numbers people read (application, order, appointment, delivery, ticket and EMS waybill numbers) and opaque ids.

Sequences live in the ``counters`` table and are incremented inside the caller's transaction (``INSERT … ON CONFLICT
DO NOTHING`` then ``UPDATE … RETURNING``), so concurrent creators never get the same number and a rolled-back
request gives its number back. Numbers are per day in China Standard Time: ``SP20261102000001``.
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from service_platform.db import CHINA_TZ, insert_ignore
from service_platform.models import Counter

PREFIXES = {"application": "SP", "order": "PO", "appointment": "AP", "delivery": "DL"}
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def next_value(db: Session, name: str) -> int:
    insert_ignore(db, Counter, [{"name": name, "value": 0}])
    stmt = (update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
            .returning(Counter.value).execution_options(synchronize_session=False))
    return int(db.execute(stmt).scalar_one())


def daily_number(db: Session, kind: str, at: dt.datetime, taken: Callable[[str], bool] = lambda _n: False) -> str:
    """``SP`` + yyyymmdd (CST) + 6 digits; numbers for which ``taken`` is true (e.g. seeded ones) are skipped."""
    day = at.astimezone(CHINA_TZ).strftime("%Y%m%d")
    prefix = PREFIXES[kind] + day
    while True:
        number = f"{prefix}{next_value(db, f'{kind}:{day}') % 1_000_000:06d}"
        if not taken(number):
            return number


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
