from __future__ import annotations

import pytest

from drivers import registry
from drivers.base import InvalidSettings
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter


def test_builtin_names_resolve_to_their_classes():
    assert registry.resolve("idcard", "ga467_serial") is Ga467SerialReader
    assert registry.resolve("receipt_printer", "escpos") is EscposReceiptPrinter
    assert registry.resolve("idcard", "drivers.idcard.serial_reader:Ga467SerialReader") is Ga467SerialReader


def test_unknown_driver_names_the_choices():
    with pytest.raises(registry.UnknownDriver, match="ga467_serial"):
        registry.resolve("idcard", "nope")


def test_class_of_another_kind_is_refused():
    with pytest.raises(registry.UnknownDriver, match="serves 'receipt_printer'"):
        registry.resolve("idcard", "drivers.receipt_printer.escpos_printer:EscposReceiptPrinter")


def test_settings_are_validated_by_the_base_class():
    with pytest.raises(InvalidSettings) as info:
        Ga467SerialReader(port="/dev/ttyS0", baud="fast")
    assert any(p.startswith("baud:") for p in info.value.problems)
