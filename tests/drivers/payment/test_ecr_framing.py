"""The ECR framing (STX LEN DATA ETX LRC) and the ACK/NAK link, fuzzed with hypothesis."""
from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, strategies as st

from drivers.payment import ecr

data_st = st.binary(min_size=0, max_size=ecr.MAX_DATA)


@given(data_st)
def test_a_frame_decodes_to_its_data(data: bytes) -> None:
    frame = ecr.encode_frame(data)
    assert frame[0] == ecr.STX and frame[-2] == ecr.ETX and int.from_bytes(frame[1:3], "big") == len(data)
    assert list(ecr.FrameDecoder().feed(frame)) == [("frame", data)]


@given(st.lists(data_st, min_size=1, max_size=5), st.data())
def test_frames_survive_any_chunking_and_noise_between_them(datas: list[bytes], draw: st.DataObject) -> None:
    noise = st.binary(max_size=8).map(lambda b: bytes(x for x in b if x not in (ecr.STX, ecr.ACK, ecr.NAK)))
    stream = b"".join(draw.draw(noise) + ecr.encode_frame(d) for d in datas)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = ecr.FrameDecoder()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got += [d for kind, d in decoder.feed(stream[a:b]) if kind == "frame"]
    assert got == datas


@given(data_st, st.data())
def test_any_single_byte_corruption_after_the_length_is_detected(data: bytes, draw: st.DataObject) -> None:
    frame = bytearray(ecr.encode_frame(data))
    i = draw.draw(st.integers(3, len(frame) - 1))   # a data byte, ETX or the LRC: XOR catches every single error
    frame[i] ^= draw.draw(st.integers(1, 255))
    events = list(ecr.FrameDecoder().feed(bytes(frame) + ecr.encode_frame(b"next")))
    assert events == [("bad", "etx" if i == len(frame) - 2 else "lrc"), ("frame", b"next")] or \
        (events[0][0] == "bad" and ("frame", b"next") in events)


@given(data_st, st.data())
def test_a_corrupt_length_is_recovered_from_after_the_inter_byte_pause(data: bytes, draw: st.DataObject) -> None:
    """A corrupted LEN makes the decoder wait for bytes that never come or cut the frame short (ETX/LRC then fail,
    except by a 1-in-256 LRC coincidence when the cut lands on a 0x03); the original data is never delivered, and
    after the link's inter-byte pause (a reset) the retransmitted frame decodes."""
    frame = bytearray(ecr.encode_frame(data))
    i = draw.draw(st.integers(1, 2))
    frame[i] ^= draw.draw(st.integers(1, 255))
    decoder = ecr.FrameDecoder()
    events = list(decoder.feed(bytes(frame)))
    assert ("frame", data) not in events
    decoder.reset()
    assert list(decoder.feed(ecr.encode_frame(data))) == [("frame", data)]


@given(st.sampled_from([t for t in ecr.MESSAGE_TYPES]),
       st.dictionaries(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="=\x1c"), min_size=1,
                               max_size=8),
                       st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x1c"), max_size=30),
                       max_size=6))
def test_messages_round_trip(kind: str, fields: dict[str, str]) -> None:
    message = ecr.Message(kind, fields)
    encoded = message.encode()
    if len(encoded) <= ecr.MAX_DATA:
        assert ecr.Message.decode(encoded) == message


def test_payment_codes_never_show_in_a_message_repr() -> None:
    message = ecr.Message("SA", {"ORD": "1", "CODE": "134567890123456789"})
    assert "134567890123456789" not in repr(message)


def test_too_long_and_bad_length_are_refused() -> None:
    with pytest.raises(ValueError):
        ecr.encode_frame(bytes(ecr.MAX_DATA + 1))
    assert list(ecr.FrameDecoder().feed(b"\x02\xff\xff")) == [("bad", "length")]


class Wire:
    """Two in-memory byte pipes between two Link ends; ``lose`` drops the next n bytes one way."""

    def __init__(self) -> None:
        self.buffers = {"a": bytearray(), "b": bytearray()}
        self.cond = threading.Condition()
        self.corrupt_next_frame = {"a": 0, "b": 0}

    def end(self, me: str, other: str) -> tuple:
        def read(timeout: float) -> bytes:
            with self.cond:
                self.cond.wait_for(lambda: self.buffers[me], timeout)
                data, self.buffers[me][:] = bytes(self.buffers[me]), b""
                return data

        def write(data: bytes) -> None:
            with self.cond:
                if len(data) > 1 and self.corrupt_next_frame[other]:
                    self.corrupt_next_frame[other] -= 1
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                self.buffers[other] += data
                self.cond.notify_all()
        return read, write


def test_a_nak_makes_the_sender_retransmit_and_the_message_arrives_once() -> None:
    wire = Wire()
    a = ecr.Link(*wire.end("a", "b"), ack_timeout=0.5)
    b = ecr.Link(*wire.end("b", "a"), ack_timeout=0.5)
    wire.corrupt_next_frame["b"] = 1
    got: list = []
    receiver = threading.Thread(target=lambda: got.append(b.receive(3.0)))
    receiver.start()
    a.send(ecr.Message("QY", {"ORD": "A1"}))
    receiver.join()
    assert got == [ecr.Message("QY", {"ORD": "A1"})]
    assert a.counters["retransmitted"] == 1 and b.counters["naks_sent"] == 1


def test_no_ack_after_the_retries_is_a_link_timeout() -> None:
    wire = Wire()
    a = ecr.Link(*wire.end("a", "b"), ack_timeout=0.05, retries=2)
    started = time.monotonic()
    with pytest.raises(ecr.LinkTimeout):
        a.send(ecr.Message("ST"))
    assert a.counters["sent"] == 3 and time.monotonic() - started >= 0.15


def test_every_payment_error_has_a_code_and_citizen_text_in_both_languages() -> None:
    from drivers.payment.errors import ALL_PAYMENT_ERRORS
    from kiosk.i18n import table

    codes = [cls.code for cls in ALL_PAYMENT_ERRORS]
    assert len(set(codes)) == len(codes), "stable codes are unique"
    for cls in ALL_PAYMENT_ERRORS:
        for language in ("zh_CN", "en"):
            assert cls.translation_key in table(language), (cls.__name__, language)


def test_a_frame_that_stops_part_way_is_dropped_and_the_retransmission_arrives() -> None:
    wire = Wire()
    read_b, write_b = wire.end("b", "a")
    b = ecr.Link(read_b, write_b, inter_byte_timeout=0.1)
    _, write_to_b = wire.end("a", "b")
    good = ecr.encode_frame(ecr.Message("QY", {"ORD": "A2"}).encode())
    write_to_b(good[:-3])                              # the line died mid-frame
    assert b.receive(0.3) is None                      # nothing delivered; the half frame is forgotten after 0.1 s
    write_to_b(good)                                   # the sender's retransmission
    assert b.receive(1.0) == ecr.Message("QY", {"ORD": "A2"})


# --- known-answer vectors: bytes written out by hand from the framing in ecr.py's docstring -------------------------
#   STX | LEN_H LEN_L | DATA | ETX | LRC      LRC = XOR of LEN_H, LEN_L, every DATA byte and ETX
# The LRC values were worked out by hand (ST: 00^02^53^54^03 = 06; QY ORD=A1: 00^09^51^59^1C^4F^52^44^3D^41^31^03 = 0A)
# and are checked again below by a loop in this file, never by the driver's encoder.

KNOWN_FRAMES = [
    # status request "ST"
    (b"ST", bytes.fromhex("02 0002 5354 03 06")),
    # query "QY" FS "ORD=A1"
    (b"QY\x1cORD=A1", bytes.fromhex("02 0009 5159 1C 4F52443D4131 03 0A")),
    # empty data: LRC = 00 ^ 00 ^ 03
    (b"", bytes.fromhex("02 0000 03 03")),
]


def _independent_lrc(len_data_etx: bytes) -> int:
    value = 0
    for byte in len_data_etx:
        value ^= byte
    return value


@pytest.mark.parametrize("data, frame", KNOWN_FRAMES)
def test_known_frames_encode_and_decode(data: bytes, frame: bytes) -> None:
    assert _independent_lrc(frame[1:-1]) == frame[-1]          # the hand-written LRC is right
    assert ecr.encode_frame(data) == frame                      # the encoder reproduces the bytes
    assert list(ecr.FrameDecoder().feed(frame)) == [("frame", data)]


def test_known_sale_message_bytes() -> None:
    """SA FS ORD=T1 FS AMT=1500 FS MTH=unionpay_card, UTF-8, in the field order given."""
    data = b"SA\x1cORD=T1\x1cAMT=1500\x1cMTH=unionpay_card"
    message = ecr.Message("SA", {"ORD": "T1", "AMT": "1500", "MTH": "unionpay_card"})
    assert message.encode() == data
    assert ecr.Message.decode(data) == message
    frame = bytes([0x02, 0x00, len(data)]) + data + bytes([0x03])
    frame += bytes([_independent_lrc(frame[1:])])
    assert ecr.encode_frame(data) == frame
    assert frame[0:3] == bytes.fromhex("02 0024") and frame[-2:] == bytes.fromhex("03 75")   # LEN 36, LRC 75


def test_known_result_message_from_a_pad_decodes_field_by_field() -> None:
    data = "RS\x1cORD=T1\x1cST=approved\x1cRC=00\x1cREF=SIM240101000001\x1cPAN=622848*********0018\x1cAMT=1500"
    frame = b"\x02" + len(data).to_bytes(2, "big") + data.encode() + b"\x03"
    frame += bytes([_independent_lrc(frame[1:])])
    ((kind, payload),) = list(ecr.FrameDecoder().feed(frame))
    message = ecr.Message.decode(payload)  # type: ignore[arg-type]
    assert kind == "frame" and message.type == "RS"
    assert dict(message.fields) == {"ORD": "T1", "ST": "approved", "RC": "00", "REF": "SIM240101000001",
                                    "PAN": "622848*********0018", "AMT": "1500"}


@pytest.mark.parametrize("frame, reason", [
    (bytes.fromhex("02 0002 5354 03 07"), "lrc"),      # LRC off by one bit
    (bytes.fromhex("02 0002 5354 04 06"), "etx"),      # no ETX where LEN says it is
])
def test_known_bad_frames_are_refused(frame: bytes, reason: str) -> None:
    assert list(ecr.FrameDecoder().feed(frame)) == [("bad", reason)]


def test_link_control_bytes() -> None:
    assert (ecr.STX, ecr.ETX, ecr.ACK, ecr.NAK, ecr.FS) == (0x02, 0x03, 0x06, 0x15, 0x1C)
    assert list(ecr.FrameDecoder().feed(b"\x06\x15")) == [("ack", b""), ("nak", b"")]
