"""No card number leaves a driver in clear (PCI DSS 3.4: first 6 / last 4 at most), for every driver that can see one
besides the pad (tests/drivers/payment/test_pan_masking.py): the smart card's bank-card identity and the QR scanner.

The QR scanner's decision (drivers/qr_scanner/base.py): a wallet payment code is a one-time token, not a PAN, and
passes whole (the acquirer needs it); a card number inside any other scanned code is masked; an EMV
consumer-presented QR (which carries the PAN in tag 5A / 57) becomes all stars."""
from __future__ import annotations

import base64
import random
from typing import Iterator

import pytest

from drivers.base import redact_card_numbers
from drivers.payment.base import code_wallet
from drivers.qr_scanner.base import scrub_card_numbers
from drivers.qr_scanner.serial_scanner import SerialQrScanner
from drivers.sim.process import SimulatorProcess
from drivers.smartcard.bankcard import BankCard

FULL_PAN = "6217000010012345678"          # the hostile pad test's number (not Luhn-valid: masked all the same)
LUHN_PAN = "6228480402564890018"          # a Luhn-valid UnionPay number
WECHAT = "134567890123456789"
ALIPAY = "281234567890123456"


def emv_cpm(pan: str) -> str:
    """An EMVCo consumer-presented QR payload (base64 of 85 05 "CPV01", then 61 application template with AID 4F
    and track 2 equivalent 57 = PAN 'D' YYMM …)."""
    track2 = bytes.fromhex(pan + "D2812201" + ("F" if len(pan) % 2 else ""))
    aid = bytes.fromhex("A0000003330101")
    inner = bytes([0x4F, len(aid)]) + aid + bytes([0x57, len(track2)]) + track2
    return base64.b64encode(b"\x85\x05CPV01" + bytes([0x61, len(inner)]) + inner).decode()


# --- the rule ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (LUHN_PAN, "622848*********0018"),
    ("card 6228 4804 0256 4890 018 ok", "card 622848*********0018 ok"),
    ("4111-1111-1111-1111", "411111******1111"),
    (f";{FULL_PAN}=28122010000?", ";621700*********5678=28122010000?"),   # track 2: masked even without Luhn
    (f"%B{FULL_PAN}^WANG/JIANGUO^2812", "%B621700*********5678^WANG/JIANGUO^2812"),
    ("UnionPay Debit", "UnionPay Debit"),
    ("order P20250314000124 phone 13905520004", "order P20250314000124 phone 13905520004"),  # not card numbers
    # a digit run of a card's length that passes Luhn is masked wherever it stands: the safe side of a false positive
    ("order P20250314000123", "order P202503****0123"),
    ("", ""),
])
def test_redact_card_numbers(text: str, expected: str) -> None:
    assert redact_card_numbers(text) == expected


@pytest.mark.parametrize("code, expected", [
    (WECHAT, WECHAT),                                          # payment codes are tokens: whole
    (ALIPAY, ALIPAY),
    (FULL_PAN, "621700*********5678"),                          # a bare card-length number: masked, Luhn or not
    (LUHN_PAN, "622848*********0018"),
    ("4111 1111 1111 1111", "411111******1111"),
    (f";{LUHN_PAN}=2812201?", ";622848*********0018=2812201?"),
    ("https://zwfw.example.gov.cn/pay?order=P20250314000124", "https://zwfw.example.gov.cn/pay?order=P20250314000124"),
])
def test_scanned_codes(code: str, expected: str) -> None:
    assert scrub_card_numbers(code) == expected


def test_an_emv_consumer_presented_qr_leaves_as_stars() -> None:
    code = emv_cpm(LUHN_PAN)
    assert code.startswith("hQVDUFYwM")
    assert set(scrub_card_numbers(code)) == {"*"}
    assert scrub_card_numbers("hQVDUFYwM-not-base64") == "hQVDUFYwM-not-base64"


def test_the_scanner_rule_agrees_with_the_wallet_formats() -> None:
    """Every code the payment side accepts (drivers.payment.base.code_wallet, which the scanner's rule uses) passes
    the scanner whole; sampled across both wallets' ranges and lengths."""
    rng = random.Random(17)
    for _ in range(2000):
        prefix = rng.choice(["1" + str(rng.randint(0, 9)), str(rng.randint(20, 31))])
        code = prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(11, 23)))
        if code_wallet(code) is not None:
            assert scrub_card_numbers(code) == code, code


# --- the drivers ---------------------------------------------------------------------------------------------------

def test_a_bank_card_identity_never_holds_a_full_number() -> None:
    card = BankCard(masked_pan=LUHN_PAN, aid="A000000333010101", label=f"Debit {LUHN_PAN}")
    assert card.masked_pan == "622848*********0018" and card.display == "**** 0018"
    assert LUHN_PAN not in repr(card) and LUHN_PAN[6:15] not in repr(card)
    assert BankCard(masked_pan="622848*********0018", aid="A0").masked_pan == "622848*********0018"
    assert BankCard(masked_pan="62284804025*****0018", aid="A0").masked_pan == "*" * 20   # too much in clear


@pytest.fixture(scope="module")
def scanner_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("qr-scanner", "--pty") as sim:
        yield sim


def test_the_serial_scanner_masks_a_card_number_shown_to_it(scanner_sim: SimulatorProcess) -> None:
    with SerialQrScanner(port=scanner_sim.endpoints["pty"]) as scanner:
        scanner.flush()
        for shown, read in [(FULL_PAN, "621700*********5678"), (WECHAT, WECHAT), (emv_cpm(LUHN_PAN), None),
                            (f";{LUHN_PAN}=2812201?", ";622848*********0018=2812201?")]:
            scanner_sim.control("scan", code=shown)
            code = scanner.read_code(5.0)
            assert code is not None
            if read is None:
                assert set(code) == {"*"}
            else:
                assert code == read
            assert FULL_PAN not in code and LUHN_PAN not in code
        assert scanner.counters["card_numbers_masked"] == 3
        assert FULL_PAN not in str(scanner.status())
