"""Drawing a proof (proofs.ProofContent) as an A4 PDF with fpdf2 and the CJK font: header rows, paragraph, a table
that continues over as many pages as it needs (its header repeated), summary, statement, and on every page the
verification code and page number; the last page has the QR of the verify page and the place of the seal, which
seal.py signs into (a visible PAdES signature)."""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from service_platform.proofs import ProofContent

MM = 72 / 25.4
PAGE_W, PAGE_H = 210.0, 297.0
MARGIN = 15.0
BOTTOM = PAGE_H - 22.0        # body text stops here (the footer is below)
SIGN_BLOCK = 62.0             # height of the statement + seal + QR block on the last page
SEAL_MM = 40.0


@dataclass(frozen=True)
class DrawnPdf:
    data: bytes
    pages: int
    #: the seal's box on the last page, PDF points (x1, y1, x2, y2), lower-left origin
    seal_box: tuple[float, float, float, float]


def qr_png(text: str, box: int = 8) -> bytes:
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box, border=2)
    qr.add_data(text)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image(fill_color="black", back_color="white").save(out, format="PNG")
    return out.getvalue()


def render_proof(content: ProofContent, code: str, verify_url: str, verify_base: str) -> DrawnPdf:
    drawn = _render(content, code, verify_url, verify_base, full_font=False)
    if drawn is None:  # a character the platform's small CJK font lacks: the full font
        drawn = _render(content, code, verify_url, verify_base, full_font=True)
    assert drawn is not None
    return drawn


def _render(content: ProofContent, code: str, verify_url: str, verify_base: str, *, full_font: bool
            ) -> DrawnPdf | None:
    """The drawing; None if the platform's small CJK font lacked a character (pdf_fonts.py)."""
    from fpdf import FPDF

    from service_platform.pdf_fonts import add_cjk_font

    title = content.proof.name

    class _Pdf(FPDF):
        def footer(self) -> None:  # every page: code and page number
            self.set_y(-16)
            self.set_font("cjk", size=7.5)
            self.set_text_color(90, 90, 90)
            self.cell(0, 4, f"验证码 {code}　　验证网址 {verify_base}　　第 {self.page_no()} 页 共 {{nb}} 页",
                      align="C")
            self.set_y(-12)
            self.cell(0, 4, "本证明由参考服务平台根据登记数据生成并加盖电子印章，所含人员与数据均为演示数据。", align="C")

    pdf = _Pdf(orientation="portrait", unit="mm", format="A4")
    pdf.allow_images_transparency = False   # no page transparency group: see ecert_pdf._draw_with (printing via CUPS)
    pdf.set_creation_date(dt.datetime.combine(content.issued_on, dt.time(0, 0), tzinfo=dt.timezone.utc))
    pdf.set_title(title)
    pdf.set_producer("service-platform (reference)")
    pdf.set_author(content.proof.issuer)
    cjk = add_cjk_font(pdf, "cjk", full=full_font)
    pdf.set_auto_page_break(auto=False)
    pdf.alias_nb_pages()
    width = PAGE_W - 2 * MARGIN

    def new_page(first: bool) -> None:
        pdf.add_page()
        pdf.set_text_color(0, 0, 0)
        if first:
            pdf.set_font("cjk", size=18)
            pdf.set_xy(MARGIN, 16)
            pdf.cell(width, 10, title, align="C")
            pdf.set_font("cjk", size=8.5)
            pdf.set_text_color(90, 90, 90)
            pdf.set_xy(MARGIN, 26)
            pdf.cell(width, 5, content.proof.name_en, align="C")
            pdf.set_y(34)
        else:
            pdf.set_font("cjk", size=10)
            pdf.set_text_color(90, 90, 90)
            pdf.set_xy(MARGIN, 12)
            pdf.cell(width, 6, f"{title}（续）　{content.holder_name}", align="L")
            pdf.set_y(20)
        pdf.set_text_color(0, 0, 0)

    def ensure(height: float, *, table_header: bool = False) -> None:
        if pdf.get_y() + height > BOTTOM:
            new_page(False)
            if table_header:
                draw_table_header()

    def draw_table_header() -> None:
        pdf.set_font("cjk", size=8.5)
        pdf.set_fill_color(235, 235, 235)
        pdf.set_x(MARGIN)
        for head, w in zip(content.table_headers, content.table_widths):
            pdf.cell(w, 6.5, head, border=1, align="C", fill=True)
        pdf.ln(6.5)

    new_page(True)
    # header rows: two per line, a long value on a line of its own
    pdf.set_font("cjk", size=10)
    col = width / 2
    label_w = 34.0
    pending: list[tuple[str, str]] = []

    def flush_pair() -> None:
        if not pending:
            return
        ensure(7)
        y = pdf.get_y()
        for j, (label, value) in enumerate(pending):
            pdf.set_xy(MARGIN + j * col, y)
            pdf.set_text_color(90, 90, 90)
            pdf.cell(label_w, 6.5, label)
            pdf.set_text_color(0, 0, 0)
            pdf.cell(col - label_w - 1, 6.5, value)
        pdf.set_y(y + 7)
        pending.clear()

    for label, value in content.header_rows:
        if pdf.get_string_width(value) > col - label_w - 2:
            flush_pair()
            ensure(7)
            y = pdf.get_y()
            pdf.set_xy(MARGIN, y)
            pdf.set_text_color(90, 90, 90)
            pdf.cell(label_w, 6.5, label)
            pdf.set_text_color(0, 0, 0)
            pdf.multi_cell(width - label_w, 6.5, value, align="L")
            pdf.set_y(max(pdf.get_y(), y + 7))
            continue
        pending.append((label, value))
        if len(pending) == 2:
            flush_pair()
    flush_pair()
    pdf.ln(2)
    pdf.set_font("cjk", size=10.5)
    ensure(14)
    pdf.set_x(MARGIN)
    pdf.multi_cell(width, 6, content.paragraph, align="L")
    pdf.ln(2)
    if content.table_headers and content.table_rows:
        ensure(14)
        draw_table_header()
        pdf.set_font("cjk", size=8)
        for row in content.table_rows:
            pdf.set_font("cjk", size=8)
            # a cell wraps (a certificate number or an address is never cut); the row is as high as its tallest
            lines = [_lines(pdf, value, w - 1.5) for value, w in zip(row, content.table_widths)]
            height = max(6.0, 4.2 * max(len(cell) for cell in lines) + 1.8)
            ensure(height, table_header=True)
            pdf.set_font("cjk", size=8)
            y = pdf.get_y()
            x = MARGIN
            for k, (cell, w) in enumerate(zip(lines, content.table_widths)):
                pdf.rect(x, y, w, height)
                top = y + (height - 4.2 * len(cell)) / 2
                for n, line in enumerate(cell):
                    pdf.set_xy(x, top + 4.2 * n)
                    pdf.cell(w, 4.2, line, align="L" if k == 1 or w > 40 else "C")
                x += w
            pdf.set_y(y + height)
        pdf.ln(2)
    if content.summary_rows:
        pdf.set_font("cjk", size=10)
        for i in range(0, len(content.summary_rows), 2):
            ensure(7)
            y = pdf.get_y()
            for j, (label, value) in enumerate(content.summary_rows[i:i + 2]):
                pdf.set_xy(MARGIN + j * col, y)
                pdf.set_text_color(90, 90, 90)
                pdf.cell(36, 6.5, label)
                pdf.set_text_color(0, 0, 0)
                pdf.cell(col - 37, 6.5, value)
            pdf.set_y(y + 7)
    # closing block: statement, issuer, date (seal over them), QR
    if pdf.get_y() + SIGN_BLOCK > BOTTOM:
        new_page(False)
    top = max(pdf.get_y() + 4, BOTTOM - SIGN_BLOCK)
    pdf.set_font("cjk", size=10.5)
    pdf.set_xy(MARGIN, top)
    pdf.cell(width, 7, content.statement)
    issuer_x = PAGE_W - MARGIN - 80
    pdf.set_xy(issuer_x, top + 22)
    pdf.cell(80, 7, content.proof.issuer, align="C")
    pdf.set_xy(issuer_x, top + 30)
    pdf.cell(80, 7, f"{content.issued_on.year}年{content.issued_on.month}月{content.issued_on.day}日", align="C")
    qr_size = 30.0
    pdf.image(io.BytesIO(qr_png(verify_url)), x=MARGIN, y=top + 12, w=qr_size, h=qr_size)
    pdf.set_font("cjk", size=7.5)
    pdf.set_xy(MARGIN + qr_size + 2, top + 16)
    pdf.multi_cell(70, 4, f"扫码或登录验证网址，输入验证码核验真伪\nScan to verify\n验证码：{code}")
    seal_cx, seal_cy = issuer_x + 40, top + 27
    x1, y1 = seal_cx - SEAL_MM / 2, seal_cy - SEAL_MM / 2
    box = (x1 * MM, (PAGE_H - y1 - SEAL_MM) * MM, (x1 + SEAL_MM) * MM, (PAGE_H - y1) * MM)
    pages = pdf.page_no()
    data = cjk.output(pdf)
    return None if data is None else DrawnPdf(data, pages, box)


def _lines(pdf: object, text: str, width: float) -> list[str]:
    """``text`` broken into lines of at most ``width`` mm in the current font (CJK text breaks anywhere)."""
    measure = pdf.get_string_width  # type: ignore[attr-defined]
    lines, current = [], ""
    for ch in text:
        if current and measure(current + ch) > width:
            lines.append(current)
            current = ""
        current += ch
    lines.append(current)
    return lines


def _fit(pdf: object, text: str, width: float) -> str:
    """``text`` cut with an ellipsis so that it fits ``width`` mm in the current font."""
    measure = pdf.get_string_width  # type: ignore[attr-defined]
    if measure(text) <= width:
        return text
    while text and measure(text + "…") > width:
        text = text[:-1]
    return text + "…"
