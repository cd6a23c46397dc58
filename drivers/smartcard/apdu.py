"""ISO/IEC 7816-4 APDUs as the social-security and bank card readers use them.

Sources: shared/protocols.md §2 (the commands), ISO/IEC 7816-4 §5.1 (short APDU cases, SW1 SW2 meanings: 61xx more
data — GET RESPONSE; 6Cxx wrong Le — repeat with Le = xx; 63Cx verification failed, x tries left; 6982 security
status not satisfied; 6983 authentication method blocked; 6A82 file or application not found; 6A83 record not
found). Nothing here talks to a card.
"""
from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import CardReadFailed, DeviceError, InvalidCardData, ProtocolError, Unsupported
from drivers.smartcard.errors import PinBlocked, PinIncorrect, PinRequired

# instruction bytes
INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
INS_VERIFY = 0x20
INS_GET_RESPONSE = 0xC0
INS_GPO = 0xA8

SW_OK = 0x9000
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_REF_DATA_BLOCKED = 0x6984
SW_WRONG_LENGTH = 0x6700
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_NO_PRECISE_DIAGNOSIS = 0x6F00


def build_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short command APDU (cases 1–4). ``le`` 0–256 (256 is sent as 00)."""
    for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} must be a byte")
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 data bytes")
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + bytes(data)
    if le is not None:
        if not 0 <= le <= 256:
            raise ValueError("le must be 0..256")
        apdu += bytes([le & 0xFF])
    return apdu


def select_by_name(aid: bytes, first: bool = True) -> bytes:
    """SELECT by DF name / AID: ``00 A4 04 00 Lc AID 00`` (P2 00 first occurrence, 02 next occurrence)."""
    return build_apdu(0x00, INS_SELECT, 0x04, 0x00 if first else 0x02, aid, le=0)


def select_by_name_no_le(aid: bytes) -> bytes:
    """SELECT without Le, exactly as shared/protocols.md §2 writes SELECT SSSE (``00 A4 04 00 0F …``)."""
    return build_apdu(0x00, INS_SELECT, 0x04, 0x00, aid)


def read_record(record: int, sfi: int, le: int = 0) -> bytes:
    """READ RECORD ``rr`` of the EF with short identifier ``sfi``: ``00 B2 rr (sfi<<3|4) Le``."""
    if not 1 <= sfi <= 30:
        raise ValueError("sfi must be 1..30")
    return build_apdu(0x00, INS_READ_RECORD, record, (sfi << 3) | 0x04, le=le)


def get_response(length: int) -> bytes:
    return build_apdu(0x00, INS_GET_RESPONSE, 0x00, 0x00, le=length)


def pin_to_bcd(pin: str) -> bytes:
    """A numeric PIN as packed BCD, padded with F to whole bytes (``123456`` → ``12 34 56``)."""
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a PIN is 4 to 12 digits")
    digits = pin + ("F" if len(pin) % 2 else "")
    return bytes.fromhex(digits)


def verify_pin(pin: str) -> bytes:
    """VERIFY ``00 20 00 00 Lc <BCD PIN>`` (shared/protocols.md §2)."""
    return build_apdu(0x00, INS_VERIFY, 0x00, 0x00, pin_to_bcd(pin))


@dataclass(frozen=True, repr=False)
class ResponseApdu:
    """A response APDU. The repr shows the status word and the data length only (data may be personal)."""

    data: bytes
    sw1: int
    sw2: int

    @classmethod
    def parse(cls, raw: bytes | list[int]) -> "ResponseApdu":
        raw = bytes(raw)
        if len(raw) < 2:
            raise ProtocolError(f"response APDU of {len(raw)} bytes has no status word", reason="short_response")
        return cls(raw[:-2], raw[-2], raw[-1])

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def __repr__(self) -> str:
        return f"ResponseApdu(sw={self.sw:04X}, data_len={len(self.data)})"


def error_for_sw(sw: int, context: str = "") -> DeviceError:
    """The typed error for a status word that is not success (the message names the SW, never data)."""
    where = f" during {context}" if context else ""
    text = f"card status {sw:04X}{where}"
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return PinIncorrect(text, sw=sw, tries_left=sw2 & 0x0F)
    if sw in (SW_AUTH_BLOCKED, SW_REF_DATA_BLOCKED):
        return PinBlocked(text, sw=sw)
    if sw == SW_SECURITY_NOT_SATISFIED:
        return PinRequired(text, sw=sw)
    if sw in (SW_FILE_NOT_FOUND, SW_RECORD_NOT_FOUND):
        return InvalidCardData(text, sw=sw)
    if sw in (SW_INS_NOT_SUPPORTED, SW_CLA_NOT_SUPPORTED, SW_FUNCTION_NOT_SUPPORTED):
        return Unsupported(text, sw=sw)
    if sw1 in (0x67, 0x6B) or sw1 == 0x6C:
        return ProtocolError(text, sw=sw, reason="wrong_parameters")
    return CardReadFailed(text, sw=sw)


def describe(apdu: bytes) -> str:
    """A log-safe description of a command APDU: CLA INS P1 P2 and the data length, never the data (a PIN!)."""
    if len(apdu) < 4:
        return f"apdu(len={len(apdu)})"
    return f"{apdu[0]:02X} {apdu[1]:02X} {apdu[2]:02X} {apdu[3]:02X} (+{max(0, len(apdu) - 4)} bytes)"
