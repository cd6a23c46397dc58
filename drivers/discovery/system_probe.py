"""Devices the operating system already knows: PC/SC readers (pcscd, through pyscard), CUPS queues (IPP, through
pycups) and cameras (V4L2 names from sysfs, opened through OpenCV). Each returns findings, or one ``unknown``
finding saying why the service could not be asked (pcscd not running, no print server)."""
from __future__ import annotations

import glob
import os
import select
import time
from pathlib import Path
from typing import Any

from drivers.discovery.model import Confidence, Finding
from drivers.discovery.serial_probe import DLE_EOT_PRINTER, escpos_status_byte

#: pycups printer-state values (RFC 8011 §5.4.11)
_PRINTER_STATES = {3: "idle", 4: "processing", 5: "stopped"}


def pcsc_readers() -> list[Finding]:
    try:
        from smartcard.System import readers
        from smartcard.pcsc.PCSCExceptions import EstablishContextException
    except ImportError:
        return [Finding("unknown", "", "pcsc", {}, Confidence.LOW, "pyscard is not installed")]
    try:
        names = [str(r) for r in readers()]
    except EstablishContextException:
        return [Finding("unknown", "", "pcsc", {}, Confidence.LOW, "pcscd is not running (no PC/SC readers seen)")]
    except Exception as exc:  # pyscard raises several unrelated types when the daemon misbehaves
        return [Finding("unknown", "", "pcsc", {}, Confidence.LOW, f"PC/SC not available: {type(exc).__name__}")]
    return [Finding("smartcard", "pcsc", name, {"reader": name}, Confidence.HIGH, "listed by pcscd")
            for name in names]


def _cups_connection(server: str | None) -> Any:
    import cups

    from drivers.licence_printer.cups_printer import cups_server_args

    return cups.Connection(**cups_server_args(server))


def cups_queues(server: str | None = None) -> list[Finding]:
    """Every queue of the print server (the system's, or ``server``: host[:port] or cupsd's socket path)."""
    try:
        conn = _cups_connection(server)
        printers = conn.getPrinters()
        default = conn.getDefault()
    except ImportError:
        return [Finding("unknown", "", "cups", {}, Confidence.LOW, "pycups is not installed")]
    except RuntimeError as exc:
        return [Finding("unknown", "", server or "cups", {}, Confidence.LOW, f"print server not reachable: {exc}")]
    found = []
    for name, attrs in sorted(printers.items(), key=lambda kv: (kv[0] != default, kv[0])):
        settings: dict[str, Any] = {"queue": name, **({"server": server} if server else {})}
        state = _PRINTER_STATES.get(int(attrs.get("printer-state", 0)), "unknown")
        model = attrs.get("printer-make-and-model") or ""
        uri = str(attrs.get("device-uri") or "").split("://")[0]
        found.append(Finding("licence_printer", "cups", f"{server or 'default'}/{name}", settings,
                             Confidence.HIGH, f"CUPS queue ({state}{', ' + model if model else ''}"
                             f"{', backend ' + uri if uri else ''}{', default' if name == default else ''})"))
    return found


#: where the kernel lists V4L2 nodes with their names, and where their device nodes are
V4L2_SYS, DEV = "/sys/class/video4linux", "/dev"


def v4l2_devices(sys_root: str = V4L2_SYS, dev_root: str = DEV) -> list[tuple[str, str]]:
    """(device path, name) of each V4L2 video node the kernel lists (capture and metadata nodes alike)."""
    out = []
    for node in sorted(glob.glob(os.path.join(sys_root, "video*"))):
        try:
            name = Path(node, "name").read_text("utf-8").strip()
        except OSError:
            name = ""
        out.append((os.path.join(dev_root, os.path.basename(node)), name))
    return out


def frame_size(source: int | str) -> tuple[int, int] | None:
    """The frame size a camera delivers, or None when it does not open or gives no frame."""
    try:
        import cv2
    except ImportError:
        return None
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        return int(frame.shape[1]), int(frame.shape[0])
    finally:
        cap.release()


def cameras(max_index: int = 4, sys_root: str = V4L2_SYS, dev_root: str = DEV) -> list[Finding]:
    """V4L2 capture devices by name (opened to see that frames come), else OpenCV indexes 0…max_index-1."""
    found = []
    nodes = v4l2_devices(sys_root, dev_root)
    for path, name in nodes:
        if not os.path.exists(path):
            continue
        size = frame_size(path)
        if size is None:
            continue   # metadata nodes of a UVC camera list too, but give no frames
        found.append(Finding("camera", "opencv", path, {"source": path}, Confidence.HIGH,
                             f"V4L2 '{name}' gives {size[0]}x{size[1]} frames", {"name": name, "size": list(size)}))
    # no sysfs names (a container?) but device nodes: try indexes
    if not nodes and glob.glob(os.path.join(dev_root, "video*")):
        for index in range(max_index):
            size = frame_size(index)
            if size is not None:
                found.append(Finding("camera", "opencv", str(index), {"source": index}, Confidence.MEDIUM,
                                     f"OpenCV index {index} gives {size[0]}x{size[1]} frames", {"size": list(size)}))
    return found


def usb_printers(sys_root: str = "/sys/bus/usb/devices", dev_glob: str = "/dev/usb/lp*",
                 timeout: float = 0.5) -> list[Finding]:
    """ESC/POS printers on USB: each usblp node (``/dev/usb/lpN``) asked DLE EOT 1 through the kernel driver; where
    no node answers, USB interfaces of the printer class (07) are listed for python-escpos' libusb connection."""
    found = []
    for path in sorted(glob.glob(dev_glob)):
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            found.append(Finding("unknown", "", path, {}, Confidence.LOW, f"cannot open: {exc.strerror}"))
            continue
        try:
            os.write(fd, DLE_EOT_PRINTER)
            reply = b""
            deadline = time.monotonic() + timeout
            while not reply and time.monotonic() < deadline:
                if select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    try:
                        reply = os.read(fd, 16)
                    except BlockingIOError:
                        continue
        except OSError:
            reply = b""
        finally:
            os.close(fd)
        settings = {"connection": "file", "device": path}
        if len(reply) == 1 and escpos_status_byte(reply[0]):
            found.append(Finding("receipt_printer", "escpos", path, settings, Confidence.HIGH,
                                 f"ESC/POS status (DLE EOT 1) answered 0x{reply[0]:02X} through usblp"))
        else:
            found.append(Finding("receipt_printer", "escpos", path, settings, Confidence.LOW,
                                 "USB printer node; no status answer (a printer without a back channel?)"))
    if found:
        return found
    for iface in sorted(glob.glob(os.path.join(sys_root, "*:*"))):
        try:
            if Path(iface, "bInterfaceClass").read_text().strip() != "07":
                continue
            device = Path(sys_root, Path(iface).name.split(":")[0])
            vendor = int(Path(device, "idVendor").read_text().strip(), 16)
            product = int(Path(device, "idProduct").read_text().strip(), 16)
            name = " ".join(Path(device, f).read_text().strip() for f in ("manufacturer", "product")
                            if Path(device, f).exists())
        except (OSError, ValueError):
            continue
        found.append(Finding("receipt_printer", "escpos", f"usb {vendor:04x}:{product:04x}",
                             {"connection": "usb", "vendor_id": vendor, "product_id": product}, Confidence.MEDIUM,
                             f"USB printer-class interface{' (' + name + ')' if name else ''}; not asked (libusb)"))
    return found
