"""TLV parsers for card data: SIMPLE-TLV (social-security card records) and BER-TLV (EMV/PBOC bank cards).

Sources: ISO/IEC 7816-4 §5.2 (SIMPLE-TLV: one tag byte 01–FE, a length byte 00–FE, or FF followed by two length
bytes; BER-TLV: tags of one or more bytes, bit 6 of the first byte marks a constructed object, lengths in short form
or 81/82/83 long form) and EMV Book 3 Annex B (00 bytes may pad between BER-TLV objects). shared/protocols.md §2 says
the social-security records "are TLV (tag, len, value)".

Everything here takes arbitrary bytes and either returns parsed objects or raises :class:`TlvError` — never another
exception (the fuzz tests hold it to that). Messages never quote the data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from drivers.smartcard.errors import TlvError

#: constructed objects nest at most this deep (real EMV data nests 3–4 levels; more is garbage or an attack)
MAX_DEPTH = 8
#: longest tag we accept, in bytes (EMV tags are 1–3 bytes)
MAX_TAG_BYTES = 4


# SIMPLE-TLV ---------------------------------------------------------------------------------------------------------

def parse_simple_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """Every (tag, value) of a SIMPLE-TLV string; raises :class:`TlvError` when it is not one."""
    items: list[tuple[int, bytes]] = []
    data = bytes(data)
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        if tag in (0x00, 0xFF):
            raise TlvError(TlvError.REASON_BAD_LENGTH, f"invalid SIMPLE-TLV tag at offset {i}")
        if i + 1 >= n:
            raise TlvError(TlvError.REASON_TRUNCATED, f"SIMPLE-TLV object at offset {i} has no length")
        length = data[i + 1]
        i += 2
        if length == 0xFF:
            if i + 2 > n:
                raise TlvError(TlvError.REASON_TRUNCATED, "SIMPLE-TLV three-byte length is cut short")
            length = int.from_bytes(data[i: i + 2], "big")
            i += 2
        if i + length > n:
            raise TlvError(TlvError.REASON_TRUNCATED, f"SIMPLE-TLV value of {length} bytes runs past the data")
        items.append((tag, data[i: i + length]))
        i += length
    return items


def build_simple_tlv(tag: int, value: bytes) -> bytes:
    """One SIMPLE-TLV object (for the simulator)."""
    if not 0x01 <= tag <= 0xFE:
        raise ValueError("SIMPLE-TLV tags are 01..FE")
    if len(value) < 0xFF:
        return bytes([tag, len(value)]) + value
    if len(value) > 0xFFFF:
        raise ValueError("value too long")
    return bytes([tag, 0xFF]) + len(value).to_bytes(2, "big") + value


def simple_tlv_value(data: bytes, tag: int) -> bytes:
    """The value of ``tag`` in a SIMPLE-TLV string (the first one); :class:`TlvError` if it is absent."""
    for t, value in parse_simple_tlv(data):
        if t == tag:
            return value
    raise TlvError(TlvError.REASON_MISSING_TAG, f"tag {tag:02X} not in the record")


# BER-TLV ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class Tlv:
    """One BER-TLV object. ``children`` is filled for constructed objects. The repr shows tags and lengths only
    (values may be card data)."""

    tag: int
    value: bytes
    children: tuple["Tlv", ...] = field(default=())

    @property
    def constructed(self) -> bool:
        return _is_constructed(self.tag)

    def find(self, tag: int) -> "Tlv | None":
        """The first object with ``tag`` among this one's descendants (depth first)."""
        return find_tag(self.children, tag)

    def __repr__(self) -> str:
        return f"Tlv({self.tag:X}, len={len(self.value)}, children={len(self.children)})"


def _is_constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def _read_tag(data: bytes, i: int) -> tuple[int, int]:
    n = len(data)
    first = data[i]
    tag = first
    i += 1
    if first & 0x1F == 0x1F:  # subsequent tag bytes follow while bit 8 is set
        count = 1
        while True:
            if i >= n:
                raise TlvError(TlvError.REASON_TRUNCATED, "BER-TLV tag is cut short")
            byte = data[i]
            tag = (tag << 8) | byte
            i += 1
            count += 1
            if count > MAX_TAG_BYTES:
                raise TlvError(TlvError.REASON_BAD_LENGTH, "BER-TLV tag is too long")
            if not byte & 0x80:
                break
    return tag, i


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    n = len(data)
    if i >= n:
        raise TlvError(TlvError.REASON_TRUNCATED, "BER-TLV object has no length")
    first = data[i]
    i += 1
    if first < 0x80:
        return first, i
    count = first & 0x7F
    if count == 0 or count > 3:
        raise TlvError(TlvError.REASON_BAD_LENGTH, "BER-TLV length form not supported")
    if i + count > n:
        raise TlvError(TlvError.REASON_TRUNCATED, "BER-TLV long length is cut short")
    return int.from_bytes(data[i: i + count], "big"), i + count


def parse_ber_tlv(data: bytes, depth: int = 0) -> list[Tlv]:
    """Every BER-TLV object in ``data`` (constructed ones parsed recursively). 00 and FF bytes between objects are
    padding (EMV Book 3 Annex B). Raises :class:`TlvError` on anything malformed."""
    if depth > MAX_DEPTH:
        raise TlvError(TlvError.REASON_TOO_DEEP, "BER-TLV nested too deep")
    data = bytes(data)
    items: list[Tlv] = []
    i, n = 0, len(data)
    while i < n:
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        tag, i = _read_tag(data, i)
        length, i = _read_length(data, i)
        if i + length > n:
            raise TlvError(TlvError.REASON_TRUNCATED, f"BER-TLV value of {length} bytes runs past the data")
        value = data[i: i + length]
        i += length
        children = tuple(parse_ber_tlv(value, depth + 1)) if _is_constructed(tag) else ()
        items.append(Tlv(tag, value, children))
    return items


def find_tag(items: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` in ``items`` or their descendants (depth first)."""
    for item in items:
        if item.tag == tag:
            return item
        found = find_tag(item.children, tag)
        if found is not None:
            return found
    return None


def iter_tags(items: Iterable[Tlv], tag: int) -> Iterator[Tlv]:
    """Every object with ``tag`` in ``items`` or their descendants, in order."""
    for item in items:
        if item.tag == tag:
            yield item
        yield from iter_tags(item.children, tag)


def _encode_tag(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return b"\x81" + bytes([length])
    if length <= 0xFFFF:
        return b"\x82" + length.to_bytes(2, "big")
    raise ValueError("value too long")


def build_ber_tlv(tag: int, value: bytes | Iterable[bytes]) -> bytes:
    """One BER-TLV object; ``value`` may be a list of already encoded children (for the simulator)."""
    body = bytes(value) if isinstance(value, (bytes, bytearray)) else b"".join(value)
    return _encode_tag(tag) + _encode_length(len(body)) + body
