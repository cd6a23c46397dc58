"""Payments: an order per fee of an application (amount in fen), confirmed or cancelled by the kiosk whose payment
terminal took (or did not take) the money, and the day's reconciliation list for that kiosk.

Order status: ``pending`` → ``paid`` | ``cancelled``; a pending order past ``expires_at`` reads as ``expired`` and a
new order can then be created for the same fee. A confirmation is accepted even after expiry (the terminal has taken
the money) unless the order was cancelled or the fee was paid through another order (409: the kiosk must reverse).
Confirming again with the same ``txn_ref`` returns the paid order (safe to repeat with any Idempotency-Key).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service_platform.auth import CitizenWriter, citizen_writer, require_citizen, require_kiosk
from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.identity import mask_name
from service_platform.models import (
    Application, ApplicationEvent, CitizenSession, Kiosk, PaymentOrder, ProviderNotification, ServiceFilingRule)
from service_platform.numbering import daily_number
from service_platform.payment_provider import (
    MAX_SKEW_S, SIGNATURE_HEADER, canonical_string, parse_signature, verify)
from service_platform.routes.applications import local
from service_platform.schemas import (
    CashierPay, IsoDate, PaymentCancel, PaymentConfirm, PaymentOrderCreate, PaymentOrderList, PaymentOrderOut,
    Reconciliation, ReconciliationTotals)

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


@router.get("/me/payment-orders", response_model=PaymentOrderList, responses=error_responses(401, 403),
            summary="The citizen's payment orders", dependencies=[level_dependency(*STRONG)],
            openapi_extra=level_extra(*STRONG))
def my_orders(citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db),
              now: dt.datetime = Depends(get_now)) -> PaymentOrderList:
    """Newest first."""
    orders = db.scalars(select(PaymentOrder).where(PaymentOrder.payer_id_number == citizen.id_number)
                        .order_by(PaymentOrder.id.desc())).all()
    return PaymentOrderList(items=[order_out(o, now) for o in orders])


@router.post("/me/payment-orders", response_model=PaymentOrderOut, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Create a new order for the fee of one of the citizen's applications",
             dependencies=[level_dependency(*STRONG)],
             openapi_extra=level_extra(*STRONG))
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


def provider_key(request: Request) -> Ed25519PublicKey:
    """The payment provider's public key; 503 ``payment_provider_not_configured`` without one."""
    key = getattr(request.app.state, "payment_provider_key", None)
    if key is None:
        raise ApiError(503, "payment_provider_not_configured",
                       "no payment provider key is configured: the cashier accepts no notification")
    return key


#: the provider's signature is its credential: a security scheme (what the server enforces), not an optional header
provider_signature = APIKeyHeader(
    name=SIGNATURE_HEADER, auto_error=False, scheme_name="ProviderSignature",
    description="The unified-payment provider's notification signature: `v1=<standard base64 of the 64-byte "
                "Ed25519 signature of the canonical string>` (format in service_platform/README.md). Missing or "
                "malformed: 401 signature_required; not verifying: 401 signature_invalid.")


@router.put("/cashier/{order_no}/payment", response_model=PaymentOrderOut,
            responses=error_responses(401, 404, 409, 422, 503),
            summary="The payment provider notifies that the citizen's phone paid an order (signed, Ed25519)")
def cashier_pay(body: CashierPay, order_no: str = Path(max_length=24),
                key: Ed25519PublicKey = Depends(provider_key),
                signature: str | None = Depends(provider_signature),
                db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> PaymentOrderOut:
    """The QR a kiosk shows for an order encodes ``{platform}/cashier/{order_no}``; the citizen's wallet pays the
    unified-payment provider, which notifies here with a notification signed by its Ed25519 key (the platform
    holds only the public key; format in service_platform/README.md). The kiosk learns the payment by polling.

    Refused, in this order: 503 ``payment_provider_not_configured``; 401 ``signature_required`` (no or malformed
    ``X-Provider-Signature``), ``signature_invalid``; 422 ``order_mismatch`` (body and path differ),
    ``timestamp_out_of_range`` (more than 300 s from the platform's clock); 409 ``notification_replayed``: the
    transaction id or the nonce was used before — ANY reuse is refused, even a byte-identical resend (details: the
    order number and the first notification's outcome, so a provider retrying after a lost answer learns that the
    payment was recorded). A signed, fresh notification uses up its transaction id and nonce for good (kept in the
    database), whatever the outcome: 404; 422 ``amount_mismatch``; 409 ``already_paid``, ``order_cancelled``,
    ``order_expired``, ``fee_already_paid``."""
    raw = parse_signature(signature)
    if raw is None:
        raise ApiError(401, "signature_required", f"a {SIGNATURE_HEADER}: v1=<base64> header is required")
    message = canonical_string(body.order_no, body.amount_fen, body.currency, body.method, body.provider_txn_id,
                               body.timestamp, body.nonce)
    if not verify(key, raw, message):
        raise ApiError(401, "signature_invalid", "the notification's signature does not verify")
    if body.order_no != order_no:
        raise ApiError(422, "order_mismatch", "the signed order number is not the one in the path")
    signed_at = dt.datetime.fromtimestamp(body.timestamp, tz=dt.timezone.utc)
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_S:
        raise ApiError(422, "timestamp_out_of_range", f"the notification was signed more than {MAX_SKEW_S} s "
                                                      "from now")

    def replayed(seen: ProviderNotification | None) -> ApiError:
        details = {"order_no": seen.order_no, "outcome": seen.outcome} if seen is not None else None
        return ApiError(409, "notification_replayed", "this transaction id or nonce was used before",
                        details=details)

    seen = db.scalar(select(ProviderNotification).where(or_(
        ProviderNotification.provider_txn_id == body.provider_txn_id, ProviderNotification.nonce == body.nonce)))
    if seen is not None:
        raise replayed(seen)
    record = ProviderNotification(provider_txn_id=body.provider_txn_id, nonce=body.nonce, order_no=order_no,
                                  amount_fen=body.amount_fen, method=body.method, signed_at=signed_at,
                                  received_at=now, outcome="pending")
    db.add(record)
    try:
        db.flush()
    except IntegrityError:  # the same notification arriving concurrently
        db.rollback()
        raise replayed(None) from None
    try:
        order = _wallet_pays(db, order_no, body, now)
    except ApiError as exc:
        record.outcome = exc.code
        db.commit()
        raise
    record.outcome = "paid"
    db.commit()
    return order_out(order, now)


def _wallet_pays(db: Session, order_no: str, body: CashierPay, now: dt.datetime) -> PaymentOrder:
    order = db.scalar(select(PaymentOrder).where(PaymentOrder.order_no == order_no).with_for_update(of=PaymentOrder))
    if order is None:
        raise not_found(f"payment order {order_no!r}")
    status = effective_status(order, now)
    if status == "paid":
        raise ApiError(409, "already_paid", "this order is paid")
    if status == "cancelled":
        raise ApiError(409, "order_cancelled", "this order was cancelled")
    if status == "expired":
        raise ApiError(409, "order_expired", "this order has expired")
    if body.amount_fen != order.amount_fen:
        raise ApiError(422, "amount_mismatch", f"the order is for {order.amount_fen} fen")
    if any(o.status == "paid" for o in _orders_of_app(db, order.application_id)):
        raise ApiError(409, "fee_already_paid", "this fee was paid through another order")
    order.status, order.paid_at, order.method = "paid", now.replace(microsecond=0), body.method
    order.txn_ref = body.provider_txn_id
    app = order.application
    db.add(ApplicationEvent(application_id=app.id, status=app.status, at=order.paid_at, department=app.department,
                            note=f"已缴纳{order.purpose} {order.amount_fen / 100:.2f}元（{METHOD_TEXT[body.method]}）"))
    return order


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
def reconciliation(date: Annotated[IsoDate, Query(description="Business day (China Standard Time), e.g. 2026-11-02")],
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
