"""A QR / barcode scanner (kind ``qr_scanner``): the citizen shows a code (e.g. a payment code 付款码) and the
scanner sends it as one line ending in CR (shared/protocols.md §5; serial or keyboard-HID scanners alike).

Card numbers (PCI DSS 3.4): a payment code is not a PAN — it is a one-time token the wallet issues (WeChat 18 digits
from 10–15, Alipay 16–24 digits from 25–30, the wallets' published formats, as ``drivers.payment.base.code_wallet``),
valid about a minute, and the acquirer needs it whole, so a code in those formats leaves the driver unchanged. But a
scanner reads whatever is shown to it, and a shown code could carry a real card number: a bank card's number printed
as a barcode, track data, a screenshot of a card, or an EMV consumer-presented QR (EMVCo QRCPS: base64 of a TLV
payload starting ``85 05 "CPV01"`` that holds the PAN in tag 5A or track 2 in tag 57). So every driver passes each
code through :func:`scrub_card_numbers` before it leaves: a card number inside a code is masked to first 6 / last 4
(the masked code then fails as a payment code, which is right: the kiosk takes cards on the pad only), and an EMV
consumer-presented QR — which the kiosk does not accept — becomes all stars.
"""
from __future__ import annotations

import abc
import base64
import binascii
import re

from drivers.base import Device, DeviceStatus, mask_pan, redact_card_numbers
from drivers.payment.base import code_wallet

#: the EMVCo consumer-presented QR header: tag 85 (payload format indicator), length 05, "CPV01"; in base64 it
#: always begins with these 9 characters
_EMV_CPM_HEADER = b"\x85\x05CPV01"
_EMV_CPM_PREFIX = "hQVDUFYwM"
#: a bare number of a card's length (13–19 digits, ISO/IEC 7812), separators allowed
_BARE_NUMBER = re.compile(r"^[0-9](?:[ -]?[0-9]){12,18}$")


def _is_emv_cpm(code: str) -> bool:
    if not code.startswith(_EMV_CPM_PREFIX):
        return False
    try:
        return base64.b64decode(code + "=" * (-len(code) % 4), validate=True).startswith(_EMV_CPM_HEADER)
    except (binascii.Error, ValueError):
        return False


def scrub_card_numbers(code: str) -> str:
    """A scanned code as it may leave a scanner driver: a wallet payment code unchanged; a bare number of a card's
    length that is not a payment code masked to first 6 / last 4 whether or not it passes the Luhn check (it is no
    use as a code anyway); an EMV consumer-presented QR all stars; anything else with every card number in it masked
    (:func:`drivers.base.redact_card_numbers`)."""
    if code_wallet(code) is not None:   # the wallets' one-time payment codes: tokens, not card numbers
        return code
    if _BARE_NUMBER.match(code):
        return mask_pan(code)
    if _is_emv_cpm(code):
        return "*" * len(code)
    return redact_card_numbers(code)


class QrScanner(Device):
    KIND = "qr_scanner"

    @abc.abstractmethod
    def read_code(self, timeout: float) -> str | None:
        """The next scanned code (without its terminator, through :func:`scrub_card_numbers`), or None when none
        came within ``timeout``."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Forget codes scanned before now (a code shown before the kiosk asked for one is never used)."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...
