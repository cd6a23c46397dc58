"""Client of the service platform API (``/api/v1``), over httpx.

Timeouts on every call; idempotent calls (GET, DELETE, and POSTs that carry an ``Idempotency-Key``) are retried with
back-off on connection errors and 5xx; anything that still fails becomes :class:`PlatformUnavailable`. 4xx answers
become :class:`PlatformRejected` (or a subclass) carrying the platform's stable error code. Blocking: call it from a
worker, never from the UI thread.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from kiosk.errors import CitizenSessionExpired, NotFound, PlatformRejected, PlatformUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSummary:
    code: str
    name: str
    name_en: str
    department: str
    category: str
    fee_fen: int
    promised_days: int | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ServiceSummary":
        return cls(code=d["code"], name=d["name"], name_en=d.get("name_en") or d["name"],
                   department=d.get("department", ""), category=d.get("category", ""),
                   fee_fen=int(d.get("fee_fen") or 0), promised_days=d.get("promised_days"))


@dataclass(frozen=True)
class Material:
    name: str
    originals: int
    copies: int
    required: bool
    e_cert_type: str | None
    note: str = ""


@dataclass(frozen=True)
class ServiceDetail:
    summary: ServiceSummary
    conditions: list[str]
    materials: list[Material]
    legal_days: int | None
    promised_days: int | None
    fee_fen: int
    fee_note: str
    basis: str
    places: list[dict[str, str]]
    faqs: list[dict[str, str]]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ServiceDetail":
        return cls(
            summary=ServiceSummary.from_json(d),
            conditions=list(d.get("conditions") or []),
            materials=[Material(name=m["name"], originals=int(m.get("originals", 0)), copies=int(m.get("copies", 0)),
                                required=bool(m.get("required", True)), e_cert_type=m.get("e_cert_type"),
                                note=m.get("note") or "") for m in d.get("materials") or []],
            legal_days=d.get("legal_days"), promised_days=d.get("promised_days"),
            fee_fen=int(d.get("fee_fen") or 0), fee_note=d.get("fee_note") or "", basis=d.get("basis") or "",
            places=list(d.get("places") or []), faqs=list(d.get("faqs") or []),
        )


@dataclass(frozen=True)
class ProgressStep:
    status: str
    at: str
    department: str
    note: str


@dataclass(frozen=True)
class Application:
    number: str
    service_code: str
    service_name: str
    status: str
    status_text: str
    applicant_masked: str
    submitted_at: str
    department: str
    promised_date: str | None
    timeline: list[ProgressStep] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Application":
        return cls(
            number=d["number"], service_code=d.get("service_code", ""), service_name=d.get("service_name", ""),
            status=d["status"], status_text=d.get("status_text_zh") or d["status"],
            applicant_masked=d.get("applicant_masked", ""), submitted_at=d.get("submitted_at", ""),
            department=d.get("department") or "", promised_date=d.get("promised_date"),
            timeline=[ProgressStep(status=s["status"], at=s.get("at", ""), department=s.get("department") or "",
                                   note=s.get("note") or "") for s in d.get("timeline") or []],
        )


@dataclass(frozen=True)
class CitizenSession:
    token: str = field(repr=False)
    expires_at: str
    name_masked: str


class PlatformClient:
    def __init__(self, base_url: str, kiosk_id: str, kiosk_key: str, timeout_s: float = 5.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.kiosk_id = kiosk_id
        self.retries = retries
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
            headers={"X-Kiosk-Id": kiosk_id, "X-Kiosk-Key": kiosk_key, "Accept": "application/json"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # transport ------------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, idempotent: bool, token: str | None = None,
                 headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        attempts = 1 + (self.retries if idempotent else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
            try:
                response = self._http.request(method, path, headers=hdrs, **kwargs)
            except httpx.HTTPError as exc:  # connect/read timeouts, refused, reset
                last = exc
                log.warning("platform %s %s failed (attempt %d/%d): %s", method, path.split("?")[0],
                            attempt + 1, attempts, type(exc).__name__)
                continue
            if response.status_code >= 500:
                last = PlatformUnavailable(f"platform answered {response.status_code}")
                continue
            if response.status_code >= 400:
                raise self._rejection(response)
            return response.json() if response.content else None
        raise PlatformUnavailable(f"{method} {path.split('?')[0]}: {type(last).__name__ if last else 'failed'}")

    @staticmethod
    def _rejection(response: httpx.Response) -> PlatformRejected:
        try:
            err = response.json().get("error", {})
        except ValueError:
            err = {}
        code = err.get("code", "") if isinstance(err, dict) else ""
        message = err.get("message", response.reason_phrase) if isinstance(err, dict) else response.reason_phrase
        if response.status_code == 404:
            return NotFound(message, status=404, platform_code=code)
        if response.status_code == 401 and code == "session_expired":
            return CitizenSessionExpired(message, status=401, platform_code=code)
        return PlatformRejected(message, status=response.status_code, platform_code=code)

    # API ------------------------------------------------------------------------------------------------------------
    def health(self) -> bool:
        try:
            return (self._request("GET", "/healthz", idempotent=False) or {}).get("status") == "ok"
        except (PlatformUnavailable, PlatformRejected):
            return False

    def search_services(self, query: str = "", category: str = "", limit: int = 50) -> list[ServiceSummary]:
        params = {k: v for k, v in {"q": query, "category": category, "limit": limit}.items() if v}
        data = self._request("GET", "/api/v1/services", idempotent=True, params=params)
        return [ServiceSummary.from_json(item) for item in data["items"]]

    def service_detail(self, code: str) -> ServiceDetail:
        return ServiceDetail.from_json(self._request("GET", f"/api/v1/services/{code}", idempotent=True))

    def application_progress(self, number: str) -> Application:
        return Application.from_json(self._request("GET", f"/api/v1/applications/{number}", idempotent=True))

    def open_citizen_session(self, id_number: str, name: str, document_kind: str,
                             face_match: bool | None = None) -> CitizenSession:
        body = {"id_number": id_number, "name": name, "document_kind": document_kind,
                "verification": {"method": "card+face" if face_match is not None else "card",
                                 "face_match": face_match}}
        data = self._request("POST", "/api/v1/citizen-sessions", idempotent=False, json=body)
        return CitizenSession(token=data["token"], expires_at=data.get("expires_at", ""),
                              name_masked=(data.get("citizen") or {}).get("name_masked", ""))

    def close_citizen_session(self, token: str) -> None:
        try:
            self._request("DELETE", "/api/v1/citizen-sessions/current", idempotent=True, token=token)
        except CitizenSessionExpired:
            pass

    def my_applications(self, token: str) -> list[Application]:
        data = self._request("GET", "/api/v1/me/applications", idempotent=True, token=token)
        return [Application.from_json(item) for item in data["items"]]

    def rating_tags(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/rating-tags", idempotent=True)

    def submit_rating(self, target_type: str, target_id: str, stars: int, tags: list[str] | None = None,
                      comment: str | None = None, token: str | None = None,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        body = {"target_type": target_type, "target_id": target_id, "stars": stars, "tags": tags or [],
                "comment": comment, "kiosk_id": self.kiosk_id}
        key = idempotency_key or str(uuid.uuid4())
        return self._request("POST", "/api/v1/ratings", idempotent=True, token=token,
                             headers={"Idempotency-Key": key}, json=body)
