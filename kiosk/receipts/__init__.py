"""Receipt layouts as templates (``*.j2``), rendered into a :class:`~drivers.receipt_printer.document.Receipt`.

A template is Jinja2 text in which each output line is one block; a line may start with a directive:

    @title TEXT     centred, bold, double size         @rule          a line across the paper
    @center TEXT    centred                             @qr DATA       a QR code
    @bold TEXT      bold                                @barcode DATA  a CODE128 barcode
    @right TEXT     right-aligned                       @feed N        N empty lines

Any other line is plain text; blank lines are kept as empty text lines, except leading and trailing ones.
"""
from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from drivers.receipt_printer.document import Barcode, Block, Feed, QRCode, Receipt, Rule, Text

_env = Environment(loader=PackageLoader("kiosk.receipts", "templates"), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
_env.filters["yuan"] = lambda fen: f"{int(fen) / 100:.2f}"


def parse_markup(text: str) -> list[Block]:
    blocks: list[Block] = []
    for line in text.strip("\n").splitlines():
        directive, _, rest = line.partition(" ")
        rest = rest.strip()
        if directive == "@title":
            blocks.append(Text(rest, bold=True, size="double", align="center"))
        elif directive == "@center":
            blocks.append(Text(rest, align="center"))
        elif directive == "@bold":
            blocks.append(Text(rest, bold=True))
        elif directive == "@right":
            blocks.append(Text(rest, align="right"))
        elif directive == "@rule":
            blocks.append(Rule())
        elif directive == "@qr":
            blocks.append(QRCode(rest))
        elif directive == "@barcode":
            blocks.append(Barcode(rest))
        elif directive == "@feed":
            blocks.append(Feed(int(rest or 1)))
        else:
            blocks.append(Text(line.rstrip()))
    return blocks


def render(template: str, job_id: str = "", **context: Any) -> Receipt:
    """Render ``templates/<template>.j2`` with ``context`` into a Receipt."""
    text = _env.get_template(f"{template}.j2").render(**context)
    return Receipt(blocks=parse_markup(text), job_id=job_id, title=template)
