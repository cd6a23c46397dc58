"""The kiosk core identifying a citizen by social-security card through real pcscd + vpcd and our virtual card:
the same events as the ID reader, the PIN asked for and passed on, and (by profile) the session ended when the
card is taken out."""
from __future__ import annotations

import queue
from typing import Any

import pytest

from device_profiles.loader import load_profile
from kiosk.core import KioskCore


@pytest.fixture
def make_core(make_profile, card):
    cores: list[KioskCore] = []

    def make(**session: Any) -> tuple[KioskCore, "queue.Queue[tuple[str, dict]]"]:
        devices = {"smartcard": {"driver": "pcsc", "settings": {"reader": card.reader_name}}}
        overrides = {"devices": devices, **{f"session__{k}": v for k, v in session.items()}}
        core = KioskCore(load_profile(make_profile(**overrides), environ={}))
        events: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        core.subscribe(lambda name, payload: events.put((name, payload)))
        core.start()
        cores.append(core)
        return core, events

    yield make
    for core in cores:
        core.stop()


def next_event(events: "queue.Queue[tuple[str, dict]]", *names: str, timeout: float = 10) -> tuple[str, dict]:
    while True:
        try:
            name, payload = events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"none of {names} within {timeout} s")
        if name in names:
            return name, payload


def test_social_security_card_with_pin_identifies_the_citizen(make_core, card):
    core, events = make_core()
    card.must("insert_card", card="social_security", identity="li")
    name, payload = next_event(events, "card_error", "identified")
    assert name == "card_error" and payload["error"].code == "pin_required"
    with pytest.raises(ValueError):
        core.submit_card_pin("12")            # malformed: refused at once, nothing sent to the card
    core.submit_card_pin("000000")
    name, payload = next_event(events, "card_error", "identified")
    assert name == "card_error" and payload["error"].code == "pin_incorrect"
    core.submit_card_pin("123456")
    name, payload = next_event(events, "identified")
    assert payload["id_masked"] == "3501**********102X"
    assert core.session.citizen.source == "smartcard"
    core.flush_audit()
    audit = core.audit.path.read_text("utf-8")
    assert "123456" not in audit and "35010219490822102X" not in audit


def test_card_removed_ends_the_session_when_the_profile_says_so(make_core, card):
    core, events = make_core(on_card_removed="end")
    card.must("insert_card", card="social_security", identity="zhang")
    next_event(events, "identified")
    card.must("remove_card")
    name, payload = next_event(events, "ended")
    assert payload["reason"] == "card_removed"
    assert core.session.citizen is None


def test_bank_card_never_identifies(make_core, card):
    core, events = make_core()
    card.must("insert_card", card="bank")
    card.must("remove_card")
    with pytest.raises(queue.Empty):
        while True:
            name, _ = events.get(timeout=2)
            assert name != "identified"
    assert core.session.citizen is None
