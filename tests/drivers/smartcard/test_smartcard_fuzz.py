"""Fuzzing the card-data parsers: whatever bytes a card (or a broken reader) sends, only typed errors come out.

Each test runs a few hundred hypothesis examples (about 4,000 in this file); the typed errors are the
:class:`drivers.errors.DeviceError` family (TlvError, InvalidCardData, ProtocolError …).
"""
from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivers.errors import DeviceError
from drivers.idcard.simulator import load_identities
from drivers.smartcard import apdu as a
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss
from drivers.smartcard.simulator import BankCardSim, SocialSecurityCard, load_cards
from drivers.smartcard.tlv import build_ber_tlv, parse_ber_tlv, parse_simple_tlv

FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

_CARDS = load_cards()
_PEOPLE = load_identities()
_SS = SocialSecurityCard("zhang", _PEOPLE["zhang"], _CARDS["social_security"]["zhang"])
_BANK = BankCardSim("unionpay_debit", _CARDS["bank"]["unionpay_debit"])
_BANK_RECORDS = [rec for key, rec in sorted(_BANK.records.items())]


def only_typed(fn, *args):  # noqa: ANN001, ANN202 - helper
    try:
        return fn(*args)
    except DeviceError:
        return None


def _mutate(data: bytes, draw_ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, pos, value in draw_ops:
        if not out:
            out.append(value)
            continue
        pos %= len(out)
        if op == 0:
            out[pos] = value
        elif op == 1:
            del out[pos]
        elif op == 2:
            out.insert(pos, value)
        else:
            del out[pos:]
    return bytes(out)


mutations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4096), st.integers(0, 255)), max_size=6)


@FUZZ
@given(st.binary(max_size=600))
@example(b"\x01\xff\xff\xff")
def test_simple_tlv_never_raises_untyped(data: bytes) -> None:
    items = only_typed(parse_simple_tlv, data)
    if items is not None:
        assert all(1 <= tag <= 0xFE for tag, _ in items)


@FUZZ
@given(st.binary(max_size=600))
@example(b"\x9f\xff\xff\xff\xff")
@example(b"\x70\x83\xff\xff\xff")
def test_ber_tlv_never_raises_untyped(data: bytes) -> None:
    only_typed(parse_ber_tlv, data)


@FUZZ
@given(st.recursive(st.binary(max_size=20),
                    lambda children: st.lists(children, max_size=4).map(lambda xs: build_ber_tlv(0x70, xs)),
                    max_leaves=12))
def test_ber_tlv_parses_what_it_builds(data: bytes) -> None:
    wrapped = build_ber_tlv(0x77, data)
    items = only_typed(parse_ber_tlv, wrapped)
    if items is not None:
        assert items[0].tag == 0x77 and items[0].value == data


@FUZZ
@given(st.dictionaries(st.integers(1, 7), st.binary(max_size=40), max_size=7),
       st.dictionaries(st.integers(1, 6), st.binary(max_size=40), max_size=6))
def test_social_security_decoder_on_random_records(ef05: dict[int, bytes], ef06: dict[int, bytes]) -> None:
    only_typed(ss.decode_identity, ef05, ef06)


@FUZZ
@given(st.integers(5, 6), st.integers(1, 7), mutations)
def test_social_security_decoder_on_mutated_real_records(sfi: int, record: int,
                                                         ops: list[tuple[int, int, int]]) -> None:
    raw = {s: dict(recs) for s, recs in _SS.records.items()}
    if record in raw[sfi]:
        raw[sfi][record] = _mutate(raw[sfi][record], ops)

    def decode() -> object:
        ef05 = {rec: ss.record_value(data, rec) for rec, data in raw[5].items()}
        ef06 = {rec: ss.record_value(data, rec) for rec, data in raw[6].items()}
        return ss.decode_identity(ef05, ef06)

    doc = only_typed(decode)
    if doc is not None:   # what decodes is a valid identity: never half-filled
        assert doc.name and len(doc.id_number) == 18 and doc.birth_date <= date.today()


@FUZZ
@given(st.binary(max_size=300))
def test_emv_parsers_never_raise_untyped(data: bytes) -> None:
    only_typed(bc.parse_directory, data)
    only_typed(bc.parse_application_fci, data)
    only_typed(bc.parse_gpo, data)
    only_typed(bc.parse_afl, data)
    only_typed(bc.parse_dol, data)
    only_typed(bc.masked_pan_from_records, [data])
    only_typed(a.ResponseApdu.parse, data)


@FUZZ
@given(st.integers(0, len(_BANK_RECORDS) - 1), mutations)
def test_pan_extraction_on_mutated_records_is_masked_or_typed(index: int, ops: list[tuple[int, int, int]]) -> None:
    records = list(_BANK_RECORDS)
    records[index] = _mutate(records[index], ops)
    masked = only_typed(bc.masked_pan_from_records, records)
    if masked is not None:   # only ever the first 6 and last 4 digits
        digits = masked.replace("*", "")
        assert len(digits) == 10 and digits.isdigit() and masked[6:-4] == "*" * (len(masked) - 10)


@FUZZ
@given(st.sampled_from([_BANK._ppse_fci(), _BANK._fci()]), mutations)
def test_fci_parsers_on_mutated_fci(fci: bytes, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(fci, ops)
    only_typed(bc.parse_directory, data)
    selected = only_typed(bc.parse_application_fci, data)
    if selected is not None:
        pdol = only_typed(bc.parse_dol, selected.pdol)
        if pdol is not None:
            only_typed(bc.pdol_data, selected.pdol, date(2025, 1, 1), b"\x00" * 4)
