"""Complaints and consultations (投诉/咨询) seen from outside: the public state of a reference for the verification
page ``/verify/f/{reference}`` (routes/verify.py looks for :func:`public_status`). The routes are in
``routes/feedback.py`` (reference format documented there)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.db import CHINA_TZ
from service_platform.models import Feedback

KIND_TEXT = {"complaint": "投诉 Complaint", "consultation": "咨询 Question"}
STATUS_TEXT = {"received": "已收到 Received", "in_progress": "办理中 Being handled", "answered": "已答复 Answered",
               "closed": "已办结 Closed"}


def public_status(db: Session, reference: str) -> dict[str, str] | None:
    """Label → value for a known reference (kind, state, dates — never the text, reply, service, kiosk or person);
    None for an unknown one."""
    item = db.scalar(select(Feedback).where(Feedback.reference == reference.strip().upper()))
    if item is None:
        return None
    return {"编号 Reference": item.reference, "类型 Kind": KIND_TEXT.get(item.kind, item.kind),
            "状态 Status": STATUS_TEXT.get(item.status, item.status),
            "提交时间 Filed": item.created_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
            "更新时间 Updated": item.updated_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")}
