"""One error shape everywhere: ``{"error": {"code": "stable_code", "message": "...", "details": ...}}``."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service_platform")


class ApiError(Exception):
    """Raise from anywhere in a request to answer with the platform's error shape."""

    def __init__(self, status: int, code: str, message: str, *, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
               422: "validation_failed", 429: "too_many_requests"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in exc.errors()]
        if any(d["loc"][:1] == ["header"] and str(d["loc"][-1]).lower() == "idempotency-key"
               and (d["type"] == "missing" or not str(e.get("input") or "").strip())
               for d, e in zip(details, exc.errors())):
            return JSONResponse(error_body("idempotency_key_required", "the Idempotency-Key header is required"),
                                status_code=422)
        first = details[0] if details else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        message = f"{where}: {first['msg']}" if first else "request validation failed"
        return JSONResponse(error_body("validation_failed", message, jsonable_encoder(details)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that cannot even be decoded: a validation failure like any other (422)
            return JSONResponse(error_body("validation_failed", str(exc.detail)), status_code=422)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            allow = allowed_methods(request, headers.get("Allow"))
            if allow:
                headers["Allow"] = allow
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def allowed_methods(request: Request, fallback: str | None = None) -> str | None:
    """``Allow`` of a 405: the methods the spec (``app.openapi()``, the contract) lists for this path. Starlette
    names only the methods of the first route that matched the path, but one path may be served by routes in
    several routers (``GET`` and ``POST me/applications``). A literal path beats a template that also matches it
    (``POST me/applications/pre-review`` is not ``GET me/applications/{number}``). Paths outside the spec
    (``/docs``): ``fallback``, Starlette's own."""
    import re

    app = request.app
    table = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, ops in app.openapi().get("paths", {}).items():
            regex = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$")
            methods = ", ".join(m.upper() for m in _HTTP_METHODS if m in ops)
            table.append((template.count("{"), regex, methods))
        table.sort(key=lambda row: row[0])
        app.state.allow_table = table
    path = request.scope.get("path", "")
    for _params, regex, methods in table:
        if regex.match(path):
            return methods
    return fallback


_DESCRIPTIONS = {401: "Missing/wrong kiosk credentials (unauthorized) or citizen session problem "
                      "(session_required, session_invalid, session_expired)",
                 403: "Forbidden (kiosk_disabled, verification_failed, unknown_person, identity_mismatch, "
                      "verification_level_insufficient with details.required and details.have)",
                 404: "Not found (not_found) — also for another citizen's or another kiosk's resource",
                 409: "Conflict (idempotency_conflict, or the state conflict the code names)",
                 413: "Payload too large (payload_too_large)",
                 415: "Unsupported media type (unsupported_media_type)",
                 422: "Validation failed (validation_failed or a more specific code)",
                 429: "Too many distinct citizens from this kiosk within an hour (rate_limited; Retry-After)",
                 503: "Dependency unavailable (database_unavailable, pdf_unavailable)"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry documenting the error shape for the given status codes."""
    from service_platform.schemas import ErrorResponse

    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}
