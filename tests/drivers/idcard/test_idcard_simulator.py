"""The simulator's own contract: endpoint line, raw frame answers, control command validation."""
from __future__ import annotations

import pytest
import serial

from drivers.idcard import protocol as p
from drivers.idcard.identity import decode_extra_address, encode_extra_address
from drivers.idcard.simulator import PHOTO_HEADER, synthetic_fingerprint, synthetic_photo
from drivers.sim.process import SimulatorProcess


def _exchange(port: str, request: bytes) -> p.Response:
    with serial.Serial(port, 115200, timeout=2.0) as line:
        line.reset_input_buffer()
        line.write(request)
        decoder = p.FrameDecoder()
        while True:
            chunk = line.read(max(1, line.in_waiting))
            assert chunk, "no reply from the simulator"
            for frame in decoder.feed(chunk):
                return frame.response()


def test_endpoint_line(sim: SimulatorProcess) -> None:
    assert sim.endpoints["kind"] == "idcard"
    assert sim.endpoints["pty"].startswith("/dev/pts/")
    assert sim.endpoints["control"].startswith("127.0.0.1:")
    assert sim.endpoints["baud"] == 115200


def test_raw_frames_are_answered_like_a_reader(sim: SimulatorProcess) -> None:
    port = sim.endpoints["pty"]
    assert _exchange(port, p.build_request(p.SAM_STATUS)).sw3 == p.Sw3.OK
    assert _exchange(port, p.build_request(p.FIND_CARD)) == p.Response(p.Sw3.NO_CARD, b"")
    assert _exchange(port, p.build_request(p.SELECT_CARD)).sw3 == p.Sw3.SELECT_FAILED
    assert _exchange(port, p.build_request(p.READ_TEXT_PHOTO)).sw3 == p.Sw3.READ_FAILED
    assert _exchange(port, p.build_request(0x55, 0x01)).sw3 == p.Sw3.BAD_COMMAND
    bad = bytearray(p.build_request(p.FIND_CARD))
    bad[-1] ^= 0x01
    assert _exchange(port, bytes(bad)).sw3 == p.Sw3.CHECKSUM_ERROR


@pytest.mark.parametrize("key, fingerprint, address", [
    ("chen", b"", None),
    ("zhang", synthetic_fingerprint("zhang:340302195803172018"), None),
    ("zhao", b"", ["安徽省蚌埠市龙子湖区治淮路8号", "安徽省蚌埠市蚌山区涂山路266号"]),
])
def test_fingerprint_read_and_extra_address(sim: SimulatorProcess, key: str, fingerprint: bytes,
                                            address: list[str] | None) -> None:
    port = sim.endpoints["pty"]
    sim.control("place_card", identity=key)
    assert _exchange(port, p.build_request(p.FIND_CARD)).sw3 == p.Sw3.CARD_FOUND
    select = _exchange(port, p.build_request(p.SELECT_CARD))
    assert select.sw3 == p.Sw3.OK and len(select.data) == 8
    reply = _exchange(port, p.build_request(p.READ_TEXT_PHOTO_FP))
    assert reply.data[:6] == bytes([0x01, 0x00, 0x04, 0x00, len(fingerprint) >> 8, len(fingerprint) & 0xFF])
    text, photo, fp = p.split_card_data(reply.data, with_fingerprint=True)
    assert (len(text), len(photo), fp) == (256, 1024, fingerprint)
    extra = _exchange(port, p.build_request(p.READ_EXTRA_ADDRESS))
    if address is None:
        assert extra.sw3 == p.Sw3.FIELD_NOT_ON_CARD
    else:
        assert extra.sw3 == p.Sw3.OK and len(extra.data) == 140 and extra.data == encode_extra_address(*address)
        assert decode_extra_address(extra.data) == address[-1]


def test_control_commands_validate_their_arguments(sim: SimulatorProcess) -> None:
    assert sim.control("place_card", identity="nobody")["ok"] is False
    assert sim.control("inject_fault", kind="melt")["ok"] is False
    assert sim.control("inject_fault", kind="silence", n=3)["ok"] is False
    assert sim.control("inject_fault", kind="sw3", code="0x41", command="fly")["ok"] is False
    reply = sim.control("inject_fault", kind="sw3", code="0x41", command="read")
    assert reply["ok"] and reply["faults"] == {"sw3": {"code": 0x41, "command": "read"}}
    assert sim.control("status")["faults"] == reply["faults"]
    assert sim.control("clear_faults")["faults"] == {}
    listing = sim.control("list_identities")["identities"]
    assert listing["zhang"] == {"kind": "resident_id", "masked_id": "3403**********2018", "masked_name": "张*华"}


def test_synthetic_photo_is_deterministic() -> None:
    photo = synthetic_photo("zhang:340302195803172018")
    assert len(photo) == 1024 and photo.startswith(PHOTO_HEADER)
    assert photo == synthetic_photo("zhang:340302195803172018") != synthetic_photo("li:35010219490822102X")
