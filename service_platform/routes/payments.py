"""Payments: an order per fee of an application (amount in fen), confirmed or cancelled by the kiosk whose payment
terminal took (or did not take) the money, and the day's reconciliation list for that kiosk.

Order status: ``pending`` → ``paid`` | ``cancelled``; a pending order past ``expires_at`` reads as ``expired`` and a
new order can then be created for the same fee. A confirmation is accepted even after expiry (the terminal has taken
the money) unless the order was cancelled or the fee was paid through another order (409: the kiosk must reverse).
Confirming again with the same ``txn_ref`` returns the paid order (safe to repeat with any Idempotency-Key).
"""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from service_platform.auth import CitizenWriter, citizen_writer, require_citizen, require_kiosk
from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.identity import mask_name
from service_platform.models import (
    Application, ApplicationEvent, CitizenSession, Kiosk, PaymentOrder, ServiceFilingRule)
from service_platform.numbering import daily_number
from service_platform.routes.applications import local
from service_platform.schemas import (
    CashierPay, PaymentCancel, PaymentConfirm, PaymentOrderCreate, PaymentOrderList, PaymentOrderOut, Reconciliation,
    ReconciliationTotals)

router = APIRouter(prefix="/api/v1", tags=["payments"])

ORDER_TTL = dt.timedelta(minutes=30)
METHOD_TEXT = {"unionpay_card": "银联卡", "wechat_pay": "微信支付", "alipay": "支付宝", "ecny": "数字人民币"}


def effective_status(order: PaymentOrder, now: dt.datetime) -> str:
    if order.status == "pending" and now >= order.expires_at:
        return "expired"
    return order.status


def order_out(order: PaymentOrder, now: dt.datetime) -> PaymentOrderOut:
    def opt(at: dt.datetime | None) -> dt.datetime | None:
        return local(at) if at else None

    return PaymentOrderOut(
        order_no=order.order_no, application_number=order.application.number, purpose=order.purpose,
        amount_fen=order.amount_fen, payer_masked=mask_name(order.payer_name), payee=order.payee,
        status=effective_status(order, now), created_at=local(order.created_at),  # type: ignore[arg-type]
        expires_at=local(order.expires_at), paid_at=opt(order.paid_at), method=order.method,  # type: ignore[arg-type]
        txn_ref=order.txn_ref, card_masked=order.card_masked, cancelled_at=opt(order.cancelled_at))


def fee_purpose(db: Session, app: Application) -> str:
    rule = db.get(ServiceFilingRule, app.service.id)
    return (rule.fee_purpose if rule is not None else None) or f"{app.service.name}费用"


def new_order(db: Session, app: Application, *, payer_name: str, kiosk_id: str | None,
              now: dt.datetime) -> PaymentOrder:
    order = PaymentOrder(
        order_no=daily_number(db, "order", now), application=app, application_id=app.id, purpose=fee_purpose(db, app),
        amount_fen=app.service.fee_fen, payer_id_number=app.applicant_id_number, payer_name=payer_name,
        payee=app.service.department, kiosk_id=kiosk_id, status="pending", created_at=now,
        expires_at=now + ORDER_TTL)
    db.add(order)
    return order


def _orders_of_app(db: Session, app_id: int) -> list[PaymentOrder]:
    return list(db.scalars(select(PaymentOrder).where(PaymentOrder.application_id == app_id)
                           .order_by(PaymentOrder.id)).all())


def _kiosk_order(db: Session, kiosk: Kiosk, order_no: str, *, for_update: bool = False) -> PaymentOrder:
    """An order created at this kiosk (another kiosk's is reported as not found)."""
    stmt = select(PaymentOrder).where(PaymentOrder.order_no == order_no)
    if for_update:
        stmt = stmt.with_for_update(of=PaymentOrder)
    order = db.scalar(stmt)
    if order is None or order.kiosk_id != kiosk.id:
        raise not_found(f"payment order {order_no!r}")
    return order


@router.get("/me/payment-orders", response_model=PaymentOrderList, responses=error_responses(401),
            summary="The citizen's payment orders", openapi_extra={"x-citizen-session": "required"})
def my_orders(citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
              now: dt.datetime = Depends(get_now)) -> PaymentOrderList:
    """Newest first."""
    orders = db.scalars(select(PaymentOrder).where(PaymentOrder.payer_id_number == citizen.id_number)
                        .order_by(PaymentOrder.id.desc())).all()
    return PaymentOrderList(items=[order_out(o, now) for o in orders])


@router.post("/me/payment-orders", response_model=PaymentOrderOut, status_code=201,
             responses=error_responses(401, 404, 409, 422),
             summary="Create a new order for the fee of one of the citizen's applications",
             openapi_extra={"x-citizen-session": "required"})
def create_order(body: PaymentOrderCreate, kiosk: Kiosk = Depends(require_kiosk),
                 writer: CitizenWriter = Depends(citizen_writer),
                 idempotency_key: str = Depends(require_idempotency_key),
                 db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """Filing an application with a fee already creates its order; this makes a new one when that one was
    cancelled or expired. 409 ``order_pending`` (details: the pending order's number) or ``fee_already_paid``;
    422 ``no_fee`` for a free service."""
    payload = {"kiosk_id": kiosk.id, **writer.fingerprint(), "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        at = writer.check(now)
        app = db.scalar(select(Application).where(Application.number == body.application_number.strip().upper()))
        if app is None or app.applicant_id_number != writer.id_number:
            raise not_found(f"application {body.application_number!r}")
        if app.service.fee_fen <= 0:
            raise ApiError(422, "no_fee", "this service has no fee")
        for order in _orders_of_app(db, app.id):
            status = effective_status(order, at)
            if status == "paid":
                raise ApiError(409, "fee_already_paid", "the fee of this application is paid",
                               details={"order_no": order.order_no})
            if status == "pending":
                raise ApiError(409, "order_pending", "an order for this fee is still pending",
                               details={"order_no": order.order_no})
            if status == "expired":
                order.status = "expired"
        order = new_order(db, app, payer_name=writer.session.name, kiosk_id=kiosk.id, now=at)
        db.flush()
        return 201, order_out(order, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/me/payment-orders", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/payment-orders/{order_no}", response_model=PaymentOrderOut, responses=error_responses(401, 404),
            summary="Query an order created at this kiosk")
def get_order(order_no: str = Path(max_length=24), kiosk: Kiosk = Depends(require_kiosk),
              db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> PaymentOrderOut:
    """For the payment flow after an unknown result at the terminal: the platform's view of the order."""
    return order_out(_kiosk_order(db, kiosk, order_no), now)


@router.post("/payment-orders/{order_no}/confirm", response_model=PaymentOrderOut,
             responses=error_responses(401, 404, 409, 422),
             summary="Record that this kiosk's payment terminal took the money")
def confirm_order(body: PaymentConfirm, order_no: str = Path(max_length=24), kiosk: Kiosk = Depends(require_kiosk),
                  idempotency_key: str = Depends(require_idempotency_key),
                  db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """No citizen session needed (the kiosk may confirm from its outbox after the citizen left). 422
    ``amount_mismatch``; 409 ``order_cancelled``, ``already_paid`` (another txn_ref) or ``fee_already_paid``
    (another order of the same fee is paid) — in those cases the kiosk must reverse the payment."""
    payload = {"kiosk_id": kiosk.id, "order_no": order_no, "body": body.model_dump(mode="json")}

    def create() -> tuple[int, dict]:
        order = _kiosk_order(db, kiosk, order_no, for_update=True)
        if order.status == "paid":
            if order.txn_ref == body.txn_ref:
                return 200, order_out(order, now).model_dump(mode="json")
            raise ApiError(409, "already_paid", "this order was paid with another transaction")
        if order.status == "cancelled":
            raise ApiError(409, "order_cancelled", "this order was cancelled; reverse the payment")
        if body.amount_fen != order.amount_fen:
            raise ApiError(422, "amount_mismatch", f"the order is for {order.amount_fen} fen")
        paid = [o for o in _orders_of_app(db, order.application_id) if o.status == "paid"]
        if paid:
            raise ApiError(409, "fee_already_paid", "this fee was paid through another order; reverse the payment",
                           details={"order_no": paid[0].order_no})
        paid_at = body.paid_at.astimezone(dt.timezone.utc) if body.paid_at and body.paid_at.tzinfo else now
        order.status, order.paid_at, order.method = "paid", paid_at.replace(microsecond=0), body.method
        order.txn_ref, order.card_masked = body.txn_ref, body.card_masked
        app = order.application
        db.add(ApplicationEvent(application_id=app.id, status=app.status, at=order.paid_at,
                                department=app.department,
                                note=f"已缴纳{order.purpose} {order.amount_fen / 100:.2f}元（{METHOD_TEXT[body.method]}）"))
        db.flush()
        return 200, order_out(order, now).model_dump(mode="json")

    return run_idempotent(db, scope="POST /api/v1/payment-orders/{order_no}/confirm", key=idempotency_key,
                          payload=payload, now=now, create=create).response()


@router.put("/cashier/{order_no}/payment", response_model=PaymentOrderOut, responses=error_responses(404, 409),
             summary="The citizen's phone pays an order through the unified-payment cashier (simulated wallet)")
def cashier_pay(body: CashierPay, order_no: str = Path(max_length=24), db: Session = Depends(get_db),
                now: dt.datetime = Depends(get_now)) -> PaymentOrderOut:
    """The QR a kiosk shows for an order encodes ``{platform}/cashier/{order_no}``; the wallet app that opens it
    pays here (no kiosk credentials: it is the citizen's phone; PUT: idempotent by nature, no key needed). The wallet is simulated in this reference platform:
    a pending order is paid at once (``txn_ref`` ``QR…``), the kiosk learns it by polling the order. Safe to repeat:
    an order this wallet already paid is returned; 409 ``already_paid`` / ``order_cancelled`` / ``order_expired``."""
    order = db.scalar(select(PaymentOrder).where(PaymentOrder.order_no == order_no).with_for_update(of=PaymentOrder))
    if order is None:
        raise not_found(f"payment order {order_no!r}")
    status = effective_status(order, now)
    if status == "paid":
        if order.txn_ref and order.txn_ref.startswith("QR") and order.method == body.method:
            return order_out(order, now)
        raise ApiError(409, "already_paid", "this order is paid")
    if status == "cancelled":
        raise ApiError(409, "order_cancelled", "this order was cancelled")
    if status == "expired":
        raise ApiError(409, "order_expired", "this order has expired")
    if any(o.status == "paid" for o in _orders_of_app(db, order.application_id)):
        raise ApiError(409, "fee_already_paid", "this fee was paid through another order")
    order.status, order.paid_at, order.method = "paid", now.replace(microsecond=0), body.method
    order.txn_ref = f"QR{now:%Y%m%d%H%M%S}{order.id:06d}"
    app = order.application
    db.add(ApplicationEvent(application_id=app.id, status=app.status, at=order.paid_at, department=app.department,
                            note=f"已缴纳{order.purpose} {order.amount_fen / 100:.2f}元（{METHOD_TEXT[body.method]}）"))
    db.commit()
    return order_out(order, now)


@router.post("/payment-orders/{order_no}/cancel", response_model=PaymentOrderOut,
             responses=error_responses(401, 404, 409, 422), summary="Cancel a pending order of this kiosk")
def cancel_order(body: PaymentCancel, order_no: str = Path(max_length=24), kiosk: Kiosk = Depends(require_kiosk),
                 db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> PaymentOrderOut:
    """Creates nothing and is safe to repeat: cancelling a cancelled (or expired) order returns it unchanged.
    409 ``already_paid`` for a paid order (refunds are not part of this API)."""
    order = _kiosk_order(db, kiosk, order_no, for_update=True)
    if order.status == "paid":
        raise ApiError(409, "already_paid", "a paid order cannot be cancelled")
    if order.status == "pending":
        order.status, order.cancelled_at, order.cancel_reason = "cancelled", now, body.reason.strip()
        db.commit()
    return order_out(order, now)


@router.get("/payment-reconciliation", response_model=Reconciliation, responses=error_responses(401, 422),
            summary="This kiosk's orders of one business day, with totals (对账)")
def reconciliation(date: dt.date = Query(description="Business day (China Standard Time), e.g. 2026-11-02"),
                   kiosk: Kiosk = Depends(require_kiosk), db: Session = Depends(get_db),
                   now: dt.datetime = Depends(get_now)) -> Reconciliation:
    """Every order of this kiosk created, paid or cancelled that day, oldest first; ``paid_fen`` is what the
    terminal's settlement for the day should add up to (orders paid that day)."""
    start = dt.datetime.combine(date, dt.time(0, 0), tzinfo=CHINA_TZ).astimezone(dt.timezone.utc)
    end = start + dt.timedelta(days=1)

    def within(column):  # type: ignore[no-untyped-def]
        return and_(column >= start, column < end)

    orders = db.scalars(select(PaymentOrder).where(
        PaymentOrder.kiosk_id == kiosk.id,
        or_(within(PaymentOrder.created_at), within(PaymentOrder.paid_at), within(PaymentOrder.cancelled_at)))
        .order_by(PaymentOrder.created_at, PaymentOrder.id)).all()
    items = [order_out(o, now) for o in orders]
    paid = [o for o in orders if o.status == "paid" and o.paid_at is not None and start <= o.paid_at < end]
    statuses = [i.status for i in items]
    return Reconciliation(date=date, kiosk_id=kiosk.id, items=items, totals=ReconciliationTotals(
        paid_count=len(paid), paid_fen=sum(o.amount_fen for o in paid),
        cancelled_count=statuses.count("cancelled"), pending_count=statuses.count("pending"),
        expired_count=statuses.count("expired")))
