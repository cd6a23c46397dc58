"""The audit chain head reaches the controller with the kiosk's telemetry; deleting the journal's tail (the kiosk
restarted on a shortened journal) raises ``audit_chain_broken`` — real kiosk core, broker and controller."""
from __future__ import annotations

import sqlite3
from typing import Any

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


def stored_head(db: str, kiosk_id: str) -> dict[str, Any] | None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT seq, hash, epoch, broken FROM audit_heads WHERE kiosk_id = ?", (kiosk_id,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return dict(zip(("seq", "hash", "epoch", "broken"), row)) if row else None


def test_deleting_the_audit_tail_raises_audit_chain_broken(make_profile, broker, keys, start_controller, wait_for):
    controller = start_controller()
    profile = load_profile(make_profile(fleet={"broker_url": broker.url, "verify_key": str(keys[1]),
                                               "heartbeat_s": 2}), environ={})
    kiosk_id = profile.kiosk.id
    core = KioskCore(profile)
    core.start()
    try:
        for i in range(30):
            core._audit("test_step", n=i)
        core.flush_audit()
        core.fleet.changed()
        head = core.audit.head()
        seen = wait_for(lambda: (lambda h: h if h and h["seq"] >= head["seq"] else None)(
            stored_head(controller.db, kiosk_id)), timeout=30, what="the audit head at the controller")
        assert not seen["broken"]
        assert not [a for a in controller.alerts() if a.get("rule") == "audit_chain_broken"]
    finally:
        core.stop()
    # someone deletes the last 25 entries while the kiosk is off
    path = core.audit.path
    kept = path.read_bytes().splitlines(keepends=True)[:-25]
    path.write_bytes(b"".join(kept))
    again = KioskCore(profile)
    again.start()
    try:
        assert again.audit.head()["seq"] < head["seq"]
        alert = wait_for(lambda: [a for a in controller.alerts() if a.get("kiosk_id") == kiosk_id
                                  and a.get("rule") == "audit_chain_broken"], timeout=30,
                         what="an audit_chain_broken alert")[0]
        assert alert["severity"] == "critical" and "tail deleted" in alert["detail"]
        assert stored_head(controller.db, kiosk_id)["broken"]
    finally:
        again.stop()
