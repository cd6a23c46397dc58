"""The GA 467 frame codec against the byte examples of shared/protocols.md §1."""
from __future__ import annotations

import struct

import pytest

from drivers.errors import (
    CardReadFailed, HardwareError, InvalidCardData, NoCard, ProtocolError, Unsupported,
)
from drivers.idcard import protocol as p


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


# every request frame listed in shared/protocols.md §1, byte for byte
@pytest.mark.parametrize("command, frame", [
    (p.RESET_SAM, "AA AA AA 96 69 00 03 10 FF EC"),
    (p.SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),
    (p.SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),
    (p.FIND_CARD, "AA AA AA 96 69 00 03 20 01 22"),
    (p.SELECT_CARD, "AA AA AA 96 69 00 03 20 02 21"),
    (p.READ_TEXT_PHOTO, "AA AA AA 96 69 00 03 30 01 32"),
    (p.READ_TEXT_PHOTO_FP, "AA AA AA 96 69 00 03 30 10 23"),
    (p.READ_EXTRA_ADDRESS, "AA AA AA 96 69 00 03 30 03 30"),
])
def test_request_frames_match_the_documented_bytes(command: p.Command, frame: str) -> None:
    assert p.build_request(command) == hx(frame)
    assert p.build_request(command.cmd, command.para) == hx(frame)
    decoded = p.decode_frame(hx(frame))
    assert decoded.command == command and decoded.request_data == b""


def test_find_card_checksum_is_0x22_not_the_wrong_0x21_of_a_public_sample() -> None:
    assert p.build_request(p.FIND_CARD)[-1] == 0x22
    with pytest.raises(p.FrameError) as info:
        p.decode_frame(hx("AA AA AA 96 69 00 03 20 01 21"))
    assert info.value.reason == "bad_checksum"


@pytest.mark.parametrize("index, baud", list(enumerate(p.BAUD_RATES)))
def test_set_baud_frame(index: int, baud: int) -> None:
    assert p.set_baud(baud) == p.Command(0x60, index)
    assert p.build_request(p.set_baud(baud)) == hx("AA AA AA 96 69 00 03 60") + bytes([index, 0x03 ^ 0x60 ^ index])


def test_set_baud_rejects_unknown_speed() -> None:
    with pytest.raises(ValueError):
        p.set_baud(4800)


def test_find_card_response_example() -> None:
    example = hx("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
    assert p.build_response(p.Sw3.CARD_FOUND, bytes(4)) == example
    reply = p.decode_frame(example).response()
    assert reply.sw3 == p.Sw3.CARD_FOUND and reply.ok and reply.data == bytes(4)


def test_text_photo_response_has_len_0x0508_and_1295_bytes() -> None:
    text, photo = bytes(range(256)), bytes(1024)
    frame = p.build_response(p.Sw3.OK, p.pack_card_data(text, photo))
    assert len(frame) == 1295
    assert frame[5:7] == b"\x05\x08"
    assert frame[7:10] == hx("00 00 90")      # SW1 SW2 SW3
    assert frame[10:14] == hx("01 00 04 00")  # textLen 0x0100, photoLen 0x0400 (big-endian)
    reply = p.decode_frame(frame).response()
    assert p.split_card_data(reply.data) == (text, photo, b"")


def test_text_photo_fingerprint_layout() -> None:
    data = p.pack_card_data(bytes(256), bytes(1024), b"\x01" * 512)
    assert data[:6] == hx("01 00 04 00 02 00")
    assert p.split_card_data(data, with_fingerprint=True)[2] == b"\x01" * 512


def test_card_data_with_lengths_that_do_not_add_up_is_a_protocol_error() -> None:
    data = p.pack_card_data(bytes(256), bytes(1024))[:-1]
    with pytest.raises(ProtocolError) as info:
        p.split_card_data(data)
    assert info.value.reason == "bad_payload"


def test_checksum_is_xor_of_len_and_body() -> None:
    frame = p.build_request(0x30, 0x01, b"\x55\xAA")
    assert frame[-1] == 0x00 ^ 0x05 ^ 0x30 ^ 0x01 ^ 0x55 ^ 0xAA


# decoder ------------------------------------------------------------------------------------------------------------

def test_decoder_fed_one_byte_at_a_time() -> None:
    frame = p.build_response(p.Sw3.OK, b"hello")
    decoder = p.FrameDecoder()
    got = []
    for i, byte in enumerate(frame):
        got += decoder.feed(bytes([byte]))
        if i < len(frame) - 1:
            assert got == []
    assert [f.body for f in got] == [b"\x00\x00\x90hello"]
    assert decoder.pending == 0


def test_decoder_resyncs_after_garbage_including_partial_preambles() -> None:
    good = p.build_response(p.Sw3.OK, b"\x01\x02")
    garbage = b"\x00\x13\xAA\xAA\x96\x69\xAA\xAA\xAA\x96\xFF\xAA\xAA"
    decoder = p.FrameDecoder()
    frames = decoder.decode_all(garbage + good + b"\x42" + good)
    assert [f.response().data for f in frames] == [b"\x01\x02", b"\x01\x02"]
    assert decoder.discarded == len(garbage) + 1


def test_decoder_keeps_a_partial_preamble_between_feeds() -> None:
    good = p.build_response(p.Sw3.CARD_FOUND, bytes(4))
    decoder = p.FrameDecoder()
    assert decoder.decode_all(b"\x00\x01" + good[:3]) == []
    assert decoder.decode_all(good[3:]) == [p.Frame(good[7:-1])]


def test_truncated_frame_is_held_not_returned() -> None:
    frame = p.build_response(p.Sw3.OK, bytes(100))
    decoder = p.FrameDecoder()
    assert decoder.decode_all(frame[:50]) == []
    assert decoder.in_frame and decoder.pending == 50
    assert len(decoder.decode_all(frame[50:])) == 1
    assert not decoder.in_frame


def test_bad_checksum_is_reported_then_the_next_frame_decodes() -> None:
    good = p.build_response(p.Sw3.OK, b"\x07")
    bad = bytearray(p.build_response(p.Sw3.OK, b"\x08"))
    bad[-1] ^= 0x01
    decoder = p.FrameDecoder()
    with pytest.raises(p.FrameError) as info:
        decoder.decode_all(bytes(bad) + good)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason == p.FrameError.REASON_BAD_CHECKSUM
    assert info.value.code == "invalid_data"
    assert [f.response().data for f in decoder.feed(b"")] == [b"\x07"]


@pytest.mark.parametrize("length", [b"\x00\x00", b"\x00\x02", b"\xFF\xFF"])
def test_bad_length_is_reported_at_once_and_decoding_resumes(length: bytes) -> None:
    good = p.build_request(p.FIND_CARD)
    decoder = p.FrameDecoder()
    with pytest.raises(p.FrameError) as info:
        decoder.decode_all(p.PREAMBLE + length)
    assert info.value.reason == "bad_length"
    assert decoder.decode_all(good) == [p.Frame(b"\x20\x01")]


def test_corrupted_length_does_not_swallow_the_next_frame() -> None:
    good = p.build_request(p.SAM_STATUS)
    decoder = p.FrameDecoder()
    # a frame whose LEN claims 10 bytes, followed directly by a good frame: the checksum fails, resync finds it
    with pytest.raises(p.FrameError):
        decoder.decode_all(p.PREAMBLE + b"\x00\x0A\x20\x01" + good + bytes(10))
    assert p.Frame(b"\x11\xFF") in decoder.decode_all(b"")


def test_response_with_nonzero_sw1_sw2_is_rejected() -> None:
    frame = p.decode_frame(p.build_response(p.Sw3.OK, sw1=0x01))
    with pytest.raises(p.FrameError) as info:
        frame.response()
    assert info.value.reason == "bad_status_word"


# status codes -------------------------------------------------------------------------------------------------------

def test_every_documented_sw3_code_is_named() -> None:
    documented = {0x90, 0x9F, 0x80, 0x81, 0x91, 0x10, 0x11, 0x21, 0x23, 0x24, 0x31, 0x32, 0x33, 0x37, 0x3F, 0x40,
                  0x41, 0x47, 0x60, 0x66}
    assert {int(c) for c in p.Sw3} == documented
    for code in p.Sw3:
        assert code in p.SUCCESS_CODES or code in p.SW3_ERRORS


@pytest.mark.parametrize("sw3, error", [
    (0x80, NoCard), (0x41, CardReadFailed), (0x31, CardReadFailed), (0x32, CardReadFailed),
    (0x33, CardReadFailed), (0x10, ProtocolError), (0x11, ProtocolError), (0x60, HardwareError),
    (0x66, HardwareError), (0x40, InvalidCardData), (0x21, Unsupported), (0x77, ProtocolError),
])
def test_sw3_maps_to_typed_errors(sw3: int, error: type) -> None:
    exc = p.error_for_sw3(sw3, "read card")
    assert type(exc) is error
    assert exc.placeholders["sw3"] == sw3
    assert f"0x{sw3:02X}" in str(exc) and "read card" in str(exc)


def test_sam_id_formatting_round_trip() -> None:
    data = struct.pack("<HHIII", 5, 1, 20240315, 12345, 1234567890)
    text = p.format_sam_id(data)
    assert text == "05.01-20240315-0000012345-1234567890"
    assert p.pack_sam_id(text) == data
    with pytest.raises(ProtocolError):
        p.format_sam_id(data[:10])
