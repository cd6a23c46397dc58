"""The fleet wire protocol (shared/protocols.md §7): topics, JSON payloads, and the one device status model.

Sparkplug-B-style state over MQTT with JSON payloads (UTF-8):

===============================================  ==============================================================
``fleet/v1/{kiosk_id}/birth``                    on every (re)connect and on a rebirth request: identity, every
                                                 device's full status, host health; ``seq`` = 0
``fleet/v1/{kiosk_id}/death``                    the MQTT Will (QoS 1) and sent explicitly on clean shutdown
``fleet/v1/{kiosk_id}/data``                     on change (changed devices only) and as a heartbeat (everything)
``fleet/v1/{kiosk_id}/alarm``                    QoS 1: a device entered or left a fault/supply condition
``fleet/v1/{kiosk_id}/cmd/{command_id}``         controller → kiosk, signed (see :mod:`fleet.signing`)
``fleet/v1/{kiosk_id}/cmd-result/{command_id}``  QoS 1: accepted / done / failed / rejected + reason
``fleet/v1/controller/state``                    retained; the controllers' Will says offline
===============================================  ==============================================================

Every kiosk payload carries ``v``, ``kiosk_id``, ``ts`` (ms since the epoch), ``bdSeq`` (birth/death sequence,
0–255, also in the Will), and — except the death — ``seq`` (0 in the birth, then previous + 1 mod 256 per message of
the session) and ``mid`` (the kiosk's own message number, monotonic across sessions and restarts: the key for
"newest wins" and for dropping duplicates after an outbox replay).

The device status model maps the kiosk's CEN/XFS-style ``DeviceStatus`` (shared/protocols.md §6) onto what operators
need: ``state`` ∈ ok · degraded · fault · offline · absent, ``supplies.paper`` ∈ ok · near-end · out, an error code and
text, and counters. Nothing personal is ever in a payload: only whitelisted fields are copied, free text is scrubbed of
ID-number-like digit runs and cut short (see :func:`scrub_text`).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Mapping

PROTOCOL_VERSION = 1
TOPIC_ROOT = "fleet/v1"
CONTROLLER_STATE_TOPIC = f"{TOPIC_ROOT}/controller/state"
KIOSK_MESSAGE_TYPES = ("birth", "death", "data", "alarm", "cmd-result")

#: kiosk ids are also MQTT usernames / certificate CNs and topic levels: keep them to a safe alphabet
KIOSK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

STATES = ("ok", "degraded", "fault", "offline", "absent")
#: worst first, for a kiosk's overall state (absent ranks below fault: a device that is not fitted is not broken)
STATE_RANK = {"ok": 0, "degraded": 1, "absent": 2, "offline": 3, "fault": 4}
PAPER_LEVELS = ("ok", "near-end", "out")
PAPER_CODE = {"out": 0, "near-end": 1, "ok": 2}
SERVICE_MODES = ("in_service", "out_of_service")
SEVERITIES = ("info", "warning", "major", "critical")

#: command names the controller knows; a kiosk advertises what it accepts in its birth
COMMANDS = {
    "restart_app": "Restart the kiosk application",
    "out_of_service": "Take out of service",
    "back_in_service": "Back in service",
    "show_announcement": "Show an announcement",
    "push_profile": "Push a device profile",
    "self_test": "Run the device self-test",
    "rebirth": "Request a rebirth (full state)",
}
#: what a command result may say; the controller's command record adds queued/sent/timed_out/expired
RESULT_STATUSES = ("accepted", "done", "failed", "rejected")

# --- the device status model -------------------------------------------------------------------------------------

#: CEN/XFS ``device`` → fleet state (drivers.base.DeviceState values)
_XFS_STATE = {
    "online": "ok", "busy": "ok", "starting": "degraded", "user_error": "degraded",
    "offline": "offline", "power_off": "offline", "no_device": "absent",
    "hardware_error": "fault", "fraud_attempt": "fault",
}
_XFS_PAPER = {"full": "ok", "low": "near-end", "out": "out", "jammed": "out"}
#: driver counter names → the fleet's (cards read, pages printed); others pass through if they are plain integers
COUNTER_ALIASES = {"receipts_printed": "pages", "pages_printed": "pages", "cards_read": "cards_read"}
_COUNTER_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

# 18-digit resident ID numbers (17 digits + check digit) and 15-digit old ones, not inside longer runs
_ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[0-9Xx]|\d{15})(?![0-9A-Za-z])")
MAX_TEXT = 160


def scrub_text(text: Any, limit: int = MAX_TEXT) -> str:
    """Free text bound for a payload: ID-number-like digit runs masked, control characters dropped, cut to
    ``limit`` characters. (Names cannot be found by pattern: the agent never copies fields that could hold one.)"""
    if text is None:
        return ""
    s = str(text)
    s = _ID_NUMBER_RE.sub(lambda m: m.group(0)[:4] + "*" * (len(m.group(0)) - 8) + m.group(0)[-4:], s)
    s = "".join(ch for ch in s if ch.isprintable())
    return s[:limit]


def contains_id_number(text: str) -> bool:
    return bool(_ID_NUMBER_RE.search(text))


def _counters(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        name = COUNTER_ALIASES.get(str(key), str(key))
        if _COUNTER_KEY_RE.match(name):
            out[name] = int(value)
    return out


def device_model(status: Any) -> dict[str, Any]:
    """One device's status in the fleet model, from a ``drivers.base.DeviceStatus`` (or its ``to_dict()``).

    ``{"state": "degraded", "supplies": {"paper": "near-end"}, "error_code": "paper_low", "error_text": "…",
    "counters": {"pages": 12}, "xfs": "online"}``
    """
    d = status.to_dict() if hasattr(status, "to_dict") else dict(status)
    xfs = str(d.get("device") or "")
    if hasattr(xfs, "value"):
        xfs = xfs.value  # pragma: no cover - to_dict() already gives values
    state = _XFS_STATE.get(xfs, "fault" if xfs else "absent")
    paper_raw = d.get("paper")
    paper = _XFS_PAPER.get(str(paper_raw)) if paper_raw else None
    media = d.get("media")
    error_code = d.get("error_code") or None
    if state == "ok":
        if paper == "out" or media == "jammed":
            state = "fault"
        elif paper == "near-end" or error_code:
            state = "degraded"
    if paper_raw == "jammed" and not error_code:
        error_code = "paper_jammed"
    elif paper == "out" and not error_code:
        error_code = "paper_out"
    elif paper == "near-end" and not error_code:
        error_code = "paper_near_end"
    model: dict[str, Any] = {"state": state, "xfs": xfs or None}
    if paper:
        model["supplies"] = {"paper": paper}
    model["error_code"] = scrub_text(error_code, 40) if error_code else None
    model["error_text"] = scrub_text(d.get("detail") or "")
    model["counters"] = _counters(d.get("counters"))
    return model


def device_models(statuses: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{kind: DeviceStatus}`` (from ``DeviceManager.statuses()``) → ``{kind: model}``. A status that cannot be
    read is itself reported as a fault rather than raised."""
    out: dict[str, dict[str, Any]] = {}
    for kind, status in statuses.items():
        if not _COUNTER_KEY_RE.match(str(kind)):
            continue
        try:
            out[str(kind)] = device_model(status)
        except Exception as exc:  # noqa: BLE001 - a broken status object must not stop the others
            out[str(kind)] = {"state": "fault", "xfs": None, "error_code": "status_unreadable",
                              "error_text": scrub_text(type(exc).__name__), "counters": {}}
    return out


def worst_state(devices: Mapping[str, Mapping[str, Any]]) -> str:
    worst = "ok"
    for model in devices.values():
        state = model.get("state", "ok")
        if STATE_RANK.get(state, 4) > STATE_RANK[worst]:
            worst = state
    return worst


def alarm_conditions(devices: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """The alarm conditions a set of device models shows: ``{(device, code): severity}``. Used by the agent to
    publish alarm events on transitions (the controller evaluates its own rules from state)."""
    out: dict[tuple[str, str], str] = {}
    for kind, model in devices.items():
        paper = (model.get("supplies") or {}).get("paper")
        if paper == "out":
            out[(kind, "paper_out")] = "critical"
        elif paper == "near-end":
            out[(kind, "paper_near_end")] = "warning"
        state = model.get("state")
        if state in ("fault", "offline") and paper != "out":
            out[(kind, "device_" + state)] = "critical" if state == "fault" else "major"
    return out


# --- topics and envelopes ----------------------------------------------------------------------------------------

def topic(kiosk_id: str, kind: str, command_id: str | None = None) -> str:
    base = f"{TOPIC_ROOT}/{kiosk_id}/{kind}"
    return f"{base}/{command_id}" if command_id else base


def parse_topic(name: str) -> tuple[str, str, str | None] | None:
    """``fleet/v1/K/data`` → ``("K", "data", None)``; ``…/cmd-result/ID`` → ``("K", "cmd-result", "ID")``;
    anything else → None."""
    parts = name.split("/")
    if len(parts) < 4 or parts[0] != "fleet" or parts[1] != "v1":
        return None
    kiosk_id, kind = parts[2], parts[3]
    if len(parts) == 4 and kind in ("birth", "death", "data", "alarm"):
        return kiosk_id, kind, None
    if len(parts) == 5 and kind in ("cmd", "cmd-result"):
        return kiosk_id, kind, parts[4]
    return None


def now_ms() -> int:
    return int(time.time() * 1000)


def dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def canonical(payload: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces): what commands are signed over."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class PayloadError(ValueError):
    """A kiosk payload that does not follow the protocol (the controller drops and counts it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_STATE_SET = frozenset(STATES)
_RESULT_SET = frozenset(RESULT_STATUSES)


def check_envelope(kind: str, kiosk_id: str, payload: Any) -> Mapping[str, Any]:
    """Validate the common fields of a kiosk message; return it. Raises :class:`PayloadError` with a short reason
    (``not_object``, ``kiosk_mismatch``, ``bad_seq``…) that the controller counts. (On the ingest's hot path: plain
    type checks, no schema library.)"""
    if type(payload) is not dict:
        raise PayloadError("not_object")
    get = payload.get
    if get("kiosk_id") != kiosk_id:
        raise PayloadError("kiosk_mismatch")
    ts, bd = get("ts"), get("bdSeq")
    if type(ts) is not int or not 0 <= ts <= 9007199254740992:
        raise PayloadError("bad_ts")
    if type(bd) is not int or not 0 <= bd <= 255:
        raise PayloadError("bad_bdSeq")
    if kind != "death":
        seq, mid = get("seq"), get("mid")
        if type(seq) is not int or not 0 <= seq <= 255:
            raise PayloadError("bad_seq")
        if type(mid) is not int or not 0 <= mid <= 4611686018427387904:
            raise PayloadError("bad_mid")
        if kind == "birth" and seq != 0:
            raise PayloadError("birth_seq_not_zero")
    devices = get("devices")
    if devices is not None:
        if type(devices) is not dict:
            raise PayloadError("bad_devices")
        for model in devices.values():
            if type(model) is not dict or model.get("state") not in _STATE_SET:
                raise PayloadError("bad_device_state")
    elif kind == "birth":
        raise PayloadError("birth_without_devices")
    if kind == "cmd-result" and get("status") not in _RESULT_SET:
        raise PayloadError("bad_result_status")
    return payload
