"""The platform API of docs/protocols/proofs.md, kiosk side: the kiosk's configuration (public verification URLs),
proofs on demand (打印证明), and phone upload tokens (手机上传).

:class:`ProofsApi` is mixed into :class:`kiosk.platform_client.PlatformClient` (same transport: signed, bounded,
retried; same errors). Blocking: call it from a worker.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

#: issuing signs a PDF on the platform (a seal may be made on first use): longer than an ordinary call may take
ISSUE_TIMEOUT = httpx.Timeout(30.0, connect=3.0)


@dataclass(frozen=True)
class ProofType:
    """A proof this citizen can get, with the period choice where it applies."""

    type: str
    name: str
    name_en: str
    issuer: str
    periodic: bool
    earliest_month: str | None = None
    latest_month: str | None = None
    default_from: str | None = None
    default_to: str | None = None
    max_months: int | None = None
    has_records: bool = True
    summary_zh: str = ""
    summary_en: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ProofType":
        return cls(type=d["type"], name=d.get("name") or d["type"], name_en=d.get("name_en") or "",
                   issuer=d.get("issuer") or "", periodic=bool(d.get("periodic")),
                   earliest_month=d.get("earliest_month"), latest_month=d.get("latest_month"),
                   default_from=d.get("default_from"), default_to=d.get("default_to"),
                   max_months=d.get("max_months"), has_records=bool(d.get("has_records", True)),
                   summary_zh=d.get("summary_zh") or "", summary_en=d.get("summary_en") or "")


@dataclass(frozen=True)
class IssuedProof:
    """One issued, sealed proof (its PDF is fetched by code; its hash is what the verify page shows)."""

    code: str
    type: str
    name: str
    issuer: str
    holder_name_masked: str
    issued_at: str
    pages: int
    sha256: str
    status: str                      # valid | revoked
    verify_url: str
    period_from: str | None = None
    period_to: str | None = None
    has_records: bool = True

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "IssuedProof":
        return cls(code=d["code"], type=d["type"], name=d.get("name") or d["type"], issuer=d.get("issuer") or "",
                   holder_name_masked=d.get("holder_name_masked") or "", issued_at=d.get("issued_at") or "",
                   pages=int(d.get("pages") or 1), sha256=d.get("sha256") or "", status=d.get("status") or "valid",
                   verify_url=d.get("verify_url") or "", period_from=d.get("period_from"),
                   period_to=d.get("period_to"), has_records=bool(d.get("has_records", True)))


@dataclass(frozen=True)
class PhoneUploadFile:
    upload_id: str
    content_type: str
    size: int
    width: int
    height: int
    blank: bool
    received_at: str


@dataclass(frozen=True)
class PhoneUpload:
    """A one-time upload token bound to this citizen session: ``upload_url`` is shown as a QR."""

    id: str
    upload_url: str = field(repr=False)   # holds the secret token: never logged
    expires_at: str
    status: str                           # open | expired | closed
    max_files: int
    files: list[PhoneUploadFile]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PhoneUpload":
        files = [PhoneUploadFile(upload_id=f["upload_id"], content_type=f.get("content_type", ""),
                                 size=int(f.get("size") or 0), width=int(f.get("width") or 0),
                                 height=int(f.get("height") or 0), blank=bool(f.get("blank")),
                                 received_at=f.get("received_at") or "") for f in d.get("files") or []]
        return cls(id=d["id"], upload_url=d.get("upload_url") or "", expires_at=d.get("expires_at") or "",
                   status=d.get("status") or "open", max_files=int(d.get("max_files") or 10), files=files)


class ProofsApi:
    """Calls of docs/protocols/proofs.md; mixed into the platform client (uses its ``_request``)."""

    def _request(self, method: str, path: str, *, idempotent: bool, token: str | None = None,
                 headers: Mapping[str, str] | None = None, raw: bool = False,
                 **kwargs: Any) -> Any:  # pragma: no cover - provided by PlatformClient
        raise NotImplementedError

    # configuration ---------------------------------------------------------------------------------------------------
    def kiosk_config(self) -> dict[str, Any]:
        """``{"public_base_url", "verify_urls": {kind: template with {placeholder}}}``."""
        return dict(self._request("GET", "/api/v1/kiosk/config", idempotent=True))

    # proofs ----------------------------------------------------------------------------------------------------------
    def proof_types(self, token: str) -> list[ProofType]:
        data = self._request("GET", "/api/v1/me/proofs", idempotent=True, token=token)
        return [ProofType.from_json(p) for p in data["items"]]

    def issue_proof(self, token: str, proof_type: str, period_from: str | None = None,
                    period_to: str | None = None, *, idempotency_key: str | None = None) -> IssuedProof:
        body: dict[str, Any] = {"type": proof_type}
        if period_from:
            body["period_from"] = period_from
        if period_to:
            body["period_to"] = period_to
        return IssuedProof.from_json(self._request(
            "POST", "/api/v1/me/proofs", idempotent=True, token=token,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}, json=body, timeout=ISSUE_TIMEOUT))

    def issued_proofs(self, token: str) -> list[IssuedProof]:
        data = self._request("GET", "/api/v1/me/proofs/issued", idempotent=True, token=token)
        return [IssuedProof.from_json(p) for p in data["items"]]

    def proof(self, token: str, code: str) -> IssuedProof:
        return IssuedProof.from_json(self._request("GET", f"/api/v1/me/proofs/{code}", idempotent=True, token=token))

    def proof_pdf(self, token: str, code: str) -> bytes:
        return self._request("GET", f"/api/v1/me/proofs/{code}/pdf", idempotent=True, token=token, raw=True,
                             timeout=ISSUE_TIMEOUT).content

    def proof_preview(self, token: str, code: str, page: int = 1) -> bytes:
        """PNG of one page (about 800 px wide) rendered by the platform."""
        return self._request("GET", f"/api/v1/me/proofs/{code}/preview", idempotent=True, token=token, raw=True,
                             params={"page": page}).content

    # phone upload ----------------------------------------------------------------------------------------------------
    def create_phone_upload(self, token: str, purpose: str = "", *,
                            idempotency_key: str | None = None) -> PhoneUpload:
        body = {"purpose": purpose[:40]} if purpose else {}
        return PhoneUpload.from_json(self._request(
            "POST", "/api/v1/me/phone-uploads", idempotent=True, token=token,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}, json=body))

    def phone_upload(self, token: str, upload_token_id: str) -> PhoneUpload:
        return PhoneUpload.from_json(self._request("GET", f"/api/v1/me/phone-uploads/{upload_token_id}",
                                                   idempotent=True, token=token))

    def phone_upload_file(self, token: str, upload_token_id: str, upload_id: str) -> bytes:
        return self._request("GET", f"/api/v1/me/phone-uploads/{upload_token_id}/files/{upload_id}",
                             idempotent=True, token=token, raw=True).content

    def close_phone_upload(self, token: str, upload_token_id: str) -> None:
        self._request("DELETE", f"/api/v1/me/phone-uploads/{upload_token_id}", idempotent=True, token=token)


def month_list(first: str, last: str) -> list[str]:
    """Every ``YYYY-MM`` from ``first`` to ``last`` inclusive (empty when last < first)."""
    y, m = (int(x) for x in first.split("-"))
    ly, lm = (int(x) for x in last.split("-"))
    out = []
    while (y, m) <= (ly, lm):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def months_back(last: str, count: int) -> str:
    """The month ``count - 1`` months before ``last`` (a period of ``count`` months ending at ``last``)."""
    y, m = (int(x) for x in last.split("-"))
    index = y * 12 + (m - 1) - (count - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def today_month(now: dt.date | None = None) -> str:
    now = now or dt.date.today()
    return f"{now.year:04d}-{now.month:02d}"
