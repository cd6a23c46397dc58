"""The ESC/POS stream parser, fed byte strings — hand-written ones and what python-escpos' Dummy printer produces."""
from __future__ import annotations

import pytest
from PIL import Image

from drivers.receipt_printer.escpos_parser import Command, EscPosParser, Text
from drivers.receipt_printer.escpos_printer import escpos_printers  # sets the escpos capabilities cache first

GB = "gb18030"


def feed_all(*chunks: bytes, parser: EscPosParser | None = None) -> list:
    parser = parser or EscPosParser()
    events: list = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def merged(events: list) -> list:
    """Adjacent Text events joined (how text is split into events depends on where the chunks ended)."""
    out: list = []
    for e in events:
        if isinstance(e, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + e.text)
        else:
            out.append(e)
    return out


def test_full_width_punctuation_decodes_exactly() -> None:
    text = "办件编号：SP2026（请妥善保管）。“营业执照”、《通知》！"
    assert feed_all(text.encode(GB) + b"\n") == [Text(text), Command("LF")]


@pytest.mark.parametrize("char", ["，", "办", "€", "😀", "\u0080"])
def test_gb18030_character_split_across_two_feeds(char: str) -> None:
    raw = char.encode(GB)
    assert len(raw) in (2, 4)
    for cut in range(1, len(raw)):
        parser = EscPosParser()
        first = parser.feed(b"A" + raw[:cut])
        assert first == [Text("A")] and not parser.idle        # the half character waits for the rest
        assert parser.feed(raw[cut:] + b"B") == [Text(char + "B")]
        assert parser.idle


def test_stream_fed_one_byte_at_a_time_gives_the_same_events() -> None:
    stream = (b"\x1b@\x1b!\x08" + "标题：".encode(GB) + b"\n\x1d(k\x0a\x001P0SP\n\x1b\x1d\x00X\x1d(k\x03\x001Q0"
              + b"\x1dv0\x00\x01\x00\x02\x00\x1b\n" + "尾。".encode(GB) + b"\x1dV\x00")
    whole = EscPosParser().feed(stream)
    bytewise = feed_all(*(stream[i:i + 1] for i in range(len(stream))))
    assert merged(bytewise) == whole
    assert [e.name for e in whole if isinstance(e, Command)] == ["ESC @", "ESC !", "LF", "GS ( k", "GS ( k",
                                                                "GS v 0", "GS V"]
    # control bytes inside QR data and raster bits are data, not commands
    assert whole[4] == Command("GS ( k", (49, 80), b"0SP\n\x1b\x1d\x00X")
    assert whole[6] == Command("GS v 0", (0, 1, 2), b"\x1b\n")
    assert sum(e.nbytes for e in whole) == len(stream)          # every byte accounted for


def test_kanji_mode_on_and_off() -> None:
    parser = EscPosParser(kanji_default=False)
    events = parser.feed(b"\x1c&" + "中文".encode(GB) + b"\x1c." + bytes([0x82, 0xE9]))
    assert events == [Command("FS &"), Text("中文"), Command("FS ."), Text("éΘ")]   # cp437 outside Kanji mode
    assert [e.kanji for e in events if isinstance(e, Text)] == [True, False]
    assert parser.kanji is False
    assert parser.feed(b"\x1b@") == [Command("ESC @")] and parser.kanji is False   # back to the power-on default


def test_broken_multibyte_sequence_is_replaced_and_the_stream_continues() -> None:
    assert feed_all(b"\xb0\nOK\x80") == [Text("\ufffd"), Command("LF"), Text("OK\ufffd")]


def test_realtime_status_requests() -> None:
    events = feed_all(b"\x10\x04\x01\x10\x04\x04\x10\x04\x07\x01\x10\x05\x02\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08")
    assert events == [Command("DLE EOT", (1,)), Command("DLE EOT", (4,)), Command("DLE EOT", (7, 1)),
                      Command("DLE ENQ", (2,)), Command("DLE DC4", (8, 1, 3, 20, 1, 6, 2, 8))]
    assert all(e.realtime for e in events)
    assert not Command("GS r", (1,)).realtime


def test_barcode_forms_and_cuts() -> None:
    events = feed_all(b"\x1dk\x04CODE39\x00", b"\x1dkI\x05{B1{2", b"\x1dVA\x10\x1dV\x01\x1dV1")
    assert events == [Command("GS k", (4,), b"CODE39"), Command("GS k", (73,), b"{B1{2"),
                      Command("GS V", (65, 16)), Command("GS V", (1,)), Command("GS V", (49,))]


def test_unknown_commands_are_reported_without_losing_step() -> None:
    assert feed_all(b"\x1b\x01x\x1d\x01\x02y") == [Command("ESC ? 01", (1,)), Text("x"), Command("GS ? 01", (1,)),
                                                  Command("CTRL 02"), Text("y")]


# --- what python-escpos sends --------------------------------------------------------------------------------------

def dummy() -> object:
    return escpos_printers.Dummy(profile="TM-T88V")


def test_python_escpos_text_styles_and_feed() -> None:
    d = dummy()
    d.set(align="center", bold=True, double_width=True, double_height=True)
    d.textln("Total")
    d.set(custom_size=True, width=2, height=2)
    d.print_and_feed(3)
    events = EscPosParser().feed(d.output)
    assert events == [Command("ESC !", (0,)), Command("ESC !", (0,)), Command("ESC !", (0x30,)),
                      Command("ESC E", (1,)), Command("ESC a", (1,)), Command("ESC t", (0,)), Text("Total"),
                      Command("LF"),
                      Command("GS !", (0x11,)), Command("ESC d", (3,))]


def test_python_escpos_native_qr() -> None:
    d = dummy()
    d.qr("SP2026041500123", native=True, size=6, ec=1)
    events = EscPosParser().feed(d.output)
    assert events == [Command("GS ( k", (49, 65), b"2\x00"), Command("GS ( k", (49, 67), b"\x06"),
                      Command("GS ( k", (49, 69), b"1"), Command("GS ( k", (49, 80), b"0SP2026041500123"),
                      Command("GS ( k", (49, 81), b"0")]


def test_python_escpos_raster_image_and_cut() -> None:
    image = Image.new("1", (16, 2), 1)
    image.putpixel((0, 0), 0)                          # one black dot, top left
    d = dummy()
    d.image(image, impl="bitImageRaster", center=False)
    d.cut()
    events = EscPosParser().feed(d.output)
    raster = [e for e in events if isinstance(e, Command) and e.name == "GS v 0"]
    assert len(raster) == 1 and raster[0].params == (0, 2, 2)    # 2 bytes wide, 2 rows
    assert raster[0].data == b"\x80\x00\x00\x00"
    assert [e.name for e in events if isinstance(e, Command)][-2:] == ["ESC d", "GS V"]


def test_python_escpos_hardware_barcode() -> None:
    d = dummy()
    d.barcode("{B2026-001", "CODE128", height=80, width=2, pos="BELOW", align_ct=True)
    events = EscPosParser().feed(d.output)
    assert events == [Command("ESC a", (1,)), Command("GS h", (80,)), Command("GS w", (2,)), Command("GS f", (0,)),
                      Command("GS H", (2,)), Command("GS k", (73,), b"{B2026-001")]
