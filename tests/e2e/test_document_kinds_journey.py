"""The other card kinds on the real window, one kiosk process for all three: an HMT residence permit
(type flag 'J'), a foreign permanent resident ID card of the 2004–2017 edition ('I', 15 characters) and of the 2023
edition ('Y', 18 characters starting with 9, GB 11643 check character). Each card: read, the platform session opens
(the registry knows the holder), the menu greets with the masked name, a queue ticket prints with nothing of the
holder in clear; finish, take the card away, place the next."""
from __future__ import annotations

import shutil
import time

import pytest

from drivers.sim.control import send_command

pytestmark = pytest.mark.e2e

#: identity key → (full name, number, masked name as greeted)
CARDS = {
    "huang_hk": ("黄嘉欣", "810000199205082049", "黄*欣"),
    "smith_foreign": ("史密斯", "USA348005200017", "史*斯"),
    "mueller_2023": ("穆勒安娜", "934276198609120122", "穆**娜"),
}


def tap(ui, wait_for, aid: str) -> None:
    wait_for(lambda: ui.find(aid)["found"] and not ui.find(aid).get("disabled"), what=f"{aid} on screen")
    ui.tap(aid, wait_for)


def receipts(control: str) -> list[dict]:
    return send_command(control, "receipts")["receipts"]


def test_hmt_permit_and_both_foreign_card_editions(start_kiosk, platform_server, wait_for):
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = wait_for(lambda: (lambda s: s if {"idcard", "receipt_printer"} <= set(s) else None)(
        ui.simulators(wait_for)), what="the simulators")
    card_control, printer_control = sims["idcard"]["control"], sims["receipt_printer"]["control"]

    for key, (name, number, masked) in CARDS.items():
        send_command(card_control, "place_card", identity=key)
        ui.wait_screen("menu", wait_for, timeout=20)
        ui.wait_text(f"您好，{masked}", wait_for)
        shown = ui.texts()
        assert not any(name in t or number in t for t in shown), (key, "only masked data on screen")
        ui.screenshot(f"60-menu-{key}")

        # the platform session opened for this holder: the registry knows the number
        (known,) = platform_server.query("SELECT count(*) FROM registered_citizens WHERE id_number = ?", number)
        assert known[0] == 1, key

        # a queue ticket at the city hall: printed, with nothing of the holder in clear
        tap(ui, wait_for, "tile_appointment")
        tap(ui, wait_for, "booking_ticket")
        tap(ui, wait_for, "hall_city-hall")
        ui.wait_text("请选择要取号的事项", wait_for)
        printed_before = len(receipts(printer_control))
        tap(ui, wait_for, "service_driving-licence-renewal")
        ticket_no = ui.wait_text("您的号码：", wait_for).split("：", 1)[1]
        ticket = wait_for(lambda: receipts(printer_control)[printed_before:] or None, what="the queue ticket")[-1]
        assert "排队取号凭条" in ticket["text"] and ticket_no in ticket["text"].split("\n")
        assert name not in ticket["text"] and number not in ticket["text"], key
        assert number[4:-4] not in ticket["text"], key
        shutil.copy(ticket["png"], ui.shots / f"receipt-queue-ticket-{key}.png")
        tap(ui, wait_for, "booking_done")
        ui.wait_screen("rating", wait_for)
        tap(ui, wait_for, "rating_skip")
        ui.wait_screen("menu", wait_for)

        # done: finish, take the card away (the reader sees it gone), next citizen
        tap(ui, wait_for, "finish")
        wait_for(lambda: ui.state()["screen"] in ("attract", "rating"), what="the session ending")
        if ui.state()["screen"] == "rating":
            tap(ui, wait_for, "rating_skip")
        ui.wait_screen("attract", wait_for, timeout=20)
        send_command(card_control, "remove_card")
        time.sleep(1.0)
