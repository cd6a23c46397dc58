"""Seeding the registry data of proofs (``records.yaml``: contribution spans, properties, household records) into
empty tables — demo only, each part when its table is still empty (so older demo databases get them on start)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.proof_models import ContributionSpan, HouseholdRecord, PropertyRecord


def _empty(db: Session, model: type) -> bool:
    return not db.scalar(select(func.count()).select_from(model))


def _month(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value)
    return text[:7]


def seed_records(db: Session, data: dict[str, Any]) -> int:
    """Add the parts whose tables are empty; returns the number of rows added (no commit)."""
    added = 0
    if _empty(db, ContributionSpan):
        for id_number, spans in (data.get("contributions") or {}).items():
            for i, s in enumerate(spans):
                db.add(ContributionSpan(id_number=id_number, scheme=s["scheme"], employer=s["employer"],
                                        account_no=str(s["account"]), from_month=_month(s["from"]),
                                        to_month=_month(s.get("to")), base_fen=int(s["base_fen"]),
                                        yearly_raise_permille=int(s.get("raise", 0)),
                                        personal_permille=int(s["personal"]),
                                        employer_permille=int(s["employer_share"]), position=i))
                added += 1
    if _empty(db, PropertyRecord):
        for id_number, rows in (data.get("properties") or {}).items():
            for i, p in enumerate(rows):
                db.add(PropertyRecord(id_number=id_number, cert_no=p["cert_no"], location=p["location"],
                                      area_m2=str(p["area_m2"]), usage=p["usage"], ownership=p["ownership"],
                                      registered_on=p["registered_on"], position=i))
                added += 1
    if _empty(db, HouseholdRecord):
        for id_number, h in (data.get("households") or {}).items():
            db.add(HouseholdRecord(id_number=id_number, household_no=str(h["household_no"]),
                                   household_type=h["type"], head_name=h["head"], relation=h["relation"],
                                   address=h["address"], registered_on=h["registered_on"],
                                   moved_from=h.get("moved_from"), police_station=h["station"]))
            added += 1
    return added
