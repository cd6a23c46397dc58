"""Fuzzing the GA 467 frame codec and the text-block/record parsers: whatever arrives on the serial line, only typed
errors come out (FrameError/ProtocolError, InvalidCardData — the DeviceError family), and the decoder resyncs.

About 3,000 hypothesis examples in all."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from drivers.errors import DeviceError
from drivers.idcard import protocol as p
from drivers.idcard.identity import decode_extra_address, decode_text_block, encode_text_block
from drivers.idcard.simulator import load_identities

FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_PEOPLE = load_identities()
_BLOCKS = [encode_text_block(doc) for doc in _PEOPLE.values()]
_GOOD = p.build_response(p.Sw3.OK, p.pack_card_data(_BLOCKS[0], bytes(1024)))


def drain(decoder: p.FrameDecoder, data: bytes, limit: int = 10_000,
          line_goes_quiet: bool = False) -> tuple[list[p.Frame], int]:
    """Feed ``data`` and keep going after each typed error, as the driver and simulator do; with
    ``line_goes_quiet``, then give up stalled frames as the driver does at an inter-byte gap."""
    frames, errors = [], 0
    pending: bytes | None = data
    for _ in range(limit):
        try:
            frames.extend(decoder.feed(pending) if pending is not None else decoder.skip_stalled())
            if not (line_goes_quiet and decoder.in_frame):
                return frames, errors
            pending = None
        except p.FrameError:
            errors += 1
            pending = b""
    raise AssertionError("decoder did not settle")


chunkings = st.lists(st.integers(1, 64), min_size=1, max_size=20)


@FUZZ
@given(st.binary(max_size=3000), chunkings)
@example(p.PREAMBLE + b"\x00\x03", [1])
@example(p.PREAMBLE + b"\xff\xff" + p.PREAMBLE, [3])
def test_decoder_on_garbage_raises_only_frame_errors(data: bytes, sizes: list[int]) -> None:
    decoder = p.FrameDecoder()
    i = 0
    while i < len(data):
        for size in sizes:
            drain(decoder, data[i: i + size])
            i += size
    assert decoder.pending <= len(data)


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b.replace(b"\xaa", b"\x55")), st.binary(max_size=200))
def test_a_good_frame_after_garbage_is_always_found(before: bytes, after: bytes) -> None:
    # garbage without a preamble byte cannot start a frame, so it can never hide the good one behind it
    frames, _ = drain(p.FrameDecoder(), before + _GOOD + after)
    assert frames and frames[0].body == _GOOD[7:-1]


@FUZZ
@given(st.binary(max_size=60))
def test_a_corrupt_frame_start_does_not_swallow_the_next_good_frame(junk: bytes) -> None:
    # a preamble followed by junk (a bad length or checksum): the decoder drops only that preamble and resyncs
    data = p.PREAMBLE + junk.replace(b"\xaa", b"\x55") + _GOOD
    # Except when the junk's LEN is in range and the one-byte XOR checksum at its end happens to match (about one junk
    # in 256, found by this test: junk=b"\x03/"): that is a well-formed frame on the wire, no decoder can tell, and the
    # good frame inside it is lost — as a reply it fails with a typed error (the next test), never as card data.
    length = int.from_bytes(data[5:7], "big")
    end = 7 + length
    assume(not (p.MIN_LEN <= length <= p.MAX_LEN and end <= len(data) and p.checksum(data[5:end - 1]) == data[end - 1]))
    frames, _ = drain(p.FrameDecoder(), data, line_goes_quiet=True)
    assert any(f.body == _GOOD[7:-1] for f in frames)


def test_junk_whose_checksum_happens_to_match_is_no_reply() -> None:
    [bogus] = drain(p.FrameDecoder(), p.PREAMBLE + b"\x03/" + _GOOD, line_goes_quiet=True)[0]
    assert bogus.body != _GOOD[7:-1]
    with pytest.raises(p.FrameError) as caught:
        bogus.response()
    assert caught.value.reason == p.FrameError.REASON_BAD_STATUS_WORD and isinstance(caught.value, DeviceError)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1294), st.integers(0, 255)), min_size=1, max_size=5))
def test_mutated_read_replies(ops: list[tuple[int, int, int]]) -> None:
    data = bytearray(_GOOD)
    for op, pos, value in ops:
        pos %= len(data)
        if op == 0:
            data[pos] = value
        elif op == 1:
            del data[pos]
        else:
            data.insert(pos, value)
    frames, _ = drain(p.FrameDecoder(), bytes(data))
    for frame in frames:
        try:
            reply = frame.response()
            text, photo, _ = p.split_card_data(reply.data)
            decode_text_block(text, photo)
        except DeviceError:
            pass


@FUZZ
@given(st.binary(min_size=256, max_size=256))
@example(bytes(248) + b"I\x00" + bytes(6))
@example(bytes(248) + b"J\x00" + bytes(6))
def test_text_block_decoder_on_random_blocks(block: bytes) -> None:
    try:
        doc = decode_text_block(block)
    except DeviceError:
        return
    assert doc.kind and doc.birth_date


@FUZZ
@given(st.integers(0, len(_BLOCKS) - 1), st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=8))
def test_text_block_decoder_on_mutated_real_blocks(index: int, edits: list[tuple[int, int]]) -> None:
    block = bytearray(_BLOCKS[index])
    for pos, value in edits:
        block[pos] = value
    try:
        decode_text_block(bytes(block))
    except DeviceError:
        pass


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_payload_parsers(data: bytes, fingerprint: bool) -> None:
    for call in (lambda: p.split_card_data(data, with_fingerprint=fingerprint), lambda: p.format_sam_id(data),
                 lambda: decode_extra_address(data), lambda: p.Frame(b"\x00\x00" + data).response(),
                 lambda: p.error_for_sw3(data[0] if data else 0)):
        try:
            call()
        except DeviceError:
            pass
