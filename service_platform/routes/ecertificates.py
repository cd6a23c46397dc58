"""E-certificates (电子证照): the public type list, the citizen's own certificates with their PDF, and the registered
photo kiosks compare faces with."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service_platform.auth import require_citizen, require_kiosk
from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.ecert_pdf import CertDocument
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.filing import cert_status
from service_platform.identity import id_number_problem, mask_name, normalize_id_number
from service_platform.identity_checks import IdentityGuard, normalize_name
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.models import CitizenSession, ECertificate, ECertificateType, Kiosk, RegisteredCitizen
from service_platform.photos import Person, Photo
from service_platform.schemas import (
    ECertFieldDef, ECertificateList, ECertificateOut, ECertificateTypeList, ECertificateTypeOut, PhotoQuery)

router = APIRouter(prefix="/api/v1", tags=["e-certificates"])

STATUS_TEXT = {"valid": "有效", "expired": "已过有效期", "revoked": "已注销"}
_JPEG = {200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
               "description": "The registered photo (JPEG); header X-Photo-Source: placeholder | file"}}
_PDF = {200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The certificate as PDF (A5, CJK text)"}}


def today_cst(now: dt.datetime) -> dt.date:
    return now.astimezone(CHINA_TZ).date()


def cert_out(cert: ECertificate, today: dt.date) -> ECertificateOut:
    return ECertificateOut(
        id=cert.id, type_code=cert.type_code, type_name=cert.type.name, number=cert.number, issuer=cert.issuer,
        issued_on=cert.issued_on, valid_until=cert.valid_until,
        status=cert_status(cert, today),  # type: ignore[arg-type]
        trust_level=cert.trust_level, holder_name_masked=mask_name(cert.holder_name),  # type: ignore[arg-type]
        data=dict(cert.data or {}), pdf_url=f"/api/v1/me/e-certificates/{cert.id}/pdf")


def my_certificate(db: Session, citizen: CitizenSession, cert_id: str) -> ECertificate:
    """The citizen's certificate; someone else's is reported exactly like a missing one."""
    cert = db.get(ECertificate, cert_id)
    if cert is None or cert.holder_id_number != citizen.id_number:
        raise not_found(f"e-certificate {cert_id!r}")
    return cert


def _photo_response(photo: Photo) -> Response:
    return Response(photo.data, media_type=photo.content_type,
                    headers={"Cache-Control": "no-store", "X-Photo-Source": photo.source})


def _photo_of(request: Request, person: RegisteredCitizen) -> Photo:
    photo = request.app.state.photo_source.photo(Person(person.id_number, person.sex, person.photo))
    if photo is None:
        raise not_found("registered photo")
    return photo


@router.get("/e-certificate-types", response_model=ECertificateTypeList, summary="E-certificate types")
def list_types(db: Session = Depends(get_db)) -> ECertificateTypeList:
    """Reference data, public: each type's name (as in the materials' ``e_cert_type``) and its data fields."""
    types = db.scalars(select(ECertificateType).order_by(ECertificateType.position)).all()
    return ECertificateTypeList(items=[
        ECertificateTypeOut(code=t.code, name=t.name, name_en=t.name_en, issuer=t.issuer,
                            fields=[ECertFieldDef(**f) for f in t.fields]) for t in types])


@router.get("/me/e-certificates", response_model=ECertificateList, responses=error_responses(401, 403),
            summary="The citizen's e-certificates", dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def my_certificates(citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
                    now: dt.datetime = Depends(get_now),
                    type: str | None = Query(default=None, max_length=60,  # noqa: A002
                                             description="Type code (marriage_cert) or name (结婚证)")
                    ) -> ECertificateList:
    """Only the identified citizen's certificates, valid, expired and revoked alike (``status`` says which)."""
    stmt = (select(ECertificate).where(ECertificate.holder_id_number == citizen.id_number)
            .order_by(ECertificate.position, ECertificate.id))
    if type:
        stmt = stmt.join(ECertificateType).where(or_(ECertificateType.code == type, ECertificateType.name == type))
    today = today_cst(now)
    return ECertificateList(items=[cert_out(c, today) for c in db.scalars(stmt).all()])


@router.get("/me/e-certificates/{cert_id}", response_model=ECertificateOut,
            responses=error_responses(401, 403, 404), summary="One of the citizen's e-certificates",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def my_certificate_detail(cert_id: str, citizen: CitizenSession = Depends(require_citizen),
                          db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> ECertificateOut:
    return cert_out(my_certificate(db, citizen, cert_id), today_cst(now))


@router.get("/me/e-certificates/{cert_id}/pdf", response_class=Response,
            responses={**_PDF, **error_responses(401, 403, 404, 503)},
            summary="The PDF of one of the citizen's e-certificates",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def my_certificate_pdf(cert_id: str, request: Request, citizen: CitizenSession = Depends(require_citizen),
                       db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> Response:
    """A small PDF (A5, subsetted CJK font) with the certificate's data, status and trust level, sealed by the
    issuer (PAdES signature with a visible seal; verification code and QR of its public verify page; headers
    ``X-Verification-Code``, ``X-Document-SHA256``). The same bytes every time while the content stays the same.
    503 ``pdf_unavailable`` without a CJK font, ``seal_unavailable`` without the seal CA."""
    cert = my_certificate(db, citizen, cert_id)
    labels = {f["key"]: f["label"] for f in cert.type.fields}
    status = cert_status(cert, today_cst(now))
    doc = CertDocument(cert_id=cert.id, type_name=cert.type.name, type_name_en=cert.type.name_en,
                       holder_name=cert.holder_name, number=cert.number, issuer=cert.issuer,
                       issued_on=cert.issued_on, valid_until=cert.valid_until, status_text=STATUS_TEXT[status],
                       trust_level=cert.trust_level,
                       fields=tuple((labels.get(k, k), str(v)) for k, v in (cert.data or {}).items()))
    # sealed once per certificate content (PAdES with the issuer's seal, verification code, QR)
    from service_platform.routes.proofs import public_base
    from service_platform.sealed_documents import ecert_document, pdf_bytes

    row = ecert_document(db, request.app.state.seal_keeper, doc, holder_id_number=cert.holder_id_number,
                         type_code=cert.type_code, public_base=public_base(request), now=now, kiosk_id=citizen.kiosk_id)
    return Response(pdf_bytes(db, row), media_type="application/pdf",
                    headers={"Cache-Control": "no-store", "ETag": f'"{row.sha256[:32]}"',
                             "X-Document-SHA256": row.sha256, "X-Verification-Code": row.code,
                             "Content-Disposition": f'inline; filename="{cert.id}.pdf"'})


@router.post("/registered-photos/query", response_class=Response,
             responses={**_JPEG, **error_responses(401, 404, 422, 429)},
             summary="The registered photo of the person whose card was read (for face verification)")
def query_registered_photo(body: PhotoQuery, request: Request, kiosk: Kiosk = Depends(require_kiosk),
                           db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> Response:
    """Before a citizen session exists: the kiosk has read a card and asks for the photo to compare the live face
    with. A query (creates nothing; POST so that the ID number never appears in URLs or access logs). The name must
    match the registry; an unknown person or a mismatch is 404 (the kiosk then falls back to the card's photo).
    Counted with the kiosk's citizen sessions against its limit of distinct citizens per rolling hour (429
    ``rate_limited`` with ``Retry-After``) and audited the same way (keyed hash of the number, never the number)."""
    id_number = normalize_id_number(body.id_number)
    problem = id_number_problem(id_number, body.document_kind)
    if problem:
        raise ApiError(422, "invalid_id_number", f"id_number: {problem}")
    guard: IdentityGuard = request.app.state.identity_guard
    id_hash = guard.id_hash(db, id_number, now)
    limited = guard.check_rate(db, kiosk.id, id_hash, now)
    person = None if limited else db.get(RegisteredCitizen, id_number)
    matches = person is not None and normalize_name(person.name) == normalize_name(body.name)
    outcome = limited.code if limited else "served" if matches else "unknown_person" if person is None \
        else "identity_mismatch"
    guard.record(db, kiosk.id, id_hash, "photo_query", outcome, now)
    db.commit()
    if limited:
        raise limited
    if person is None or not matches:
        raise not_found("registered photo")
    return _photo_response(_photo_of(request, person))


@router.get("/me/photo", response_class=Response, responses={**_JPEG, **error_responses(401, 403, 404)},
            summary="The identified citizen's registered photo (e.g. to re-check the face before signing)",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def my_photo(request: Request, citizen: CitizenSession = Depends(require_citizen),
             db: Session = Depends(get_db)) -> Response:
    person = db.get(RegisteredCitizen, citizen.id_number)
    if person is None:
        raise not_found("registered photo")
    return _photo_response(_photo_of(request, person))
