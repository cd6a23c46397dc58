"""Phone upload (手机上传): the kiosk asks for a one-time link bound to the citizen session, shows it as a QR; the
citizen's phone opens a small page on the platform's PUBLIC address and sends photos; the kiosk polls and uses them
like its own camera's pages (they are ordinary ``uploads`` of the citizen).

Who may call: the kiosk routes need the kiosk signature and a live citizen session (card+face or card+pin) — the
SAME session that made the link (another session's link is 404, even the same citizen's); the phone page needs only
the secret in the link (≥ 192 random bits; only its SHA-256 is stored), valid 10 minutes and while the session
lives, for at most 10 photos of at most 8 MB each (JPEG or PNG). Ending the session, closing the link, or retention
(1 hour after it expired) deletes the photos not attached to an application.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import re
import secrets

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service_platform.auth import hash_token, is_live, require_citizen, require_kiosk
from service_platform.deps import get_db, get_now
from service_platform.errors import ApiError, error_responses, not_found
from service_platform.idempotency import require_idempotency_key, run_idempotent
from service_platform.levels import STRONG, level_dependency, level_extra
from service_platform.models import CitizenSession, Kiosk, Upload
from service_platform.numbering import opaque_id
from service_platform.proof_models import PhoneUploadFile, PhoneUploadToken
from service_platform.proof_schemas import PhoneUploadCreate, PhoneUploadFileOut, PhoneUploadOut
from service_platform.routes.applications import local
from service_platform.routes.filing import MAX_UPLOAD_BYTES, inspect_image
from service_platform.routes.proofs import public_base
from service_platform.routes.verify import _html, _status

router = APIRouter(prefix="/api/v1", tags=["phone upload"])
pages = APIRouter(include_in_schema=False)

TOKEN_TTL = dt.timedelta(minutes=10)
MAX_FILES = 10
#: the largest multipart body the phone page reads (all photos of a link in one post, plus the form's overhead)
MAX_FORM_BYTES = MAX_FILES * MAX_UPLOAD_BYTES + 64 * 1024
_JPEG_OR_PNG = {200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                  "image/png": {"schema": {"type": "string", "format": "binary"}}},
                      "description": "The photo as the phone sent it"}}


def token_status(token: PhoneUploadToken, session: CitizenSession | None, now: dt.datetime) -> str:
    if token.closed_at is not None:
        return "closed"
    if now >= token.expires_at or session is None or not is_live(session, now):
        return "expired"
    return "open"


def _files(db: Session, token: PhoneUploadToken) -> list[PhoneUploadFileOut]:
    rows = db.execute(select(PhoneUploadFile, Upload).join(Upload, Upload.id == PhoneUploadFile.upload_id)
                      .where(PhoneUploadFile.token_id == token.id).order_by(PhoneUploadFile.id)).all()
    return [PhoneUploadFileOut(upload_id=u.id, content_type=u.content_type, size=u.size, width=u.width,
                               height=u.height, blank=u.blank, received_at=local(f.received_at)) for f, u in rows]


def _out(db: Session, token: PhoneUploadToken, session: CitizenSession | None, now: dt.datetime,
         url: str | None) -> PhoneUploadOut:
    return PhoneUploadOut(id=token.id, upload_url=url, status=token_status(token, session, now),  # type: ignore[arg-type]
                          expires_at=local(token.expires_at), max_files=token.max_files, max_bytes=MAX_UPLOAD_BYTES,
                          files=_files(db, token))


def _my_token(db: Session, citizen: CitizenSession, token_id: str) -> PhoneUploadToken:
    token = db.get(PhoneUploadToken, token_id)
    if token is None or token.citizen_session_id != citizen.id:
        raise not_found("phone upload")
    return token


def wipe_token(db: Session, token: PhoneUploadToken, now: dt.datetime) -> int:
    """Close the link and delete its photos that no application claimed; returns how many were deleted."""
    ids = [u for (u,) in db.execute(select(PhoneUploadFile.upload_id).where(PhoneUploadFile.token_id == token.id))]
    deleted = 0
    if ids:
        deleted = db.execute(delete(Upload).where(Upload.id.in_(ids), Upload.application_id.is_(None))
                             .execution_options(synchronize_session=False)).rowcount
    if token.closed_at is None:
        token.closed_at = now
    return deleted


def wipe_session(db: Session, session_id: int, now: dt.datetime) -> int:
    """Everything phone-uploaded in one citizen session (called when the session ends)."""
    total = 0
    for token in db.scalars(select(PhoneUploadToken).where(PhoneUploadToken.citizen_session_id == session_id)):
        total += wipe_token(db, token, now)
    return total


@router.post("/me/phone-uploads", response_model=PhoneUploadOut, status_code=201,
             responses=error_responses(401, 403, 409, 422),
             summary="A one-time phone upload link bound to this citizen session (show it as a QR)",
             dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def create_link(body: PhoneUploadCreate, request: Request, kiosk: Kiosk = Depends(require_kiosk),
                citizen: CitizenSession = Depends(require_citizen),
                idempotency_key: str = Depends(require_idempotency_key),
                db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> JSONResponse:
    """Valid 10 minutes and never after the session ends. The link (``upload_url``, on the platform's PUBLIC
    address) is only in this answer (and its idempotent replay)."""
    payload = {"kiosk_id": kiosk.id, "citizen_session": citizen.id, **body.model_dump()}
    base = public_base(request)

    def create() -> tuple[int, dict]:
        secret = secrets.token_urlsafe(24)
        token = PhoneUploadToken(id=opaque_id("pu"), token_hash=hash_token(secret), citizen_session_id=citizen.id,
                                 kiosk_id=kiosk.id, owner_id_number=citizen.id_number, purpose=body.purpose,
                                 max_files=MAX_FILES, created_at=now,
                                 expires_at=min(now + TOKEN_TTL, citizen.expires_at))
        db.add(token)
        db.flush()
        return 201, _out(db, token, citizen, now, f"{base}/upload/{secret}").model_dump(mode="json")

    return run_idempotent(db, scope="me/phone-uploads", key=idempotency_key, payload=payload, now=now,
                          create=create).response()


@router.get("/me/phone-uploads/{token_id}", response_model=PhoneUploadOut, responses=error_responses(401, 403, 404),
            summary="Poll a phone upload link: its state and the photos received so far",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def poll_link(token_id: str = Path(max_length=40), citizen: CitizenSession = Depends(require_citizen),
              db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> PhoneUploadOut:
    token = _my_token(db, citizen, token_id)
    return _out(db, token, citizen, now, None)


@router.get("/me/phone-uploads/{token_id}/files/{upload_id}", response_class=Response,
            responses={**_JPEG_OR_PNG, **error_responses(401, 403, 404)},
            summary="One photo received through a phone upload link (for the thumbnail)",
            dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def link_file(token_id: str = Path(max_length=40), upload_id: str = Path(max_length=40),
              citizen: CitizenSession = Depends(require_citizen), db: Session = Depends(get_db)) -> Response:
    token = _my_token(db, citizen, token_id)
    linked = db.scalar(select(PhoneUploadFile).where(PhoneUploadFile.token_id == token.id,
                                                     PhoneUploadFile.upload_id == upload_id))
    upload = db.get(Upload, upload_id) if linked else None
    if upload is None:
        raise not_found("photo")
    return Response(upload.data, media_type=upload.content_type, headers={"Cache-Control": "no-store"})


@router.delete("/me/phone-uploads/{token_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404),
               summary="Close a phone upload link and delete its photos not attached to an application",
               dependencies=[level_dependency(*STRONG)], openapi_extra=level_extra(*STRONG))
def close_link(token_id: str = Path(max_length=40), citizen: CitizenSession = Depends(require_citizen),
               db: Session = Depends(get_db), now: dt.datetime = Depends(get_now)) -> Response:
    wipe_token(db, _my_token(db, citizen, token_id), now)
    db.commit()
    return Response(status_code=204)


# --- the phone's page ----------------------------------------------------------------------------------------------

def _phone_token(request: Request, db: Session, secret: str, now: dt.datetime
                 ) -> tuple[PhoneUploadToken | None, str, CitizenSession | None]:
    """(token, state, session) of a link secret; a miss counts against the address (verify throttle)."""
    throttle = request.app.state.verify_throttle
    client = request.client.host if request.client else "unknown"
    if throttle.retry_after(client, now) is not None:
        return None, "throttled", None
    token = db.scalar(select(PhoneUploadToken).where(PhoneUploadToken.token_hash == hash_token(secret)))
    if token is None:
        throttle.failed(client, now)
        return None, "unknown", None
    session = db.get(CitizenSession, token.citizen_session_id)
    return token, token_status(token, session, now), session


_STATE_PAGES = {
    "throttled": (429, "尝试过于频繁，请稍后再试", "Too many attempts, try later"),
    "unknown": (404, "链接无效", "This link is not valid"),
    "expired": (410, "链接已过期，请在终端上重新生成二维码", "The link has expired: make a new QR at the kiosk"),
    "closed": (410, "链接已关闭", "The link was closed at the kiosk"),
}


def _state_page(state: str) -> HTMLResponse:
    status, zh, en = _STATE_PAGES[state]
    return _html("手机上传材料", '<div class="card">' + _status(False, zh, en, state) + "</div>", status)


def _form(secret: str, received: int, max_files: int, note: str = "") -> str:
    left = max_files - received
    return (f'<div class="card">{note}<p>已收到 {received} 张，还可上传 {left} 张（每张不超过 8 MB，JPEG/PNG）。'
            f"Received {received}; up to {left} more photos.</p>"
            f'<form method="post" action="/upload/{html.escape(secret)}" enctype="multipart/form-data">'
            '<input type="file" name="photos" accept="image/jpeg,image/png" capture="environment" multiple required>'
            '<p><button type="submit">上传 Upload</button></p></form>'
            "<p>照片将显示在自助终端上，离开终端后自动删除。Photos appear on the kiosk and are deleted when you "
            "leave it.</p></div>")


@pages.get("/upload/{secret}", response_class=HTMLResponse)
def phone_page(request: Request, secret: str = Path(max_length=64), db: Session = Depends(get_db),
               now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    token, state, _session = _phone_token(request, db, secret, now)
    db.commit()
    if token is None or state != "open":
        return _state_page(state)
    count = db.scalar(select(func.count()).select_from(PhoneUploadFile).where(PhoneUploadFile.token_id == token.id))
    return _html("手机上传材料", _form(secret, int(count or 0), token.max_files))


@pages.post("/upload/{secret}", response_class=HTMLResponse)
async def phone_upload(request: Request, secret: str = Path(max_length=64), db: Session = Depends(get_db),
                       now: dt.datetime = Depends(get_now)) -> HTMLResponse:
    """``multipart/form-data`` with the photos in field ``photos``. Refused before reading: a body without
    Content-Length (411) or above all the link's photos together (413)."""
    token, state, session = _phone_token(request, db, secret, now)
    if token is None or state != "open":
        db.commit()
        return _state_page(state)
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return _html("手机上传材料", _status(False, "请求无效", "Content-Length required", "length_required"), 411)
    if int(length) > MAX_FORM_BYTES:
        return _html("手机上传材料", _status(False, "照片太大", "Too large", "too_large"), 413)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return _html("手机上传材料", _status(False, "请用上传表单", "Use the upload form", "unsupported"), 415)
    try:
        form = await request.form(max_files=MAX_FILES + 1, max_fields=4)
    except Exception:  # noqa: BLE001 - malformed multipart bodies of any kind
        return _html("手机上传材料", _status(False, "上传内容无法读取", "Unreadable upload", "invalid"), 400)
    try:
        photos = [f for f in form.getlist("photos") if hasattr(f, "read")]
        count = int(db.scalar(select(func.count()).select_from(PhoneUploadFile)
                              .where(PhoneUploadFile.token_id == token.id)) or 0)
        if not photos:
            return _html("手机上传材料", _form(secret, count, token.max_files,
                                             _status(False, "请选择照片", "Choose photos", "empty")), 422)
        if count + len(photos) > token.max_files:
            return _html("手机上传材料", _form(secret, count, token.max_files, _status(
                False, "照片数量超过上限", "Too many photos", "too_many")), 413)
        accepted = []
        for photo in photos:
            data = await photo.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                db.rollback()
                return _html("手机上传材料", _form(secret, count, token.max_files, _status(
                    False, "单张照片不能超过 8 MB", "Each photo must be at most 8 MB", "too_large")), 413)
            kind = _sniff(data)
            if kind is None:
                db.rollback()
                return _html("手机上传材料", _form(secret, count, token.max_files, _status(
                    False, "仅支持 JPEG/PNG 照片", "JPEG or PNG photos only", "unsupported")), 415)
            try:
                width, height, blank = inspect_image(data, kind)
            except ApiError:
                db.rollback()
                return _html("手机上传材料", _form(secret, count, token.max_files, _status(
                    False, "照片无法读取", "The photo cannot be read", "invalid")), 422)
            upload = Upload(id=opaque_id("up"), owner_id_number=token.owner_id_number, kiosk_id=token.kiosk_id,
                            content_type=kind, size=len(data), width=width, height=height,
                            sha256=hashlib.sha256(data).hexdigest(), blank=blank, data=data, created_at=now)
            db.add(upload)
            db.add(PhoneUploadFile(token_id=token.id, upload_id=upload.id, received_at=now))
            accepted.append(upload.id)
        db.commit()
    finally:
        await form.close()
    note = _status(True, f"已收到 {len(accepted)} 张照片，请回到终端确认", f"{len(accepted)} photos received: "
                   "continue at the kiosk", "received")
    return _html("手机上传材料", _form(secret, count + len(accepted), token.max_files, note))


class RedactUploadSecrets(logging.Filter):
    """An access-log filter (cli.LOG_CONFIG): the secret of a phone upload link never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_IN_PATH.sub("/upload/<secret>", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


_SECRET_IN_PATH = re.compile(r"/upload/[^/?\s]+")


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None
