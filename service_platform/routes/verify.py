"""Public verification (扫码核验): plain HTML pages a phone opens from a printed QR, and their JSON twins.

No login and no personal data beyond a masked holder name. Every page and twin shares one failure throttle per client
address: more than 20 misses (unknown or malformed codes/numbers) within 10 minutes → 429 ``too_many_attempts`` with
``Retry-After`` for everything from that address (hits included), so codes cannot be enumerated — they are
unguessable anyway (75 random bits + a check character, verification_codes.py).

Pages: ``/verify`` (type a code), ``/verify/d/{code}`` documents (proofs, e-certificates), ``/verify/a/{number}``
application receipts, ``/verify/p/{order_no}`` payment vouchers, ``/verify/t/{ticket_id}`` queue tickets,
``/verify/m/{appointment_no}`` appointment slips, ``/verify/f/{reference}`` complaint/feedback references, ``/guides/{service_code}`` service guides,
``/cashier/{order_no}`` the phone cashier page of an order, ``/verify/ca.pem`` the seal CA's root certificate.
"""
from __future__ import annotations

import datetime as dt
import html
import importlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service_platform.db import CHINA_TZ
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses
from service_platform.identity import mask_name
from service_platform.models import Application, Appointment, ECertificate, PaymentOrder, QueueTicket, Service
from service_platform.proof_models import IssuedDocument
from service_platform.proof_schemas import (
    AppointmentVerification, ApplicationVerification, DocumentVerification, PaymentVerification, QueueTicketVerification)
from service_platform.routes.applications import STATUS_TEXT, local
from service_platform.seal import SealUnavailable
from service_platform.verification_codes import normalize

api = APIRouter(prefix="/api/v1/verify", tags=["verification"])
pages = APIRouter(include_in_schema=False)

_THROTTLED = {429: {**error_responses(429)[429],
                    "description": "Too many misses from this address (too_many_attempts; Retry-After)"}}
_HEX64 = r"^[0-9a-fA-F]{64}$"
ORDER_TEXT = {"pending": ("待支付", "Awaiting payment"), "paid": ("已支付", "Paid"),
              "cancelled": ("已取消", "Cancelled"), "expired": ("已过期", "Expired")}
TICKET_TEXT = {"waiting": ("等候中", "Waiting"), "called": ("已叫号", "Called"), "served": ("已办理", "Served"),
               "missed": ("已过号", "Missed"), "cancelled": ("已取消", "Cancelled")}


# --- throttle ------------------------------------------------------------------------------------------------------

def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def guarded(request: Request, now: dt.datetime, find: Callable[[], Any]) -> Any:
    """``find()`` under the verify throttle: refused while the address is over the limit; a None result counts as a
    miss and is 404 ``not_found``."""
    throttle = request.app.state.verify_throttle
    client = _client(request)
    wait = throttle.retry_after(client, now)
    if wait is not None:
        raise ApiError(429, "too_many_attempts", "too many unknown codes from this address; try again later",
                       headers={"Retry-After": str(wait)})
    found = find()
    if found is None:
        throttle.failed(client, now)
        raise ApiError(404, "not_found", "nothing is registered under this code or number")
    return found


# --- lookups -------------------------------------------------------------------------------------------------------

def document_verification(db: Session, code: str, sha256: str | None) -> DocumentVerification | None:
    canonical = normalize(code)
    row = db.get(IssuedDocument, canonical) if canonical else None
    if row is None:
        return None
    revoked_at = row.revoked_at
    if row.kind == "e_certificate" and revoked_at is None and row.source_id:
        cert = db.get(ECertificate, row.source_id)
        if cert is not None and cert.revoked:
            revoked_at = row.issued_at
    return DocumentVerification(
        code=row.code, kind=row.kind, type=row.type_code, name=row.type_name, issuer=row.issuer,  # type: ignore[arg-type]
        issued_at=local(row.issued_at), holder_name_masked=mask_name(row.holder_name),
        status="revoked" if revoked_at else "valid", revoked_at=local(revoked_at) if revoked_at else None,
        sha256=row.sha256, sha256_matches=None if not sha256 else sha256.strip().lower() == row.sha256)


def application_verification(db: Session, number: str) -> ApplicationVerification | None:
    app = db.scalar(select(Application).where(Application.number == number.strip().upper())
                    .options(selectinload(Application.events)))
    if app is None:
        return None
    zh, en = STATUS_TEXT[app.status]
    updated = max((e.at for e in app.events), default=app.submitted_at)
    return ApplicationVerification(number=app.number, status=app.status, status_text_zh=zh, status_text_en=en,
                                   updated_at=local(updated))


def payment_verification(db: Session, order_no: str) -> PaymentVerification | None:
    order = db.scalar(select(PaymentOrder).where(PaymentOrder.order_no == order_no.strip().upper()))
    if order is None:
        return None
    return PaymentVerification(order_no=order.order_no, status=order.status, paid=order.status == "paid",
                               amount_fen=order.amount_fen, payee=order.payee,
                               paid_at=local(order.paid_at) if order.paid_at else None)


def ticket_verification(db: Session, ticket_id: str) -> QueueTicketVerification | None:
    t = db.get(QueueTicket, ticket_id.strip())
    if t is None:
        return None
    return QueueTicketVerification(ticket_no=t.ticket_no, hall=t.hall.place.name, queue_name=t.queue_name, day=t.day,
                                   status=t.status, issued_at=local(t.issued_at))


def appointment_verification(db: Session, appointment_no: str) -> AppointmentVerification | None:
    a = db.scalar(select(Appointment).where(Appointment.appointment_no == appointment_no.strip().upper()))
    if a is None:
        return None
    return AppointmentVerification(appointment_no=a.appointment_no, hall=a.hall.place.name,
                                   service_name=a.service.name, day=a.day, start=a.start_time, end=a.end_time,
                                   status=a.status)


def feedback_verification(db: Session, reference: str) -> dict[str, str] | None:
    """Hook for complaint/feedback references: a module ``service_platform.feedback`` with
    ``public_status(db, reference) -> dict[str, str] | None`` (label → value, no personal data) is used when it
    exists; until then every reference is unknown."""
    try:
        module = importlib.import_module("service_platform.feedback")
    except ImportError:
        return None
    lookup = getattr(module, "public_status", None)
    return lookup(db, reference) if callable(lookup) else None


# --- JSON twins ------------------------------------------------------------------------------------------------------

@api.get("/documents/{code}", response_model=DocumentVerification, responses={**error_responses(404), **_THROTTLED},
         summary="Verify a proof or e-certificate by its verification code (public)")
def verify_document_json(request: Request, code: str = Path(max_length=40),
                         sha256: str | None = Query(default=None, pattern=_HEX64,
                                                    description="SHA-256 of the PDF at hand, to compare"),
                         db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> DocumentVerification:
    return guarded(request, now, lambda: document_verification(db, code, sha256))


@api.get("/applications/{number}", response_model=ApplicationVerification,
         responses={**error_responses(404), **_THROTTLED}, summary="Verify an application receipt (public)")
def verify_application_json(request: Request, number: str = Path(max_length=24), db: Session = Depends(get_db),
                            now: dt.datetime = Depends(get_now)) -> ApplicationVerification:
    return guarded(request, now, lambda: application_verification(db, number))


@api.get("/payments/{order_no}", response_model=PaymentVerification,
         responses={**error_responses(404), **_THROTTLED}, summary="Verify a payment voucher (public)")
def verify_payment_json(request: Request, order_no: str = Path(max_length=24), db: Session = Depends(get_db),
                        now: dt.datetime = Depends(get_now)) -> PaymentVerification:
    return guarded(request, now, lambda: payment_verification(db, order_no))


@api.get("/queue-tickets/{ticket_id}", response_model=QueueTicketVerification,
         responses={**error_responses(404), **_THROTTLED}, summary="Verify a queue ticket (public)")
def verify_ticket_json(request: Request, ticket_id: str = Path(max_length=40), db: Session = Depends(get_db),
                       now: dt.datetime = Depends(get_now)) -> QueueTicketVerification:
    return guarded(request, now, lambda: ticket_verification(db, ticket_id))


@api.get("/appointments/{appointment_no}", response_model=AppointmentVerification,
         responses={**error_responses(404), **_THROTTLED}, summary="Verify an appointment slip (public)")
def verify_appointment_json(request: Request, appointment_no: str = Path(max_length=24),
                            db: Session = Depends(get_db),
                            now: dt.datetime = Depends(get_now)) -> AppointmentVerification:
    return guarded(request, now, lambda: appointment_verification(db, appointment_no))


# --- HTML pages ----------------------------------------------------------------------------------------------------

_STYLE = """body{font-family:"Noto Sans CJK SC",sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:34rem;margin:0 auto;padding:1rem}h1{font-size:1.3rem}
.card{background:#fff;border-radius:.6rem;padding:1rem;box-shadow:0 1px 3px #0002}
.status{font-size:1.4rem;font-weight:bold;padding:.6rem;border-radius:.4rem;text-align:center}
.ok{background:#e3f6e8;color:#11692c}.bad{background:#fde7e7;color:#a11}.info{background:#e8eefc;color:#234}
dl{display:grid;grid-template-columns:7.5rem 1fr;gap:.4rem .6rem}dt{color:#666}dd{margin:0;word-break:break-all}
footer{color:#888;font-size:.8rem;margin-top:1rem}input,button{font-size:1rem;padding:.5rem}"""


def _html(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    page = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title><style>{_STYLE}</style>'
            f'</head><body><main><h1>{html.escape(title)}</h1>{body}'
            f'<footer>一网通办参考平台 · 公开核验页面（不含个人信息） · reference platform, demo data</footer>'
            f'</main></body></html>')
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _rows(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows) + "</dl>"


def _status(ok: bool | None, zh: str, en: str, key: str) -> str:
    css = "info" if ok is None else "ok" if ok else "bad"
    return f'<div class="status {css}" data-status="{html.escape(key)}">{html.escape(zh)} · {html.escape(en)}</div>'


def _when(at: dt.datetime | None) -> str:
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if at else "—"


def _page(request: Request, now: dt.datetime, title: str, find: Callable[[], Any],
          render: Callable[[Any], str]) -> HTMLResponse:
    try:
        found = guarded(request, now, find)
    except ApiError as exc:
        if exc.status == 429:
            return _html(title, _status(False, "查询过于频繁，请稍后再试", "Too many attempts, try later",
                                        "throttled"), 429, exc.headers)
        return _html(title, '<div class="card">' + _status(False, "未查到", "Not found", "not_found") +
                     "<p>请核对号码或验证码。Check the number or code.</p></div>", 404)
    return _html(title, '<div class="card">' + render(found) + "</div>")


@pages.get("/verify", response_class=HTMLResponse)
def verify_home(code: str | None = Query(default=None, max_length=40)) -> Response:
    if code:
        canonical = normalize(code)
        if canonical:
            return RedirectResponse(f"/verify/d/{canonical}", status_code=303)
    hint = "<p>验证码格式不正确。The code is not valid.</p>" if code else ""
    form = ('<div class="card"><form method="get" action="/verify"><label>验证码 Verification code<br>'
            '<input name="code" maxlength="40" autocomplete="off" placeholder="XXXX-XXXX-XXXX-XXXX"></label> '
            f'<button type="submit">核验 Verify</button></form>{hint}</div>')
    return _html("电子证明/证照核验", form)


@pages.get("/verify/ca.pem")
def ca_certificate(request: Request) -> Response:
    """The root certificate of the platform's seal CA, for validators (pdfsig, Adobe, pyHanko)."""
    try:
        pem = request.app.state.seal_keeper.ca_pem()
    except SealUnavailable:
        return Response("no seal CA configured\n", status_code=404, media_type="text/plain")
    return Response(pem, media_type="application/x-pem-file")


@pages.get("/verify/d/{code}", response_class=HTMLResponse)
def verify_document_page(request: Request, code: str = Path(max_length=40),
                         sha256: str | None = Query(default=None, max_length=64),
                         db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: DocumentVerification) -> str:
        kind = "证明 proof" if v.kind == "proof" else "电子证照 e-certificate"
        status = (_status(True, "有效", "Valid", "valid") if v.status == "valid"
                  else _status(False, "已撤销", "Revoked", "revoked"))
        rows = [("类型 Type", f"{v.name}（{kind}）"), ("出具单位 Issuer", v.issuer),
                ("出具时间 Issued", _when(v.issued_at)), ("持有人 Holder", v.holder_name_masked),
                ("验证码 Code", v.code), ("文件 SHA-256", v.sha256)]
        if v.revoked_at:
            rows.append(("撤销时间 Revoked", _when(v.revoked_at)))
        body = status + _rows(rows)
        if v.sha256_matches is not None:
            body += (_status(True, "文件哈希一致", "Document hash matches", "hash_match") if v.sha256_matches else
                     _status(False, "文件哈希不一致", "Document hash does NOT match", "hash_mismatch"))
        body += ('<p>电子印章为PAdES数字签名，可用PDF阅读器核验；根证书：<a href="/verify/ca.pem">ca.pem</a>。'
                 "The seal is a PAdES signature; the root certificate is linked.</p>")
        return body

    return _page(request, now, "电子证明/证照核验", lambda: document_verification(db, code, sha256 if sha256 and
                                                                                 len(sha256) == 64 else None), render)


@pages.get("/verify/a/{number}", response_class=HTMLResponse)
def verify_application_page(request: Request, number: str = Path(max_length=24), db: Session = Depends(get_db),
                            now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: ApplicationVerification) -> str:
        return (_status(None, v.status_text_zh, v.status_text_en, v.status) +
                _rows([("办件编号 Number", v.number), ("状态 Status", f"{v.status_text_zh} {v.status_text_en}"),
                       ("最近更新 Updated", _when(v.updated_at))]) +
                "<p>详细进度请凭身份证后四位在自助终端或网上查询。Full progress needs the ID number's last 4.</p>")

    return _page(request, now, "办件回执核验", lambda: application_verification(db, number), render)


@pages.get("/verify/p/{order_no}", response_class=HTMLResponse)
def verify_payment_page(request: Request, order_no: str = Path(max_length=24), db: Session = Depends(get_db),
                        now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: PaymentVerification) -> str:
        zh, en = ORDER_TEXT.get(v.status, (v.status, v.status))
        return (_status(v.paid, zh, en, v.status) +
                _rows([("订单号 Order", v.order_no), ("金额 Amount", f"¥{v.amount_fen / 100:.2f}"),
                       ("收款单位 Payee", v.payee), ("支付时间 Paid at", _when(v.paid_at))]))

    return _page(request, now, "缴费凭证核验", lambda: payment_verification(db, order_no), render)


@pages.get("/verify/t/{ticket_id}", response_class=HTMLResponse)
def verify_ticket_page(request: Request, ticket_id: str = Path(max_length=40), db: Session = Depends(get_db),
                       now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: QueueTicketVerification) -> str:
        zh, en = TICKET_TEXT.get(v.status, (v.status, v.status))
        return (_status(None, zh, en, v.status) +
                _rows([("号码 Ticket", v.ticket_no), ("大厅 Hall", v.hall), ("队列 Queue", v.queue_name),
                       ("日期 Day", v.day.isoformat()), ("取号时间 Issued", _when(v.issued_at))]))

    return _page(request, now, "排队号核验", lambda: ticket_verification(db, ticket_id), render)


APPOINTMENT_TEXT = {"booked": ("已预约", "Booked"), "cancelled": ("已取消", "Cancelled"),
                    "checked_in": ("已签到", "Checked in")}


@pages.get("/verify/m/{appointment_no}", response_class=HTMLResponse)
def verify_appointment_page(request: Request, appointment_no: str = Path(max_length=24),
                            db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: AppointmentVerification) -> str:
        zh, en = APPOINTMENT_TEXT.get(v.status, (v.status, v.status))
        return (_status(v.status != "cancelled", zh, en, v.status) +
                _rows([("预约号 Number", v.appointment_no), ("大厅 Hall", v.hall), ("事项 Service", v.service_name),
                       ("时间 Time", f"{v.day.isoformat()} {v.start}–{v.end}")]))

    return _page(request, now, "预约凭证核验", lambda: appointment_verification(db, appointment_no), render)


@pages.get("/verify/f/{reference}", response_class=HTMLResponse)
def verify_feedback_page(request: Request, reference: str = Path(max_length=40), db: Session = Depends(get_db),
                         now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    def render(v: dict[str, str]) -> str:
        return _status(None, "已登记", "Registered", "registered") + _rows(list(v.items()))

    return _page(request, now, "投诉建议核验", lambda: feedback_verification(db, reference), render)


@pages.get("/guides/{service_code}", response_class=HTMLResponse)
def guide_page(request: Request, service_code: str = Path(max_length=60), db: Session = Depends(get_db),
               now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    """The service guide (办事指南) a printed notice links to: public catalogue data."""
    def find() -> Service | None:
        return db.scalar(select(Service).where(Service.code == service_code)
                         .options(selectinload(Service.materials), selectinload(Service.place_links)))

    def render(s: Service) -> str:
        fee = "免费 free" if not s.fee_fen else f"¥{s.fee_fen / 100:.2f}"
        body = _rows([("事项 Service", f"{s.name} / {s.name_en}"), ("部门 Department", s.department),
                      ("承诺时限 Promised", f"{s.promised_days} 个工作日"), ("收费 Fee", fee)])
        if s.conditions:
            body += "<h2>办理条件</h2><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in s.conditions) + "</ul>"
        body += "<h2>申请材料</h2><ol>" + "".join(
            f"<li>{html.escape(m.name)}（原件{m.originals}份" + (f"，复印件{m.copies}份" if m.copies else "") + "）</li>"
            for m in s.materials) + "</ol>"
        places = [link.place for link in s.place_links]
        if places:
            body += "<h2>办理地点</h2><ul>" + "".join(
                f"<li>{html.escape(p.name)} — {html.escape(p.address)}（{html.escape(p.hours)}）</li>"
                for p in places) + "</ul>"
        return body

    return _page(request, now, "办事指南", find, render)


@pages.get("/cashier/{order_no}", response_class=HTMLResponse)
def cashier_page(request: Request, order_no: str = Path(max_length=24), db: Session = Depends(get_db),
                 now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    """What the phone shows after scanning the kiosk's payment QR: the order to pay (amount, payee, state). The
    wallet app pays through the payment provider, which notifies the platform (signed); the kiosk polls."""
    def render(v: PaymentVerification) -> str:
        zh, en = ORDER_TEXT.get(v.status, (v.status, v.status))
        return (_status(v.paid if v.status != "pending" else None, zh, en, v.status) +
                _rows([("订单号 Order", v.order_no), ("金额 Amount", f"¥{v.amount_fen / 100:.2f}"),
                       ("收款单位 Payee", v.payee)]) +
                "<p>请使用手机钱包（微信支付、支付宝、数字人民币）完成支付，终端将自动确认。"
                "Pay with your wallet app; the kiosk confirms by itself.</p>")

    return _page(request, now, "统一支付", lambda: payment_verification(db, order_no), render)
