"""Maintenance mode on the real window: five taps open only the staff PIN pad; from there a technician places their
own card (listed for this kiosk on the platform) and types their PIN; a citizen's card is refused. In maintenance:
each device's status, self-tests at the three levels (internal; external: the technician's card read, a test slip
with its QR code out of the printer simulator; interactive: the questions answered on screen, one "no"), their
results on screen and in the audit journal (card masked), then leave — the kiosk serves citizens again. One kiosk
process for all of it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from drivers.health import TEST_QR_TEXT
from drivers.sim.control import send_command
from tests.qr_reading import read_qr

pytestmark = pytest.mark.e2e

TECHNICIAN = ("chen", "520302199002144027")   # synthetic; listed as this kiosk's technician below
CITIZEN = ("zhang", "340302195803172018")
PIN = "135790"


#: the interactive level's questions as the screen asks them (kiosk/locales/zh_CN/maintenance.yaml)
QUESTIONS = {"slip_readable": "测试小票上的文字清晰可读吗", "qr_scans": "能扫出 KIOSK-SELF-TEST 吗",
             "page_readable": "测试页打印清晰完整吗"}


def self_test_entries(audit: Path, level: str, event: str = "maintenance_self_test") -> list[dict]:
    """Self-test runs at ``level`` in the audit journal: the maintenance step (with the technician's card, masked)
    or, with ``event="self_test"``, the run's own per-device entry."""
    lines = audit.read_text("utf-8").splitlines() if audit.exists() else []
    return [e for e in map(json.loads, filter(None, lines)) if e.get("event") == event and e.get("level") == level]


def passed(ui, kind: str) -> bool:
    """The maintenance screen's self-test result line for ``kind`` says it passed."""
    text = ui.find(f"maintenance_result_{kind}")["text"]
    return "通过" in text and "未通过" not in text


def present_card_when_asked(ui, wait_for, card: str) -> None:
    """The technician's card, read at login, is still on the reader but halted (a GA 467 reader sees a read card
    again only once it was taken off): when the screen asks for it, take it off and put it back."""
    ui.wait_text("请把技术人员证件放到读卡器上", wait_for, timeout=30)
    send_command(card, "remove_card")
    send_command(card, "place_card", identity=TECHNICIAN[0])


def external_and_interactive_self_tests(ui, wait_for, audit: Path) -> None:
    """From the maintenance home, the technician's card put back when each run asks for it: the external level
    reads it and prints a test slip with a QR code; the interactive level does the same and asks on screen —
    the technician says the QR code does not scan, everything else is fine — so the printer fails with that reason.
    Both runs reach the audit journal with the card masked."""
    sims = ui.simulators(wait_for)
    control, card = sims["receipt_printer"]["control"], sims["idcard"]["control"]
    printed = len(send_command(control, "receipts")["receipts"])

    ui.tap("maintenance_test_external", wait_for)
    present_card_when_asked(ui, wait_for, card)
    wait_for(lambda: ui.find("maintenance_result_receipt_printer")["found"], timeout=60,
             what="the external self-test's results")
    slip = send_command(control, "receipts")["receipts"][printed:]
    assert len(slip) == 1, slip
    assert slip[0]["qr"] == [TEST_QR_TEXT] and read_qr(slip[0]["png"]) == TEST_QR_TEXT
    assert "Printer self-test" in slip[0]["text"]
    assert passed(ui, "receipt_printer") and passed(ui, "idcard"), "slip printed, the technician's card read"
    [external] = wait_for(lambda: self_test_entries(audit, "external"), what="the external run audited")
    assert external["card"] == "5203**********4027" and "receipt_printer" not in external["failed"]
    ui.screenshot("73-maintenance-external-self-test")
    ui.tap("maintenance_back", wait_for)

    ui.tap("maintenance_test_interactive", wait_for)
    present_card_when_asked(ui, wait_for, card)
    answered: list[str] = []

    def next_question() -> str | None:
        if ui.find("maintenance_result_receipt_printer")["found"]:
            return "done"
        heading = ui.find("maintenance_heading").get("text", "")
        asked = next((q for q, text in QUESTIONS.items() if text in heading and q not in answered), None)
        return asked if asked and ui.find("maintenance_answer_no")["found"] else None

    while (question := wait_for(next_question, timeout=60, what=f"a question after {answered}")) != "done":
        if question == "qr_scans":
            ui.screenshot("74-maintenance-question")
        ui.tap("maintenance_answer_no" if question == "qr_scans" else "maintenance_answer_yes", wait_for)
        answered.append(question)
    # the devices in the profile's order: the licence printer's page (when its test page printed), then the slip
    assert [q for q in answered if q != "page_readable"] == ["slip_readable", "qr_scans"], answered
    assert len(send_command(control, "receipts")["receipts"]) == printed + 2, "the interactive level prints too"
    result = ui.find("maintenance_result_receipt_printer")["text"]
    assert "未通过" in result and "technician_refused" in result, result
    assert passed(ui, "idcard")
    [interactive] = wait_for(lambda: self_test_entries(audit, "interactive"), what="the interactive run audited")
    assert interactive["ok"] is False and interactive["failed"]["receipt_printer"] == "technician_refused"
    assert interactive["card"] == "5203**********4027"
    [run] = self_test_entries(audit, "interactive", event="self_test")
    assert run["origin"] == "maintenance"
    assert run["devices"]["receipt_printer"] == {"ok": False, "reason": "technician_refused", "level": "interactive"}
    assert TECHNICIAN[1] not in audit.read_text("utf-8"), "the technician's card number never in clear"
    ui.screenshot("75-maintenance-interactive-self-test")
    ui.tap("maintenance_back", wait_for)

    # the technician goes back at the first question: it and the rest are "no" at once — the run ends now with the
    # devices not confirmed, instead of waiting minutes for answers nobody will give
    ui.tap("maintenance_test_interactive", wait_for)
    present_card_when_asked(ui, wait_for, card)
    wait_for(lambda: ui.find("maintenance_answer_no")["found"], timeout=60, what="the first question")
    ui.tap("maintenance_back", wait_for)
    wait_for(lambda: ui.find("maintenance_result_receipt_printer")["found"], timeout=30,
             what="the results at once (a question waits 300 s for an answer)")
    assert "technician_refused" in ui.find("maintenance_result_receipt_printer")["text"]
    assert not ui.find("maintenance_answer_no")["found"]
    ui.tap("maintenance_back", wait_for)


def corner_taps(ui, times: int = 5) -> None:
    """The staff gesture: quick taps in the top-left corner of the window (real X clicks)."""
    import os

    window = ui.state()["window"]
    subprocess.run(["xdotool", "mousemove", str(window["left"] + 20), str(window["top"] + 20),
                    "click", "--repeat", str(times), "--delay", "150", "1"],
                   env={**os.environ, "DISPLAY": ui.display}, check=True, timeout=10)


def test_technician_card_and_pin_open_maintenance_and_a_citizen_card_is_refused(start_kiosk, list_technician,
                                                                                 wait_for, tmp_path):
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
    # each device's state, paper and counters in words, the state with its code (what operators see)
    reader = ui.find("maintenance_device_idcard")["text"]
    assert "在线 · online" in reader and "读卡 " in reader and "cards_read" not in reader, reader
    assert "纸张：充足 · full" in ui.find("maintenance_device_receipt_printer")["text"]
    ui.screenshot("71-maintenance-home")

    # a self-test from the screen, then leave: citizens are served again
    ui.tap("maintenance_test_internal", wait_for)
    wait_for(lambda: ui.find("maintenance_result_receipt_printer")["found"], timeout=30, what="self-test results")
    assert "通过" in ui.find("maintenance_result_receipt_printer")["text"]
    ui.screenshot("72-maintenance-self-test")
    ui.tap("maintenance_back", wait_for)

    external_and_interactive_self_tests(ui, wait_for, tmp_path / "kiosk-data" / "audit.jsonl")

    ui.tap("maintenance_exit", wait_for)
    ui.wait_screen("attract", wait_for, timeout=20)
    wait_for(lambda: not ui.state()["maintenance"], what="back in service")
    send_command(card, "remove_card")
