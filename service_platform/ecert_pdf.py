"""The PDF of an e-certificate (电子证照), drawn with fpdf2 and a CJK font (Noto Sans CJK SC, subsetted: a few KB).

The font is taken from env ``PLATFORM_CJK_FONT`` (``path`` or ``path#index`` for a .ttc collection), else from the
usual Debian locations (package ``fonts-noto-cjk``). The output is deterministic for the same certificate (creation
date = issue date), so it can be cached and given an ETag.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service_platform.proof_pdf import DrawnPdf

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)

TRUST_LEVELS = {
    "A": ("由发证机关直接签发并加盖电子印章的电子证照，与纸质证照具有同等效力",
          "Issued and electronically sealed by the issuing authority; as valid as the paper certificate"),
    "B": ("由发证机关对存量纸质证照扫描件核对确认并加盖电子印章",
          "Scan of an existing paper certificate, checked and sealed by the issuing authority"),
    "C": ("由政务服务机构工作人员核验纸质原件后扫描生成",
          "Scanned by service-hall staff after checking the paper original"),
    "D": ("由申请人自行上传，未经核验，仅供参考",
          "Uploaded by the holder, not verified; for reference only"),
}


class PdfUnavailable(RuntimeError):
    """No CJK font (install fonts-noto-cjk or set PLATFORM_CJK_FONT)."""


@dataclass(frozen=True)
class CertDocument:
    """Everything printed on the PDF (built by the route from the database row)."""

    cert_id: str
    type_name: str
    type_name_en: str
    holder_name: str
    number: str
    issuer: str
    issued_on: dt.date
    valid_until: dt.date | None
    status_text: str
    trust_level: str
    fields: tuple[tuple[str, str], ...]

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()


@lru_cache(maxsize=4)
def _collection_index(path: str) -> int:
    """The simplified-Chinese face of a .ttc collection (0 for single fonts)."""
    if not path.lower().endswith(".ttc"):
        return 0
    from fontTools.ttLib import TTCollection

    collection = TTCollection(path, lazy=True)
    try:
        for i, font in enumerate(collection.fonts):
            name = font["name"].getDebugName(4) or ""
            if name.endswith(" SC") or "Micro Hei" in name or "UMing" in name:
                return i
    finally:
        collection.close()
    return 0


def find_cjk_font() -> tuple[str, int]:
    configured = os.environ.get("PLATFORM_CJK_FONT", "").strip()
    if configured:
        path, _, index = configured.partition("#")
        if not Path(path).is_file():
            raise PdfUnavailable(f"PLATFORM_CJK_FONT: no such file {path}")
        return path, int(index) if index else _collection_index(path)
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            return path, _collection_index(path)
    raise PdfUnavailable("no CJK font found: install fonts-noto-cjk or set PLATFORM_CJK_FONT")


def render(doc: CertDocument) -> bytes:
    """The certificate with a DRAWN seal and no verification code (not what the platform hands out any more: see
    :func:`render_for_seal`)."""
    return _draw(doc, None, None)[0]


def render_for_seal(doc: CertDocument, code: str, verify_url: str) -> "DrawnPdf":
    """The certificate with its verification code and the QR of its verify page, and an empty place where seal.py
    signs in the issuer's seal (a visible PAdES signature)."""
    from service_platform.proof_pdf import DrawnPdf

    data, box = _draw(doc, code, verify_url)
    return DrawnPdf(data, 1, box)


def _draw(doc: CertDocument, code: str | None, verify_url: str | None
          ) -> tuple[bytes, tuple[float, float, float, float]]:
    drawn = _draw_with(doc, code, verify_url, full_font=False)
    if drawn is None:  # a character the platform's small CJK font lacks: the full font
        drawn = _draw_with(doc, code, verify_url, full_font=True)
    assert drawn is not None
    return drawn


def _draw_with(doc: CertDocument, code: str | None, verify_url: str | None, *, full_font: bool
               ) -> tuple[bytes, tuple[float, float, float, float]] | None:
    """The drawing; None if the platform's small CJK font lacked a character (pdf_fonts.py)."""
    from fpdf import FPDF

    from service_platform.pdf_fonts import add_cjk_font

    pdf = FPDF(orientation="landscape", format=(148, 210))  # A5
    # no page-wide transparency group (fpdf's default): once CUPS' pdftopdf flattens the signed seal (an image with
    # a soft mask) into the page, pdftocairo would rasterize the whole group — the printed certificate lost its text
    pdf.allow_images_transparency = False
    pdf.set_creation_date(dt.datetime.combine(doc.issued_on, dt.time(0, 0), tzinfo=dt.timezone.utc))
    pdf.set_title(f"{doc.type_name}（电子证照）")
    pdf.set_producer("service-platform (reference)")
    pdf.set_author(doc.issuer)
    cjk = add_cjk_font(pdf, "cjk", full=full_font)
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    width = pdf.w - 2 * pdf.l_margin
    pdf.set_draw_color(180, 30, 30)
    pdf.set_line_width(0.8)
    pdf.rect(8, 8, pdf.w - 16, pdf.h - 16)
    pdf.set_font("cjk", size=20)
    pdf.set_xy(pdf.l_margin, 16)
    pdf.cell(width, 10, f"{doc.type_name}（电子证照）", align="C")
    pdf.set_font("cjk", size=9)
    pdf.set_xy(pdf.l_margin, 26)
    pdf.cell(width, 5, f"{doc.type_name_en} — electronic certificate", align="C")
    rows = [("持证人", doc.holder_name), ("证照编号", doc.number), ("发证机关", doc.issuer),
            ("发证日期", doc.issued_on.isoformat()),
            ("有效期至", doc.valid_until.isoformat() if doc.valid_until else "长期"), *doc.fields,
            ("证照状态", doc.status_text), ("可信级别", f"{doc.trust_level}级")]
    y = 36.0
    for label, value in rows:
        pdf.set_xy(pdf.l_margin + 6, y)
        pdf.set_font("cjk", size=11)
        pdf.set_text_color(90, 90, 90)
        pdf.cell(30, 7, label)
        pdf.set_text_color(0, 0, 0)
        pdf.multi_cell(width - 95, 7, str(value))
        y = max(y + 7.5, pdf.get_y() + 0.5)
    cx, cy, r = pdf.w - 42, pdf.h - 46, 17
    mm = 72 / 25.4
    seal_box = ((cx - r) * mm, (pdf.h - cy - r) * mm, (cx + r) * mm, (pdf.h - cy + r) * mm)
    if code is None:
        # a drawn seal (no cryptographic signature)
        pdf.set_draw_color(200, 20, 20)
        pdf.set_line_width(1.0)
        pdf.ellipse(cx - r, cy - r, 2 * r, 2 * r)
        pdf.set_text_color(200, 20, 20)
        pdf.set_font("cjk", size=7)
        pdf.set_xy(cx - r, cy - 6)
        pdf.multi_cell(2 * r, 4, doc.issuer[:16], align="C")
        pdf.set_font("cjk", size=12)
        pdf.set_xy(cx - r, cy + 3)
        pdf.cell(2 * r, 6, "电子印章", align="C")
        code_line = f"验证码：{doc.digest()[:16].upper()}"
    else:
        import io

        from service_platform.proof_pdf import qr_png

        pdf.image(io.BytesIO(qr_png(verify_url or code)), x=pdf.w - 86, y=pdf.h - 60, w=26, h=26)
        pdf.set_text_color(80, 80, 80)
        pdf.set_font("cjk", size=6.5)
        pdf.set_xy(pdf.w - 90, pdf.h - 33)
        pdf.cell(34, 3.5, "扫码核验 Scan to verify", align="C")
        code_line = f"验证码：{code}"
    pdf.set_text_color(80, 80, 80)
    pdf.set_font("cjk", size=7)
    pdf.set_xy(pdf.l_margin + 6, pdf.h - 24)
    pdf.multi_cell(width - 60, 3.6, f"可信级别说明：{TRUST_LEVELS[doc.trust_level][0]}（国办函〔2016〕108号）\n"
                                    f"{code_line}　证照标识：{doc.cert_id}\n"
                                    "本文件由参考服务平台生成，所含人员与证照均为演示数据。")
    data = cjk.output(pdf)
    return None if data is None else (data, seal_box)


class PdfCache:
    """Rendered PDFs by certificate digest."""

    def __init__(self, max_entries: int = 64) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, doc: CertDocument) -> bytes:
        key = doc.digest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = render(doc)
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return data
