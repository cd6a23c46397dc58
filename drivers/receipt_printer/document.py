"""A receipt as data: what to print, not how. The kiosk's templates build one; a driver turns it into bytes.

Kept free of any printer command so one template serves ESC/POS printers of 58 and 80 mm and a test can compare
documents without parsing bytes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

Align = Literal["left", "center", "right"]


@dataclass(frozen=True)
class Text:
    text: str
    bold: bool = False
    size: Literal["normal", "double"] = "normal"
    align: Align = "left"


@dataclass(frozen=True)
class Rule:
    """A horizontal line across the paper."""

    char: str = "-"


@dataclass(frozen=True)
class QRCode:
    data: str
    size: int = 6
    align: Align = "center"


@dataclass(frozen=True)
class Barcode:
    data: str
    symbology: str = "CODE128"


@dataclass(frozen=True)
class Feed:
    lines: int = 1


@dataclass(frozen=True)
class Logo:
    """A picture printed as raster graphics (the issuing authority's emblem); scaled down to the paper width."""

    path: str
    align: Align = "center"


Block = Union[Text, Rule, QRCode, Barcode, Feed, Logo]

#: block type name in :meth:`Receipt.to_dict` → class
BLOCK_TYPES: dict[str, type] = {"text": Text, "rule": Rule, "qr": QRCode, "barcode": Barcode, "feed": Feed,
                                 "logo": Logo}
_TYPE_NAMES = {cls: name for name, cls in BLOCK_TYPES.items()}


@dataclass
class Receipt:
    """A receipt: blocks printed top to bottom, then a feed and a cut. ``job_id`` names it in the print journal."""

    blocks: list[Block] = field(default_factory=list)
    job_id: str = ""
    title: str = ""

    def plain_text(self) -> str:
        """The receipt's text as a reader would see it (for tests and the journal's summary, never for logs)."""
        lines: list[str] = []
        for block in self.blocks:
            if isinstance(block, Text):
                lines.append(block.text)
            elif isinstance(block, QRCode):
                lines.append(f"[QR:{block.data}]")
            elif isinstance(block, Barcode):
                lines.append(f"[BARCODE:{block.data}]")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the print journal keeps it to reprint the receipt exactly)."""
        return {"job_id": self.job_id, "title": self.title,
                "blocks": [{"type": _TYPE_NAMES[type(b)], **dataclasses.asdict(b)} for b in self.blocks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Receipt":
        blocks: list[Block] = []
        for item in data.get("blocks", []):
            fields = dict(item)
            kind = BLOCK_TYPES.get(fields.pop("type", ""))
            if kind is None:
                raise ValueError(f"unknown receipt block type in {item!r}")
            blocks.append(kind(**fields))
        return cls(blocks=blocks, job_id=data.get("job_id", ""), title=data.get("title", ""))
