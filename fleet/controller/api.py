"""The controller's HTTP side: the REST/JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``) and the
operators' dashboard (server-rendered pages, inline SVG charts, a few lines of JavaScript for live refresh; nothing
from a CDN). Both need an operator: the dashboard through a session cookie, other tools through
``Authorization: Bearer <token>`` from ``POST /api/v1/auth/token`` — server-side sessions, revocable, with an idle
timeout and an absolute lifetime. Every operation states the role it needs (``x-required-role``: viewer · operator ·
admin); a lower role gets 403 ``forbidden_role``."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from fleet import protocol as P
from fleet.controller import charts
from fleet.controller import profiles as profiles_mod
from fleet.controller import reports as reports_mod
from fleet.controller.auth import (ABSOLUTE_S, COMMAND_ROLE, MIN_PASSWORD, ROLES, Csrf, LoginFailed, LoginThrottled,
                                   Principal, Sessions, command_role, hash_password, safe_next)
from fleet.controller.history import kiosk_history

log = logging.getLogger("fleet.controller.api")

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "fleet_session"

STATE_ZH = {"ok": "正常", "degraded": "降级", "fault": "故障", "offline": "离线", "absent": "未接入"}
PAPER_ZH = {"ok": "正常", "near-end": "将尽", "out": "缺纸"}
SERVICE_ZH = {"in_service": "服务中", "out_of_service": "暂停服务", "maintenance": "现场维护中"}
SEVERITY_ZH = {"critical": "紧急", "major": "严重", "warning": "警告", "info": "提示"}
RULE_ZH = {"kiosk_offline": "终端离线", "paper_out": "打印纸用尽", "paper_near_end": "打印纸将尽",
           "device_fault": "设备故障", "disk_low": "磁盘空间不足", "seq_gap": "消息丢失（序号断档）",
           "audit_chain_broken": "审计日志链断裂（尾部被删或被改写）", "app_alarm": "应用告警"}
#: application alarm codes (rule ``app_alarm``: the code is the alert's device; fleet.controller.rules.APP_ALARMS)
APP_ALARM_ZH = {"app_exception": "应用异常", "crash_loop": "应用反复崩溃，已暂停服务",
                "storage_full": "数据盘空间将满，暂停新业务", "kiosk_rate_limited": "平台限流：每小时办理人数过多",
                "outbox_key_missing": "待发队列密钥丢失", "audit_chain_break": "审计日志链已重新开始（终端声明）",
                "audit_torn_tail": "审计日志尾部残缺（已隔离）", "assistance_requested": "群众呼叫工作人员"}
COMMAND_ZH = {"restart_app": "重启应用", "out_of_service": "暂停服务", "back_in_service": "恢复服务",
              "show_announcement": "发布公告", "push_profile": "推送设备配置", "self_test": "设备自检",
              "rebirth": "请求全量状态", "assistance_acknowledged": "告知群众工作人员马上到"}
COMMAND_STATUS_ZH = {"queued": "排队中", "sent": "已发送", "delivered": "已送达", "succeeded": "成功",
                     "failed": "失败", "rejected": "被拒绝", "timed_out": "超时", "expired": "已过期"}
DEVICE_ZH = {"idcard": "身份证阅读器", "receipt_printer": "凭条打印机", "payment_pad": "支付键盘",
             "smartcard": "社保卡读卡器", "camera": "摄像头", "qr_scanner": "扫码器", "licence_printer": "证照打印机",
             "app": "应用程序", "maintenance": "现场维护", "profile": "设备配置", "self_test": "设备自检"}
OFFLINE_ZH = {"will": "连接中断（遗嘱消息）", "shutdown": "正常关机", "heartbeat_missed": "心跳超时"}
ROLE_ZH = {"viewer": "只读", "operator": "运维员", "admin": "管理员"}
EVENT_ZH = {"paper_out": "打印纸用尽", "paper_near_end": "打印纸将尽", "device_fault": "设备故障",
            "device_offline": "设备离线", "command_rejected": "拒绝了伪造的命令",
            # technicians on site (kiosk/maintenance.py), self-tests, profile versions (kiosk/profile_updates.py)
            "maintenance_opened": "技术人员开始现场维护", "maintenance_closed": "现场维护结束",
            "maintenance_refused": "拒绝进入维护（证件或密码）", "maintenance_card_accepted": "技术人员证件核对通过",
            "self_test_passed": "自检通过", "self_test_failed": "自检未通过", "profile_staged": "配置已下发，待试运行",
            "profile_applied": "配置已生效", "profile_trial_failed": "配置试运行失败",
            "profile_rolled_back": "配置已回退", "profile_restored": "已恢复上一可用配置",
            "profile_drift": "配置被现场改动", **APP_ALARM_ZH}


# --- API models (the OpenAPI contract) ------------------------------------------------------------------------------

StateName = Literal["ok", "degraded", "fault", "offline", "absent"]
SeverityName = Literal["info", "warning", "major", "critical"]

class TokenRequest(BaseModel):
    username: str
    password: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the session ends whatever happens")
    idle_timeout: int = Field(description="the session ends after this many seconds without a request")


RoleName = Literal["viewer", "operator", "admin"]


class MeOut(BaseModel):
    username: str
    role: RoleName
    kind: Literal["cookie", "bearer"]
    expires_at: int = Field(description="when the session ends unless it is used again (ms)")


class OperatorOut(BaseModel):
    username: str
    display_name: str
    role: RoleName
    disabled: bool
    disabled_at: int | None = None
    created_at: int
    sessions: int = Field(description="live sessions")


class OperatorCreate(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{2,64}$")
    password: str = Field(min_length=MIN_PASSWORD, max_length=200)
    role: RoleName = "viewer"
    display_name: str = Field("", max_length=64)


class OperatorPatch(BaseModel):
    role: RoleName | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=200)
    display_name: str | None = Field(None, max_length=64)


class SessionOut(BaseModel):
    kind: str
    created_at: int
    last_seen_at: int
    expires_at: int
    client_addr: str


class RevokeOut(BaseModel):
    username: str
    revoked: int


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
    dead_letters: int = Field(0, description="messages the ingest refused and kept (GET /api/v1/dead-letters)")


class DeadLetterOut(BaseModel):
    id: int
    kiosk_id: str = Field(description="from the topic; empty when the topic named none")
    topic: str
    reason: str = Field(description="why it was refused: too_large, not_json, ts_out_of_window, bad_host, "
                                    "store_rejected:<error>, …")
    received_at: int
    size: int = Field(description="payload size in bytes")
    payload: str = Field(description="the payload's first 256 bytes, scrubbed like any free text")
    controller: str


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
                       DEVICE_ZH=DEVICE_ZH, EVENT_ZH=EVENT_ZH, APP_ALARM_ZH=APP_ALARM_ZH, OFFLINE_ZH=OFFLINE_ZH,
                       ROLE_ZH=ROLE_ZH, ROLES=ROLES, SCREEN_ZH=reports_mod.SCREEN_ZH,
                       fmt_time=charts.fmt_time, fmt_ago=charts.fmt_ago, fmt_duration=charts.fmt_duration)
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    return env


def guard(role: str) -> dict[str, Any]:
    """What every non-public route declares, next to its ``Depends(require_role(role))``:
    ``@app.get(path, **guard("viewer"))``. ``tests/fleet/test_operator_security.py`` walks the routes and fails
    for one without it (or whose dependency asks for another role)."""
    assert role in ROLES, role
    return {"openapi_extra": {"x-required-role": role}}


def create_app(controller: Any, cookie_secure: bool = False, metrics_token: str | None = None) -> FastAPI:
    """``controller`` is a running :class:`fleet.controller.service.FleetController` (None: only for the spec).
    ``cookie_secure``: mark the session cookie ``Secure`` even on plain-HTTP requests (TLS ends at a proxy); it is
    always marked so on requests that came over TLS. ``metrics_token``: the Prometheus scrape token accepted on
    ``GET /metrics`` besides a viewer session (``serve --metrics-token-file``)."""
    app = FastAPI(title="Kiosk fleet controller API", version="1.0",
                  description=__doc__, docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")
    env = _env()
    store = controller.store if controller is not None else None
    csrf = Csrf(store.setting("session_key") if store is not None else "spec-only")
    sessions = Sessions(store) if store is not None else None

    # auth ----------------------------------------------------------------------------------------------------
    def client_addr(request: Request) -> str:
        return request.client.host if request.client else ""

    def authenticate(request: Request, touch: bool = True) -> Principal | None:
        """The operator behind the request (bearer token, else the session cookie), or None. The dashboard's own
        live refresh (``X-Refresh``) does not count as use for the idle timeout."""
        if sessions is None:
            return None
        touch = touch and not request.headers.get("x-refresh")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            request.state.auth_via = "bearer"
            return sessions.principal(auth[7:].strip(), P.now_ms(), touch)
        request.state.auth_via = "cookie"
        return sessions.principal(request.cookies.get(COOKIE), P.now_ms(), touch)

    role_deps: dict[str, Any] = {}

    def require_role(role: str) -> Any:
        """The dependency of every non-public route: 401 without a live session, 403 ``forbidden_role`` when the
        operator's role is below ``role``; for cookie-authenticated API calls that change something, also the
        ``X-CSRF-Token`` header. One callable per role, so FastAPI runs it once per request."""
        if role in role_deps:
            return role_deps[role]
        assert role in ROLES, role

        def dependency(request: Request) -> Principal:
            principal = authenticate(request)
            if principal is None:
                raise HTTPException(401, "login required", headers={"WWW-Authenticate": "Bearer"})
            if request.method not in ("GET", "HEAD") and request.url.path.startswith("/api/") \
                    and request.state.auth_via == "cookie" \
                    and not csrf.check(principal.token, request.headers.get("x-csrf-token")):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")
            if not principal.can(role):
                forbid(request, principal, role)
            return principal

        dependency.required_role = role  # type: ignore[attr-defined]
        role_deps[role] = dependency
        return dependency

    def forbid(request: Request, principal: Principal, role: str) -> None:
        log.warning("forbidden: %s (%s) %s %s needs %s", principal.username, principal.role, request.method,
                    request.url.path, role)
        raise HTTPException(403, "forbidden_role", headers={"X-Required-Role": role})

    def check_form_csrf(request: Request, given: str) -> None:
        if not csrf.check(request.cookies.get(COOKIE, ""), given):
            raise HTTPException(403, "the form expired; reload the page")

    def secure_cookie(request: Request) -> bool:
        return cookie_secure or request.url.scheme == "https"

    def set_session_cookie(request: Request, resp: Response, token: str) -> None:
        resp.set_cookie(COOKIE, token, max_age=ABSOLUTE_S, path="/", httponly=True, samesite="strict",
                        secure=secure_cookie(request))

    def render(request: Request, template: str, me: Principal | None, **ctx: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            user=me.username if me else None, me=me, csrf=csrf.token(me.token) if me else "", now=P.now_ms(),
            path=request.url.path, request=request, **ctx)
        return HTMLResponse(html)

    def throttled_response(exc: LoginThrottled, page: Response | None = None) -> Response:
        resp = page if page is not None else JSONResponse(
            {"detail": "too many failed logins; try again later"}, status_code=429)
        resp.status_code = 429
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp

    # ops -----------------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], summary="liveness: the process answers, the broker and database state")
    def healthz() -> dict[str, Any]:
        if controller is None:
            return {"ok": True}
        return {"ok": True, "broker_connected": controller.public_stats()["connected"], "controller_id": controller.id}

    # API: auth -----------------------------------------------------------------------------------------------
    @app.post("/api/v1/auth/token", response_model=TokenResponse, tags=["auth"],
              summary="log in; get a bearer token (a server-side session: idle timeout, absolute lifetime, "
                      "revocable). 429 with Retry-After after too many failures for the name or the address",
              responses={401: {"description": "wrong username or password"},
                         429: {"description": "too many failed logins"}})
    def token(request: Request, body: TokenRequest) -> Any:
        try:
            tok, _p = sessions.login(body.username, body.password, client_addr(request), "bearer", P.now_ms())
        except LoginThrottled as exc:
            return throttled_response(exc)
        except LoginFailed:
            raise HTTPException(401, "wrong username or password") from None
        return TokenResponse(access_token=tok, expires_in=ABSOLUTE_S, idle_timeout=sessions.idle_ms // 1000)

    @app.get("/api/v1/auth/me", response_model=MeOut, tags=["auth"], summary="who this session belongs to",
             **guard("viewer"))
    def me(user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return {"username": user.username, "role": user.role, "kind": user.kind, "expires_at": user.expires_at}

    @app.post("/api/v1/auth/logout", status_code=204, tags=["auth"], summary="end this session (token or cookie)",
              **guard("viewer"))
    def api_logout(user: Principal = Depends(require_role("viewer"))) -> Response:
        sessions.logout(user.token, P.now_ms())
        return Response(status_code=204)

    # API: fleet ----------------------------------------------------------------------------------------------
    @app.get("/api/v1/summary", response_model=SummaryOut, tags=["fleet"], summary="fleet at a glance",
             **guard("viewer"))
    def summary(_user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return store.summary()

    @app.get("/api/v1/kiosks", response_model=list[KioskSummaryOut], tags=["fleet"],
             summary="kiosks, filtered by district, state, online, or text in id/name/location", **guard("viewer"))
    def list_kiosks(district: str | None = None, state: StateName | None = None,
                    online: bool | None = None, q: str | None = None,
                    _user: Principal = Depends(require_role("viewer"))) -> list[dict[str, Any]]:
        return store.list_kiosks(district=district, state=state, q=q, online=online)

    @app.get("/api/v1/districts", response_model=list[str], tags=["fleet"], **guard("viewer"))
    def districts(_user: Principal = Depends(require_role("viewer"))) -> list[str]:
        return store.districts()

    def _kiosk_or_404(kiosk_id: str) -> dict[str, Any]:
        kiosk = store.kiosk(kiosk_id)
        if kiosk is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        return kiosk

    @app.get("/api/v1/kiosks/{kiosk_id}", response_model=KioskOut, tags=["fleet"],
             summary="one kiosk: identity, state, host health and every device", **guard("viewer"))
    def get_kiosk(kiosk_id: str, _user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return _kiosk_or_404(kiosk_id)

    @app.get("/api/v1/kiosks/{kiosk_id}/history", response_model=HistoryOut, tags=["fleet"],
             summary="time series: sessions/pages/faults per hour, paper level, latency, temperature, disk",
             **guard("viewer"))
    def history(kiosk_id: str, hours: float = Query(24, gt=0, le=24 * 31),
                _user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        _kiosk_or_404(kiosk_id)
        return kiosk_history(store, kiosk_id, hours)

    @app.get("/api/v1/kiosks/{kiosk_id}/events", response_model=list[EventOut], tags=["fleet"], **guard("viewer"))
    def kiosk_events(kiosk_id: str, limit: int = Query(50, ge=1, le=1000),
                     _user: Principal = Depends(require_role("viewer"))) -> list[dict[str, Any]]:
        return store.kiosk_events(kiosk_id, limit)

    @app.get("/api/v1/alerts", response_model=list[AlertOut], tags=["alerts"], **guard("viewer"))
    def list_alerts(status: Literal["open", "cleared", "all"] = "open", kiosk_id: str | None = None,
                    severity: SeverityName | None = None, limit: int = Query(500, ge=1, le=5000),
                    _user: Principal = Depends(require_role("viewer"))) -> list[dict[str, Any]]:
        return store.alerts(status, kiosk_id, severity, limit)

    @app.post("/api/v1/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"],
              summary="acknowledge an alert (it still clears by itself when its condition is gone); a one-shot "
                      "application alarm (rule app_alarm, every code but storage_full) is closed by it",
              **guard("operator"))
    def ack_alert(alert_id: int, user: Principal = Depends(require_role("operator"))) -> dict[str, Any]:
        if store.alert(alert_id) is None:
            raise HTTPException(404, "no such alert")
        controller.acknowledge_alert(alert_id, user.username)   # a help request: the kiosk is told too
        return store.alert(alert_id)  # type: ignore[return-value]

    @app.post("/api/v1/kiosks/{kiosk_id}/commands", response_model=CommandOut, status_code=202, tags=["commands"],
              summary="send a signed command; it is queued while the kiosk is offline, until it expires. Each "
                      "command needs its own role (x-command-roles): restart_app, push_profile and self_test need "
                      "admin",
              openapi_extra={"x-required-role": "operator", "x-command-roles": dict(COMMAND_ROLE)})
    def send_command(kiosk_id: str, body: CommandRequest, request: Request,
                     user: Principal = Depends(require_role("operator"))) -> dict[str, Any]:
        if not user.can_command(body.name):
            forbid(request, user, command_role(body.name))
        _kiosk_or_404(kiosk_id)
        _check_args(body.name, body.args)
        command = controller.create_command(kiosk_id, body.name, body.args, body.ttl_s, created_by=user.username)
        if body.name == "push_profile":   # the desired profile (fleet/controller/profiles.py)
            profiles_mod.record_push(store, kiosk_id, str(body.args.get("profile", "")), user.username, command)
        return command

    @app.get("/api/v1/kiosks/{kiosk_id}/commands", response_model=list[CommandOut], tags=["commands"],
             **guard("viewer"))
    def kiosk_commands(kiosk_id: str, limit: int = Query(50, ge=1, le=500),
                       _user: Principal = Depends(require_role("viewer"))) -> list[dict[str, Any]]:
        return store.kiosk_commands(kiosk_id, limit)

    @app.get("/api/v1/commands/{command_id}", response_model=CommandOut, tags=["commands"], **guard("viewer"))
    def get_command(command_id: str, _user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        from fleet.controller.store import command_dict

        row = store.command(command_id)
        if row is None:
            raise HTTPException(404, "no such command")
        return command_dict(row)

    # desired vs reported device profiles (fleet/controller/profiles.py)
    profiles_mod.add_routes(app, controller, require_role, guard)

    # Prometheus (fleet/controller/metrics.py): a viewer session/bearer, or the scrape token when configured
    from fleet.controller import metrics as metrics_mod

    registry = metrics_mod.registry_for(controller) if controller is not None else None
    viewer = require_role("viewer")

    def metrics_access(request: Request) -> None:
        if metrics_mod.token_ok(metrics_token, request.headers.get("authorization")):
            return None
        viewer(request)  # 401 without a live session, 403 below viewer (there is none)
        return None

    metrics_access.required_role = "viewer"  # type: ignore[attr-defined]

    @app.get("/metrics", tags=["ops"], response_class=Response,
             summary="Prometheus metrics (exposition format): kiosks per district, open alerts per severity, "
                     "ingest counters, dead letters, command durations. A viewer session or bearer token, or the "
                     "scrape token of `serve --metrics-token-file` as `Authorization: Bearer`",
             responses={200: {"content": {metrics_mod.CONTENT_TYPE: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"},
                        401: {"description": "no viewer session and no valid scrape token"}},
             **guard("viewer"))
    def prometheus_metrics(_access: None = Depends(metrics_access)) -> Response:
        body = metrics_mod.exposition(registry) if registry is not None else b""
        return Response(body, media_type=metrics_mod.CONTENT_TYPE)

    @app.get("/api/v1/stats", response_model=StatsOut, tags=["ops"],
             summary="ingest counters of this controller and of every controller sharing the database",
             **guard("viewer"))
    def stats(_user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return {"controller_id": controller.id, "this": controller.public_stats(),
                "controllers": store.controller_stats(P.now_ms() - 60_000)}

    @app.get("/api/v1/dead-letters", response_model=list[DeadLetterOut], tags=["ops"],
             summary="messages the ingest refused (malformed, out of bounds, unwritable), newest first",
             **guard("operator"))
    def list_dead_letters(kiosk_id: str | None = None, since: int = Query(0, ge=0),
                          limit: int = Query(100, ge=1, le=1000),
                          _user: Principal = Depends(require_role("operator"))) -> list[dict[str, Any]]:
        return store.dead_letter_list(limit, kiosk_id, since)

    # API: operators (admin) ------------------------------------------------------------------------------------
    def _operator_or_404(username: str) -> Any:
        row = store.operator(username)
        if row is None:
            raise HTTPException(404, f"no operator {username}")
        return row

    def _change_operator(admin: Principal, username: str, role: str | None = None, disabled: bool | None = None,
                         password: str | None = None, display_name: str | None = None) -> int:
        row = _operator_or_404(username)
        loses_admin = row.role == "admin" and row.disabled_at is None and (
            (role is not None and role != "admin") or disabled is True)
        if loses_admin and store.active_admin_count() <= 1:
            raise HTTPException(409, "the last admin cannot be disabled or demoted")
        _found, revoked = store.set_operator(username, P.now_ms(), role=role, disabled=disabled,
                                             password_hash=hash_password(password) if password else None,
                                             display_name=display_name)
        log.info("operator %s changed by %s: role=%s disabled=%s password=%s; %d session(s) revoked", username,
                 admin.username, role, disabled, bool(password), revoked)
        return revoked

    @app.get("/api/v1/operators", response_model=list[OperatorOut], tags=["operators"],
             summary="operator accounts, their roles and how many live sessions each has", **guard("admin"))
    def list_operators(_user: Principal = Depends(require_role("admin"))) -> list[dict[str, Any]]:
        return store.list_operators(P.now_ms())

    @app.post("/api/v1/operators", response_model=OperatorOut, status_code=201, tags=["operators"],
              summary="create an operator account", **guard("admin"))
    def create_operator(body: OperatorCreate, user: Principal = Depends(require_role("admin"))) -> dict[str, Any]:
        if store.operator(body.username) is not None:
            raise HTTPException(409, f"operator {body.username} exists")
        store.upsert_operator(body.username, hash_password(body.password), body.display_name or body.username,
                              body.role, P.now_ms())
        log.info("operator %s (%s) created by %s", body.username, body.role, user.username)
        return _operator_out(body.username)

    def _operator_out(username: str) -> dict[str, Any]:
        return next(o for o in store.list_operators(P.now_ms()) if o["username"] == username)

    @app.patch("/api/v1/operators/{username}", response_model=OperatorOut, tags=["operators"],
               summary="change an operator's role, disable/enable it or set its password; a changed role, "
                       "disabling or a new password revokes all of its sessions", **guard("admin"))
    def patch_operator(username: str, body: OperatorPatch,
                       user: Principal = Depends(require_role("admin"))) -> dict[str, Any]:
        _change_operator(user, username, role=body.role, disabled=body.disabled, password=body.password,
                         display_name=body.display_name)
        return _operator_out(username)

    @app.get("/api/v1/operators/{username}/sessions", response_model=list[SessionOut], tags=["operators"],
             summary="an operator's live sessions", **guard("admin"))
    def operator_sessions(username: str, _user: Principal = Depends(require_role("admin"))) -> list[dict[str, Any]]:
        _operator_or_404(username)
        return store.operator_sessions(username, P.now_ms())

    @app.post("/api/v1/operators/{username}/sessions/revoke", response_model=RevokeOut, tags=["operators"],
              summary="end every session of an operator at once (every controller)", **guard("admin"))
    def revoke_sessions(username: str, user: Principal = Depends(require_role("admin"))) -> dict[str, Any]:
        _operator_or_404(username)
        n = sessions.revoke_operator(username, P.now_ms(), f"revoked_by:{user.username}"[:40])
        return {"username": username, "revoked": n}

    # reports (anonymous journeys, device availability, paper) — fleet/controller/reports.py ---------------------
    def report_window(since: str, until: str) -> tuple[int, int]:
        today = reports_mod.cst_day(P.now_ms())
        try:
            until_day = reports_mod.parse_day(until) if until else today
            since_day = reports_mod.parse_day(since) if since else until_day - 29 * reports_mod.DAY
        except ValueError:
            raise HTTPException(422, "since/until must be dates YYYY-MM-DD") from None
        if since_day > until_day or until_day - since_day > 366 * reports_mod.DAY:
            raise HTTPException(422, "since must be before until, at most 366 days apart")
        return since_day, until_day

    def report_data(since: str, until: str, district: str, kiosk: str, service: str,
                    with_devices: bool = True) -> dict[str, Any]:
        since_day, until_day = report_window(since, until)
        data = reports_mod.journey_report(store, since_day, until_day, district, kiosk, service)
        if with_devices:
            from fleet.controller import opening_hours

            settings = opening_hours.load(store)
            end = min(P.now_ms(), until_day + reports_mod.DAY)
            data["availability"] = reports_mod.device_availability(store, since_day, end, district, kiosk,
                                                                   settings=settings)
            data["paper"] = reports_mod.paper_forecast(store, P.now_ms(), district, kiosk, settings=settings)
        return data

    ReportFilters = dict(since=Query("", description="first CST day, YYYY-MM-DD (default: 29 days before until)"),
                         until=Query("", description="last CST day, YYYY-MM-DD (default: today)"))

    @app.get("/api/v1/reports/journeys", tags=["reports"], **guard("viewer"),
             summary="anonymous journey report: sessions and completions per day, per service (started, completed, "
                     "abandoned, median time to complete, its own funnel of screens, ratings), the funnel attract → "
                     "card → face → menu → service → done with drop-off, the screens where sessions end, timeouts "
                     "and errors per screen, ratings (distribution, share of ★1–2, tags) per service and per "
                     "district or kiosk")
    def api_report_journeys(since: str = ReportFilters["since"], until: str = ReportFilters["until"],
                            district: str = "", kiosk: str = "", service: str = "",
                            _user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return report_data(since, until, district, kiosk, service, with_devices=False)

    @app.get("/api/v1/reports/availability", tags=["reports"], **guard("viewer"),
             summary="device availability per kiosk and device within the kiosks' opening hours (% healthy, "
                     "faults, MTBF, mean time to repair, time from alert to clear) from fault events and alerts")
    def api_report_availability(since: str = ReportFilters["since"], until: str = ReportFilters["until"],
                                district: str = "", kiosk: str = "",
                                _user: Principal = Depends(require_role("viewer"))) -> list[dict[str, Any]]:
        since_day, until_day = report_window(since, until)
        return reports_mod.device_availability(store, since_day, min(P.now_ms(), until_day + reports_mod.DAY),
                                               district, kiosk)

    @app.get("/api/v1/reports/paper", tags=["reports"], **guard("viewer"),
             summary="paper forecast: days until empty for printers at near-end or out, at the current rate")
    def api_report_paper(district: str = "", kiosk: str = "",
                         _user: Principal = Depends(require_role("viewer"))) -> dict[str, Any]:
        return reports_mod.paper_forecast(store, P.now_ms(), district, kiosk)

    @app.get("/api/v1/reports/export.csv", tags=["reports"], **guard("viewer"), response_class=Response,
             summary="one report section as CSV (days, services, funnel, service_funnel, exits, screens, error_codes,"
                     " ratings, rating_tags, ratings_by, availability); counts from 1 to 4 are shown as <5 "
                     "(small-cell rule) and shares worked out from them are left empty")
    def api_report_csv(section: Literal["days", "services", "funnel", "service_funnel", "exits", "screens",
                                        "error_codes", "ratings", "rating_tags", "ratings_by",
                                        "availability"] = "services",
                       since: str = ReportFilters["since"], until: str = ReportFilters["until"],
                       district: str = "", kiosk: str = "", service: str = "",
                       _user: Principal = Depends(require_role("viewer"))) -> Response:
        data = report_data(since, until, district, kiosk, service, with_devices=section == "availability")
        name = f"fleet-{section}-{data['since']}-{data['until']}.csv"
        return Response(reports_mod.report_csv(data, section), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/reports", include_in_schema=False, **guard("viewer"))
    def reports_page(request: Request, since: str = "", until: str = "", district: str = "", kiosk: str = "",
                     service: str = "", user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
        data = report_data(since, until, district, kiosk, service)
        o = reports_mod.OUTCOME_ZH
        svg = {"days": charts.day_bar_chart(data["days"], [("completed", "bar", o["completed"]),
                                                           ("abandoned", "bar-grey", o["abandoned"]),
                                                           ("timed_out", "bar-warn", o["timed_out"]),
                                                           ("error", "bar-bad", o["error"])], "每日服务人次"),
               "funnel": charts.funnel_chart(data["funnel"], reports_mod.STEP_ZH, "办事漏斗"),
               **charts.report_charts(data, reports_mod.SCREEN_ZH)}
        f = {"since": data["since"], "until": data["until"], "district": district, "kiosk": kiosk,
             "service": service}
        return render(request, "reports.html.j2", user, r=data, svg=svg, f=f, query=urlencode(f),
                      districts=store.districts(), services=reports_mod.services_seen(store),
                      OUTCOME_ZH=o, STEP_ZH=reports_mod.STEP_ZH, SCREEN_ZH=reports_mod.SCREEN_ZH)

    # dashboard -----------------------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
        return render(request, "login.html.j2", None, next=safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        username, password, next = form.get("username", ""), form.get("password", ""), form.get("next", "/")  # noqa: A001
        next = safe_next(next)  # noqa: A001
        now = P.now_ms()
        try:
            token, _p = await run_in_threadpool(sessions.login, username, password, client_addr(request), "cookie",
                                                now)
        except LoginThrottled as exc:
            minutes = -(-exc.retry_after_s // 60)
            return throttled_response(exc, render(request, "login.html.j2", None, next=next,
                                                  error=f"登录失败次数过多，请 {minutes} 分钟后再试"))
        except LoginFailed:
            resp = render(request, "login.html.j2", None, next=next, error="用户名或密码错误")
            resp.status_code = 401
            return resp
        sessions.logout(request.cookies.get(COOKIE), now)  # a session this browser had before ends
        resp = RedirectResponse(next, status_code=303)
        set_session_cookie(request, resp, token)
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        if sessions is not None:
            sessions.logout(request.cookies.get(COOKIE), P.now_ms())
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie(request))
        return resp

    @app.get("/", include_in_schema=False, **guard("viewer"))
    def fleet_page(request: Request, district: str = "", state: str = "", q: str = "",
                   user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
        kiosks = store.list_kiosks(district=district or None, state=state or None, q=q or None)
        return render(request, "fleet.html.j2", user, kiosks=kiosks, summary=store.summary(),
                      districts=store.districts(), f={"district": district, "state": state, "q": q})

    @app.get("/locations", include_in_schema=False, **guard("viewer"))
    def locations_page(request: Request, user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
        groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for k in store.list_kiosks():
            groups.setdefault(k["district"] or "未登记", {}).setdefault(k["location"] or "—", []).append(k)
        return render(request, "locations.html.j2", user, groups=groups)

    @app.get("/alerts", include_in_schema=False, **guard("viewer"))
    def alerts_page(request: Request, status: str = "open", severity: str = "",
                    user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
        rows = store.alerts(status if status in ("open", "cleared", "all") else "open", None, severity or None)
        return render(request, "alerts.html.j2", user, alerts=rows, f={"status": status, "severity": severity},
                      summary=store.summary())

    @app.get("/kiosks/{kiosk_id}", include_in_schema=False, **guard("viewer"))
    def kiosk_page(request: Request, kiosk_id: str, hours: float = 24, msg: str = "",
                   user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
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
                      events=store.kiosk_events(kiosk_id, 12), profile=profiles_mod.profile_view(store, kiosk_id))

    @app.post("/kiosks/{kiosk_id}/commands", include_in_schema=False, **guard("operator"))
    async def kiosk_command_form(request: Request, kiosk_id: str,
                                 user: Principal = Depends(require_role("operator"))) -> Response:
        form = await _form(request)
        name, text, profile = form.get("name", ""), form.get("text", ""), form.get("profile", "")
        check_form_csrf(request, form.get("csrf", ""))
        if not user.can_command(name):
            forbid(request, user, command_role(name))
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
            cmd = controller.create_command(kiosk_id, name, args, created_by=user.username)
            if name == "push_profile":   # the desired profile (fleet/controller/profiles.py)
                profiles_mod.record_push(store, kiosk_id, profile, user.username, cmd)
            msg = f"已下发「{COMMAND_ZH.get(name, name)}」（{COMMAND_STATUS_ZH.get(cmd['status'], cmd['status'])}）"
        except HTTPException as exc:
            msg = f"未下发：{exc.detail}"
        return RedirectResponse(f"/kiosks/{quote(kiosk_id)}?{urlencode({'msg': msg})}#commands", status_code=303)

    @app.post("/alerts/{alert_id}/ack", include_in_schema=False, **guard("operator"))
    async def ack_form(request: Request, alert_id: int, user: Principal = Depends(require_role("operator"))
                       ) -> Response:
        form = await _form(request)
        check_form_csrf(request, form.get("csrf", ""))
        controller.acknowledge_alert(alert_id, user.username)
        return RedirectResponse(safe_next(form.get("next"), "/alerts"), status_code=303)

    @app.get("/operators", include_in_schema=False, **guard("admin"))
    def operators_page(request: Request, msg: str = "", user: Principal = Depends(require_role("admin"))
                       ) -> HTMLResponse:
        return render(request, "operators.html.j2", user, operators=store.list_operators(P.now_ms()), msg=msg,
                      idle_min=sessions.idle_ms // 60_000, absolute_h=sessions.absolute_ms // 3_600_000)

    @app.post("/operators", include_in_schema=False, **guard("admin"))
    async def operator_create_form(request: Request, user: Principal = Depends(require_role("admin"))) -> Response:
        form = await _form(request)
        check_form_csrf(request, form.get("csrf", ""))
        try:
            body = OperatorCreate(username=form.get("username", "").strip(), password=form.get("password", ""),
                                  role=form.get("role", "viewer"), display_name=form.get("display_name", "").strip())
        except ValidationError:
            return _operators_redirect(f"未创建：用户名须为 2–64 位字母、数字或 ._-，密码至少 {MIN_PASSWORD} 位")
        if store.operator(body.username) is not None:
            return _operators_redirect(f"未创建：{body.username} 已存在")
        store.upsert_operator(body.username, hash_password(body.password), body.display_name or body.username,
                              body.role, P.now_ms())
        log.info("operator %s (%s) created by %s", body.username, body.role, user.username)
        return _operators_redirect(f"已创建 {body.username}（{ROLE_ZH[body.role]}）")

    @app.post("/operators/{username}", include_in_schema=False, **guard("admin"))
    async def operator_change_form(request: Request, username: str,
                                   user: Principal = Depends(require_role("admin"))) -> Response:
        form = await _form(request)
        check_form_csrf(request, form.get("csrf", ""))
        action = form.get("action", "")
        try:
            if action == "role" and form.get("role") in ROLES:
                n = _change_operator(user, username, role=form["role"])
                msg = f"{username} 的角色改为{ROLE_ZH[form['role']]}，已注销其 {n} 个会话"
            elif action in ("disable", "enable"):
                n = _change_operator(user, username, disabled=action == "disable")
                msg = f"已停用 {username}，已注销其 {n} 个会话" if action == "disable" else f"已启用 {username}"
            elif action == "revoke":
                _operator_or_404(username)
                n = sessions.revoke_operator(username, P.now_ms(), f"revoked_by:{user.username}"[:40])
                msg = f"已注销 {username} 的 {n} 个会话"
            else:
                raise HTTPException(422, "unknown action")
        except HTTPException as exc:
            if exc.status_code != 409:
                raise
            msg = "未修改：至少需要保留一名启用的管理员"
        return _operators_redirect(msg)

    @app.get("/api", include_in_schema=False, **guard("viewer"))
    def api_page(request: Request, user: Principal = Depends(require_role("viewer"))) -> HTMLResponse:
        spec = app.openapi()
        ops = [(method.upper(), path, op.get("summary") or op.get("operationId", ""), (op.get("tags") or [""])[0],
                op.get("x-required-role", "—"))
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
        if request.url.path.startswith("/api/") or request.url.path == "/metrics" or request.method != "GET":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': safe_next(here)})}", 303)
        me = await run_in_threadpool(authenticate, request, False)
        detail = exc.detail
        if detail == "forbidden_role":
            detail = (f"您的角色（{ROLE_ZH.get(me.role, me.role) if me else '—'}）无权访问此页面，需要"
                      f"{ROLE_ZH.get((exc.headers or {}).get('X-Required-Role', ''), '更高权限')}。")
        resp = render(request, "error.html.j2", me, status=exc.status_code, detail=detail)
        resp.status_code = exc.status_code
        return resp

    app.state.require_role = require_role
    return app


def _operators_redirect(msg: str) -> Response:
    return RedirectResponse(f"/operators?{urlencode({'msg': msg})}", status_code=303)


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
