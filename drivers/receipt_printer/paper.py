"""What came out of the emulated printer: page elements, their text, and a Pillow rendering at printer resolution.

One dot is one pixel: 203 dpi, 8 dots/mm, 576 dots across the printable width of 80 mm paper and 384 for 58 mm
(the usual Chinese kiosk printer heads). Characters use printer Font A cells — 12×24 dots for single-byte
characters, 24×24 for Kanji — drawn with Noto Sans Mono CJK SC, whose glyphs have exactly those advances.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Union

from PIL import Image, ImageDraw, ImageFont

DOTS_PER_MM = 8
PRINTABLE_DOTS = {80: 576, 58: 384}
ANK_CELL, KANJI_CELL, CELL_HEIGHT = 12, 24, 24
DEFAULT_LINE_SPACING = 30          # dots, ESC 2 (about 1/6 inch)
GLYPH_SIZE, BASELINE = 22, 19      # Noto at 22 px: ideographs 19 up / 3 down, Latin descenders 6 down: fits 24 dots
TOP_MARGIN = 16

FONT_PATHS = {
    False: os.environ.get("GOVKIOSK_RECEIPT_FONT", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    True: os.environ.get("GOVKIOSK_RECEIPT_FONT_BOLD", "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
}
FONT_FACE = "Noto Sans Mono CJK SC"

ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT = 0, 1, 2


@dataclass
class Cell:
    ch: str
    wide: bool = False
    bold: bool = False
    underline: int = 0
    w: int = 1
    h: int = 1

    @property
    def width(self) -> int:
        return (KANJI_CELL if self.wide else ANK_CELL) * self.w


@dataclass
class TextLine:
    cells: list[Cell] = field(default_factory=list)
    align: int = ALIGN_LEFT
    spacing: int = DEFAULT_LINE_SPACING

    @property
    def text(self) -> str:
        return "".join(c.ch for c in self.cells).rstrip()

    @property
    def width(self) -> int:
        return sum(c.width for c in self.cells)


@dataclass
class Feed:
    dots: int
    lines: int = 0          # how many blank text lines this is (for the .txt); 0 for a dot feed


@dataclass
class QrSymbol:
    data: bytes
    module: int = 3
    ec: int = 0             # 0 L, 1 M, 2 Q, 3 H
    align: int = ALIGN_LEFT

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class BarcodeSymbol:
    symbology: str
    data: str
    module: int = 3
    height: int = 162
    hri: int = 0            # 0 none, 1 above, 2 below, 3 both
    align: int = ALIGN_LEFT


@dataclass
class Picture:
    image: Image.Image      # mode "L", black = printed
    align: int = ALIGN_LEFT


Element = Union[TextLine, Feed, QrSymbol, BarcodeSymbol, Picture]


def page_lines(elements: list[Element]) -> list[str]:
    """The page as text, one entry per printed line; symbols appear as ``[QR:…]``, ``[BARCODE:…]``, ``[IMAGE w×h]``."""
    lines: list[str] = []
    for el in elements:
        if isinstance(el, TextLine):
            lines.append(el.text)
        elif isinstance(el, Feed):
            lines.extend([""] * el.lines)
        elif isinstance(el, QrSymbol):
            lines.append(f"[QR:{el.text}]")
        elif isinstance(el, BarcodeSymbol):
            lines.append(f"[BARCODE:{el.data}]")
        elif isinstance(el, Picture):
            lines.append(f"[IMAGE {el.image.width}x{el.image.height}]")
    return lines


# rendering ------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _font(bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_PATHS[bold]
    if not os.path.exists(path):
        path = FONT_PATHS[False]
    for index in range(16):
        try:
            font = ImageFont.truetype(path, GLYPH_SIZE, index=index)
        except OSError:
            break
        if font.getname()[0] == FONT_FACE:
            return font
    try:
        return ImageFont.truetype(path, GLYPH_SIZE)
    except OSError:
        return ImageFont.load_default()


@functools.lru_cache(maxsize=4096)
def _glyph(ch: str, wide: bool, bold: bool) -> Image.Image:
    cell = Image.new("L", (KANJI_CELL if wide else ANK_CELL, CELL_HEIGHT), 255)
    ImageDraw.Draw(cell).text((cell.width / 2, BASELINE), ch, font=_font(bold), fill=0, anchor="ms")
    return cell


def _x(align: int, width: int, dots: int) -> int:
    if align == ALIGN_CENTER:
        return max(0, (dots - width) // 2)
    if align == ALIGN_RIGHT:
        return max(0, dots - width)
    return 0


def _render_line(line: TextLine, dots: int) -> Image.Image:
    height = max([c.h * CELL_HEIGHT for c in line.cells] or [CELL_HEIGHT])
    pitch = max(line.spacing, height)
    img = Image.new("L", (dots, pitch), 255)
    x = _x(line.align, line.width, dots)
    for c in line.cells:
        glyph = _glyph(c.ch, c.wide, c.bold)
        if c.w != 1 or c.h != 1:
            glyph = glyph.resize((glyph.width * c.w, glyph.height * c.h), Image.Resampling.NEAREST)
        img.paste(glyph, (x, height - glyph.height))
        if c.underline:
            ImageDraw.Draw(img).rectangle((x, height - c.underline, x + glyph.width - 1, height - 1), fill=0)
        x += glyph.width
    return img


def qr_image(symbol: QrSymbol) -> Image.Image:
    import qrcode  # a dependency of python-escpos

    levels = [qrcode.constants.ERROR_CORRECT_L, qrcode.constants.ERROR_CORRECT_M,
              qrcode.constants.ERROR_CORRECT_Q, qrcode.constants.ERROR_CORRECT_H]
    qr = qrcode.QRCode(version=None, error_correction=levels[symbol.ec & 3], box_size=max(1, symbol.module),
                       border=0)
    qr.add_data(symbol.data)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("L")


_PYTHON_BARCODE = {"UPC-A": "upca", "EAN13": "ean13", "EAN8": "ean8", "CODE39": "code39", "ITF": "itf",
                   "CODABAR": "codabar", "CODE128": "code128", "GS1-128": "gs1_128"}


def barcode_image(symbol: BarcodeSymbol) -> Image.Image:
    """Bars from python-barcode's module pattern (the printer's own code-set choices may differ; the data does not),
    HRI characters in Font A. Unknown symbologies become a hatched box of the right height."""
    modules = ""
    name = _PYTHON_BARCODE.get(symbol.symbology)
    if name:
        try:
            import barcode  # python-barcode, a dependency of python-escpos

            options = {"add_checksum": False} if name == "code39" else {}
            modules = barcode.get_barcode_class(name)(symbol.data, **options).build()[0]
        except Exception:  # data the library refuses: draw the placeholder
            modules = ""
    width = len(modules) * symbol.module if modules else 200
    hri_lines = [symbol.hri in (1, 3), symbol.hri in (2, 3)]
    top = CELL_HEIGHT if hri_lines[0] else 0
    img = Image.new("L", (width, top + symbol.height + (CELL_HEIGHT if hri_lines[1] else 0)), 255)
    draw = ImageDraw.Draw(img)
    if modules:
        for i, bit in enumerate(modules):
            if bit == "1":
                draw.rectangle((i * symbol.module, top, (i + 1) * symbol.module - 1, top + symbol.height - 1), fill=0)
    else:
        draw.rectangle((0, top, width - 1, top + symbol.height - 1), outline=0)
        for x in range(0, width + symbol.height, 12):
            draw.line((x, top, x - symbol.height, top + symbol.height - 1), fill=0)
    hri = TextLine([Cell(ch) for ch in symbol.data if " " <= ch <= "~"], ALIGN_CENTER, CELL_HEIGHT)
    for on, y in zip(hri_lines, (0, top + symbol.height)):
        if on:
            img.paste(_render_line(hri, width), (0, y))
    return img


def render_page(elements: list[Element], dots: int) -> Image.Image:
    """Draw the elements top to bottom on a strip ``dots`` wide (white paper, black print)."""
    parts: list[tuple[Image.Image, int]] = []
    for el in elements:
        if isinstance(el, TextLine):
            parts.append((_render_line(el, dots), 0))
        elif isinstance(el, Feed):
            if el.dots > 0:
                parts.append((Image.new("L", (dots, el.dots), 255), 0))
        else:
            if isinstance(el, QrSymbol):
                img = qr_image(el)
            elif isinstance(el, BarcodeSymbol):
                img = barcode_image(el)
            else:
                img = el.image
            if img.width > dots:            # a printer drops what does not fit; keep it visible, cropped
                img = img.crop((0, 0, dots, img.height))
            parts.append((img, _x(el.align, img.width, dots)))
    height = TOP_MARGIN * 2 + sum(img.height for img, _ in parts)
    page = Image.new("L", (dots, height), 255)
    y = TOP_MARGIN
    for img, x in parts:
        page.paste(img, (x, y))
        y += img.height
    return page
