"""The controller's HTTP side: the REST/JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``) and the
operators' dashboard (server-rendered pages, inline SVG charts, a few lines of JavaScript for live refresh; nothing
from a CDN). Both need an operator: the dashboard through a session cookie, other tools through
``Authorization: Bearer <token>`` from ``POST /api/v1/auth/token``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from fleet import protocol as P
from fleet.controller import charts
from fleet.controller.auth import SessionSigner, verify_password
from fleet.controller.history import kiosk_history

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "fleet_session"

STATE_ZH = {"ok": "正常", "degraded": "降级", "fault": "故障", "offline": "离线", "absent": "未接入"}
PAPER_ZH = {"ok": "正常", "near-end": "将尽", "out": "缺纸"}
SERVICE_ZH = {"in_service": "服务中", "out_of_service": "暂停服务"}
SEVERITY_ZH = {"critical": "紧急", "major": "严重", "warning": "警告", "info": "提示"}
RULE_ZH = {"kiosk_offline": "终端离线", "paper_out": "打印纸用尽", "paper_near_end": "打印纸将尽",
           "device_fault": "设备故障", "disk_low": "磁盘空间不足", "seq_gap": "消息丢失（序号断档）"}
COMMAND_ZH = {"restart_app": "重启应用", "out_of_service": "暂停服务", "back_in_service": "恢复服务",
              "show_announcement": "发布公告", "push_profile": "推送设备配置", "self_test": "设备自检",
              "rebirth": "请求全量状态"}
COMMAND_STATUS_ZH = {"queued": "排队中", "sent": "已发送", "delivered": "已送达", "succeeded": "成功",
                     "failed": "失败", "rejected": "被拒绝", "timed_out": "超时", "expired": "已过期"}
DEVICE_ZH = {"idcard": "身份证阅读器", "receipt_printer": "凭条打印机", "payment_pad": "支付键盘",
             "smartcard": "社保卡读卡器", "camera": "摄像头", "qr_scanner": "扫码器", "licence_printer": "证照打印机"}
OFFLINE_ZH = {"will": "连接中断（遗嘱消息）", "shutdown": "正常关机", "heartbeat_missed": "心跳超时"}
EVENT_ZH = {"paper_out": "打印纸用尽", "paper_near_end": "打印纸将尽", "device_fault": "设备故障",
            "device_offline": "设备离线", "command_rejected": "拒绝了伪造的命令"}


# --- API models (the OpenAPI contract) ------------------------------------------------------------------------------

StateName = Literal["ok", "degraded", "fault", "offline", "absent"]
SeverityName = Literal["info", "warning", "major", "critical"]

class TokenRequest(BaseModel):
    username: str
    password: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class DeviceOut(BaseModel):
    kind: str
    state: str = Field(description="ok · degraded · fault · offline · absent")
    paper: str | None = Field(None, description="ok · near-end · out (printers)")
    error_code: str | None = None
    error_text: str = ""
    counters: dict[str, int] = {}
    xfs: str | None = Field(None, description="the driver's CEN/XFS device state")
    changed_at: int | None = None
    updated_at: int | None = None


class KioskSummaryOut(BaseModel):
    kiosk_id: str
    name: str
    district: str
    location: str
    online: bool
    state: str = Field(description="worst device state, or offline")
    service: str
    paper: str | None = None
    open_alerts: int = 0
    last_seen: int | None = None
    offline_since: int | None = None
    app_version: str = ""


class KioskOut(BaseModel):
    kiosk_id: str
    name: str
    district: str
    location: str
    app_version: str
    profile_hash: str
    agent_version: str
    online: bool
    state: str
    service: str
    announcement: str | None = None
    bd_seq: int
    heartbeat_s: float
    commands: list[str]
    last_seen: int | None = None
    born_at: int | None = None
    offline_since: int | None = None
    offline_reason: str | None = None
    host: dict[str, Any]
    counters: dict[str, Any]
    gap_open: bool
    devices: list[DeviceOut]


class AlertOut(BaseModel):
    id: int
    kiosk_id: str
    kiosk_name: str = ""
    district: str = ""
    rule: str
    device: str | None = None
    severity: str
    status: Literal["open", "cleared"]
    detail: str
    opened_at: int
    last_seen_at: int
    cleared_at: int | None = None
    hits: int
    acked_by: str | None = None
    acked_at: int | None = None


class CommandRequest(BaseModel):
    name: Literal["restart_app", "out_of_service", "back_in_service", "show_announcement", "push_profile",
                  "self_test", "rebirth"]
    args: dict[str, Any] = Field(default_factory=dict, description='e.g. {"text": "…"} for show_announcement, '
                                                                   '{"profile": "<yaml>", "sha256": "…"} for push_profile')
    ttl_s: float = Field(300, ge=5, le=86400, description="the command expires after this many seconds")


class CommandOut(BaseModel):
    id: str
    kiosk_id: str
    name: str
    args: dict[str, Any]
    status: Literal["queued", "sent", "delivered", "succeeded", "failed", "rejected", "timed_out", "expired"]
    detail: str
    data: dict[str, Any]
    created_by: str
    created_at: int
    expires_at: int
    sent_at: int | None = None
    accepted_at: int | None = None
    finished_at: int | None = None
    updated_at: int


class EventOut(BaseModel):
    ts: int
    device: str
    code: str
    severity: str
    active: bool
    text: str


class HistoryOut(BaseModel):
    kiosk_id: str
    since: int
    until: int
    bucket_ms: int
    sessions_per_hour: list[tuple[int, float]]
    pages_per_hour: list[tuple[int, float]]
    faults_per_hour: list[tuple[int, float]]
    paper: list[tuple[int, float]] = Field(description="(ts, level): 2 ok, 1 near-end, 0 out; one point per change")
    latency_ms: list[tuple[int, float]]
    cpu_temp_c: list[tuple[int, float]]
    disk_free_pct: list[tuple[int, float]]


class SummaryOut(BaseModel):
    kiosks: int
    online: int
    offline: int
    by_state: dict[str, int]
    open_alerts: int
    open_by_severity: dict[str, int]
    unacknowledged: int
    out_of_service: int


class StatsOut(BaseModel):
    controller_id: str
    this: dict[str, Any]
    controllers: list[dict[str, Any]]


# --- the app -----------------------------------------------------------------------------------------------------------

def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.globals.update(STATE_ZH=STATE_ZH, PAPER_ZH=PAPER_ZH, SERVICE_ZH=SERVICE_ZH, SEVERITY_ZH=SEVERITY_ZH,
                       RULE_ZH=RULE_ZH, COMMAND_ZH=COMMAND_ZH, COMMAND_STATUS_ZH=COMMAND_STATUS_ZH,
                       DEVICE_ZH=DEVICE_ZH, EVENT_ZH=EVENT_ZH, OFFLINE_ZH=OFFLINE_ZH, fmt_time=charts.fmt_time, fmt_ago=charts.fmt_ago,
                       fmt_duration=charts.fmt_duration)
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    return env


def create_app(controller: Any) -> FastAPI:
    """``controller`` is a running :class:`fleet.controller.service.FleetController` (None: only for the spec)."""
    app = FastAPI(title="Kiosk fleet controller API", version="1.0",
                  description=__doc__, docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")
    env = _env()
    store = controller.store if controller is not None else None
    signer = SessionSigner(store.setting("session_key") if store is not None else "spec-only")

    # auth ----------------------------------------------------------------------------------------------------
    def current_user(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return signer.verify(auth[7:].strip())
        return signer.verify(request.cookies.get(COOKIE))

    def api_user(request: Request) -> str:
        user = current_user(request)
        if user is None:
            raise HTTPException(401, "login required", headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST" and not request.headers.get("authorization"):
            token = request.cookies.get(COOKIE, "")
            if request.headers.get("x-csrf-token") != signer.csrf(token):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return user

    class LoginRedirect(Exception):
        pass

    @app.exception_handler(LoginRedirect)
    async def _to_login(request: Request, _exc: LoginRedirect) -> Response:
        return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)

    def page_user(request: Request) -> str:
        user = current_user(request)
        if user is None:
            raise LoginRedirect()
        return user

    def check_form_csrf(request: Request, csrf: str) -> None:
        if csrf != signer.csrf(request.cookies.get(COOKIE, "")):
            raise HTTPException(403, "the form expired; reload the page")

    def render(request: Request, template: str, user: str | None, **ctx: Any) -> HTMLResponse:
        token = request.cookies.get(COOKIE, "")
        html = env.get_template(template).render(user=user, csrf=signer.csrf(token) if token else "",
                                                 now=P.now_ms(), path=request.url.path, request=request, **ctx)
        return HTMLResponse(html)

    # ops -----------------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], summary="liveness: the process answers, the broker and database state")
    def healthz() -> dict[str, Any]:
        if controller is None:
            return {"ok": True}
        return {"ok": True, "broker_connected": controller.public_stats()["connected"], "controller_id": controller.id}

    # API -----------------------------------------------------------------------------------------------------
    @app.post("/api/v1/auth/token", response_model=TokenResponse, tags=["auth"], summary="log in; get a bearer token")
    def token(body: TokenRequest) -> TokenResponse:
        row = store.operator(body.username)
        if row is None or not verify_password(body.password, row.password_hash):
            raise HTTPException(401, "wrong username or password")
        return TokenResponse(access_token=signer.issue(body.username), expires_in=12 * 3600)

    @app.get("/api/v1/summary", response_model=SummaryOut, tags=["fleet"], summary="fleet at a glance")
    def summary(_user: str = Depends(api_user)) -> dict[str, Any]:
        return store.summary()

    @app.get("/api/v1/kiosks", response_model=list[KioskSummaryOut], tags=["fleet"],
             summary="kiosks, filtered by district, state, online, or text in id/name/location")
    def list_kiosks(district: str | None = None, state: StateName | None = None,
                    online: bool | None = None, q: str | None = None,
                    _user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return store.list_kiosks(district=district, state=state, q=q, online=online)

    @app.get("/api/v1/districts", response_model=list[str], tags=["fleet"])
    def districts(_user: str = Depends(api_user)) -> list[str]:
        return store.districts()

    def _kiosk_or_404(kiosk_id: str) -> dict[str, Any]:
        kiosk = store.kiosk(kiosk_id)
        if kiosk is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        return kiosk

    @app.get("/api/v1/kiosks/{kiosk_id}", response_model=KioskOut, tags=["fleet"],
             summary="one kiosk: identity, state, host health and every device")
    def get_kiosk(kiosk_id: str, _user: str = Depends(api_user)) -> dict[str, Any]:
        return _kiosk_or_404(kiosk_id)

    @app.get("/api/v1/kiosks/{kiosk_id}/history", response_model=HistoryOut, tags=["fleet"],
             summary="time series: sessions/pages/faults per hour, paper level, latency, temperature, disk")
    def history(kiosk_id: str, hours: float = Query(24, gt=0, le=24 * 31),
                _user: str = Depends(api_user)) -> dict[str, Any]:
        _kiosk_or_404(kiosk_id)
        return kiosk_history(store, kiosk_id, hours)

    @app.get("/api/v1/kiosks/{kiosk_id}/events", response_model=list[EventOut], tags=["fleet"])
    def kiosk_events(kiosk_id: str, limit: int = Query(50, ge=1, le=1000),
                     _user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return store.kiosk_events(kiosk_id, limit)

    @app.get("/api/v1/alerts", response_model=list[AlertOut], tags=["alerts"])
    def list_alerts(status: Literal["open", "cleared", "all"] = "open", kiosk_id: str | None = None,
                    severity: SeverityName | None = None,
                    limit: int = Query(500, ge=1, le=5000), _user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return store.alerts(status, kiosk_id, severity, limit)

    @app.post("/api/v1/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"],
              summary="acknowledge an alert (it still clears by itself when its condition is gone)")
    def ack_alert(alert_id: int, user: str = Depends(api_user)) -> dict[str, Any]:
        if store.alert(alert_id) is None:
            raise HTTPException(404, "no such alert")
        store.ack_alert(alert_id, user, P.now_ms())
        return store.alert(alert_id)  # type: ignore[return-value]

    @app.post("/api/v1/kiosks/{kiosk_id}/commands", response_model=CommandOut, status_code=202, tags=["commands"],
              summary="send a signed command; it is queued while the kiosk is offline, until it expires")
    def send_command(kiosk_id: str, body: CommandRequest, user: str = Depends(api_user)) -> dict[str, Any]:
        _kiosk_or_404(kiosk_id)
        _check_args(body.name, body.args)
        return controller.create_command(kiosk_id, body.name, body.args, body.ttl_s, created_by=user)

    @app.get("/api/v1/kiosks/{kiosk_id}/commands", response_model=list[CommandOut], tags=["commands"])
    def kiosk_commands(kiosk_id: str, limit: int = Query(50, ge=1, le=500),
                       _user: str = Depends(api_user)) -> list[dict[str, Any]]:
        return store.kiosk_commands(kiosk_id, limit)

    @app.get("/api/v1/commands/{command_id}", response_model=CommandOut, tags=["commands"])
    def get_command(command_id: str, _user: str = Depends(api_user)) -> dict[str, Any]:
        from fleet.controller.store import command_dict

        row = store.command(command_id)
        if row is None:
            raise HTTPException(404, "no such command")
        return command_dict(row)

    @app.get("/api/v1/stats", response_model=StatsOut, tags=["ops"],
             summary="ingest counters of this controller and of every controller sharing the database")
    def stats(_user: str = Depends(api_user)) -> dict[str, Any]:
        return {"controller_id": controller.id, "this": controller.public_stats(),
                "controllers": store.controller_stats(P.now_ms() - 60_000)}

    # dashboard -----------------------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
        return render(request, "login.html.j2", None, next=next if next.startswith("/") else "/", error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        username, password, next = form.get("username", ""), form.get("password", ""), form.get("next", "/")  # noqa: A001
        row = store.operator(username)
        if row is None or not verify_password(password, row.password_hash):
            resp = render(request, "login.html.j2", None, next=next, error="用户名或密码错误")
            resp.status_code = 401
            return resp
        resp = RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/", status_code=303)
        resp.set_cookie(COOKIE, signer.issue(username), httponly=True, samesite="strict", max_age=12 * 3600)
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/", include_in_schema=False)
    def fleet_page(request: Request, district: str = "", state: str = "", q: str = "",
                   user: str = Depends(page_user)) -> HTMLResponse:
        kiosks = store.list_kiosks(district=district or None, state=state or None, q=q or None)
        return render(request, "fleet.html.j2", user, kiosks=kiosks, summary=store.summary(),
                      districts=store.districts(), f={"district": district, "state": state, "q": q})

    @app.get("/locations", include_in_schema=False)
    def locations_page(request: Request, user: str = Depends(page_user)) -> HTMLResponse:
        groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for k in store.list_kiosks():
            groups.setdefault(k["district"] or "未登记", {}).setdefault(k["location"] or "—", []).append(k)
        return render(request, "locations.html.j2", user, groups=groups)

    @app.get("/alerts", include_in_schema=False)
    def alerts_page(request: Request, status: str = "open", severity: str = "",
                    user: str = Depends(page_user)) -> HTMLResponse:
        rows = store.alerts(status if status in ("open", "cleared", "all") else "open", None, severity or None)
        return render(request, "alerts.html.j2", user, alerts=rows, f={"status": status, "severity": severity},
                      summary=store.summary())

    @app.get("/kiosks/{kiosk_id}", include_in_schema=False)
    def kiosk_page(request: Request, kiosk_id: str, hours: float = 24, msg: str = "",
                   user: str = Depends(page_user)) -> HTMLResponse:
        kiosk = store.kiosk(kiosk_id)
        if kiosk is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        h = kiosk_history(store, kiosk_id, min(max(hours, 1), 24 * 7))
        svg = {
            "sessions": charts.bar_chart(h["sessions_per_hour"], h["since"], h["until"], h["bucket_ms"], "人次",
                                         "bar", "每小时服务人次", "人次"),
            "paper": charts.step_chart(h["paper"], h["since"], h["until"], "打印纸余量"),
            "faults": charts.bar_chart(h["faults_per_hour"], h["since"], h["until"], h["bucket_ms"], "次",
                                       "bar-bad", "每小时故障", "次故障"),
            "latency": charts.line_chart(h["latency_ms"], h["since"], h["until"], "ms", "到政务平台的网络延迟"),
        }
        return render(request, "kiosk.html.j2", user, k=kiosk, svg=svg, hours=hours, msg=msg,
                      alerts=store.alerts("all", kiosk_id, None, 20), commands=store.kiosk_commands(kiosk_id, 15),
                      events=store.kiosk_events(kiosk_id, 12))

    @app.post("/kiosks/{kiosk_id}/commands", include_in_schema=False)
    async def kiosk_command_form(request: Request, kiosk_id: str, user: str = Depends(page_user)) -> Response:
        form = await _form(request)
        name, text, profile = form.get("name", ""), form.get("text", ""), form.get("profile", "")
        check_form_csrf(request, form.get("csrf", ""))
        if store.kiosk(kiosk_id) is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        args: dict[str, Any] = {}
        if name == "show_announcement":
            args = {"text": text.strip()}
        elif name == "push_profile":
            import hashlib

            args = {"profile": profile, "sha256": hashlib.sha256(profile.encode()).hexdigest()}
        try:
            _check_args(name, args)
            cmd = controller.create_command(kiosk_id, name, args, created_by=user)
            msg = f"已下发「{COMMAND_ZH.get(name, name)}」（{COMMAND_STATUS_ZH.get(cmd['status'], cmd['status'])}）"
        except HTTPException as exc:
            msg = f"未下发：{exc.detail}"
        return RedirectResponse(f"/kiosks/{quote(kiosk_id)}?{urlencode({'msg': msg})}#commands", status_code=303)

    @app.post("/alerts/{alert_id}/ack", include_in_schema=False)
    async def ack_form(request: Request, alert_id: int, user: str = Depends(page_user)) -> Response:
        form = await _form(request)
        next = form.get("next", "/alerts")  # noqa: A001
        check_form_csrf(request, form.get("csrf", ""))
        store.ack_alert(alert_id, user, P.now_ms())
        return RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/alerts",
                                status_code=303)

    @app.get("/api", include_in_schema=False)
    def api_page(request: Request, user: str = Depends(page_user)) -> HTMLResponse:
        spec = app.openapi()
        ops = [(method.upper(), path, op.get("summary") or op.get("operationId", ""), (op.get("tags") or [""])[0])
               for path, item in spec["paths"].items() for method, op in item.items()]
        return render(request, "api.html.j2", user, ops=ops)

    @app.get("/static/fleet.css", include_in_schema=False)
    def css() -> Response:
        return Response(env.get_template("fleet.css.j2").render(), media_type="text/css",
                        headers={"Cache-Control": "max-age=300"})

    @app.get("/static/fleet.js", include_in_schema=False)
    def js() -> Response:
        return Response(env.get_template("fleet.js.j2").render(), media_type="text/javascript",
                        headers={"Cache-Control": "max-age=300"})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            return RedirectResponse("/login", 303)
        resp = render(request, "error.html.j2", current_user(request), status=exc.status_code, detail=exc.detail)
        resp.status_code = exc.status_code
        return resp

    return app


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the dashboard's forms) without python-multipart."""
    body = await request.body()
    if len(body) > 300_000:
        raise HTTPException(413, "form too large")
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _check_args(name: str, args: dict[str, Any]) -> None:
    if name == "show_announcement":
        text = str(args.get("text", "")).strip()
        if not text or len(text) > 200:
            raise HTTPException(422, "公告内容须为 1–200 个字符")
        if P.contains_id_number(text):
            raise HTTPException(422, "公告中不得包含身份证号码")
    if name == "push_profile":
        profile = str(args.get("profile", ""))
        if not profile.strip() or len(profile) > 200_000:
            raise HTTPException(422, "设备配置不能为空")
    if len(json.dumps(args, ensure_ascii=False)) > 250_000:
        raise HTTPException(413, "command arguments too large")
