"""The virtual card process on its own: vpcd's wire protocol byte for byte (we play vpcd here), control commands."""
from __future__ import annotations

import socket
import struct
from typing import Any, Callable, Iterator

import pytest

from drivers.sim.process import ManagedProcess
from drivers.smartcard import apdu as a
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss
from drivers.smartcard.simulator import reader_name_for_port


class FakeVpcd:
    """The vpcd side of the socket: a listening TCP port the card process connects to."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(5)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", len(payload)) + payload)

    def recv(self) -> bytes:
        assert self.conn is not None
        head = self._exactly(2)
        return self._exactly(struct.unpack(">H", head)[0])

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))  # type: ignore[union-attr]
            if not chunk:
                raise EOFError("card closed the connection")
            buf += chunk
        return buf

    def apdu(self, command: bytes) -> bytes:
        self.send(command)
        return self.recv()

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.server.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def _ctl(proc: ManagedProcess, cmd: str, **args: Any) -> dict[str, Any]:
    from drivers.sim.control import send_command

    return send_command(proc.endpoints["control"], cmd, **args)


def test_endpoint_line_and_vpcd_protocol(vpcd: FakeVpcd, start_card: Callable[..., ManagedProcess]) -> None:
    proc = start_card("--tcp", f"127.0.0.1:{vpcd.port}")
    assert proc.endpoints["kind"] == "smartcard" and proc.endpoints["vpcd"] == f"127.0.0.1:{vpcd.port}"
    assert proc.endpoints["control"].startswith("127.0.0.1:")
    assert reader_name_for_port(35963) == "Virtual PCD 00 00" and reader_name_for_port(35964) == "Virtual PCD 00 01"
    reply = _ctl(proc, "insert_card", card="social_security", identity="zhang")
    assert reply["ok"] and reply["connected"] is True
    vpcd.accept()
    vpcd.send(b"\x04")                                    # get ATR
    atr = vpcd.recv()
    assert atr[0] == 0x3B and atr[1] >> 4 == 0x6 and len(atr) == 4 + (atr[1] & 0x0F)
    vpcd.send(b"\x01")                                    # power on: no answer; the next message is answered
    assert vpcd.apdu(a.select_by_name_no_le(ss.SSSE_AID))[-2] == 0x61
    fci = vpcd.apdu(a.get_response(0))
    assert fci[-2:] == b"\x90\x00" and ss.SSSE_AID in fci
    assert vpcd.apdu(a.read_record(7, 5)) == b"\x6C\x0B"   # T=0: wrong Le → 6Cxx with the length
    assert vpcd.apdu(a.read_record(7, 5, le=0x0B)) == b"\x07\x09B34031688\x90\x00"
    assert vpcd.apdu(a.read_record(9, 5, le=0x0B)) == b"\x6A\x83"
    assert vpcd.apdu(bytes.fromhex("80CA9F7F00")) == b"\x6E\x00"
    vpcd.send(b"\x02")                                    # reset: the application is deselected
    assert vpcd.apdu(a.read_record(7, 5, le=0x0B)) == b"\x69\x85"
    assert _ctl(proc, "status")["counters"]["apdus"] == 7
    assert _ctl(proc, "remove_card")["removed"]["identity"] == "zhang"
    with pytest.raises(EOFError):                        # taking the card out closes the connection
        vpcd.recv()


def test_bank_card_and_error_card_on_the_wire(vpcd: FakeVpcd, start_card: Callable[..., ManagedProcess]) -> None:
    proc = start_card("--tcp", f"127.0.0.1:{vpcd.port}")
    _ctl(proc, "insert_card", card="bank", bank="unionpay_credit")
    vpcd.accept()
    assert vpcd.apdu(a.select_by_name(bc.PPSE)) == b"\x6A\x82"          # this card has no PPSE
    fci = vpcd.apdu(a.select_by_name(bc.UNIONPAY_AID_PREFIX))
    assert fci[-2:] == b"\x90\x00" and bytes.fromhex("A000000333010102") in fci
    assert vpcd.apdu(bytes.fromhex("80A8000002830000")) == b"\x67\x00"   # PDOL data of the wrong length
    selected = bc.parse_application_fci(fci[:-2])
    gpo = vpcd.apdu(bc.gpo_command(bc.pdol_data(selected.pdol)))
    assert gpo[0] == 0x80 and bc.parse_gpo(gpo[:-2])[1] == bytes.fromhex("0801020010010100")
    records = [vpcd.apdu(a.read_record(r, s))[:-2] for s, r in bc.parse_afl(bc.parse_gpo(gpo[:-2])[1])]
    assert bc.masked_pan_from_records(records) == "629999*********8907"
    _ctl(proc, "insert_card", card="error", sw="6581")                   # swap: the old connection closes
    with pytest.raises(EOFError):
        vpcd.recv()
    vpcd.accept()
    assert vpcd.apdu(a.select_by_name(bc.PPSE)) == b"\x65\x81"


def test_faults_on_the_wire(vpcd: FakeVpcd, start_card: Callable[..., ManagedProcess]) -> None:
    proc = start_card("--tcp", f"127.0.0.1:{vpcd.port}")
    _ctl(proc, "insert_card", card="social_security", identity="chen")
    vpcd.accept()
    assert _ctl(proc, "inject_fault", kind="sw", sw="6581", ins="A4")["faults"]["sw"][0]["sw"] == "6581"
    assert vpcd.apdu(a.select_by_name_no_le(ss.SSSE_AID)) == b"\x65\x81"
    assert vpcd.apdu(a.select_by_name_no_le(ss.SSSE_AID)) == b"\x61\x15"   # the FCI is 21 bytes
    vpcd.apdu(a.get_response(0x15))
    _ctl(proc, "inject_fault", kind="corrupt", ins="B2")
    corrupt = vpcd.apdu(a.read_record(1, 6, le=20))
    assert corrupt[-2:] == b"\x90\x00" and len(corrupt) == 2 + 10
    _ctl(proc, "inject_fault", kind="pull_after_apdus", n=1)
    assert vpcd.apdu(a.read_record(1, 6, le=20))[-2:] == b"\x90\x00"
    with pytest.raises(EOFError):
        vpcd.recv()
    status = _ctl(proc, "status")
    assert status["card_present"] is False and status["counters"]["faults_fired"] == 3


def test_control_commands_validate_their_arguments(vpcd: FakeVpcd,
                                                   start_card: Callable[..., ManagedProcess]) -> None:
    proc = start_card("--tcp", f"127.0.0.1:{vpcd.port}")
    for cmd, args in [("insert_card", {"card": "passport"}), ("insert_card", {"identity": "huang_hk"}),
                      ("insert_card", {"card": "bank", "bank": "amex"}), ("insert_card", {"card": "error", "sw": "12"}),
                      ("inject_fault", {"kind": "melt"}), ("inject_fault", {"kind": "delay", "ms": -1}),
                      ("inject_fault", {"kind": "pull_after_apdus", "n": -2})]:
        assert _ctl(proc, cmd, **args)["ok"] is False, (cmd, args)
    listing = _ctl(proc, "list_cards")
    assert listing["social_security"]["zhang"] == {"masked_id": "3403**********2018", "masked_name": "张*华",
                                                   "pin_required": False}
    assert listing["social_security"]["li"]["pin_required"] is True
    assert listing["bank"]["unionpay_debit"]["masked_pan"] == "629999******0017"
    text = str(listing)
    assert "6299990000000017" not in text and "340302195803172018" not in text
    reply = _ctl(proc, "place_card", identity="yang")     # the ID reader simulator's command works here too
    assert reply["ok"] and reply["card"] == "social_security" and reply["identity"] == "yang"


def test_no_vpcd_listening_the_card_waits_for_it(start_card: Callable[..., ManagedProcess]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                                          # nobody listens there now
    proc = start_card("--tcp", f"127.0.0.1:{port}")
    reply = _ctl(proc, "insert_card", card="bank")
    assert reply["ok"] and reply["connected"] is False
    assert _ctl(proc, "status")["counters"]["connect_failures"] >= 1
