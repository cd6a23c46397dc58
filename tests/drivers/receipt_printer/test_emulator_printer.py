"""The emulated printer in-process: status bytes, print modes, line wrapping, images, paper-out, rendering."""
from __future__ import annotations

from pathlib import Path

import pytest
from escpos.constants import RT_MASK_LOWPAPER, RT_MASK_NOPAPER, RT_MASK_ONLINE, RT_MASK_PAPER
from PIL import Image

from drivers.receipt_printer import paper as P
from drivers.receipt_printer.emulator import EmulatedPrinter, decode_code128
from drivers.receipt_printer.escpos_printer import escpos_printers

GB = "gb18030"
EOT = b"\x10\x04"


@pytest.fixture
def printer(tmp_path: Path) -> EmulatedPrinter:
    return EmulatedPrinter(str(tmp_path))


def python_escpos_paper_status(b: int) -> int:
    """python-escpos 3.1 Escpos.paper_status() on one reply byte."""
    if b & RT_MASK_NOPAPER == RT_MASK_NOPAPER:
        return 0
    if b & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER:
        return 1
    return 2 if b & RT_MASK_PAPER == RT_MASK_PAPER else 0


@pytest.mark.parametrize(("setup", "online", "paper", "cause"), [
    ({}, True, 2, 0x12),
    ({"paper": "near_end"}, True, 1, 0x12),
    ({"paper": "out"}, False, 0, 0x32),
    ({"cover_open": True}, False, 2, 0x16),
    ({"online": False}, False, 2, 0x12),
    ({"error": "autocutter"}, False, 2, 0x52),
])
def test_dle_eot_replies_like_a_printer(printer: EmulatedPrinter, setup: dict, online: bool, paper: int,
                                        cause: int) -> None:
    for key, value in setup.items():
        setattr(printer, key, value)

    replies = printer.receive(EOT + b"\x01" + EOT + b"\x02" + EOT + b"\x03" + EOT + b"\x04")

    assert len(replies) == 4
    assert all(b & 0b10010011 == 0b00010010 for b in replies)          # 0xx1xx10
    assert (not replies[0] & RT_MASK_ONLINE) is online                  # python-escpos is_online()
    assert replies[1] == cause
    assert python_escpos_paper_status(replies[3]) == paper
    assert replies[2] == (0x1A if setup.get("error") else 0x12)


def test_gs_r_is_answered_in_order_and_not_while_stopped(printer: EmulatedPrinter) -> None:
    assert printer.receive(b"hello\n\x1dr\x01") == b"\x00"
    printer.paper = "near_end"
    assert printer.receive(b"\x1dr\x01") == b"\x03"                    # bit 4 = 0: never mistaken for DLE EOT
    printer.cover_open = True
    assert printer.receive(b"more\n\x1dr\x01" + EOT + b"\x01") == b"\x1a"   # only the real-time request answered
    assert printer.discarded_bytes == len(b"more\n\x1dr\x01")


def test_esc_bang_enlarges_only_single_byte_characters_gs_bang_all(printer: EmulatedPrinter) -> None:
    printer.receive(b"\x1b!\x38A" + "中".encode(GB) + b"\n")                  # ESC ! bold + double: ANK only
    printer.receive(b"\x1b!\x00\x1d!\x11B" + "中".encode(GB) + b"\n")           # GS ! 2x2: both
    printer.receive(b"\x1d!\x00\x1c!\x0cC" + "中".encode(GB) + b"\n")           # FS ! 2x2: Kanji only
    sizes = [[(c.ch, c.w, c.h, c.bold, c.wide) for c in line.cells] for line in printer.page]
    assert sizes == [
        [("A", 2, 2, True, False), ("中", 1, 1, True, True)],
        [("B", 2, 2, False, False), ("中", 2, 2, False, True)],
        [("C", 1, 1, False, False), ("中", 2, 2, False, True)],
    ]


def test_text_wraps_at_the_right_edge_and_alignment_holds_per_line(printer: EmulatedPrinter) -> None:
    printer.receive(b"\x1ba\x01" + ("字" * 30).encode(GB) + b"\n\x1ba\x02R\n")
    lines = [(line.text, line.align) for line in printer.page]
    assert lines == [("字" * 24, 1), ("字" * 6, 1), ("R", 2)]               # 24 x 24 dots = 576

    printer.set_paper_width(58)
    printer.receive(("字" * 20).encode(GB) + b"\n")
    assert [len(line.text) for line in printer.page[3:]] == [16, 4]        # 384 dots


def test_cut_writes_txt_and_png_with_layout(printer: EmulatedPrinter, tmp_path: Path) -> None:
    printer.receive(b"\x1ba\x01\x1d!\x11" + "标题".encode(GB) + b"\n\x1d!\x00\x1ba\x00left\n\x1bd\x02\x1dV\x00")

    [receipt] = printer.receipts
    assert receipt["text"] == "标题\nleft\n\n"
    assert Path(receipt["txt"]).read_text("utf-8") == "标题\nleft\n\n\n"
    png = Image.open(receipt["png"]).convert("L")
    assert png.width == 576
    dark = [(x, y) for y in range(png.height) for x in range(png.width) if png.getpixel((x, y)) < 128]
    title = [(x, y) for x, y in dark if y < P.TOP_MARGIN + 48]
    xs = [x for x, _ in title]
    assert abs((min(xs) + max(xs)) / 2 - 288) < 12                            # centred
    assert max(xs) - min(xs) > 80 and max(y for _, y in title) - min(y for _, y in title) > 30   # double size
    body = [x for x, y in dark if P.TOP_MARGIN + 48 <= y < P.TOP_MARGIN + 48 + 30]
    assert body and max(body) < 4 * 12                                        # "left", at the left edge


def test_python_escpos_raster_image_is_rendered(printer: EmulatedPrinter) -> None:
    image = Image.new("1", (64, 32), 1)
    image.paste(0, (8, 4, 40, 20))                                             # a 32 x 16 black block
    d = escpos_printers.Dummy(profile="TM-T88V")
    d.image(image, impl="bitImageRaster", center=False)
    d.cut()

    printer.receive(d.output)

    [receipt] = printer.receipts
    assert receipt["images"] == 1
    png = Image.open(receipt["png"]).convert("L")
    dark = [(x, y) for y in range(png.height) for x in range(png.width) if png.getpixel((x, y)) < 128]
    xs, ys = {x for x, _ in dark}, {y for _, y in dark}
    assert (min(xs), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1) == (8, 32, 16)


def test_paper_runs_out_inside_a_text_run(printer: EmulatedPrinter) -> None:
    printer.receive(b"first line\n")
    printer.paper_out_after(5)

    printer.receive(b"ABCDEFGH\n\x1dV\x00" + EOT + b"\x04")

    [partial] = printer.receipts
    assert (partial["text"], partial["cut"]) == ("first line\nABCDE", False)
    assert partial["txt"].endswith("receipt-0001.partial.txt")
    assert printer.paper == "out" and printer.discarded_bytes == len(b"FGH\n\x1dV\x00")
    printer.set_paper("ok")
    printer.receive(b"again\n\x1dV\x00")
    assert [r["text"] for r in printer.receipts] == ["first line\nABCDE", "again"]


def test_set_paper_out_with_printed_lines_saves_them_as_partial(printer: EmulatedPrinter) -> None:
    printer.receive("打印到一半".encode(GB) + b"\n")
    printer.set_paper("out")
    assert [(r["text"], r["partial"]) for r in printer.receipts] == [("打印到一半", True)]


def test_barcode_render_and_code128_data(printer: EmulatedPrinter) -> None:
    assert decode_code128(b"{C\x14\x1a\x00\x01") == "20260001"
    assert decode_code128(b"{BAB{{C{C\x0c") == "AB{C12"

    printer.receive(b"\x1ba\x01\x1dh\x50\x1dw\x02\x1dH\x02\x1dkI\x09{C\x14\x1a\x00\x01{BX\x1dV\x00")

    [receipt] = printer.receipts
    assert receipt["barcodes"] == [{"symbology": "CODE128", "data": "20260001X"}]
    png = Image.open(receipt["png"]).convert("L")
    row = [png.getpixel((x, P.TOP_MARGIN + 40)) < 128 for x in range(png.width)]
    edges = sum(1 for a, b in zip(row, row[1:]) if a != b)
    assert edges > 20                                                         # bars, not a blank strip
