"""Receipt layouts as templates (``*.j2``), rendered into a :class:`~drivers.receipt_printer.document.Receipt`.

A template is Jinja2 text in which each output line is one block; a line may start with a directive:

    @title TEXT     centred, bold, double size         @rule          a line across the paper
    @logo NAME      the picture assets/NAME.png
    @center TEXT    centred                             @qr DATA       a QR code
    @bold TEXT      bold                                @barcode DATA  a CODE128 barcode
    @right TEXT     right-aligned                       @feed N        N empty lines

Any other line is plain text; blank lines are kept as empty text lines, except leading and trailing ones.
Values put in with ``{{ }}`` are kept on their line (line breaks become spaces), so data can never start a directive.

Filters: ``yuan`` (fen → ``12.50``), ``yuan_upper`` (fen → ``壹拾贰元伍角整``, the capital-figure amount on
vouchers). Templates: ``service_notice``, ``progress``, ``queue_ticket``, ``payment_voucher``, ``fault_slip``,
``transaction_receipt`` (see :data:`TEMPLATES` for what each needs).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from drivers.receipt_printer.document import Barcode, Block, Feed, Logo, QRCode, Receipt, Rule, Text

#: template → the context it needs besides kiosk_id, kiosk_name, printed_at (and job_id)
TEMPLATES: dict[str, str] = {
    "service_notice": "service (ServiceDetail), guide_url",
    "progress": "application (number, service_name, applicant_masked, department, submitted_at, status_text, "
                "promised_date, timeline[at, status_text, department, note])",
    "queue_ticket": "ticket (number, service_name, area, waiting, issued_at, query_url)",
    "payment_voucher": "payment (order_id, item, application_number, payer_masked, amount_fen, method, txn_ref, "
                       "paid_at, payee, verify_url)",
    "fault_slip": "fault (what, code, job_id, occurred_at, advice), staff_hotline",
    "transaction_receipt": "txn (number, service_name, applicant_masked, id_masked, department, accepted_at, "
                           "promised_date, materials[name, form], fee_fen, pickup)",
    "supplement_receipt": "supp (number, service_name, applicant_masked, department, at, materials[name, form], "
                          "submitted, status_text, outstanding, reference, verify_url)",
    "appointment_slip": "appointment (number, service_name, hall_name, hall_address, date, start, end, "
                        "citizen_masked, query_url)",
    "delivery_receipt": "delivery (number, waybill_no, application_number, recipient_masked, phone_masked, "
                        "address_masked, status_text, created_at)",
    "proxy_receipt": "proxy (submitted, reference, number, service_name, principal_masked, agent_masked, "
                     "relationship_text, department, accepted_at, promised_date, outstanding[name], supplement_due, "
                     "verify_url)",
    "feedback_receipt": "feedback (reference, kind, kind_text, service_name, created_at, answer_due, verify_url)",
}

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_GROUP_UNITS = ("", "万", "亿", "万亿")


def _group_upper(group: int) -> str:
    """1..9999 in capital figures, zeros inside collapsed to one 零: 1005 → 壹仟零伍."""
    out, zero = "", False
    for place, unit in ((1000, "仟"), (100, "佰"), (10, "拾"), (1, "")):
        digit = group // place % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[digit] + unit
    return out


def yuan_upper(fen: int) -> str:
    """An amount in fen as capital figures (大写金额) as on Chinese payment vouchers: 1250 → 壹拾贰元伍角整,
    10005 → 壹佰元零伍分, 0 → 零元整."""
    fen = int(fen)
    if fen < 0:
        return "负" + yuan_upper(-fen)
    yuan, rest = divmod(fen, 100)
    jiao, cents = divmod(rest, 10)
    if yuan >= 10 ** 16:
        raise ValueError("amount too large")
    groups: list[int] = []
    n = yuan
    while n:
        groups.append(n % 10000)
        n //= 10000
    text, zero = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero = bool(text)
            continue
        if text and (zero or group < 1000):
            text += "零"
        text += _group_upper(group) + _GROUP_UNITS[index]
        zero = False
    text = text + "元" if text else ""
    if jiao == 0 and cents == 0:
        return (text or "零元") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif text:
        text += "零"
    return text + (_DIGITS[cents] + "分" if cents else "整")


def _one_line(value: Any) -> Any:
    """Every ``{{ value }}``: line breaks become spaces, so a value cannot add lines (or directives)."""
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        return " ".join(value.splitlines())
    return value


ASSETS = Path(__file__).resolve().parent / "assets"  # pictures for @logo (shipped as package data)

_env = Environment(loader=PackageLoader("kiosk.receipts", "templates"), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                   finalize=_one_line)
_env.filters["yuan"] = lambda fen: f"{int(fen) / 100:.2f}"
_env.filters["yuan_upper"] = yuan_upper


def available() -> list[str]:
    """The receipt templates there are (partials starting with ``_`` excluded)."""
    folder = resources.files("kiosk.receipts") / "templates"
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".j2") and not p.name.startswith("_"))


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
        elif directive == "@logo":
            blocks.append(Logo(str(ASSETS / f"{rest}.png")))
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
