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
