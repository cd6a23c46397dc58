"""Online filing (办件申报) by the identified citizen: page uploads, pre-filled forms, pre-review (一次性告知), filing with
an application number, the filed application, supplementing materials later (容缺受理 / 补正)."""
from __future__ import annotations

import datetime as dt
import hashlib
import io

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from PIL import Image, ImageStat, UnidentifiedImageError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from service_platform.auth import CitizenWriter, citizen_writer, require_citizen, require_kiosk
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.levels import ANY, STRONG, level_dependency, level_extra
from service_platform.filing import ACCEPTED_TRUST, Review, cert_status, review_draft, review_supplement, satisfied_by
from service_platform.forms import prefill
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.models import (
    Application, ApplicationEvent, ApplicationFiling, ApplicationMaterial, CitizenSession, ECertificate, Kiosk,
    PaymentOrder, RegisteredCitizen, Service, ServiceFilingRule, Upload)
from service_platform.numbering import daily_number, opaque_id
from service_platform.routes.applications import add_working_days, local, progress_of
from service_platform.routes.ecertificates import today_cst
from service_platform.routes.payments import new_order, order_out
from service_platform.schemas import (
    ApplicationDraft, ApplicationFiled, MaterialState, PrefillOut, PreReviewOut, SupplementIn, UploadOut)
from service_platform.supplement_fields import (
    apply_fields, form_schema_of, outstanding_out, outstanding_rows, review_fields)

router = APIRouter(prefix="/api/v1", tags=["filing"])

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
UPLOAD_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
BLANK_STDDEV = 6.0
CLOSED = ("decided", "rejected", "delivered")
_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in UPLOAD_TYPES}}}


# --- helpers -------------------------------------------------------------------------------------------------------

def filing_service(db: Session, code: str) -> tuple[Service, ServiceFilingRule]:
    service = db.scalar(select(Service).where(Service.code == code).options(selectinload(Service.materials),
                                                                           selectinload(Service.place_links)))
    if service is None:
        raise not_found(f"service {code!r}")
    rule = db.get(ServiceFilingRule, service.id)
    if rule is None:
        raise ApiError(422, "not_applicable_online",
                       "this service cannot be applied for online; see its guide for where to apply")
    return service, rule


def my_application(db: Session, id_number: str, number: str) -> Application:
    """The citizen's application; someone else's is reported exactly like a missing one."""
    app = db.scalar(select(Application).where(Application.number == number.strip().upper())
                    .options(selectinload(Application.events)))
    if app is None or app.applicant_id_number != id_number:
        raise not_found(f"application {number!r}")
    return app


def filed_out(db: Session, app: Application, now: dt.datetime) -> ApplicationFiled:
    filing = db.get(ApplicationFiling, app.id)
    rows = {m.material_index: m for m in db.scalars(select(ApplicationMaterial).where(
        ApplicationMaterial.application_id == app.id)).all()}
    materials = []
    for index, material in enumerate(app.service.materials):
        row = rows.get(index)
        if row is None:
            materials.append(MaterialState(index=index, name=material.name, required=material.required,
                                           status="not_provided"))
        else:
            materials.append(MaterialState(index=index, name=row.name, required=material.required,
                                           status=row.status, source=row.source,  # type: ignore[arg-type]
                                           e_certificate_id=row.e_certificate_id,
                                           upload_ids=list(row.upload_ids or [])))
    orders = db.scalars(select(PaymentOrder).where(PaymentOrder.application_id == app.id)
                        .order_by(PaymentOrder.id)).all()
    db.refresh(app, ["events"])
    return ApplicationFiled(
        number=app.number, progress=progress_of(app), materials=materials,
        outstanding=[m.index for m in materials if m.status == "outstanding"],
        supplement_due=filing.supplement_due if filing else None, form=dict(filing.form) if filing else {},
        payment_orders=[order_out(o, now) for o in orders], outstanding_fields=outstanding_out(db, app))


def _pre_review_failed(review: Review) -> ApiError:
    return ApiError(422, "pre_review_failed",
                    f"pre-review found {len(review.problems)} problem(s); all are listed in details",
                    details={"problems": [p.model_dump() for p in review.problems],
                             "materials": [m.model_dump() for m in review.materials]})


def _material_row(app_id: int, state: MaterialState, at: dt.datetime) -> ApplicationMaterial:
    return ApplicationMaterial(
        application_id=app_id, material_index=state.index, name=state.name, status=state.status,
        source=state.source, e_certificate_id=state.e_certificate_id, upload_ids=list(state.upload_ids),
        provided_at=at if state.status == "provided" else None)


def _attach_uploads(db: Session, review: Review, app_id: int) -> None:
    """Claim the pages for this application; a page another filing claimed meanwhile fails the pre-review."""
    for state in review.materials:
        for upload_id in state.upload_ids:
            claimed = db.execute(update(Upload).where(
                Upload.id == upload_id, or_(Upload.application_id.is_(None), Upload.application_id == app_id))
                .values(application_id=app_id).execution_options(synchronize_session=False)).rowcount
            if claimed != 1:
                review.problem("upload_already_used", f"“{state.name}”的照片已用于其他办件",
                               f"“{state.name}”: the photo belongs to another application", index=state.index)
    if review.problems:
        raise _pre_review_failed(review)


# --- uploads -------------------------------------------------------------------------------------------------------

async def image_body(request: Request, _key: str = Depends(require_idempotency_key)) -> tuple[str, bytes]:
    """The raw request body of an image upload (415 for other types, 413 above 8 MB); read only once the
    Idempotency-Key is known to be there."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in UPLOAD_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the page as image/jpeg or image/png")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "payload_too_large", "images are limited to 8 MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "payload_too_large", "images are limited to 8 MB")
    return content_type, bytes(body)


def inspect_image(data: bytes, content_type: str) -> tuple[int, int, bool]:
    """(width, height, blank) of a decodable image of the declared type; 422 ``invalid_image`` otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != UPLOAD_TYPES[content_type]:
                raise ApiError(422, "invalid_image", f"the body is not a {UPLOAD_TYPES[content_type]} image")
            width, height = img.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise ApiError(422, "invalid_image", "the image has too many pixels")
            img.draft("L", (256, 256))
            small = img.convert("L")
            small.thumbnail((128, 128))
            blank = ImageStat.Stat(small).stddev[0] < BLANK_STDDEV
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(422, "invalid_image", "the body is not a readable image") from exc
    return width, height, blank


@router.post("/me/uploads", response_model=UploadOut, status_code=201,
             responses=error_responses(401, 403, 409, 413, 415, 422),
             summary="Upload a page image taken by the kiosk camera",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra={**level_extra(*STRONG), **_IMAGE_BODY})
def upload_page(kiosk: Kiosk = Depends(require_kiosk), writer: CitizenWriter = Depends(citizen_writer),
                idempotency_key: str = Depends(require_idempotency_key),
                image: tuple[str, bytes] = Depends(image_body),
                db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """The body is the image itself (``Content-Type: image/jpeg`` or ``image/png``, at most 8 MB). Attach the
    returned id to a material of an application (``upload_ids``). Pre-review refuses pages that are too small to
    read (< 1000 × 700 px) or blank."""
    content_type, data = image
    digest = hashlib.sha256(data).hexdigest()
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "content_type": content_type, "sha256": digest}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        width, height, blank = inspect_image(data, content_type)
        upload = Upload(id=opaque_id("up"), owner_id_number=writer.id_number, kiosk_id=kiosk.id,
                        content_type=content_type, size=len(data), width=width, height=height, sha256=digest,
                        blank=blank, data=data, created_at=at)
        db.add(upload)
        db.flush()
        return 201, UploadOut(id=upload.id, content_type=content_type, size=len(data), width=width, height=height,
                              sha256=digest, created_at=local(at)).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/uploads", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


# --- forms and pre-review ------------------------------------------------------------------------------------------

@router.get("/me/services/{code}/prefill", response_model=PrefillOut, responses=error_responses(401, 403, 404, 422),
            summary="The service's form pre-filled for the citizen, with suggested e-certificates",
            dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def prefill_form(code: str, citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
                 now: dt.datetime = Depends(get_now)) -> PrefillOut:
    """Values for the fields whose schema says ``x-prefill`` (from the card and the registry, and from the
    citizen's usable e-certificates: valid, trust level A–C), and per material how it can be provided with one tap.
    The citizen only corrects or adds."""
    service, rule = filing_service(db, code)
    today = today_cst(now)
    certs = [c for c in db.scalars(select(ECertificate).where(ECertificate.holder_id_number == citizen.id_number)
                                   .order_by(ECertificate.position, ECertificate.id)).all()
             if cert_status(c, today) == "valid" and c.trust_level in ACCEPTED_TRUST]
    person = db.get(RegisteredCitizen, citizen.id_number)
    identity = {"name": citizen.name, "id_number": citizen.id_number}
    if person is not None:
        identity.update(sex={"male": "男", "female": "女"}.get(person.sex, person.sex),
                        birth_date=person.birth_date.isoformat(), address=person.address)
    by_type: dict[str, tuple[str, dict]] = {}
    for cert in certs:
        by_type.setdefault(cert.type_code, (cert.id, dict(cert.data or {})))
    filled = prefill(rule.form_schema, identity, by_type)
    materials = []
    for index, material in enumerate(service.materials):
        via = satisfied_by(index, material, rule)
        cert = next((c for c in certs if material.e_cert_type and c.type.name == material.e_cert_type), None)
        if via is not None:
            state = MaterialState(index=index, name=material.name, required=material.required, status="provided",
                                  source=via)  # type: ignore[arg-type]
        elif cert is not None:
            state = MaterialState(index=index, name=material.name, required=material.required, status="provided",
                                  source="e_certificate", e_certificate_id=cert.id)
        else:
            state = MaterialState(index=index, name=material.name, required=material.required,
                                  status="missing" if material.required else "not_provided")
        materials.append(state)
    return PrefillOut(service_code=service.code, form=filled.values, sources=filled.sources, materials=materials)


@router.post("/me/applications/pre-review", response_model=PreReviewOut, responses=error_responses(401, 403, 404, 422),
             summary="Pre-review a filing: every missing or wrong item at once (一次性告知)",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra=level_extra(*STRONG))
def pre_review(body: ApplicationDraft, citizen: CitizenSession = Depends(require_citizen),
               db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> PreReviewOut:
    """Creates nothing. The same checks run when the filing is submitted."""
    service, rule = filing_service(db, body.service_code)
    today = today_cst(now)
    review = review_draft(db, service, rule, body.form, body.materials, body.commitment, citizen.id_number, today)
    due = add_working_days(today, rule.supplement_days) if review.outstanding else None
    return PreReviewOut(acceptable=not review.problems, problems=review.problems, materials=review.materials,
                        supplement_due=due)


# --- filing --------------------------------------------------------------------------------------------------------

@router.post("/me/applications", response_model=ApplicationFiled, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="File an application (pre-reviewed; accepted with a number, or every problem at once)",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra=level_extra(*STRONG))
def file_application(body: ApplicationDraft, kiosk: Kiosk = Depends(require_kiosk),
                     writer: CitizenWriter = Depends(citizen_writer),
                     idempotency_key: str = Depends(require_idempotency_key),
                     db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """Runs the pre-review; with any problem: 422 ``pre_review_failed`` with ``details.problems`` (all of them) and
    nothing is filed. Otherwise the application is accepted at once (status ``accepted``) with its number; deferred
    materials (容缺) are listed in ``outstanding`` with ``supplement_due``. A service with a fee gets a pending
    payment order. 422 ``not_applicable_online`` for a service without an online form."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        service, rule = filing_service(db, body.service_code)
        today = today_cst(at)
        review = review_draft(db, service, rule, body.form, body.materials, body.commitment, writer.id_number, today)
        if review.problems:
            raise _pre_review_failed(review)
        number = daily_number(db, "application", at, taken=lambda n: db.scalar(
            select(Application.id).where(Application.number == n)) is not None)
        outstanding = [m for m in review.materials if m.status == "outstanding"]
        due = add_working_days(today, rule.supplement_days) if outstanding else None
        if outstanding:
            names = "、".join(m.name for m in outstanding)
            accepted_note = f"容缺受理：待补交{len(outstanding)}项材料（{names}），请于{due}前补交"
        else:
            accepted_note = "网上预审通过，材料齐全，予以受理"
        app = Application(number=number, service_code=service.code, applicant_id_number=writer.id_number,
                          applicant_name=writer.session.name, status="accepted", submitted_at=at,
                          department=service.department, channel="kiosk", events=[
                              ApplicationEvent(status="received", at=at, department=service.department,
                                               note=f"自助终端提交申请（{kiosk.id}）"),
                              ApplicationEvent(status="accepted", at=at, department=service.department,
                                               note=accepted_note)])
        db.add(app)
        db.flush()
        db.add(ApplicationFiling(application_id=app.id, form=body.form, kiosk_id=kiosk.id,
                                 citizen_session_id=writer.session.id, supplement_due=due))
        for state in review.materials:
            if state.status in ("provided", "outstanding"):
                db.add(_material_row(app.id, state, at))
        _attach_uploads(db, review, app.id)
        if service.fee_fen > 0:
            new_order(db, app, payer_name=writer.session.name, kiosk_id=kiosk.id, now=at)
        db.flush()
        return 201, filed_out(db, app, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/applications", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/me/applications/{number}", response_model=ApplicationFiled, responses=error_responses(401, 403, 404),
            summary="One of the citizen's applications with its materials, form and fees",
            dependencies=[level_dependency(*ANY)],
            openapi_extra=level_extra(*ANY))
def my_application_detail(number: str = Path(max_length=24), citizen: CitizenSession = Depends(require_citizen),
                          db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> ApplicationFiled:
    return filed_out(db, my_application(db, citizen.id_number, number), now)


@router.post("/me/applications/{number}/supplements", response_model=ApplicationFiled, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Supply outstanding materials and asked-for form fields (容缺受理 / 补正)",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra=level_extra(*STRONG))
def supplement(body: SupplementIn, number: str = Path(max_length=24), kiosk: Kiosk = Depends(require_kiosk),
               writer: CitizenWriter = Depends(citizen_writer),
               idempotency_key: str = Depends(require_idempotency_key),
               db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """Only outstanding materials, checked like at filing, and only the form fields the department asked for
    (``outstanding_fields``), each value checked against the service's form schema (422 ``pre_review_failed`` lists
    every problem, a field's with its JSON pointer; 422 ``supplement_empty`` when neither is given). The values are
    applied to the filed form and the timeline names what was supplied. When nothing is outstanding any more the
    application goes to ``in_review``. 409 ``nothing_outstanding`` or ``application_closed`` (decided, rejected,
    delivered)."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "number": number,
               "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        app = my_application(db, writer.id_number, number)
        if app.status in CLOSED:
            raise ApiError(409, "application_closed", "this application is closed")
        rows = {m.material_index: m for m in db.scalars(select(ApplicationMaterial).where(
            ApplicationMaterial.application_id == app.id, ApplicationMaterial.status == "outstanding")).all()}
        asked = outstanding_rows(db, app.id)
        if not rows and not asked:
            raise ApiError(409, "nothing_outstanding", "nothing of this application is outstanding")
        if not body.materials and not body.fields:
            raise ApiError(422, "supplement_empty", "give at least one outstanding material or asked-for field")
        service = db.scalar(select(Service).where(Service.code == app.service_code)
                            .options(selectinload(Service.materials)))
        assert service is not None
        review = review_supplement(db, service, set(rows), body.materials, writer.id_number, today_cst(at), app.id)
        review.problems += review_fields(form_schema_of(db, service.id), asked, body.fields)
        if review.problems:
            raise _pre_review_failed(review)
        for state in review.materials:
            row = rows.pop(state.index)
            row.status, row.source, row.provided_at = "provided", state.source, at
            row.e_certificate_id, row.upload_ids = state.e_certificate_id, list(state.upload_ids)
        _attach_uploads(db, review, app.id)
        fields = apply_fields(db, app, asked, body.fields, at)
        names = "、".join([s.name for s in review.materials] + fields)
        left = len(rows) + len(asked)
        if left:
            note, status = f"已补交{'材料' if not fields else '补正内容'}：{names}；尚缺{left}项", app.status
        else:
            note, status = f"{'材料已补齐' if not fields else '补正已完成'}（{names}），转入审查", "in_review"
            filing = db.get(ApplicationFiling, app.id)
            if filing is not None:
                filing.supplement_due = None
        app.status = status
        db.add(ApplicationEvent(application_id=app.id, status=status, at=at, department=app.department, note=note))
        db.flush()
        return 201, filed_out(db, app, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/applications/{number}/supplements", key=idempotency_key,
                          payload=payload, now=now, create=create).response()
