"""How much each kiosk service is used across the platform: aggregate counts only, for a kiosk's elderly-mode menu
(most used services first, kiosk/elderly.py). Who may call it: any enrolled kiosk (signed request); no citizen data —
one number per feature, never a row, a person, an application or another kiosk's own figures."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service_platform.auth import require_kiosk
from service_platform.deps import get_db, get_now
from service_platform.errors import error_responses
from service_platform.models import Appointment, Application, Delivery, Kiosk, PaymentOrder, QueueTicket, Rating

router = APIRouter(prefix="/api/v1", tags=["kiosks"])


class FeatureUsage(BaseModel):
    """Counts of the last ``window_days`` days over the whole platform, per kiosk menu feature."""

    window_days: int
    features: dict[str, int] = Field(description="menu feature (apply, pay, appointment, delivery, progress, "
                                                 "guide, certificates) → how often it was used")


def _count(db: Session, column, since: dt.datetime, *where) -> int:  # type: ignore[no-untyped-def]
    return int(db.scalar(select(func.count()).where(column >= since, *where)) or 0)


@router.get("/kiosk/feature-usage", response_model=FeatureUsage, responses=error_responses(401, 422),
            summary="Platform-wide usage of each kiosk feature (aggregate counts)")
def feature_usage(days: int = Query(90, ge=1, le=366, description="window in days"),
                  _kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                  now: dt.datetime = Depends(get_now)) -> FeatureUsage:
    """Applications filed, fees paid, appointments and queue tickets, EMS deliveries, and rated progress queries,
    guide prints and certificate prints within the window, counted over all kiosks and channels. Only numbers."""
    since = now - dt.timedelta(days=days)
    rated = dict(db.execute(select(Rating.target_type, func.count()).where(Rating.created_at >= since)
                            .group_by(Rating.target_type)).all())
    certificates = _count(db, Rating.created_at, since, Rating.target_type == "kiosk_action",
                          Rating.target_id == "print_certificate")
    features = {
        "apply": _count(db, Application.submitted_at, since),
        "pay": _count(db, PaymentOrder.paid_at, since),
        "appointment": _count(db, Appointment.created_at, since) + _count(db, QueueTicket.issued_at, since),
        "delivery": _count(db, Delivery.created_at, since),
        "progress": int(rated.get("application", 0)),
        "guide": int(rated.get("service", 0)),
        "certificates": certificates,
    }
    return FeatureUsage(window_days=days, features=features)
