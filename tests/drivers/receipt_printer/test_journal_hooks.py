"""What the print journal relies on: ``before_send`` runs after the status check and before the first byte, and a
receipt survives the trip through JSON unchanged."""
from __future__ import annotations

import json

import pytest

from drivers.errors import PaperOut
from drivers.receipt_printer.document import Barcode, Feed, QRCode, Receipt, Rule, Text
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess


def receipt(job_id: str = "hook-1") -> Receipt:
    return Receipt([Text("凭条", bold=True, size="double", align="center"), Rule("="), Text("编号：A001"),
                    QRCode("A001", size=5, align="left"), Barcode("A001"), Feed(2)], job_id=job_id, title="t")


def test_before_send_runs_once_after_the_check_and_before_the_first_byte(printer: EscposReceiptPrinter,
                                                                          sim: SimulatorProcess) -> None:
    seen: list[int] = []

    def before_send() -> None:
        state = sim.control("status")
        seen.append(state["data_bytes"])                   # what the printer had received when the hook ran
        assert state["status_requests"] >= 3               # the status check came first

    result = printer.print_receipt(receipt(), before_send=before_send)

    assert seen == [0]
    assert result.bytes_sent > 0
    assert sim.control("status")["data_bytes"] == result.bytes_sent + 3   # the job, then the GS r 1 confirmation
    assert [r["cut"] for r in sim.control("receipts")["receipts"]] == [True]


def test_before_send_is_not_called_when_the_printer_refuses(printer: EscposReceiptPrinter,
                                                            sim: SimulatorProcess) -> None:
    sim.control("set_paper", state="out")
    called: list[bool] = []

    with pytest.raises(PaperOut):
        printer.print_receipt(receipt(), before_send=lambda: called.append(True))

    assert called == []


def test_a_failing_before_send_stops_the_job_before_any_byte(printer: EscposReceiptPrinter,
                                                             sim: SimulatorProcess) -> None:
    def journal_down() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        printer.print_receipt(receipt(), before_send=journal_down)

    assert sim.control("status")["data_bytes"] == 0 and sim.control("receipts")["receipts"] == []
    assert printer.print_receipt(receipt("hook-2")).bytes_sent > 0     # and the printer is still fine


def test_a_receipt_round_trips_through_json() -> None:
    original = receipt()
    data = json.loads(json.dumps(original.to_dict(), ensure_ascii=False))

    assert Receipt.from_dict(data) == original
    assert [b["type"] for b in data["blocks"]] == ["text", "rule", "text", "qr", "barcode", "feed"]
    with pytest.raises(ValueError, match="unknown receipt block"):
        Receipt.from_dict({"blocks": [{"type": "hologram"}]})
