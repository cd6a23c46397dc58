"""Retention on the platform (README "Retention"): what a kiosk leaves behind is removed once it is of no use.

Rules (ages from the app's clock, ``app.state.clock``; defaults overridable by environment):

* **citizen sessions** ended or expired more than ``PLATFORM_SESSION_RETENTION_DAYS`` (7) days ago are deleted;
  ratings keep their stars but lose the link (``citizen_token_id`` → NULL); a session that filed an application
  (``application_filings.citizen_session_id``) is kept for the filing's provenance (how the citizen was verified)
  but its name and bearer-token hash are erased.
* **idempotency records** older than ``PLATFORM_IDEMPOTENCY_RETENTION_DAYS`` (45) days are deleted. This must stay
  longer than any kiosk may still resend a request from its outbox (the kiosk keeps unsent rows until sent; the
  platform's X-Captured-At window refuses very old captures anyway), or a late resend would be done twice.
* **uploads** (page images) never attached to an application after ``PLATFORM_UPLOAD_RETENTION_HOURS`` (24) hours
  are deleted.
* **phone upload links** expired or closed more than ``PLATFORM_PHONE_UPLOAD_RETENTION_HOURS`` (1) hour ago are
  deleted with their photos not attached to an application (ending the session deletes them at once).
* **PDFs of issued documents** (proofs, sealed e-certificates) older than ``PLATFORM_DOCUMENT_PDF_RETENTION_DAYS``
  (30) days: the bytes are dropped; code, hash and revocation stay for the public verify page.

:func:`sweep` does one pass (tests call it with a settable clock); :func:`run_periodically` is started by the app's
lifespan and sweeps every ``PLATFORM_RETENTION_INTERVAL_S`` (3600) seconds, the first time at start-up.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker as SessionMaker

from service_platform.models import (
    ApplicationFiling, CitizenSession, Feedback, IdempotencyRecord, Rating, Upload)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    session_days: float = 7.0
    idempotency_days: float = 45.0
    upload_hours: float = 24.0
    interval_s: float = 3600.0
    phone_upload_hours: float = 1.0
    document_pdf_days: float = 30.0

    @classmethod
    def from_env(cls, environ: Any = None) -> "RetentionPolicy":
        env = os.environ if environ is None else environ

        def num(name: str, default: float) -> float:
            raw = str(env.get(name, "")).strip()
            return float(raw) if raw else default

        return cls(session_days=num("PLATFORM_SESSION_RETENTION_DAYS", cls.session_days),
                   idempotency_days=num("PLATFORM_IDEMPOTENCY_RETENTION_DAYS", cls.idempotency_days),
                   upload_hours=num("PLATFORM_UPLOAD_RETENTION_HOURS", cls.upload_hours),
                   interval_s=num("PLATFORM_RETENTION_INTERVAL_S", cls.interval_s),
                   phone_upload_hours=num("PLATFORM_PHONE_UPLOAD_RETENTION_HOURS", cls.phone_upload_hours),
                   document_pdf_days=num("PLATFORM_DOCUMENT_PDF_RETENTION_DAYS", cls.document_pdf_days))


def sweep(db: Session, now: dt.datetime, policy: RetentionPolicy = RetentionPolicy()) -> dict[str, int]:
    """One retention pass in one transaction; returns how many rows each rule removed (or scrubbed)."""
    out = {"citizen_sessions": 0, "citizen_sessions_scrubbed": 0, "idempotency_records": 0, "uploads": 0}
    session_cut = now - dt.timedelta(days=policy.session_days)
    old = [sid for (sid,) in db.execute(select(CitizenSession.id).where(or_(
        CitizenSession.expires_at < session_cut,
        and_(CitizenSession.ended_at.is_not(None), CitizenSession.ended_at < session_cut))))]
    for i in range(0, len(old), 500):
        chunk = old[i:i + 500]
        filed = {sid for (sid,) in db.execute(select(ApplicationFiling.citizen_session_id).where(
            ApplicationFiling.citizen_session_id.in_(chunk)))}
        db.execute(update(Rating).where(Rating.citizen_token_id.in_(chunk)).values(citizen_token_id=None))
        # complaints and questions keep their text for the department but lose the link too; a proxy
        # application's agent session is kept through its filing (application_filings) like any other filing's
        db.execute(update(Feedback).where(Feedback.citizen_session_id.in_(chunk)).values(citizen_session_id=None))
        gone = [sid for sid in chunk if sid not in filed]
        if gone:
            out["citizen_sessions"] += db.execute(delete(CitizenSession).where(CitizenSession.id.in_(gone))).rowcount
        for sid in filed:
            res = db.execute(update(CitizenSession).where(and_(CitizenSession.id == sid, CitizenSession.name != ""))
                             .values(name="", token_hash=f"purged-{sid}"))
            out["citizen_sessions_scrubbed"] += res.rowcount
    out["idempotency_records"] = db.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.created_at < now - dt.timedelta(days=policy.idempotency_days))).rowcount
    out["uploads"] = db.execute(delete(Upload).where(and_(
        Upload.application_id.is_(None), Upload.created_at < now - dt.timedelta(hours=policy.upload_hours)))).rowcount
    out.update(_sweep_phone_uploads_and_documents(db, now, policy))
    db.commit()
    if any(out.values()):
        log.info("retention: %s", ", ".join(f"{k} {v}" for k, v in out.items() if v))
    return out


def _sweep_phone_uploads_and_documents(db: Session, now: dt.datetime, policy: RetentionPolicy) -> dict[str, int]:
    """Phone upload links expired or closed more than ``phone_upload_hours`` ago: their photos not attached to an
    application and the links themselves; the PDFs of issued documents older than ``document_pdf_days`` (their
    code, hash and revocation stay for the verify page; a reprint after that needs a new proof)."""
    from service_platform.proof_models import IssuedDocument, PhoneUploadToken
    from service_platform.routes.phone_uploads import wipe_token

    cut = now - dt.timedelta(hours=policy.phone_upload_hours)
    tokens = db.scalars(select(PhoneUploadToken).where(or_(
        PhoneUploadToken.expires_at < cut,
        and_(PhoneUploadToken.closed_at.is_not(None), PhoneUploadToken.closed_at < cut)))).all()
    photos = sum(wipe_token(db, t, now) for t in tokens)
    for t in tokens:
        db.delete(t)
    purged = db.execute(update(IssuedDocument).where(and_(
        IssuedDocument.pdf.is_not(None),
        IssuedDocument.issued_at < now - dt.timedelta(days=policy.document_pdf_days))).values(pdf=None)).rowcount
    return {"phone_upload_links": len(tokens), "phone_upload_photos": photos, "document_pdfs": purged}


def sweep_app(app: Any) -> dict[str, int]:
    """One pass with the app's database, clock and policy (``app.state.retention``)."""
    policy = getattr(app.state, "retention", None) or RetentionPolicy()
    maker: SessionMaker = app.state.sessionmaker
    clock: Callable[[], dt.datetime] = app.state.clock
    with maker() as db:
        return sweep(db, clock(), policy)


async def run_periodically(app: Any) -> None:
    """The lifespan's task: a pass at start-up, then every ``interval_s``; a failed pass is logged, never fatal."""
    policy = getattr(app.state, "retention", None) or RetentionPolicy()
    while True:
        try:
            await asyncio.to_thread(sweep_app, app)
        except Exception:  # noqa: BLE001 - the database may be away for a while; the next pass tries again
            log.exception("retention sweep failed")
        await asyncio.sleep(policy.interval_s)
