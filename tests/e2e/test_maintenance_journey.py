"""Maintenance mode on the real window: five taps open only the staff PIN pad; from there a technician places their
own card (listed for this kiosk on the platform) and types their PIN; a citizen's card is refused. In maintenance:
each device's status, a self-test, then leave — the kiosk serves citizens again. One kiosk process for all of it."""
from __future__ import annotations

import subprocess

import pytest

from drivers.sim.control import send_command

pytestmark = pytest.mark.e2e

TECHNICIAN = ("chen", "520302199002144027")   # synthetic; listed as this kiosk's technician below
CITIZEN = ("zhang", "340302195803172018")
PIN = "135790"


def corner_taps(ui, times: int = 5) -> None:
    """The staff gesture: quick taps in the top-left corner of the window (real X clicks)."""
    import os

    window = ui.state()["window"]
    subprocess.run(["xdotool", "mousemove", str(window["left"] + 20), str(window["top"] + 20),
                    "click", "--repeat", str(times), "--delay", "150", "1"],
                   env={**os.environ, "DISPLAY": ui.display}, check=True, timeout=10)


def test_technician_card_and_pin_open_maintenance_and_a_citizen_card_is_refused(start_kiosk, list_technician,
                                                                                 wait_for):
    list_technician("KSK-340302-0001", TECHNICIAN[1], PIN)   # service-platform technician add, in-process
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    card = ui.simulators(wait_for)["idcard"]["control"]

    # five taps: the staff PIN pad, nothing more; its button arms the technician's card
    for _ in range(3):   # a click lost while the first frames settle: staff tap again
        corner_taps(ui)
        try:
            ui.wait_screen("staff", wait_for, timeout=5)
            break
        except pytest.fail.Exception:
            continue
    ui.wait_screen("staff", wait_for)
    assert ui.find("staff_pin_ok")["found"] and not ui.state()["maintenance"]
    ui.screenshot("69-staff-pin-pad")
    ui.tap("staff_maintenance", wait_for)
    ui.wait_screen("maintenance", wait_for)
    ui.wait_text("技术人员本人的身份证或社保卡", wait_for)

    # a citizen's card: refused, no citizen session, nothing of them on screen
    send_command(card, "place_card", identity=CITIZEN[0])
    ui.wait_text("未登记为本终端的技术人员", wait_for, timeout=20)
    assert ui.state()["screen"] == "maintenance" and not ui.state()["maintenance"]
    assert not any("张" in t or CITIZEN[1] in t for t in ui.texts())
    ui.screenshot("70-maintenance-card-refused")
    send_command(card, "remove_card")
    # the reader sees the card gone (the watcher's three finds without a card) before the next one is placed
    finds = send_command(card, "status")["counters"]["finds"]
    wait_for(lambda: send_command(card, "status")["counters"]["finds"] >= finds + 4, timeout=20,
             what="the reader polling the empty slot")

    # the technician's card, then the PIN: maintenance opens; citizens would see "under maintenance"
    ui.tap("maintenance_back", wait_for)
    ui.wait_screen("staff", wait_for)
    ui.tap("staff_maintenance", wait_for)
    ui.wait_screen("maintenance", wait_for)
    send_command(card, "place_card", identity=TECHNICIAN[0])
    wait_for(lambda: ui.find("maintenance_key_1")["found"], timeout=20, what="the technician PIN pad")
    for digit in PIN:
        ui.tap(f"maintenance_key_{digit}", wait_for)
    ui.tap("maintenance_pin_ok", wait_for)
    ui.wait_text("维护中", wait_for, timeout=20)
    wait_for(lambda: ui.state()["maintenance"] == "technician", what="the kiosk out of service for maintenance")
    ui.wait_text("凭条打印机", wait_for)
    shown = "\n".join(ui.texts())
    assert "5203**********4027" in shown and TECHNICIAN[1] not in shown
    ui.screenshot("71-maintenance-home")

    # a self-test from the screen, then leave: citizens are served again
    ui.tap("maintenance_test_internal", wait_for)
    wait_for(lambda: ui.find("maintenance_result_receipt_printer")["found"], timeout=30, what="self-test results")
    assert "通过" in ui.find("maintenance_result_receipt_printer")["text"]
    ui.screenshot("72-maintenance-self-test")
    ui.tap("maintenance_back", wait_for)
    ui.tap("maintenance_exit", wait_for)
    ui.wait_screen("attract", wait_for, timeout=20)
    wait_for(lambda: not ui.state()["maintenance"], what="back in service")
    send_command(card, "remove_card")
