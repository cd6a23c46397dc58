"""Alert rules: from a kiosk's stored latest state to the set of alerts that should be open now.

One pure function (:func:`desired_alerts`) is evaluated after every ingest flush for the kiosks whose state moved,
and by the sweeper for time-based conditions; :func:`diff` turns desired vs. open into opens, clears and refreshes.
An alert is keyed by (kiosk, rule, device): while its condition holds it stays one alert (repeats only raise its
``hits``); when the condition is gone it clears by itself; operators acknowledge it (acknowledging does not clear it).

Rules
  kiosk_offline   critical  not online (death via Will, clean shutdown, or heartbeats missed) for ≥ ``offline_after_s``
  paper_out       critical  a device's paper supply is out
  paper_near_end  warning   a device's paper supply is near its end
  device_fault    critical  a device is in fault (major when offline/absent)
  disk_low        warning   the kiosk's data disk is below ``disk_low_pct`` % or ``disk_low_mb`` MB free
  seq_gap         warning   messages were lost (sequence gap or data from an unknown session); clears at the rebirth
  audit_chain_broken critical the kiosk's audit chain head went backwards: a lower seq than one already reported
                  (tail deleted) or the same seq with another hash (chain rewritten) or a lower epoch (chain
                  recreated), without a declared restart (a higher epoch, which the kiosk alarms itself as
                  ``audit_chain_break``); stays open, online or not, until such a declared restart. Limits: heads are
                  compared as reported (on every audit entry and heartbeat); a tail deleted and then overwritten by
                  more entries than were removed before the next report is not seen here — ``kiosk audit-verify``
                  on the kiosk's files is the full check.
  app_alarm       (the event's) an application alarm from the kiosk (device ``app``): one alert per kiosk and alarm
                  code (the code is the alert's ``device``, so ``open_key`` is ``kiosk|app_alarm|code``), with the
                  severity and text of the newest event. Opened by an active event — a live one, or one sent from the
                  outbox (``historical``) at most ``app_alarm_backlog_s`` after it happened (the kiosk queues its
                  startup alarms before its first connection); older backlog and replays go to the event log only.
                  Cleared by a newer inactive event of the same code from the same kiosk (``storage_full``). One-shot
                  codes (every code but :data:`APP_ALARM_CONDITIONS`: ``app_exception``, ``crash_loop``, …) have no
                  inactive event: an operator's acknowledgement closes them; a condition's acknowledgement only
                  acknowledges. The state per (kiosk, code) is the table ``app_alarms`` (newest ``mid`` wins).
While a kiosk is offline its device alerts are left as they are (its metrics are stale: nothing opens or clears);
its app alarms stay as they are too (they do not depend on it being online).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fleet.protocol import STATE_RANK

RULES = {
    "kiosk_offline": "Kiosk offline",
    "paper_out": "Paper out",
    "paper_near_end": "Paper near end",
    "device_fault": "Device fault",
    "disk_low": "Disk space low",
    "seq_gap": "Messages lost (sequence gap)",
    "audit_chain_broken": "Audit chain broken (tail deleted or rewritten)",
    "app_alarm": "Application alarm",
}
DEVICE_RULES = ("paper_out", "paper_near_end", "device_fault")

#: the device name application alarms come with (``kiosk/fleet_link.py`` ``alarm()``)
APP_DEVICE = "app"
APP_RULE = "app_alarm"
#: application alarm codes the kiosk reports (the alert's ``device``), with labels; others open alerts all the same
APP_ALARMS = {
    "app_exception": "Unexpected exception in the kiosk application",
    "crash_loop": "Repeated crashes: the kiosk took itself out of service",
    "storage_full": "Data disk nearly full: new transactions refused",
    "kiosk_rate_limited": "Platform refused sessions: too many distinct citizens per hour",
    "outbox_key_missing": "Outbox key missing: queued submissions set aside",
    "audit_chain_break": "Audit chain restarted by the kiosk (declared break)",
    "audit_torn_tail": "Audit journal had a torn tail (set aside)",
    "assistance_requested": "A citizen at the kiosk asked for a member of staff",
}
#: a citizen waiting for a person (kiosk/assistance.py): the dashboard shows it on every page with a sound until an
#: operator acknowledges it, and the acknowledgement goes back to the kiosk (command ``assistance_acknowledged``)
ASSISTANCE_CODE = "assistance_requested"
#: conditions the kiosk raises and clears itself (active=true, then active=false): an acknowledgement leaves their
#: alert open. Every other code is one-shot: its alert stays open until an operator acknowledges it, which closes it.
APP_ALARM_CONDITIONS = frozenset({"storage_full"})


def closes_on_ack(rule: str, device: str | None) -> bool:
    """Whether acknowledging an open alert of this rule/device closes it (one-shot application alarms)."""
    return rule == APP_RULE and (device or "") not in APP_ALARM_CONDITIONS


@dataclass(frozen=True)
class RuleConfig:
    offline_after_s: float = 60.0
    disk_low_pct: float = 10.0
    disk_low_mb: int = 500
    #: an application alarm sent from the outbox (``historical``) still opens an alert when it happened at most this
    #: long before the controller received it (kiosk clock): startup alarms, a short broker outage
    app_alarm_backlog_s: float = 600.0


def open_key(kiosk_id: str, rule: str, device: str) -> str:
    return f"{kiosk_id}|{rule}|{device}"


def audit_head_regression(prev: Mapping[str, Any], head: Mapping[str, Any]) -> str | None:
    """Why ``head`` (a newer message's audit chain head) cannot follow ``prev`` (the stored one), or None."""
    if head["epoch"] < prev["epoch"]:
        return f"audit chain epoch went back from {prev['epoch']} to {head['epoch']} (chain recreated)"
    if head["epoch"] > prev["epoch"]:
        return None  # a declared restart
    if head["seq"] < prev["seq"]:
        return f"audit head went back from seq {prev['seq']} to {head['seq']} (tail deleted)"
    if head["seq"] == prev["seq"] and head["hash"] != prev["hash"]:
        return f"audit entry {head['seq']} has another hash (chain rewritten)"
    return None


def desired_alerts(kiosk: Any, devices: Iterable[Any], open_alerts: Mapping[tuple[str, str], Any], now: int,
                   cfg: RuleConfig, audit_break: str | None = None, app_alarms: Iterable[Any] = ()
                   ) -> dict[tuple[str, str], tuple[str, str]]:
    """``{(rule, device): (severity, detail)}`` that should be open for this kiosk now. ``app_alarms``: the
    kiosk's active application alarms (rows of ``app_alarms``: ``code``, ``severity``, ``text``)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    if not kiosk.online:
        since = kiosk.offline_since
        if since is not None and now - since >= cfg.offline_after_s * 1000:
            out[("kiosk_offline", "")] = ("critical", kiosk.offline_reason or "")
        for (rule, device), row in open_alerts.items():
            if rule in DEVICE_RULES:
                out[(rule, device)] = (row.severity, row.detail)
    else:
        for d in devices:
            if d.paper == "out":
                out[("paper_out", d.kind)] = ("critical", d.error_code or "paper_out")
            elif d.paper == "near-end":
                out[("paper_near_end", d.kind)] = ("warning", d.error_code or "paper_near_end")
            if d.state in ("fault", "offline", "absent") and d.paper != "out":
                severity = "critical" if d.state == "fault" else "major"
                out[("device_fault", d.kind)] = (severity, f"{d.state}: {d.error_code or ''}".rstrip(": "))
    host = json.loads(kiosk.host or "{}") if isinstance(kiosk.host, str) else (kiosk.host or {})
    pct, mb = host.get("disk_free_pct"), host.get("disk_free_mb")
    low = []
    if isinstance(pct, (int, float)) and pct < cfg.disk_low_pct:
        low.append(f"{pct:.1f}% free")
    if isinstance(mb, (int, float)) and mb < cfg.disk_low_mb:
        low.append(f"{int(mb)} MB free")
    if low:
        out[("disk_low", "")] = ("warning", ", ".join(low))
    if kiosk.gap_open:
        out[("seq_gap", "")] = ("warning", kiosk.gap_detail or "")
    if audit_break:
        out[("audit_chain_broken", "")] = ("critical", audit_break)
    for a in app_alarms:
        out[(APP_RULE, a.code)] = (a.severity, a.text or "")
    return out


def kiosk_state(kiosk: Any, devices: Iterable[Any]) -> str:
    if not kiosk.online:
        return "offline"
    worst = "ok"
    for d in devices:
        if STATE_RANK.get(d.state, 4) > STATE_RANK[worst]:
            worst = d.state
    return worst


def diff(kiosk_id: str, desired: Mapping[tuple[str, str], tuple[str, str]],
         open_alerts: Mapping[tuple[str, str], Any], hits: set[tuple[str, str]] | None = None
         ) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """(to open, open_keys to clear, to refresh)."""
    opened, cleared, refreshed = [], [], []
    hits = hits or set()
    for (rule, device), (severity, detail) in desired.items():
        key = open_key(kiosk_id, rule, device)
        row = open_alerts.get((rule, device))
        if row is None:
            # an application alarm counts the reports of it: opened by another evaluation (the sweeper's, between the
            # ingest storing the alarm and evaluating the flush that holds its report), it starts at 0 and that
            # flush counts the report — it was counted twice
            counted = 1 if (rule, device) in hits or rule != APP_RULE else 0
            opened.append({"rule": rule, "device": device, "severity": severity, "detail": detail, "open_key": key,
                           "hits": counted})
        elif row.severity != severity or row.detail != detail or (rule, device) in hits:
            refreshed.append({"open_key": key, "severity": severity, "detail": detail,
                              "hits": 1 if (rule, device) in hits else 0})
    for (rule, device), row in open_alerts.items():
        if (rule, device) not in desired:
            cleared.append(row.open_key or open_key(kiosk_id, rule, device))
    return opened, cleared, refreshed
