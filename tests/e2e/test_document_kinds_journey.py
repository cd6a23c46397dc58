"""The other card kinds on the real window, one kiosk process for all three: an HMT residence permit
(type flag 'J'), a foreign permanent resident ID card of the 2004–2017 edition ('I', 15 characters) and of the 2023
edition ('Y', 18 characters starting with 9, GB 11643 check character). Each card: read, the platform session opens
(the registry knows the holder), the menu greets with the masked name, a queue ticket prints with nothing of the
holder in clear; finish, take the card away, place the next."""
from __future__ import annotations

import shutil

import pytest

from drivers.sim.control import send_command

pytestmark = pytest.mark.e2e

#: identity key → (full name, number, masked name as greeted)
CARDS = {
    "huang_hk": ("黄嘉欣", "810000199205082049", "黄*欣"),
    "smith_foreign": ("史密斯", "USA348005200017", "史*斯"),
    "mueller_2023": ("穆勒安娜", "934276198609120122", "穆**娜"),
}


#: empty polls after which the kiosk's card watcher calls the card gone (``CardWatcher(removal_polls=3)``)
REMOVAL_POLLS = 3


def receipts(control: str) -> list[dict]:
    return send_command(control, "receipts")["receipts"]


def take_card_away(control: str, wait_for) -> None:
    """Remove the card and wait until the kiosk has seen the reader empty: more polls (FIND CARD, counted by the
    simulator) after the removal than its card watcher needs to call the card gone, so the next card placed is a
    new card."""
    def finds() -> int:
        return send_command(control, "status")["counters"]["finds"]

    send_command(control, "remove_card")
    after = finds()
    wait_for(lambda: finds() - after > REMOVAL_POLLS, timeout=15, what="the kiosk polled the empty reader")


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
        ui.tap("tile_appointment", wait_for)
        # the booking screen first asks the platform for its halls, and ignores taps while it does: wait for them
        wait_for(lambda: any(b["aid"].startswith(("service_", "hall_")) for b in ui.ask("buttons")["buttons"]),
                 timeout=20, what="the booking screen's halls or services")
        ui.tap("booking_ticket", wait_for)
        ui.tap("hall_city-hall", wait_for)
        ui.wait_text("请选择要取号的事项", wait_for)
        printed_before = len(receipts(printer_control))
        ui.tap("service_driving-licence-renewal", wait_for)
        ticket_no = ui.wait_text("您的号码：", wait_for).split("：", 1)[1]
        ticket = wait_for(lambda: receipts(printer_control)[printed_before:] or None, what="the queue ticket")[-1]
        assert "排队取号凭条" in ticket["text"] and ticket_no in ticket["text"].split("\n")
        assert name not in ticket["text"] and number not in ticket["text"], key
        assert number[4:-4] not in ticket["text"], key
        shutil.copy(ticket["png"], ui.shots / f"receipt-queue-ticket-{key}.png")
        ui.tap("booking_done", wait_for)
        ui.wait_screen("rating", wait_for)
        ui.tap("rating_skip", wait_for)
        ui.wait_screen("menu", wait_for)

        # done: finish, take the card away (the reader sees it gone), next citizen
        ui.tap("finish", wait_for)
        wait_for(lambda: ui.state()["screen"] in ("attract", "rating"), what="the session ending")
        if ui.state()["screen"] == "rating":
            ui.tap("rating_skip", wait_for)
        ui.wait_screen("attract", wait_for, timeout=20)
        take_card_away(card_control, wait_for)
