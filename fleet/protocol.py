"""The fleet wire protocol (shared/protocols.md §7): topics, JSON payloads, and the one device status model.

Sparkplug-B-style state over MQTT with JSON payloads (UTF-8):

===============================================  ==============================================================
``fleet/v1/{kiosk_id}/birth``                    on every (re)connect and on a rebirth request: identity, every
                                                 device's full status, host health; ``seq`` = 0
``fleet/v1/{kiosk_id}/death``                    the MQTT Will (QoS 1) and sent explicitly on clean shutdown
``fleet/v1/{kiosk_id}/data``                     on change (changed devices only) and as a heartbeat (everything)
``fleet/v1/{kiosk_id}/alarm``                    QoS 1: a device entered or left a fault/supply condition
``fleet/v1/{kiosk_id}/journey``                  QoS 1: anonymous citizen journeys, batched (:func:`check_journey`)
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
KIOSK_MESSAGE_TYPES = ("birth", "death", "data", "alarm", "journey", "cmd-result")

#: kiosk ids are also MQTT usernames / certificate CNs and topic levels: keep them to a safe alphabet
KIOSK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

STATES = ("ok", "degraded", "fault", "offline", "absent")
#: worst first, for a kiosk's overall state (absent ranks below fault: a device that is not fitted is not broken)
STATE_RANK = {"ok": 0, "degraded": 1, "absent": 2, "offline": 3, "fault": 4}
PAPER_LEVELS = ("ok", "near-end", "out")
PAPER_CODE = {"out": 0, "near-end": 1, "ok": 2}
SERVICE_MODES = ("in_service", "out_of_service", "maintenance")
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
    # sent by the controller when an operator acknowledges a citizen's help request (alert app_alarm /
    # assistance_requested): the kiosk says "someone is coming" (kiosk/assistance.py)
    "assistance_acknowledged": "Tell the citizen that staff are coming",
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
    if len(parts) == 4 and kind in ("birth", "death", "data", "alarm", "journey"):
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

# --- bounds on everything a kiosk may send (the controller's ingest must never choke on one message) -----------------
#: a whole payload; the largest real one (a birth, a self-test result) is a few kB
MAX_PAYLOAD_BYTES = 64 * 1024
#: ``ts`` must lie within [now − 30 days, now + 1 day] of the controller's clock (the outbox replays old messages;
#: retention keeps 30 days): outside → rejected
TS_PAST_MS = 30 * 86_400_000
TS_FUTURE_MS = 86_400_000
MAX_DEVICES = 32
MAX_EVENTS = 32
MAX_KEYS = 32            # counters, host, identity
MAX_COMMAND_NAMES = 32
MAX_COUNTER = 1_000_000_000  # a counter fits the time series' INTEGER columns, even summed over two devices
MAX_HOST_NUMBER = 1e12       # host metrics go to REAL columns: finite and bounded
MAX_STRING = 2000            # any single string (stored ones are cut shorter still)
MAX_DATA_DEPTH = 8           # a command result's ``data``
MAX_MID = 4611686018427387904
MAX_TS = 9007199254740992


def _num(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and -MAX_HOST_NUMBER <= v <= MAX_HOST_NUMBER  # NaN fails too


def check_counters(raw: Any, reason: str = "bad_counters") -> None:
    """Counters: an object of at most :data:`MAX_KEYS` short names → integers within ±:data:`MAX_COUNTER`."""
    if raw is None:
        return
    if type(raw) is not dict or len(raw) > MAX_KEYS:
        raise PayloadError(reason)
    for k, v in raw.items():
        if type(v) is not int or not -MAX_COUNTER <= v <= MAX_COUNTER or len(k) > 40:
            raise PayloadError(reason)


MAX_AUDIT_SEQ = MAX_TS      # entries in a kiosk's audit chain (2**53: exact in JSON numbers everywhere)
MAX_AUDIT_EPOCH = 1_000_000


def audit_head_ok(head: Any) -> bool:
    """The kiosk's audit chain head (``audit_head`` in birth/data): ``{"seq": int, "hash": 64 hex, "epoch": int}``
    — seq counts entries, hash is the HMAC of the last one, epoch counts declared chain restarts (key lost)."""
    if type(head) is not dict or set(head) != {"seq", "hash", "epoch"}:
        return False
    seq, digest, epoch = head["seq"], head["hash"], head["epoch"]
    return (type(seq) is int and 0 <= seq <= MAX_AUDIT_SEQ and type(epoch) is int and 0 <= epoch <= MAX_AUDIT_EPOCH
            and type(digest) is str and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest))


def check_host(host: Any) -> None:
    """Host health: at most :data:`MAX_KEYS` short names → finite bounded numbers, short strings, booleans, null."""
    if host is None:
        return
    if type(host) is not dict or len(host) > MAX_KEYS:
        raise PayloadError("bad_host")
    for k, v in host.items():
        if len(k) > 40:
            raise PayloadError("bad_host")
        if v is None or v is True or v is False:
            continue
        if type(v) is str:
            if len(v) > 200:
                raise PayloadError("bad_host")
        elif not _num(v):
            raise PayloadError("bad_host")


def check_device_model(kind: Any, model: Any) -> None:
    """One device of ``devices`` beyond its state (checked per message): short strings, counters in range. The
    controller calls it only for a device set it has not seen before (most messages repeat the last one)."""
    if len(kind) > 40 or type(model) is not dict or len(model) > 16:
        raise PayloadError("bad_device")
    supplies = model.get("supplies")
    if supplies is not None and (type(supplies) is not dict or len(supplies) > 8 or
                                 any(type(v) is not str or len(v) > 20 for v in supplies.values())):
        raise PayloadError("bad_device")
    for name in ("error_code", "error_text", "xfs"):
        v = model.get(name)
        if v is not None and (type(v) is not str or len(v) > MAX_STRING):
            raise PayloadError("bad_device")
    check_counters(model.get("counters"), "bad_device_counters")


def _scalar_ok(v: Any) -> bool:
    return v is None or v is True or v is False or (type(v) is str and len(v) <= MAX_STRING) or _num(v)


def _depth_ok(value: Any, depth: int) -> bool:
    if type(value) is dict:
        return depth > 0 and len(value) <= 256 and all(_depth_ok(v, depth - 1) for v in value.values())
    if type(value) is list:
        return depth > 0 and len(value) <= 256 and all(_depth_ok(v, depth - 1) for v in value)
    if type(value) is str:
        return len(value) <= MAX_STRING
    if type(value) is float:
        return -1e300 < value < 1e300
    if type(value) is int:
        return -9223372036854775808 <= value <= 9223372036854775807
    return True


def check_envelope(kind: str, kiosk_id: str, payload: Any, now: int | None = None) -> Mapping[str, Any]:
    """Validate a kiosk message; return it. Raises :class:`PayloadError` with a short reason (``not_object``,
    ``kiosk_mismatch``, ``bad_seq``, ``ts_out_of_window``…) that the controller counts and dead-letters. Every field
    the controller reads is bounded here: ``ts`` within [now − 30 d, now + 1 d] when ``now`` (the controller's receive
    time) is given, counts and sizes of devices/events/counters/host, integers in the ranges the store can write.
    (On the ingest's hot path: plain type checks, no schema library; a device set's details are checked by
    :func:`check_device_model` once per new set.)"""
    if type(payload) is not dict:
        raise PayloadError("not_object")
    get = payload.get
    if get("kiosk_id") != kiosk_id:
        raise PayloadError("kiosk_mismatch")
    ts, bd = get("ts"), get("bdSeq")
    if type(ts) is not int or not 0 <= ts <= MAX_TS:
        raise PayloadError("bad_ts")
    if now is not None and not now - TS_PAST_MS <= ts <= now + TS_FUTURE_MS:
        raise PayloadError("ts_out_of_window")
    if type(bd) is not int or not 0 <= bd <= 255:
        raise PayloadError("bad_bdSeq")
    if kind != "death":
        seq, mid = get("seq"), get("mid")
        if type(seq) is not int or not 0 <= seq <= 255:
            raise PayloadError("bad_seq")
        if type(mid) is not int or not 0 <= mid <= MAX_MID:
            raise PayloadError("bad_mid")
        if kind == "birth" and seq != 0:
            raise PayloadError("birth_seq_not_zero")
    devices = get("devices")
    if devices is not None:
        if type(devices) is not dict or len(devices) > MAX_DEVICES:
            raise PayloadError("bad_devices")
        for model in devices.values():
            if type(model) is not dict or model.get("state") not in _STATE_SET:
                raise PayloadError("bad_device_state")
    elif kind == "birth":
        raise PayloadError("birth_without_devices")
    counters = get("counters")
    if counters is not None:
        check_counters(counters)
    events = get("events")
    if events is not None and (type(events) is not list or len(events) > MAX_EVENTS or not all(
            type(ev) is dict and len(ev) <= 16 and all(_scalar_ok(v) for v in ev.values()) for ev in events)):
        raise PayloadError("bad_events")
    announcement = get("announcement")
    if announcement is not None and (type(announcement) is not str or len(announcement) > MAX_STRING):
        raise PayloadError("bad_announcement")
    audit_head = get("audit_head")
    if audit_head is not None and not audit_head_ok(audit_head):
        raise PayloadError("bad_audit_head")
    reason = get("reason")
    if reason is not None and (type(reason) is not str or len(reason) > 200):
        raise PayloadError("bad_reason")
    if kind == "birth":
        hb = get("heartbeat_s")
        if hb is not None and not ((type(hb) is int or type(hb) is float) and 0.1 <= hb <= 86400):
            raise PayloadError("bad_heartbeat")
        ident, cmds = get("identity"), get("commands")
        if ident is not None and (type(ident) is not dict or len(ident) > MAX_KEYS or
                                  not all(_scalar_ok(v) for v in ident.values())):
            raise PayloadError("bad_identity")
        if cmds is not None and (type(cmds) is not list or len(cmds) > MAX_COMMAND_NAMES):
            raise PayloadError("bad_commands")
    if kind == "journey":
        check_journey(payload)
    if kind == "cmd-result":
        if get("status") not in _RESULT_SET:
            raise PayloadError("bad_result_status")
        data = get("data")
        if data is not None and (type(data) is not dict or not _depth_ok(data, MAX_DATA_DEPTH)):
            raise PayloadError("bad_result_data")
    return payload


# --- anonymous journeys (fleet/v1/{kiosk}/journey) ------------------------------------------------------------------
#: a journey message: ``{"v", "kiosk_id", "ts", "bdSeq", "seq", "mid", "sessions": [session, …]}``; one session:
#: ``{"sid": 12 lowercase letters (random, not the kiosk's session id), "start_s": seconds before ``ts`` it began,
#: "dur_s": seconds, "outcome": JOURNEY_OUTCOMES, "at": the step it ended on, "err": error code | null,
#: "steps": [[screen, seconds], …], "services": [[service code, outcome, seconds in the service(, [its screens in
#: order])], …], "ratings": [[service code, stars 1–5, [tag codes]], …] (optional; no comment, ever)}``.
#: Nothing typed by the citizen, no ID/card/application number: names and codes come from closed alphabets, no
#: string may hold a run of 6 or more digits, numbers are durations.
JOURNEY_OUTCOMES = ("completed", "abandoned", "timed_out", "error", "out_of_service")
MAX_JOURNEY_SESSIONS = 50
MAX_JOURNEY_STEPS = 64
MAX_JOURNEY_SERVICES = 16
MAX_JOURNEY_SECONDS = 86_400.0
MAX_JOURNEY_SERVICE_SCREENS = 16
MAX_JOURNEY_RATINGS = 16
MAX_JOURNEY_RATING_TAGS = 8
JOURNEY_SID_RE = re.compile(r"^[a-z]{12}$")
JOURNEY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
JOURNEY_SERVICE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
_DIGIT_RUN_RE = re.compile(r"\d{6}")
_JOURNEY_KEYS = frozenset({"sid", "start_s", "dur_s", "outcome", "at", "err", "steps", "services", "ratings"})
_OUTCOME_SET = frozenset(JOURNEY_OUTCOMES)


def journey_service_ok(code: Any) -> bool:
    return type(code) is str and bool(JOURNEY_SERVICE_RE.match(code)) and not _DIGIT_RUN_RE.search(code)


def journey_name_ok(name: Any) -> bool:
    """A screen name or a code (rating tag, error): lowercase, closed alphabet, no run of 6 digits."""
    return type(name) is str and bool(JOURNEY_NAME_RE.match(name)) and not _DIGIT_RUN_RE.search(name)


def _seconds(v: Any, limit: float = MAX_JOURNEY_SECONDS) -> bool:
    return (type(v) is int or type(v) is float) and 0 <= v <= limit


def check_journey(payload: Mapping[str, Any]) -> None:
    """A journey message's ``sessions``, strictly: whitelisted keys, closed alphabets, bounded counts and durations
    (anything else → :class:`PayloadError` ``bad_journey``: the controller dead-letters it)."""
    sessions = payload.get("sessions")
    if type(sessions) is not list or not 1 <= len(sessions) <= MAX_JOURNEY_SESSIONS:
        raise PayloadError("bad_journey")
    for s in sessions:
        if type(s) is not dict or not _JOURNEY_KEYS.issuperset(s) or not JOURNEY_SID_RE.match(str(s.get("sid"))):
            raise PayloadError("bad_journey")
        if not _seconds(s.get("start_s"), TS_PAST_MS / 1000) or not _seconds(s.get("dur_s")) \
                or s.get("outcome") not in _OUTCOME_SET:
            raise PayloadError("bad_journey")
        at, err = s.get("at"), s.get("err")
        if at is not None and (type(at) is not str or not JOURNEY_NAME_RE.match(at)):
            raise PayloadError("bad_journey")
        if err is not None and (type(err) is not str or not JOURNEY_NAME_RE.match(err) or _DIGIT_RUN_RE.search(err)):
            raise PayloadError("bad_journey")
        steps, services = s.get("steps", []), s.get("services", [])
        if type(steps) is not list or len(steps) > MAX_JOURNEY_STEPS or type(services) is not list \
                or len(services) > MAX_JOURNEY_SERVICES:
            raise PayloadError("bad_journey")
        for st in steps:
            if type(st) is not list or len(st) != 2 or type(st[0]) is not str or not JOURNEY_NAME_RE.match(st[0]) \
                    or not _seconds(st[1]):
                raise PayloadError("bad_journey")
        for sv in services:
            if type(sv) is not list or len(sv) not in (3, 4) or not journey_service_ok(sv[0]) \
                    or sv[1] not in _OUTCOME_SET or not _seconds(sv[2]):
                raise PayloadError("bad_journey")
            if len(sv) == 4 and (type(sv[3]) is not list or len(sv[3]) > MAX_JOURNEY_SERVICE_SCREENS
                                 or not all(journey_name_ok(x) for x in sv[3])):
                raise PayloadError("bad_journey")
        ratings = s.get("ratings", [])
        if type(ratings) is not list or len(ratings) > MAX_JOURNEY_RATINGS:
            raise PayloadError("bad_journey")
        for rt in ratings:
            if type(rt) is not list or len(rt) != 3 or not journey_service_ok(rt[0]) or type(rt[1]) is not int \
                    or not 1 <= rt[1] <= 5 or type(rt[2]) is not list or len(rt[2]) > MAX_JOURNEY_RATING_TAGS \
                    or not all(journey_name_ok(t) for t in rt[2]):
                raise PayloadError("bad_journey")
