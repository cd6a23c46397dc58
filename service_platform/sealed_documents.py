"""Issuing sealed documents: a proof or the PDF of an e-certificate is drawn with a fresh verification code and
the QR of its public verify page, signed with the issuing department's seal (seal.py), and stored with its hash
(proof_models.IssuedDocument) so that every later fetch hands out the same bytes and the verify page can vouch for
them; revocation marks the row."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service_platform.ecert_pdf import CertDocument, PdfUnavailable, render_for_seal
from service_platform.errors import ApiError
from service_platform.proof_models import IssuedDocument
from service_platform.proof_pdf import DrawnPdf, render_proof
from service_platform.proofs import ProofContent
from service_platform.seal import SealKeeper, SealUnavailable, seal_image
from service_platform.verification_codes import new_code

#: public pages, relative to the platform's PUBLIC base URL (kiosk/config hands them to kiosks)
VERIFY_PATHS = {"document": "/verify/d/{code}", "application": "/verify/a/{number}", "payment": "/verify/p/{order_no}",
                "queue_ticket": "/verify/t/{ticket_id}", "appointment": "/verify/m/{appointment_no}",
                "feedback": "/verify/f/{reference}",
                "guide": "/guides/{service_code}", "cashier": "/cashier/{order_no}"}


def public_url(base: str, kind: str, **values: str) -> str:
    path = VERIFY_PATHS[kind].format(**{k: quote(str(v), safe="") for k, v in values.items()})
    return base.rstrip("/") + path


@lru_cache(maxsize=64)
def _seal_png(department: str) -> bytes:
    return seal_image(department)


def _unique_code(db: Session) -> str:
    while True:
        code = new_code()
        if db.get(IssuedDocument, code) is None:
            return code


def _seal(keeper: SealKeeper, drawn: DrawnPdf, department: str) -> tuple[bytes, str]:
    try:
        sealed = keeper.sign(drawn.data, department, box=drawn.seal_box, page=-1, seal_png=_seal_png(department))
    except SealUnavailable as exc:
        raise ApiError(503, "seal_unavailable", str(exc)) from exc
    return sealed.data, sealed.sha256


def issue_proof(db: Session, keeper: SealKeeper, content: ProofContent, *, public_base: str, now: dt.datetime,
                kiosk_id: str | None) -> IssuedDocument:
    """Draw, seal and store one proof (added to ``db``, not committed)."""
    code = _unique_code(db)
    verify = public_url(public_base, "document", code=code)
    try:
        drawn = render_proof(content, code, verify, public_base.rstrip("/") + "/verify")
    except PdfUnavailable as exc:
        raise ApiError(503, "pdf_unavailable", str(exc)) from exc
    data, digest = _seal(keeper, drawn, content.proof.issuer)
    row = IssuedDocument(code=code, kind="proof", type_code=content.proof.code, type_name=content.proof.name,
                         issuer=content.proof.issuer, holder_id_number=content.id_number,
                         holder_name=content.holder_name, period_from=content.period_from,
                         period_to=content.period_to, has_records=content.has_records, pages=drawn.pages,
                         sha256=digest, size_bytes=len(data), pdf=data, kiosk_id=kiosk_id, issued_at=now)
    db.add(row)
    return row


def ecert_document(db: Session, keeper: SealKeeper, doc: CertDocument, *, holder_id_number: str, type_code: str,
                   public_base: str, now: dt.datetime, kiosk_id: str | None) -> IssuedDocument:
    """The sealed PDF of an e-certificate's current content: made once (per certificate and content), then the
    same bytes every time. Commits."""
    digest = doc.digest()
    existing = db.scalar(select(IssuedDocument).where(IssuedDocument.source_id == doc.cert_id,
                                                      IssuedDocument.content_digest == digest))
    if existing is not None:
        return existing
    code = _unique_code(db)
    try:
        drawn = render_for_seal(doc, code, public_url(public_base, "document", code=code))
    except PdfUnavailable as exc:
        raise ApiError(503, "pdf_unavailable", str(exc)) from exc
    data, sha = _seal(keeper, drawn, doc.issuer)
    row = IssuedDocument(code=code, kind="e_certificate", type_code=type_code, type_name=doc.type_name,
                         issuer=doc.issuer, holder_id_number=holder_id_number, holder_name=doc.holder_name,
                         source_id=doc.cert_id, content_digest=digest, pages=1, sha256=sha, size_bytes=len(data),
                         pdf=data, kiosk_id=kiosk_id, issued_at=now)
    db.add(row)
    try:
        db.commit()
    except IntegrityError:  # a concurrent fetch made it first: hand out that one
        db.rollback()
        existing = db.scalar(select(IssuedDocument).where(IssuedDocument.source_id == doc.cert_id,
                                                          IssuedDocument.content_digest == digest))
        if existing is None:
            raise
        return existing
    return row


def pdf_bytes(db: Session, row: IssuedDocument) -> bytes:
    data = db.scalar(select(IssuedDocument.pdf).where(IssuedDocument.code == row.code))
    if data is None:
        raise ApiError(410, "document_purged", "this document's PDF is no longer kept; issue a new one")
    return data


def revoke(db: Session, code: str, reason: str, by: str, now: dt.datetime) -> IssuedDocument | None:
    """Mark the document revoked (idempotent: a second revocation keeps the first's time and reason)."""
    row = db.get(IssuedDocument, code)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at, row.revoke_reason, row.revoked_by = now, reason, by
    db.commit()
    return row
