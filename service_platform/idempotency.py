"""Idempotent creating calls, in one place.

A creating endpoint takes an ``Idempotency-Key`` header (:func:`require_idempotency_key`) and wraps its work in
:func:`run_idempotent`: the first call runs ``create`` and stores its status and JSON body with a fingerprint of the
request in ``idempotency_records`` in the same transaction; a later call with the same key replays the stored
answer (header ``Idempotent-Replayed: true``) if its fingerprint matches, and fails with 409
``idempotency_conflict`` if not. Two concurrent first calls race on the unique constraint; the loser replays — also
when it was refused because of the winner's effects. Refusals (``ApiError``) are not stored: a repeat is checked
again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service_platform.errors import ApiError
from service_platform.models import IdempotencyRecord

_KEY_RE = re.compile(r"^[!-~]{1,200}$")  # printable ASCII, no spaces (UUIDs, ULIDs, …); also the spec's pattern
REPLAYED_HEADER = "Idempotent-Replayed"


IDEMPOTENCY_HEADER = "Idempotency-Key"


def require_idempotency_key(
    idempotency_key: str = Header(
        alias=IDEMPOTENCY_HEADER, min_length=1, max_length=200, pattern=_KEY_RE.pattern,
        description="Unique per logical request (e.g. a UUID); repeating it with the same request returns the "
                    "first result, with a different request gives 409 idempotency_conflict. 1–200 printable ASCII "
                    "characters, no spaces. Missing or empty: 422 idempotency_key_required."),
) -> str:
    if not idempotency_key.strip():
        raise ApiError(422, "idempotency_key_required", "the Idempotency-Key header is required")
    key = idempotency_key.strip()
    if not _KEY_RE.fullmatch(key):
        raise ApiError(422, "validation_failed", "Idempotency-Key must be 1–200 printable ASCII characters")
    return key


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class IdempotentResult:
    status_code: int
    body: Any
    replayed: bool

    def response(self) -> JSONResponse:
        headers = {REPLAYED_HEADER: "true"} if self.replayed else None
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


def _lookup(db: Session, scope: str, key: str) -> IdempotencyRecord | None:
    return db.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == scope,
                                                     IdempotencyRecord.key == key))


def _replay(record: IdempotencyRecord, request_hash: str) -> IdempotentResult:
    if record.request_hash != request_hash:
        raise ApiError(409, "idempotency_conflict",
                       "this Idempotency-Key was already used with a different request")
    return IdempotentResult(record.status_code, record.response_body, replayed=True)


def run_idempotent(db: Session, *, scope: str, key: str, payload: Any, now: dt.datetime,
                   create: Callable[[], tuple[int, Any]]) -> IdempotentResult:
    """Run ``create`` (which adds rows to ``db`` and returns ``(status, json_body)``) at most once per key.

    ``payload`` is everything that identifies the request (body, caller); ``scope`` names the endpoint.
    """
    request_hash = fingerprint(payload)
    existing = _lookup(db, scope, key)
    if existing is not None:
        return _replay(existing, request_hash)
    try:
        status_code, body = create()
        db.add(IdempotencyRecord(scope=scope, key=key, request_hash=request_hash, status_code=status_code,
                                 response_body=body, created_at=now))
        db.commit()
    except (IntegrityError, ApiError):
        # A concurrent twin may have committed meanwhile: its record wins (replay). That also covers refusals caused
        # by the twin's own effects (e.g. "you already have an appointment"), which commit with its record.
        db.rollback()
        existing = _lookup(db, scope, key)
        if existing is None:
            raise
        return _replay(existing, request_hash)
    return IdempotentResult(status_code, body, replayed=False)
