"""What the driver sends (rendered receipts read back through the parser), its line layout, settings and registry."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from drivers.receipt_printer.document import Barcode, QRCode, Receipt, Rule, Text
from drivers.receipt_printer.escpos_parser import Command, EscPosParser
from drivers.receipt_printer.escpos_parser import Text as TextEvent
from drivers.receipt_printer.escpos_printer import (SETTINGS_SCHEMA, EscposReceiptPrinter, code128_payload,
                                                    rule_line, text_columns, wrap_text)
from drivers.registry import resolve

ROOT = Path(__file__).resolve().parents[3]


def driver(**settings: object) -> EscposReceiptPrinter:
    return EscposReceiptPrinter(**{"connection": "network", "host": "127.0.0.1", **settings})


def printed_lines(job: bytes) -> list[str]:
    """The text lines a printer would print for ``job`` (text runs joined up to each LF)."""
    lines, current = [], ""
    for event in EscPosParser().feed(job):
        if isinstance(event, TextEvent):
            current += event.text
        elif event.name == "LF":
            lines.append(current)
            current = ""
    return lines


# --- layout ------------------------------------------------------------------------------------------------------------

def test_wrap_counts_chinese_as_two_columns_and_keeps_punctuation_attached() -> None:
    assert wrap_text("一二三四五，六七", 10) == ["一二三四", "五，六七"]       # "，" never starts a line
    assert wrap_text("一二三（四五六）", 8) == ["一二三", "（四五", "六）"]      # "（" never ends one
    assert wrap_text("请到3号窗口", 48) == ["请到3号窗口"]
    assert all(text_columns(line) <= 10 for line in wrap_text("办件编号：SP2026041500123（请妥善保管）。", 10))


def test_wrap_breaks_latin_text_at_spaces_and_honours_newlines() -> None:
    assert wrap_text("Please keep this receipt", 12) == ["Please keep", "this receipt"]
    assert wrap_text("第一行\n\n第三行", 48) == ["第一行", "", "第三行"]
    assert wrap_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_control_characters_in_text_never_reach_the_printer_as_commands() -> None:
    job = driver().render(Receipt([Text("张三\x1b@\x1dV\x00\x1b!\x30\tEND")]))
    names = [e.name for e in EscPosParser().feed(job) if isinstance(e, Command)]
    assert names.count("GS V") == 1 and names.count("ESC @") == 1 and "ESC !" not in names
    assert "张三@V!0    END" in printed_lines(job)


def test_rule_fills_the_paper_width() -> None:
    assert rule_line("-", 48) == "-" * 48
    assert rule_line("－", 48) == "－" * 24                                    # full-width: two columns each
    assert rule_line("=-", 5) == "=-=-="
    assert printed_lines(driver(paper_width_mm=58).render(Receipt([Rule("*")]))) == ["*" * 32]


def test_code128_payload_uses_code_set_c_for_even_digit_runs() -> None:
    assert code128_payload("2026041500") == "{C" + "".join(map(chr, (20, 26, 4, 15, 0)))
    assert code128_payload("SP{1}") == "{BSP{{1}"
    assert code128_payload("{Aabc") == "{Aabc"
    with pytest.raises(ValueError):
        code128_payload("编号1")


# --- rendering -----------------------------------------------------------------------------------------------------

def test_rendered_job_structure() -> None:
    receipt = Receipt([Text("标题", bold=True, size="double", align="center"), Text("正文：一。"),
                       QRCode("SP1", size=20), Barcode("SP1")])
    events = EscPosParser().feed(driver().render(receipt))
    names = [e.name for e in events if isinstance(e, Command)]
    assert names[0] == "ESC @" and names[-2:] == ["ESC d", "GS V"]
    assert Command("GS !", (0x11,)) in events and Command("ESC E", (1,)) in events   # GS !: Chinese gets big too
    assert Command("GS ( k", (49, 67), b"\x10") in events                             # QR module size capped at 16
    assert Command("GS ( k", (49, 80), b"0SP1") in events
    assert Command("GS k", (73,), b"{BSP1") in events
    assert names.count("FS &") == names.count("FS .") == 2                            # each Chinese line wrapped
    assert [e.text for e in events if isinstance(e, TextEvent)][:2] == ["标题", "正文：一。"]


def test_without_kanji_mode_text_is_plain_gb18030() -> None:
    job = driver(kanji_mode=False).render(Receipt([Text("中文，")]))
    assert b"\x1c&" not in job and "中文，".encode("gb18030") + b"\n" in job


def test_double_size_text_wraps_at_half_the_columns() -> None:
    job = driver().render(Receipt([Text("大" * 13, size="double")]))
    assert printed_lines(job)[:2] == ["大" * 12, "大"]


def test_unprintable_blocks_raise_value_error() -> None:
    with pytest.raises(ValueError, match="too long"):
        driver().render(Receipt([Barcode("X" * 40)]))
    with pytest.raises(ValueError, match="cannot be printed"):
        driver().render(Receipt([Barcode("12AB", symbology="EAN13")]))
    with pytest.raises(ValueError):
        driver().render(Receipt([QRCode("")]))


# --- settings and registry -------------------------------------------------------------------------------------------

def test_settings_schema_is_valid_and_checks_each_connection() -> None:
    validator = jsonschema.Draft202012Validator(SETTINGS_SCHEMA)
    validator.check_schema(SETTINGS_SCHEMA)
    good = [
        {"connection": "network", "host": "192.168.1.50"},
        {"connection": "serial", "device": "/dev/ttyUSB0", "baudrate": 115200, "paper_width_mm": 58},
        {"connection": "usb", "vendor_id": 0x0416, "product_id": 0x5011, "kanji_mode": False},
        {"connection": "file", "device": "/dev/usb/lp0", "profile": "TM-T20II", "confirm_print": False},
    ]
    for settings in good:
        assert list(validator.iter_errors(settings)) == [], settings
    bad = [
        {"connection": "network"},
        {"connection": "serial"},
        {"connection": "usb", "vendor_id": 1},
        {"connection": "network", "host": "h", "paper_width_mm": 76},
        {"connection": "network", "host": "h", "baud": 9600},                 # additionalProperties: false
        {"connection": "bluetooth", "device": "x"},
    ]
    for settings in bad:
        assert list(validator.iter_errors(settings)), settings
        with pytest.raises(ValueError):
            EscposReceiptPrinter(**settings)


def test_unknown_capability_profile_fails_at_construction() -> None:
    with pytest.raises(Exception, match="NoSuchPrinter"):
        driver(profile="NoSuchPrinter")


def test_registry_resolves_the_escpos_driver() -> None:
    cls = resolve("receipt_printer", "escpos")
    assert cls is EscposReceiptPrinter and cls.KIND == "receipt_printer"
    assert cls.SETTINGS_SCHEMA is SETTINGS_SCHEMA


def test_importing_the_driver_leaves_no_temporary_folders(tmp_path: Path) -> None:
    """No tmpXXXX folder per import, and the capability pickle (unpickled at import) never in the shared temp
    folder: without a setting it goes to the user's private cache folder (0700)."""
    env = {k: v for k, v in os.environ.items() if k != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    code = "import drivers.receipt_printer.escpos_printer as m; print(m.CAPABILITIES_CACHE_DIR)"
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    assert Path(out) == tmp_path / "cache" / "govkiosk" / "escpos"
    assert list((tmp_path / "tmp").iterdir()) == []                             # nothing in the temp folder
    assert (Path(out).stat().st_mode & 0o777) == 0o700
    assert any(Path(out).glob("*.capabilities.pickle"))
