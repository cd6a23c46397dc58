"""The social-security card (社保卡) on the real window: a PIN-protected card goes into the PC/SC reader (the real
pcscd with vsmartcard's vpcd, our virtual card process behind it, the real pcsc driver inside the kiosk) → the card
PIN pad opens (screens/pin_pad.py) → a wrong PIN typed with real X taps → "wrong PIN, 2 tries left" → the right PIN
→ the menu greets the masked name (never the full name, ID or card number on screen) with the holder confirmed
(card+pin: nothing locked) → the card taken out ends the session (``session.on_card_removed: end``) → attract.
The PINs never reach the audit journal, the kiosk's stderr or any file in its data folder; the pad is laid out
whole (keys never under its buttons). Screenshots of each step in test-output/<test>/.

pcscd is the one of tests/drivers/smartcard (one per machine): their fixtures and helpers are imported, not copied.
The card process is ours (as in tests/drivers/smartcard/test_smartcard_kiosk.py: the profile names its reader, not
``simulate: true`` — a card process the kiosk starts itself always dials vpcd's stock port 35963, while the tests'
pcscd puts vpcd on 29963), on vpcd's second slot ("Virtual PCD 00 01"), so a card the smart card tests' session card
process may still hold in the first slot never stands in the way."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import tests.drivers.smartcard.conftest as pcsc
from drivers.sim.control import send_command
from tests.drivers.smartcard.conftest import card, make_reader  # noqa: F401  (fixtures)
from tests.e2e.conftest import NEEDS_FACE, KioskUI

pytestmark = pytest.mark.e2e

#: the synthetic holder (drivers/idcard/sim_identities.yaml, drivers/smartcard/sim_cards.yaml) and what may show
HOLDER = "li"
FULL_NAME, MASKED_NAME = "李秀英", "李*英"
ID_NUMBER, CARD_NUMBER = "35010219490822102X", "F35010233"
#: this card's PIN (given to the virtual card) and a wrong one: digit runs long enough that no timestamp, port or MAC
#: in a log happens to hold them
PIN, WRONG_PIN = "739184", "50628413"
#: kiosk/locales/zh_CN.yaml: pin.title, pin.hint, common.cancel/confirm, error.card.pin_incorrect, menu.greeting
PIN_TITLE, PIN_HINT = "请输入社会保障卡密码", "请输入密码（4–12位数字）"
PIN_INCORRECT_2 = "密码错误，还可尝试 2 次"


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[pcsc.Pcscd]:
    """pcscd with the vpcd reader: the one tests/drivers/smartcard's session fixture started, when those tests ran
    earlier in this session (its vpcd port is already set in that module); otherwise that same fixture's code, for
    this module only — stopped after it, so smart card tests run later in the session start their own and know its
    port (a second copy of their session fixture would take a running pcscd for the stock one)."""
    pid = pcsc._running_pcscd_pid()
    if pid is not None and _parent_pid(pid) == os.getpid() and pcsc.VPCD_READER in (pcsc.listed_readers() or []):
        yield pcsc.Pcscd(None, None)
        return
    yield from pcsc.pcscd.__wrapped__(tmp_path_factory, pytestconfig)


@pytest.fixture(scope="module")
def _card_process(pcscd: pcsc.Pcscd) -> Iterator[pcsc.CardSlot]:
    """Our virtual card process on vpcd's second slot (what tests/drivers/smartcard's ``card`` fixture uses)."""
    proc = pcsc.start_card_process("--tcp", f"127.0.0.1:{pcsc.vpcd_port + 1}")
    try:
        slot = pcsc.CardSlot(proc)
        assert slot.reader_name == pcsc.VPCD_READER_2, slot.endpoints
        yield slot
    finally:
        proc.stop()


def type_pin(ui: KioskUI, digits: str, wait_for: Callable[..., Any], shot: str = "") -> None:
    """Tap the digits on the pad, each seen as one more dot (never the digit), then confirm (a screenshot ``shot``
    of the typed pad before)."""
    for n, digit in enumerate(digits, 1):
        ui.tap(f"pin_key_{digit}", wait_for)
        wait_for(lambda: ui.find("pin_dots").get("text") == "●" * n, what=f"{n} dot(s) after tapping {digit}")
    assert not [t for t in ui.texts() if digits in t], "the typed PIN shown on screen"
    if shot:
        ui.screenshot(shot)
    ui.tap("pin_ok", wait_for)


def _edges(f: dict[str, Any]) -> tuple[float, float]:
    """Top and bottom of a found widget on the X screen (y grows downwards)."""
    return f["y"] - f["height"] / 2, f["y"] + f["height"] / 2


def assert_pad_laid_out(ui: KioskUI) -> None:
    """Every key row above the cancel/confirm row (once, the last row of keys was drawn under those buttons), the
    whole pad in the window, and no text of the pad cut off."""
    window = ui.state()["window"]
    edges = [_edges(ui.find(aid)) for aid in ("pin_title", "pin_dots", "pin_key_1", "pin_key_0", "pin_ok")]
    top, bottom = min(e[0] for e in edges), max(e[1] for e in edges)
    assert window["top"] <= top and bottom <= window["top"] + window["height"], (top, bottom, window)
    buttons_top = min(_edges(ui.find(aid))[0] for aid in ("pin_ok", "pin_cancel"))
    for key in ("1", "DEL", "0"):
        assert _edges(ui.find(f"pin_key_{key}"))[1] <= buttons_top, f"pin_key_{key} reaches under the buttons"
    cut = [p for p in ui.ask("layout")["problems"] if p["aid"].startswith("pin_")]
    assert not cut, cut


def assert_no_personal_data(ui: KioskUI) -> None:
    shown = ui.texts()
    for secret in (FULL_NAME, ID_NUMBER, CARD_NUMBER, PIN, WRONG_PIN):
        leaked = [t for t in shown if secret in t]
        assert not leaked, f"{secret!r} on screen: {leaked}"


def test_social_security_card_pin_menu_and_removal(start_kiosk: Callable[..., KioskUI], card: pcsc.CardSlot,
                                                   tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                   wait_for: Callable[..., Any]) -> None:
    ui = start_kiosk(devices={"smartcard": {"driver": "pcsc", "required": True,
                                            "settings": {"reader": card.reader_name}}},
                     session__on_card_removed="end")
    ui.wait_screen("attract", wait_for, timeout=60)
    assert ui.state()["session"] == "idle"
    ui.screenshot("ss01-attract")

    # a card that wants its PIN: the pad opens over the attract screen, nothing typed, confirm not yet possible
    reply = card.must("insert_card", card="social_security", identity=HOLDER, pin=PIN)
    assert reply["pin_required"], reply
    wait_for(lambda: ui.find("pin_title").get("found"), timeout=20, what="the card PIN pad")
    assert ui.find("pin_title")["text"] == PIN_TITLE
    wait_for(lambda: ui.find("pin_dots").get("text") == PIN_HINT, what="the PIN hint")
    assert ui.find("pin_message")["text"] == "" or not ui.find("pin_message")["found"]
    assert ui.find("pin_ok")["text"] == "确认" and ui.find("pin_ok")["disabled"], "confirm waits for 4 digits"
    assert ui.find("pin_cancel")["text"] == "取消"
    assert ui.find("pin_key_DEL")["text"] == "退格"
    assert "PinPad" in ui.state()["overlays"]
    assert_pad_laid_out(ui)
    assert ui.state()["screen"] == "attract"
    ui.screenshot("ss02-pin-pad")

    # a wrong PIN: the pad says so, with the tries left (the card allows 3), and is empty again
    type_pin(ui, WRONG_PIN, wait_for)
    wait_for(lambda: ui.find("pin_message").get("text") == PIN_INCORRECT_2, timeout=20,
             what=f"{PIN_INCORRECT_2!r} on the pad")
    assert ui.find("pin_dots")["text"] == PIN_HINT, "the pad is empty after a wrong PIN"
    assert card.must("status")["card"]["pin_tries_left"] == 2
    assert ui.state()["screen"] == "attract"
    ui.screenshot("ss03-pin-incorrect")

    # backspace works (a digit too many, taken back), then the right PIN: the menu greets the masked name
    ui.tap("pin_key_0", wait_for)
    wait_for(lambda: ui.find("pin_dots").get("text") == "●", what="one dot")
    ui.tap("pin_key_DEL", wait_for)
    wait_for(lambda: ui.find("pin_dots").get("text") == PIN_HINT, what="the pad empty after backspace")
    type_pin(ui, PIN, wait_for, shot="ss04-pin-typed")
    ui.wait_screen("menu", wait_for, timeout=20)
    ui.wait_text(f"您好，{MASKED_NAME}", wait_for)
    wait_for(lambda: not ui.find("pin_title").get("found"), what="the PIN pad closed")
    assert card.must("status")["card"]["pin_tries_left"] == 3, "a right PIN resets the card's counter"
    assert ui.state()["session"] == "identified"
    # card+pin confirms the holder: no tile asks for a face check
    wait_for(lambda: not any(NEEDS_FACE in t for t in ui.texts()), what="no tile locked (card+pin)")
    assert_no_personal_data(ui)
    ui.screenshot("ss05-menu")

    # the card taken out ends the session (the profile says so): back to attract, nothing of the citizen left
    card.must("remove_card")
    ui.wait_screen("attract", wait_for, timeout=20)
    wait_for(lambda: ui.state()["session"] == "idle", what="the session ended")
    assert not any(MASKED_NAME in t for t in ui.texts()), "the name is gone with the session"
    assert_no_personal_data(ui)
    ui.screenshot("ss06-attract-after-removal")

    # elderly mode (larger keys and text): the pad still fits the window whole, the right PIN opens the menu, and the
    # card taken out ends that session too — the next citizen starts in normal mode
    ui.tap("elderly_mode", wait_for)
    wait_for(lambda: ui.state()["elderly"], what="elderly mode on")
    card.must("insert_card", card="social_security", identity=HOLDER, pin=PIN)
    wait_for(lambda: ui.find("pin_title").get("found"), timeout=20, what="the card PIN pad (elderly mode)")
    assert ui.find("pin_key_5")["height"] >= 96 * 1.5 - 1, "the keys grow in elderly mode"
    assert_pad_laid_out(ui)
    ui.screenshot("ss07-pin-pad-elderly")
    # the same on a portrait kiosk (one column)
    landscape = ui.state()["window"]
    ui.ask("resize", width=landscape["height"], height=landscape["width"])
    wait_for(lambda: ui.state()["window"]["height"] > ui.state()["window"]["width"], what="a portrait window")
    wait_for(lambda: _edges(ui.find("pin_ok"))[0] > _edges(ui.find("pin_dots"))[1], what="the pad in one column")
    assert_pad_laid_out(ui)
    ui.screenshot("ss08-pin-pad-elderly-portrait")
    ui.ask("resize", width=landscape["width"], height=landscape["height"])
    wait_for(lambda: ui.state()["window"]["width"] == landscape["width"], what="the landscape window again")
    type_pin(ui, PIN, wait_for)
    ui.wait_screen("menu", wait_for, timeout=20)
    ui.wait_text(f"您好，{MASKED_NAME}", wait_for)
    card.must("remove_card")
    ui.wait_screen("attract", wait_for, timeout=20)
    wait_for(lambda: ui.state()["session"] == "idle" and not ui.state()["elderly"], what="the session ended")

    # the journal says what happened, by code only; the PINs are nowhere in it nor in the kiosk's stderr
    audit = tmp_path / "kiosk-data" / "audit.jsonl"
    wait_for(lambda: audit.exists() and audit.read_text("utf-8").count("card_removed") >= 2, timeout=20,
             what="both session ends in the audit journal")
    ui.proc.stop(timeout=15)   # everything written and flushed
    journal = audit.read_text("utf-8")
    assert "pin_required" in journal and "pin_incorrect" in journal, "the card errors are journaled (by code)"
    err = capfd.readouterr().err
    assert re.search(r"(INFO|WARNING) (kiosk|drivers|screens)\.", err), "no kiosk log lines in the captured stderr"
    for where, text in (("audit journal", journal), ("kiosk stderr", err)):
        for secret in (PIN, WRONG_PIN, ID_NUMBER, CARD_NUMBER, FULL_NAME):
            assert secret not in text, f"{secret!r} in the {where}"
    for path in (p for p in (tmp_path / "kiosk-data").rglob("*") if p.is_file()):   # nor in any file it keeps
        data = path.read_bytes()
        assert PIN.encode() not in data and WRONG_PIN.encode() not in data, f"a PIN in {path}"



def test_card_pulled_at_the_pin_pad_closes_it(start_kiosk: Callable[..., KioskUI], card: pcsc.CardSlot,
                                              wait_for: Callable[..., Any]) -> None:
    """The citizen takes the card out instead of typing its PIN: the pad goes with it (else it stays over the
    attract screen, with no session and so no idle timeout, until someone taps cancel). The simulated kiosk's other
    devices stay, for the resident ID card read while the pad is open."""
    ui = start_kiosk(devices__smartcard={"driver": "pcsc", "required": True, "settings": {"reader": card.reader_name}})
    ui.wait_screen("attract", wait_for, timeout=60)
    card.must("insert_card", card="social_security", identity=HOLDER, pin=PIN)
    wait_for(lambda: ui.find("pin_title").get("found"), timeout=20, what="the card PIN pad")
    card.must("remove_card")
    wait_for(lambda: not ui.find("pin_title").get("found"), timeout=10, what="the PIN pad gone with the card")
    ui.screenshot("ss09-card-pulled-at-pad")
    assert ui.state()["screen"] == "attract" and ui.state()["session"] == "idle"

    # again, and cancel: the pad closes and the kiosk says to take the card (inserted again, the PIN is asked again)
    card.must("insert_card", card="social_security", identity=HOLDER, pin=PIN)
    wait_for(lambda: ui.find("pin_title").get("found"), timeout=20, what="the card PIN pad again")
    ui.tap("pin_cancel", wait_for)
    ui.wait_text("请取走社保卡", wait_for)
    assert not ui.find("pin_title").get("found") and ui.state()["session"] == "idle"
    ui.screenshot("ss10-pin-cancelled")
    card.must("remove_card")
    wait_for(lambda: not any("请取走社保卡" in t for t in ui.texts()), timeout=10, what="the message gone with the card")
    card.must("insert_card", card="social_security", identity=HOLDER, pin=PIN)
    wait_for(lambda: ui.find("pin_title").get("found"), timeout=20, what="the PIN asked again")

    # someone's resident ID card on the ID reader while the pad still asks for the PIN: that citizen is served and
    # the pad goes (it stayed open over their session before)
    send_command(ui.simulators(wait_for)["idcard"]["control"], "place_card", identity="zhang")
    wait_for(lambda: ui.state()["session"] != "idle", timeout=20, what="the ID card's holder identified")
    wait_for(lambda: not ui.find("pin_title").get("found"), timeout=10, what="the PIN pad closed")
    assert ui.state()["screen"] != "attract"
    ui.screenshot("ss11-id-card-while-the-pad-asks")
