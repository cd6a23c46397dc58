"""Delivery of a result by EMS (证照寄送): the consent text, requests with an address and explicit consent, tracking."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service_platform.auth import CitizenWriter, citizen_writer, require_citizen, require_kiosk
from service_platform.carrier import tracking
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.identity import mask_address, mask_name, mask_phone
from service_platform.models import Application, CitizenSession, Delivery, Kiosk
from service_platform.numbering import daily_number, waybill_number
from service_platform.routes.applications import local
from service_platform.schemas import (
    DeliveryConsentText, DeliveryCreate, DeliveryList, DeliveryOut, TrackingEvent)

router = APIRouter(prefix="/api/v1", tags=["delivery"])

CONSENT_VERSION = "ems-consent-2026-01"
CONSENT_TEXT = ("本人同意将办理结果（证照、证明或文书）通过中国邮政EMS寄送至所填地址，并同意将收件人姓名、联系电话和地址提供给"
                "邮政速递物流公司，仅用于本次寄送。本人确认所填信息真实准确；因地址错误或无人签收造成的延误由本人承担。")
CONSENT_TEXT_EN = ("I agree that the result (certificate, proof or document) is sent by China Post EMS to the address "
                   "given, and that the recipient's name, phone number and address are passed to the EMS company for "
                   "this delivery only. I confirm the details are correct; delays caused by a wrong address or "
                   "nobody signing for it are my responsibility.")
NOT_DELIVERABLE = ("rejected",)


def delivery_out(d: Delivery, now: dt.datetime) -> DeliveryOut:
    track = tracking(d.application, d.created_at, d.city, now)
    return DeliveryOut(
        delivery_no=d.delivery_no, waybill_no=d.waybill_no, carrier="EMS", application_number=d.application.number,
        recipient_masked=mask_name(d.recipient_name), phone_masked=mask_phone(d.phone),
        address_masked=mask_address(d.province, d.city, d.district, d.detail),
        status=track[-1].status,  # type: ignore[arg-type]
        tracking=[TrackingEvent(status=t.status, at=local(t.at), note=t.note) for t in track],  # type: ignore[arg-type]
        created_at=local(d.created_at))


@router.get("/delivery-consent", response_model=DeliveryConsentText, summary="The consent text for EMS delivery")
def consent_text() -> DeliveryConsentText:
    """Show it, and send its ``version`` with ``agreed: true`` once the citizen has agreed."""
    return DeliveryConsentText(version=CONSENT_VERSION, text=CONSENT_TEXT, text_en=CONSENT_TEXT_EN)


@router.post("/me/deliveries", response_model=DeliveryOut, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Ask for the result of an application to be sent by EMS",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra=level_extra(*STRONG))
def request_delivery(body: DeliveryCreate, kiosk: Kiosk = Depends(require_kiosk),
                     writer: CitizenWriter = Depends(citizen_writer),
                     idempotency_key: str = Depends(require_idempotency_key),
                     db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """422 ``consent_required`` (agreed is not true) or ``consent_outdated`` (another version of the text);
    409 ``delivery_exists`` (one delivery per application) or ``not_deliverable`` (rejected application).
    The answer shows the address only masked."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        if body.consent.agreed is not True:
            raise ApiError(422, "consent_required", "the citizen must agree to the delivery consent")
        if body.consent.version != CONSENT_VERSION:
            raise ApiError(422, "consent_outdated", f"the current consent text is {CONSENT_VERSION}")
        app = db.scalar(select(Application).where(Application.number == body.application_number.strip().upper())
                        .options(selectinload(Application.events)))
        if app is None or app.applicant_id_number != writer.id_number:
            raise not_found(f"application {body.application_number!r}")
        if app.status in NOT_DELIVERABLE:
            raise ApiError(409, "not_deliverable", "this application has no result to send")
        existing = db.scalar(select(Delivery.delivery_no).where(Delivery.application_id == app.id))
        if existing:
            raise ApiError(409, "delivery_exists", "a delivery was already requested for this application",
                           details={"delivery_no": existing})
        a = body.address
        delivery = Delivery(
            delivery_no=daily_number(db, "delivery", at), waybill_no=waybill_number(db), application_id=app.id,
            owner_id_number=writer.id_number, recipient_name=a.recipient_name.strip(), phone=a.phone,
            province=a.province.strip(), city=a.city.strip(), district=a.district.strip(), detail=a.detail.strip(),
            postcode=a.postcode, consent_version=body.consent.version, consent_at=at, kiosk_id=kiosk.id,
            created_at=at)
        delivery.application = app
        db.add(delivery)
        db.flush()
        return 201, delivery_out(delivery, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/deliveries", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/me/deliveries", response_model=DeliveryList, responses=error_responses(401, 403),
            summary="The citizen's deliveries with tracking", dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def my_deliveries(citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
                  now: dt.datetime = Depends(get_now)) -> DeliveryList:
    items = db.scalars(select(Delivery).where(Delivery.owner_id_number == citizen.id_number)
                       .order_by(Delivery.id.desc())).all()
    return DeliveryList(items=[delivery_out(d, now) for d in items])


@router.get("/me/deliveries/{delivery_no}", response_model=DeliveryOut, responses=error_responses(401, 403, 404),
            summary="One of the citizen's deliveries with tracking", dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def my_delivery(delivery_no: str = Path(max_length=24), citizen: CitizenSession = Depends(require_citizen),
                db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> DeliveryOut:
    delivery = db.scalar(select(Delivery).where(Delivery.delivery_no == delivery_no))
    if delivery is None or delivery.owner_id_number != citizen.id_number:
        raise not_found(f"delivery {delivery_no!r}")
    return delivery_out(delivery, now)
