"""Maintenance mode opened by a technician's social-security card (real pcscd + vpcd and the virtual card) and PIN,
checked by the real platform: the card read goes to the maintenance flow, never to a citizen session. The ID-card
version: tests/kiosk/test_maintenance.py."""
from __future__ import annotations

import queue
from typing import Any

import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore

TECHNICIAN = ("zhang", "340302195803172018")   # the virtual social-security card of this synthetic identity
PIN = "246802"


def test_a_technicians_social_security_card_and_pin_open_maintenance(make_profile: Any, card: Any,
                                                                      list_technician: Any) -> None:
    devices = {"smartcard": {"driver": "pcsc", "settings": {"reader": card.reader_name}}}
    core = KioskCore(load_profile(make_profile(devices=devices), environ={}))
    states: "queue.Queue[str]" = queue.Queue()
    core.subscribe(lambda name, payload: states.put(payload["state"]) if name == "maintenance" else None)
    core.start()
    try:
        list_technician(core.kiosk_id, TECHNICIAN[1], PIN)
        core.maintenance.begin()
        card.must("insert_card", card="social_security", identity=TECHNICIAN[0])
        seen = []
        while "pin" not in seen:
            try:
                seen.append(states.get(timeout=15))
            except queue.Empty:
                pytest.fail(f"the technician's card was not accepted (states: {seen})")
        assert core.session.citizen is None and core.maintenance.card_masked == "3403**********2018"
        done: "queue.Queue[Any]" = queue.Queue()
        core.maintenance.submit_pin(PIN, on_result=done.put, on_error=done.put)
        assert done.get(timeout=15) is True and core.maintenance.is_open
        assert core.availability.maintenance == "technician"
        core.maintenance.exit()
        card.must("remove_card")
        core.flush_audit()
        audit = core.audit.path.read_text("utf-8")
        assert '"maintenance_opened"' in audit and TECHNICIAN[1] not in audit and PIN not in audit
    finally:
        core.stop()
