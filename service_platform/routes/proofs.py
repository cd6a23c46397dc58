"""Proofs on demand (打印证明) for the identified citizen, the kiosk's configuration (public URLs for printed QR codes)
and the revocation of issued documents by the issuing department's staff. Contract: docs/protocols/proofs.md."""
from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path as FsPath

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from service_platform.auth import require_citizen, require_kiosk
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.identity import mask_name
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.models import CitizenSession, Kiosk, StaffMember
from service_platform.proof_models import IssuedDocument
from service_platform.proof_schemas import (
    IssuedProofList, IssuedProofOut, KioskConfig, ProofIssue, ProofTypeList, ProofTypeOut, RevokeIn, VerifyUrls)
from service_platform.proofs import PROOF_TYPES, availability, build, resolve_period
from service_platform.routes.applications import local
from service_platform.routes.staff import require_staff
from service_platform.sealed_documents import VERIFY_PATHS, issue_proof, pdf_bytes, public_url, revoke
from service_platform.verification_codes import normalize

router = APIRouter(prefix="/api/v1", tags=["proofs"])

_PDF = {200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The sealed PDF (PAdES signature of the issuing department); header X-Document-SHA256"}}
_PNG = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
              "description": "One page as PNG (about 800 px wide)"}}
_CODE = Path(max_length=40, description="Verification code, XXXX-XXXX-XXXX-XXXX")


def public_base(request: Request) -> str:
    """The platform's PUBLIC base URL (serve --public-url / env PLATFORM_PUBLIC_URL), else the one the request
    came to."""
    return (getattr(request.app.state, "public_base_url", None) or str(request.base_url)).rstrip("/")


def proof_out(row: IssuedDocument, base: str) -> IssuedProofOut:
    return IssuedProofOut(
        code=row.code, type=row.type_code, name=row.type_name, issuer=row.issuer,
        holder_name_masked=mask_name(row.holder_name), issued_at=local(row.issued_at), period_from=row.period_from,
        period_to=row.period_to, pages=row.pages, sha256=row.sha256, size_bytes=row.size_bytes,
        status="revoked" if row.revoked_at else "valid", has_records=row.has_records,
        verify_url=public_url(base, "document", code=row.code), pdf_url=f"/api/v1/me/proofs/{row.code}/pdf",
        preview_url=f"/api/v1/me/proofs/{row.code}/preview?page=1")


def my_proof(db: Session, citizen: CitizenSession, code: str) -> IssuedDocument:
    """The citizen's issued proof; someone else's (or a malformed code) is reported like a missing one."""
    canonical = normalize(code)
    row = db.get(IssuedDocument, canonical) if canonical else None
    if row is None or row.kind != "proof" or row.holder_id_number != citizen.id_number:
        raise not_found("proof")
    return row


@router.get("/kiosk/config", response_model=KioskConfig, responses=error_responses(401, 403),
            summary="The kiosk's configuration from the platform: public URLs for printed QR codes")
def kiosk_config(request: Request, _kiosk: Kiosk = Depends(require_kiosk)) -> KioskConfig:
    """Every QR a kiosk prints points at the platform's PUBLIC base URL (a phone must be able to open it), which
    is not the kiosk's internal API URL: build them from these templates."""
    base = public_base(request)
    return KioskConfig(public_base_url=base,
                       verify_urls=VerifyUrls(**{k: base + v for k, v in VERIFY_PATHS.items()}))


@router.get("/me/proofs", response_model=ProofTypeList, responses=error_responses(401, 403),
            summary="The proofs this citizen can print, with the period choice where it applies",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def list_proofs(citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
                now: dt.datetime = Depends(get_now)) -> ProofTypeList:
    items = []
    for proof in PROOF_TYPES.values():
        a = availability(db, citizen.id_number, proof, now)
        items.append(ProofTypeOut(type=proof.code, name=proof.name, name_en=proof.name_en,  # type: ignore[arg-type]
                                  issuer=proof.issuer, periodic=proof.periodic, earliest_month=a.earliest_month,
                                  latest_month=a.latest_month, default_from=a.default_from, default_to=a.default_to,
                                  max_months=proof.max_months if proof.periodic else None,
                                  has_records=a.has_records, summary_zh=a.summary_zh, summary_en=a.summary_en))
    return ProofTypeList(items=items)


@router.post("/me/proofs", response_model=IssuedProofOut, status_code=201,
             responses=error_responses(401, 403, 409, 422, 503),
             summary="Issue one sealed proof (PDF signed with the department's seal, verification code, QR)",
             dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def issue(body: ProofIssue, request: Request, kiosk: Kiosk = Depends(require_kiosk),
          citizen: CitizenSession = Depends(require_citizen),
          idempotency_key: str = Depends(require_idempotency_key),
          db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """A repeat with the same ``Idempotency-Key`` returns the same proof (same code, same PDF). Periods
    (``YYYY-MM``) only for periodic types; omitted: the default period of the list."""
    base = public_base(request)
    proof = PROOF_TYPES.get(body.type)
    if proof is None:  # the schema's enum already refuses it; kept for callers that skip validation
        raise ApiError(422, "unknown_proof_type", f"unknown proof type {body.type!r}")
    payload = {"kiosk_id": kiosk.id, "citizen_session": citizen.id, **body.model_dump()}

    def create() -> tuple[int, dict]:
        avail = availability(db, citizen.id_number, proof, now)
        period_from, period_to = resolve_period(avail, body.period_from, body.period_to)
        content = build(db, citizen.id_number, proof, period_from, period_to, now)
        row = issue_proof(db, request.app.state.seal_keeper, content, public_base=base, now=now, kiosk_id=kiosk.id)
        db.flush()
        return 201, proof_out(row, base).model_dump(mode="json")

    return run_idempotent(db, scope="me/proofs", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/me/proofs/issued", response_model=IssuedProofList, responses=error_responses(401, 403),
            summary="The proofs issued to this citizen, newest first (for a reprint)",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def issued_proofs(request: Request, citizen: CitizenSession = Depends(require_citizen),
                  db: Session = Depends(get_db)) -> IssuedProofList:
    rows = db.scalars(select(IssuedDocument).where(IssuedDocument.holder_id_number == citizen.id_number,
                                                   IssuedDocument.kind == "proof")
                      .order_by(IssuedDocument.issued_at.desc(), IssuedDocument.code).limit(50)).all()
    base = public_base(request)
    return IssuedProofList(items=[proof_out(r, base) for r in rows])


@router.get("/me/proofs/{code}", response_model=IssuedProofOut, responses=error_responses(401, 403, 404),
            summary="One issued proof of this citizen", dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def issued_proof(request: Request, code: str = _CODE, citizen: CitizenSession = Depends(require_citizen),
                 db: Session = Depends(get_db)) -> IssuedProofOut:
    return proof_out(my_proof(db, citizen, code), public_base(request))


@router.get("/me/proofs/{code}/pdf", response_class=Response, responses={**_PDF, **error_responses(401, 403, 404)},
            summary="The sealed PDF of an issued proof (the same bytes every time)",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def proof_pdf(code: str = _CODE, citizen: CitizenSession = Depends(require_citizen),
              db: Session = Depends(get_db)) -> Response:
    row = my_proof(db, citizen, code)
    return Response(pdf_bytes(db, row), media_type="application/pdf",
                    headers={"Cache-Control": "no-store", "X-Document-SHA256": row.sha256,
                             "X-Verification-Code": row.code,
                             "Content-Disposition": f'inline; filename="{row.code}.pdf"'})


@router.get("/me/proofs/{code}/preview", response_class=Response,
            responses={**_PNG, **error_responses(401, 403, 404, 503)},
            summary="One page of an issued proof as PNG (on-screen preview)",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def proof_preview(code: str = _CODE, page: int = Query(default=1, ge=1, le=99),
                  citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db)) -> Response:
    """Rendered with poppler's ``pdftoppm`` (package poppler-utils); 404 past the last page."""
    row = my_proof(db, citizen, code)
    if page > row.pages:
        raise not_found(f"page {page}")
    return Response(render_page_png(pdf_bytes(db, row), page), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


def render_page_png(pdf: bytes, page: int, width: int = 800) -> bytes:
    with tempfile.TemporaryDirectory(prefix="proof-preview-") as tmp:
        src = FsPath(tmp) / "doc.pdf"
        src.write_bytes(pdf)
        try:
            subprocess.run(["pdftoppm", "-png", "-f", str(page), "-l", str(page), "-scale-to-x", str(width),
                            "-scale-to-y", "-1", "-singlefile", str(src), str(FsPath(tmp) / "page")],
                           check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ApiError(503, "preview_unavailable", "pages cannot be rendered here (poppler-utils)") from exc
        return (FsPath(tmp) / "page.png").read_bytes()


# --- staff: revoking an issued document ----------------------------------------------------------------------------

@router.post("/staff/documents/{code}/revoke", response_model=IssuedProofOut,
             responses=error_responses(401, 404, 422),
             summary="Revoke a document issued by the caller's department (its verify page says revoked)")
def revoke_document(body: RevokeIn, request: Request, code: str = _CODE, staff: StaffMember = Depends(require_staff),
                    db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> IssuedProofOut:
    """Staff token only; a document of another department is 404 like an unknown code. Repeating it keeps the
    first revocation."""
    canonical = normalize(code)
    row = db.get(IssuedDocument, canonical) if canonical else None
    if row is None or row.issuer != staff.department:
        raise not_found("document")
    row = revoke(db, row.code, body.reason, staff.name, now)
    assert row is not None
    return proof_out(row, public_base(request))
