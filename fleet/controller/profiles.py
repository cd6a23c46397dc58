"""Desired and reported device profiles per kiosk.

The controller keeps the **desired** profile of each kiosk (the YAML an admin set, its digest, who set it, the
``push_profile`` command that carries it) and every profile text it ever set for the kiosk (``profile_versions``), so
the reported version can be shown as a diff. The **reported** version is the ``profile_hash`` of the kiosk's birth
(the digest of the profile it runs) and its profile events (device ``profile`` in the event log: staged, applied,
trial failed, rolled back, restored, drift — kiosk/profile_updates.py).

``GET /api/v1/kiosks/{id}/profile`` (viewer) answers desired vs reported: ``status`` ∈ ``in_sync`` · ``applying``
(the push is on its way or being tried) · ``rolled_back`` (the kiosk tried the desired profile and went back) ·
``drift`` (the kiosk runs something else: a technician's local change) · ``no_desired``; a unified ``diff`` from the
desired text to the reported one when the controller knows the reported text; the kiosk's latest profile events.
``PUT`` (admin, as ``push_profile``) sets the desired profile and sends it.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any, Callable, Literal

import yaml
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, String, Table, Text, and_, insert, select, update

from fleet.controller.store import Store, metadata

desired_profiles = Table(
    "desired_profiles", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("digest", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("set_by", String(64), nullable=False),
    Column("set_at", BigInteger, nullable=False),
    Column("command_id", String(64), nullable=False, default=""),
)
profile_versions = Table(
    "profile_versions", metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("digest", String(16), primary_key=True),
    Column("text", Text, nullable=False),
    Column("first_set_at", BigInteger, nullable=False),
)
PROFILE_EVENTS = ("profile_staged", "profile_applied", "profile_trial_failed", "profile_rolled_back",
                  "profile_restored", "profile_drift")
MAX_PROFILE_TEXT = 200_000


def ensure_schema(store: Store) -> None:
    metadata.create_all(store.engine, tables=[desired_profiles, profile_versions], checkfirst=True)


def profile_digest(data: Any) -> str:
    """The digest a kiosk reports for a parsed profile (device_profiles.loader.parse_profile's ``digest``)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def set_desired(store: Store, kiosk_id: str, text: str, digest: str, by: str, now: int, command_id: str) -> None:
    with store.engine.begin() as conn:
        values = {"digest": digest, "text": text, "set_by": by, "set_at": now, "command_id": command_id}
        if conn.execute(update(desired_profiles).where(desired_profiles.c.kiosk_id == kiosk_id)
                        .values(**values)).rowcount == 0:
            conn.execute(insert(desired_profiles).values(kiosk_id=kiosk_id, **values))
        known = conn.execute(select(profile_versions.c.digest).where(and_(
            profile_versions.c.kiosk_id == kiosk_id, profile_versions.c.digest == digest))).first()
        if known is None:
            conn.execute(insert(profile_versions).values(kiosk_id=kiosk_id, digest=digest, text=text,
                                                         first_set_at=now))


def record_push(store: Store, kiosk_id: str, text: str, by: str, command: dict[str, Any]) -> None:
    """A ``push_profile`` command sent another way (the commands API, the dashboard's form) sets the desired
    profile too, when its text is a profile for this kiosk."""
    try:
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("kiosk"), dict) or data["kiosk"].get("id") != kiosk_id:
            return
        digest = profile_digest(data)
    except (yaml.YAMLError, TypeError, ValueError):
        return
    ensure_schema(store)
    set_desired(store, kiosk_id, text, digest, by, command["created_at"], command["id"])


def _version_text(store: Store, kiosk_id: str, digest: str) -> str | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(profile_versions.c.text).where(and_(
            profile_versions.c.kiosk_id == kiosk_id, profile_versions.c.digest == digest))).first()
    return row.text if row is not None else None


def profile_view(store: Store, kiosk_id: str) -> dict[str, Any]:
    kiosk = store.kiosk(kiosk_id) or {}
    reported = str(kiosk.get("profile_hash") or "")
    with store.engine.connect() as conn:
        row = conn.execute(select(desired_profiles).where(desired_profiles.c.kiosk_id == kiosk_id)).first()
    reports = [e for e in store.kiosk_events(kiosk_id, limit=200)
               if e["device"] == "profile" and e["code"] in PROFILE_EVENTS][:20]
    desired: dict[str, Any] | None = None
    status = "no_desired"
    diff = ""
    if row is not None:
        command = store.command(row.command_id) if row.command_id else None
        desired = {"digest": row.digest, "set_by": row.set_by, "set_at": row.set_at, "command_id": row.command_id,
                   "command_status": command.status if command is not None else None}
        since = [e for e in reports if e["ts"] >= row.set_at]
        if reported == row.digest:
            status = "in_sync"
        elif any(e["code"] in ("profile_rolled_back", "profile_trial_failed") and row.digest in e["text"]
                 for e in since):
            status = "rolled_back"
        elif command is not None and command.status in ("queued", "sent", "delivered") or \
                any(e["code"] == "profile_staged" and row.digest in e["text"] for e in since):
            status = "applying"
        else:
            status = "drift"
        if reported and reported != row.digest:
            other = _version_text(store, kiosk_id, reported)
            if other is not None:
                diff = "".join(difflib.unified_diff(row.text.splitlines(True), other.splitlines(True),
                                                    f"desired {row.digest}", f"reported {reported}"))
    return {"kiosk_id": kiosk_id, "status": status, "desired": desired,
            "reported": {"digest": reported, "known_text": bool(reported and _version_text(store, kiosk_id, reported))},
            "diff": diff, "reports": reports}


class ProfileReport(BaseModel):
    ts: int
    code: str
    severity: str
    text: str


class DesiredOut(BaseModel):
    digest: str
    set_by: str
    set_at: int
    command_id: str
    command_status: str | None = None


class ReportedOut(BaseModel):
    digest: str
    known_text: bool


class ProfileOut(BaseModel):
    kiosk_id: str
    status: Literal["in_sync", "applying", "rolled_back", "drift", "no_desired"]
    desired: DesiredOut | None = None
    reported: ReportedOut
    diff: str = Field(description="unified diff from the desired profile to the reported one (when known)")
    reports: list[ProfileReport]


class ProfileIn(BaseModel):
    profile: str = Field(min_length=1, max_length=MAX_PROFILE_TEXT, description="the profile (YAML)")
    profile_signature: dict[str, Any] | None = Field(
        None, description="fleet-controller sign-profile's signature, needed for protected changes")
    ttl_s: float = Field(3600, ge=5, le=86400, description="the push_profile command expires after this")


def add_routes(app: FastAPI, controller: Any, require_role: Callable[[str], Any],
               guard: Callable[[str], dict[str, Any]]) -> None:
    """The profile routes (called by :func:`fleet.controller.api.create_app`)."""
    store: Store | None = getattr(controller, "store", None)
    if store is not None:
        ensure_schema(store)

    def kiosk_or_404(kiosk_id: str) -> None:
        if store is None or store.kiosk(kiosk_id) is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")

    @app.get("/api/v1/kiosks/{kiosk_id}/profile", response_model=ProfileOut, tags=["profiles"],
             summary="desired vs reported device profile: status, diff, the kiosk's profile reports",
             **guard("viewer"))
    def get_profile(kiosk_id: str, _user: Any = Depends(require_role("viewer"))) -> dict[str, Any]:
        kiosk_or_404(kiosk_id)
        assert store is not None
        return profile_view(store, kiosk_id)

    @app.put("/api/v1/kiosks/{kiosk_id}/profile", response_model=ProfileOut, status_code=202, tags=["profiles"],
             summary="set the desired profile and push it (push_profile); the kiosk tries it and rolls back if a "
                     "required device fails", **guard("admin"))
    def put_profile(kiosk_id: str, body: ProfileIn, user: Any = Depends(require_role("admin"))) -> dict[str, Any]:
        kiosk_or_404(kiosk_id)
        assert store is not None
        try:
            data = yaml.safe_load(body.profile)
        except yaml.YAMLError:
            raise HTTPException(422, "the profile is not valid YAML") from None
        kiosk = data.get("kiosk") if isinstance(data, dict) else None
        if not isinstance(kiosk, dict) or kiosk.get("id") != kiosk_id:
            raise HTTPException(422, f"the profile's kiosk.id is not {kiosk_id}")
        try:
            digest = profile_digest(data)
        except (TypeError, ValueError):
            raise HTTPException(422, "the profile holds values a kiosk cannot read (dates: quote them)") from None
        args: dict[str, Any] = {"profile": body.profile, "sha256": hashlib.sha256(body.profile.encode()).hexdigest()}
        if body.profile_signature is not None:
            args["profile_signature"] = body.profile_signature
        command = controller.create_command(kiosk_id, "push_profile", args, body.ttl_s, created_by=user.username)
        set_desired(store, kiosk_id, body.profile, digest, user.username, command["created_at"], command["id"])
        return profile_view(store, kiosk_id)
