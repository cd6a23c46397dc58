"""Name → driver class, as python-can's ``BACKENDS`` table: a profile names a driver, the registry finds the class.

Built-in names are listed here as ``"module:Class"`` strings so nothing is imported until a profile asks for it;
third parties may also register classes through the ``govkiosk.drivers`` entry-point group or pass a dotted
``"package.module:Class"`` path directly in the profile.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from drivers.base import Device

BUILTIN_DRIVERS: dict[str, dict[str, str]] = {
    "idcard": {
        "ga467_serial": "drivers.idcard.serial_reader:Ga467SerialReader",
    },
    "smartcard": {
        "pcsc": "drivers.smartcard.pcsc_reader:PcscSmartCardReader",
    },
    "receipt_printer": {
        "escpos": "drivers.receipt_printer.escpos_printer:EscposReceiptPrinter",
    },
    "licence_printer": {"cups": "drivers.licence_printer.cups_printer:CupsLicencePrinter"},
    "camera": {"opencv": "drivers.camera.opencv_camera:OpenCvCamera"},
    "document_camera": {"opencv": "drivers.document_camera.opencv_document_camera:OpenCvDocumentCamera"},
    "payment_pad": {
        "nexo_tcp": "drivers.payment.nexo_pad:NexoTcpPaymentPad",        # nexo Sale-to-POI 3.0, HTTP POST /nexo
        "nexo_serial": "drivers.payment.nexo_pad:NexoSerialPaymentPad",  # the same JSON in STX LEN DATA ETX LRC
        "ecr_serial": "drivers.payment.ecr_pad:EcrPaymentPad",           # legacy ECR message layer (kept, tested)
    },
    "qr_scanner": {"serial": "drivers.qr_scanner.serial_scanner:SerialQrScanner"},
}


class UnknownDriver(LookupError):
    code = "unknown_driver"


def available(kind: str) -> list[str]:
    names = set(BUILTIN_DRIVERS.get(kind, {}))
    names.update(ep.name.split(".", 1)[1] for ep in entry_points(group="govkiosk.drivers")
                 if ep.name.startswith(kind + "."))
    return sorted(names)


def resolve(kind: str, name: str) -> type[Device]:
    """Return the driver class for ``kind``/``name``; raises :class:`UnknownDriver` with the choices."""
    target = BUILTIN_DRIVERS.get(kind, {}).get(name)
    if target is None:
        for ep in entry_points(group="govkiosk.drivers"):
            if ep.name == f"{kind}.{name}":
                target = ep.value
                break
    if target is None and ":" in name:
        target = name
    if target is None:
        raise UnknownDriver(f"no driver {name!r} for device kind {kind!r}; choose one of {available(kind)}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        raise UnknownDriver(f"{target} is not a Device driver")
    if cls.KIND != kind:
        raise UnknownDriver(f"{target} serves {cls.KIND!r}, not {kind!r}")
    return cls
