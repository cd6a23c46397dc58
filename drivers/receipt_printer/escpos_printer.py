"""ESC/POS receipt printers through python-escpos 3.1 connection classes (Network, Serial, Usb, File).

How a job goes (see :mod:`drivers.receipt_printer.base` for the contract):

1. The receipt is rendered to bytes on a python-escpos ``Dummy`` with the configured capability profile: ``ESC @``;
   per Text block ``set(align, bold, custom_size)`` (GS ! — which, unlike ESC !, also enlarges Chinese characters),
   then the text wrapped to the paper's columns and encoded in **GB18030 by this driver** (python-escpos' code-page
   magic prints '?' for full-width punctuation such as ，。：（）), optionally inside ``FS &`` … ``FS .`` (Kanji mode);
   QR codes as ``qr(native=True)`` (GS ( k) and barcodes with ``barcode()`` (GS k, centred), each with a blank line
   above and below for the quiet zone scanners need; then feed and cut. Anything that cannot be rendered fails here,
   before a byte is sent.
2. Status before the first byte: DLE EOT 1 (online), 2 (offline cause: cover, paper end, error), 4 (roll paper
   sensor), and 3 (error cause) when 2 reports an error. Replies are one byte of the form 0xx1xx10.
3. ``before_send()`` (the print journal's "sent" record) runs, then the job is sent through the connection
   (``_raw``), counted in ``bytes_sent``.
4. Confirmation: ``GS r 1``, a status the printer answers only after it has processed everything sent before it
   (DLE EOT is real-time and would answer at once, while the receipt is still printing). Its reply has bit 4 = 0,
   DLE EOT replies bit 4 = 1, so both can be outstanding at the same time. While waiting, DLE EOT 1/2/4 is polled
   every ``poll_interval_s``: a printer that stopped (paper out, cover open) never answers GS r, and the poll says
   why. ``confirm_print: false`` skips GS r (for printers without it) and only checks DLE EOT after sending.

Failure mapping (decided here):

* connection refused / host unreachable / port missing / link lost → ``NoDevice`` (status ``no_device``);
* connected but no status reply within ``timeout_s`` → ``DeviceTimeout`` (status ``offline`` with error_code
  ``timeout``): the transport works but the printer does not answer, which may pass (busy, buffer full), so the
  recommended action is retry; a reply that is not a status byte → ``ProtocolError``;
* no GS r answer within ``job_timeout_s`` while DLE EOT says all is well → ``DeviceTimeout`` carrying bytes_sent
  (the job's outcome is unknown);
* over a ``file`` connection (python-escpos ``File`` cannot read) the status is ``online`` / paper ``unknown`` and
  jobs are sent unchecked.
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import tempfile
import time
import unicodedata
import uuid
from typing import Any, Callable

from drivers.base import DeviceState, DeviceStatus, PaperState
from drivers.errors import DeviceError, DeviceTimeout, NoDevice, ProtocolError
from drivers.receipt_printer.base import PrintResult, ReceiptPrinter, error_for_status, job_error
from drivers.receipt_printer.document import Barcode, Feed, Logo, QRCode, Receipt, Rule, Text


def _use_stable_capabilities_cache() -> str:
    """python-escpos 3.1 pickles its capability database into ESCPOS_CAPABILITIES_PICKLE_DIR and *unpickles* it at
    import: the folder must be writable by nobody else. An existing setting is kept (the kiosk sets it under its
    data_dir before any driver is imported: kiosk/housekeeping.py); otherwise a per-user cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``, ``govkiosk/escpos``) — never the shared system temp folder. The folder is
    made 0700; one that belongs to another user is refused."""
    folder = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "govkiosk", "escpos")
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = folder
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise RuntimeError(f"ESCPOS_CAPABILITIES_PICKLE_DIR {folder} belongs to another user: its pickle is not loaded")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


CAPABILITIES_CACHE_DIR = _use_stable_capabilities_cache()


def _import_escpos() -> None:
    """Import python-escpos without the empty ``tmpXXXX`` folder it leaves per process.

    escpos/capabilities.py (3.1) reads ``environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR", mkdtemp())``: the default is
    evaluated first, so a folder is created even when the variable is set. During this first import, ``mkdtemp()``
    called from that module (and only from it) returns the cache folder; every other caller gets the real function.
    """
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        if not args and not kwargs and sys._getframe(1).f_globals.get("__name__") == "escpos.capabilities":
            return CAPABILITIES_CACHE_DIR
        return real_mkdtemp(*args, **kwargs)

    tempfile.mkdtemp = mkdtemp  # type: ignore[assignment]
    try:
        import escpos.printer  # noqa: F401
    finally:
        tempfile.mkdtemp = real_mkdtemp  # type: ignore[assignment]


_import_escpos()

from escpos import printer as escpos_printers  # noqa: E402  (imported above, without the stray folder)
from escpos.constants import QR_ECLEVEL_M  # noqa: E402
from escpos.exceptions import DeviceNotFoundError  # noqa: E402
from escpos.exceptions import Error as EscposError  # noqa: E402

DLE_EOT = b"\x10\x04"
GS_R_PAPER = b"\x1dr\x01"          # GS r 1: transmit paper sensor status (processed in order with the data)
FS_KANJI_ON, FS_KANJI_OFF = b"\x1c&", b"\x1c."
COLUMNS = {80: 48, 58: 32}         # Font A (12 dots) across 576 / 384 printable dots at 203 dpi
CHUNK = 4096
BARCODE_HEIGHT = 80                # dots (10 mm)

# characters that must not start / end a line (simplified GB/T 15834 line-breaking rules)
NO_LINE_START = set("，。、；：？！）》」』】〕〉…—,.;:?!)]}%”’·")
NO_LINE_END = set("（《「『【〔〈([{“‘")

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ESC/POS receipt printer (python-escpos)",
    "type": "object",
    "additionalProperties": False,
    "required": ["connection"],
    "properties": {
        "connection": {"enum": ["network", "serial", "usb", "file"]},
        "host": {"type": "string", "minLength": 1, "description": "network: printer host name or IP"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 9100},
        "device": {"type": "string", "minLength": 1,
                   "description": "serial: port (/dev/ttyUSB0, COM3); file: device file (/dev/usb/lp0)"},
        "baudrate": {"type": "integer", "minimum": 1200, "maximum": 921600, "default": 9600},
        "vendor_id": {"type": "integer", "minimum": 0, "maximum": 65535},
        "product_id": {"type": "integer", "minimum": 0, "maximum": 65535},
        "in_ep": {"type": "integer", "minimum": 0, "maximum": 255, "default": 0x82},
        "out_ep": {"type": "integer", "minimum": 0, "maximum": 255, "default": 0x01},
        "profile": {"type": "string", "minLength": 1, "default": "TM-T88V",
                    "description": "python-escpos capability profile name"},
        "paper_width_mm": {"enum": [58, 80], "default": 80},
        "columns": {"type": "integer", "minimum": 16, "maximum": 96,
                    "description": "Font A characters per line; default 48 (80 mm) or 32 (58 mm)"},
        "kanji_mode": {"type": "boolean", "default": True,
                       "description": "wrap Chinese text in FS & ... FS . (harmless where Chinese mode is on)"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 2.0,
                      "description": "connect and status-reply timeout"},
        "job_timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 30.0,
                          "description": "how long a job may take to print before it counts as failed"},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0, "default": 0.2},
        "confirm_print": {"type": "boolean", "default": True,
                          "description": "wait for GS r 1 after the job; false for printers without GS r"},
    },
    "allOf": [
        {"if": {"properties": {"connection": {"const": "network"}}}, "then": {"required": ["host"]}},
        {"if": {"properties": {"connection": {"const": "serial"}}}, "then": {"required": ["device"]}},
        {"if": {"properties": {"connection": {"const": "file"}}}, "then": {"required": ["device"]}},
        {"if": {"properties": {"connection": {"const": "usb"}}}, "then": {"required": ["vendor_id", "product_id"]}},
    ],
}

DEFAULTS: dict[str, Any] = {k: v["default"] for k, v in SETTINGS_SCHEMA["properties"].items() if "default" in v}


# text layout ------------------------------------------------------------------------------------------------------

def char_columns(ch: str) -> int:
    """Columns a character takes on an ESC/POS printer in GB18030 Kanji mode: single-byte (ASCII) characters one,
    every multi-byte character — Chinese, full-width punctuation, box drawing — two (a 24-dot Kanji cell)."""
    return 1 if ord(ch) < 0x80 else 2


def text_columns(text: str) -> int:
    return sum(char_columns(c) for c in text)


def clean_text(text: str) -> str:
    """Printable text only: CR/LF normalised, tabs as spaces, other control characters (which a printer would take
    as commands) removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")


def wrap_text(text: str, columns: int) -> list[str]:
    """Break text into printer lines of at most ``columns`` columns: Chinese anywhere (not before closing
    punctuation, not after opening brackets), Latin words at spaces where possible; ``\\n`` starts a new line."""
    lines: list[str] = []
    for paragraph in clean_text(text).split("\n"):
        lines.extend(_wrap_paragraph(paragraph, max(2, columns)))
    return lines


def _wrap_paragraph(paragraph: str, columns: int) -> list[str]:
    out: list[str] = []
    line: list[str] = []
    width = 0
    for ch in paragraph:
        cw = char_columns(ch)
        if width + cw > columns and line:
            if ch == " ":                               # a break at a space swallows the space
                out.append("".join(line).rstrip())
                line, width = [], 0
                continue
            carry: list[str] = []
            if ch.isascii() and ch.isalnum() and line[-1].isascii() and line[-1].isalnum():
                cut = "".join(line).rfind(" ")          # inside a Latin word: break at its start if we can
                if cut > 0:
                    carry, line = line[cut + 1:], line[:cut]
            elif ch in NO_LINE_START and len(line) > 1:
                carry = [line.pop()]                    # take the previous character down with the punctuation
            if line and line[-1] in NO_LINE_END and len(line) > 1:
                carry.insert(0, line.pop())
            out.append("".join(line).rstrip())
            line, width = carry, text_columns("".join(carry))
        line.append(ch)
        width += cw
    out.append("".join(line).rstrip())
    return out


def rule_line(char: str, columns: int) -> str:
    """``char`` (one or more characters) repeated across ``columns`` columns; Chinese characters count two."""
    pattern = clean_text(char).replace("\n", "") or "-"
    out: list[str] = []
    width = 0
    while True:
        for c in pattern:
            if width + char_columns(c) > columns:
                return "".join(out)
            out.append(c)
            width += char_columns(c)


def code128_payload(data: str) -> str:
    """GS k CODE128 data: all-digit data of even length in code set C (half as wide), otherwise code set B
    (``{`` doubled). Data already starting with a code-set selector passes through."""
    if data.startswith(("{A", "{B", "{C")):
        return data
    if not data.isascii():
        raise ValueError("CODE128 data must be ASCII")
    if len(data) >= 4 and len(data) % 2 == 0 and data.isdigit():
        return "{C" + "".join(chr(int(data[i:i + 2])) for i in range(0, len(data), 2))
    return "{B" + data.replace("{", "{{")


def code128_modules(payload: str) -> int:
    """Modules of a CODE128 symbol for a GS k payload: 11 per symbol (start, data, check) plus a 13-module stop."""
    symbols, i = 0, 0
    while i < len(payload):
        if payload[i] == "{" and i + 1 < len(payload) and payload[i + 1] in "ABC":
            i += 2
            symbols += 1 if i > 2 else 0             # the first selector is the start symbol itself
            continue
        i += 2 if payload[i] == "{" else 1
        symbols += 1
    return 11 * (symbols + 2) + 13


class _LinkLost(Exception):
    """The connection to the printer closed under us."""


# the driver --------------------------------------------------------------------------------------------------------

class EscposReceiptPrinter(ReceiptPrinter):
    """Receipt printer on python-escpos. Settings: see :data:`SETTINGS_SCHEMA`."""

    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)  # validates against SETTINGS_SCHEMA (InvalidSettings, a ValueError)
        cfg = {**DEFAULTS, **settings}
        self.connection: str = cfg["connection"]
        self.cfg = cfg
        self.columns: int = cfg.get("columns") or COLUMNS[cfg["paper_width_mm"]]
        self.kanji_mode: bool = cfg["kanji_mode"]
        self.timeout_s: float = float(cfg["timeout_s"])
        self.job_timeout_s: float = float(cfg["job_timeout_s"])
        self.poll_interval_s: float = float(cfg["poll_interval_s"])
        self.confirm_print: bool = cfg["confirm_print"]
        self.profile: str = cfg["profile"]
        escpos_printers.Dummy(profile=self.profile)  # an unknown profile name fails here, not at the first job
        self._printer: Any = None
        self._rx = bytearray()
        self._gsr_reply: int | None = None
        self.receipts_printed = 0
        self.bytes_sent = 0
        self.jobs_failed = 0

    # -------------------------------------------------------------------------------------------- description
    @property
    def address(self) -> str:
        c = self.cfg
        if self.connection == "network":
            return f"{c['host']}:{c['port']}"
        if self.connection == "usb":
            return f"usb:{c['vendor_id']:04x}:{c['product_id']:04x}"
        return str(c["device"])

    @property
    def counters(self) -> dict[str, int]:
        return {"receipts_printed": self.receipts_printed, "bytes_sent": self.bytes_sent,
                "jobs_failed": self.jobs_failed}

    @property
    def can_read_status(self) -> bool:
        return self.connection != "file"

    # -------------------------------------------------------------------------------------------- lifecycle
    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        self._disconnect()

    def _connect(self) -> None:
        c = self.cfg
        if self.connection == "network":
            printer = escpos_printers.Network(c["host"], c["port"], timeout=self.timeout_s, profile=self.profile)
        elif self.connection == "serial":
            printer = escpos_printers.Serial(c["device"], baudrate=c["baudrate"], timeout=self.timeout_s,
                                             profile=self.profile)
        elif self.connection == "usb":
            if not escpos_printers.Usb.is_usable():
                raise NoDevice("USB printers need pyusb (pip install pyusb) and libusb-1.0 on the kiosk")
            printer = escpos_printers.Usb(c["vendor_id"], c["product_id"], timeout=int(self.timeout_s * 1000),
                                          in_ep=c["in_ep"], out_ep=c["out_ep"], profile=self.profile)
        else:
            printer = escpos_printers.File(c["device"], profile=self.profile)
        try:
            printer.open()
        except (DeviceNotFoundError, OSError) as exc:
            raise NoDevice(f"receipt printer {self.address} not reachable: {exc}".strip()) from exc
        except EscposError as exc:                   # e.g. pyusb missing for a usb connection
            raise NoDevice(f"receipt printer {self.address}: {exc}") from exc
        if self.connection == "network":
            printer.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._printer = printer
        self._rx.clear()

    def _disconnect(self) -> None:
        printer, self._printer = self._printer, None
        self._rx.clear()
        if printer is not None:
            with contextlib.suppress(Exception):
                printer.close()

    def _ensure_connected(self) -> None:
        if not self.is_open:
            self.open()                               # raises NoDevice
        elif self._printer is None:
            self._connect()

    # -------------------------------------------------------------------------------------------- byte I/O
    def _write(self, data: bytes) -> None:
        printer = self._printer
        if printer is None:
            raise _LinkLost("not connected")
        if self.connection == "network":
            printer.device.settimeout(self.job_timeout_s)
        try:
            printer._raw(data)
        except OSError as exc:
            raise _LinkLost(str(exc)) from exc
        except Exception as exc:                      # pyserial / pyusb errors
            if type(exc).__name__ in ("SerialException", "SerialTimeoutException", "USBError", "USBTimeoutError"):
                raise _LinkLost(str(exc)) from exc
            raise

    def _read_some(self, timeout: float) -> bytes:
        """Bytes the printer sent, waiting up to ``timeout`` seconds (0: only what is already there)."""
        printer = self._printer
        if printer is None:
            raise _LinkLost("not connected")
        try:
            if self.connection == "network":
                printer.device.settimeout(timeout)
                try:
                    data = printer._read()
                except (socket.timeout, BlockingIOError):
                    return b""
                if not data:
                    raise _LinkLost("the printer closed the connection")
                return data
            if self.connection == "serial":
                # not printer._read(): that is read(16), which waits out the whole timeout for a 1-byte reply
                port = printer.device
                port.timeout = timeout
                first = port.read(1)
                return first + port.read(port.in_waiting) if first and port.in_waiting else first
            if self.connection == "usb":
                try:
                    return bytes(printer.device.read(printer.in_ep, 16, max(1, int(timeout * 1000))))
                except Exception as exc:
                    if type(exc).__name__ == "USBTimeoutError":
                        return b""
                    raise
        except _LinkLost:
            raise
        except Exception as exc:
            raise _LinkLost(str(exc)) from exc
        return b""

    def _drain(self) -> None:
        """Drop late replies (to a query that timed out, or a previous job's GS r) before asking anything."""
        self._rx.clear()
        while self._read_some(0.0):
            pass

    def _next_byte(self, timeout: float) -> int | None:
        if not self._rx:
            self._rx += self._read_some(timeout)
        return self._rx.pop(0) if self._rx else None

    def _dle_eot(self, n: int) -> int:
        """Send DLE EOT n and return the status byte; a GS r reply met on the way is kept for the job check."""
        self._write(DLE_EOT + bytes([n]))
        deadline = time.monotonic() + self.timeout_s
        while True:
            b = self._next_byte(max(0.0, deadline - time.monotonic()))
            if b is None:
                raise DeviceTimeout(f"no answer to DLE EOT {n} within {self.timeout_s} s")
            if b & 0x93 == 0x12:                      # 0xx1xx10: a DLE EOT reply
                return b
            if b & 0x90 == 0x00:                      # bit 4 = 0: the GS r 1 reply
                self._gsr_reply = b
                continue
            raise ProtocolError(f"unexpected byte {b:#04x} in reply to DLE EOT {n}")

    # -------------------------------------------------------------------------------------------- status
    def _make_status(self, device: DeviceState, paper: PaperState = PaperState.UNKNOWN,
                     error_code: str | None = None, detail: str = "",
                     raw: dict[str, int] | None = None) -> DeviceStatus:
        extra: dict[str, Any] = {"connection": self.connection, "address": self.address}
        if raw:
            extra["status_bytes"] = raw
        return DeviceStatus(kind=self.KIND, device=device, paper=paper, error_code=error_code, detail=detail,
                            counters=self.counters, extra=extra)

    def _read_status(self) -> DeviceStatus:
        """DLE EOT 1, 2, 4 (and 3 on an error) → DeviceStatus. Raises _LinkLost / DeviceTimeout / ProtocolError."""
        b1, b2, b4 = self._dle_eot(1), self._dle_eot(2), self._dle_eot(4)
        raw = {"printer": b1, "offline_cause": b2, "paper": b4}
        paper = PaperState.OUT if b4 & 0x60 else PaperState.LOW if b4 & 0x0C else PaperState.FULL
        if b2 & 0x04:
            return self._make_status(DeviceState.OFFLINE, paper, "cover_open", "cover open", raw)
        if b2 & 0x40:
            b3 = raw["error_cause"] = self._dle_eot(3)
            code = ("autocutter_error" if b3 & 0x08 else "unrecoverable_error" if b3 & 0x20
                    else "recoverable_error" if b3 & 0x40 else "hardware_error")
            return self._make_status(DeviceState.HARDWARE_ERROR, paper, code, code.replace("_", " "), raw)
        if paper is PaperState.OUT or b2 & 0x20:
            return self._make_status(DeviceState.ONLINE, PaperState.OUT, "paper_out", "paper out", raw)
        if b1 & 0x08:
            return self._make_status(DeviceState.OFFLINE, paper, "printer_offline", "printer offline", raw)
        return self._make_status(DeviceState.ONLINE, paper, None, "paper near end" if paper is PaperState.LOW
                                 else "", raw)

    def _probe(self) -> DeviceStatus:
        """Connect if needed and read the status; a dropped connection is re-opened once."""
        for attempt in (1, 2):
            try:
                self._ensure_connected()
            except NoDevice as exc:
                return self._make_status(DeviceState.NO_DEVICE, error_code="no_device", detail=str(exc))
            if not self.can_read_status:
                return self._make_status(DeviceState.ONLINE, detail="status not readable over a file connection")
            try:
                self._drain()
                return self._read_status()
            except _LinkLost as exc:
                self._disconnect()
                if attempt == 2:
                    return self._make_status(DeviceState.NO_DEVICE, error_code="no_device",
                                             detail=f"connection lost: {exc}")
            except DeviceTimeout as exc:
                return self._make_status(DeviceState.OFFLINE, error_code="timeout", detail=str(exc))
            except ProtocolError as exc:
                return self._make_status(DeviceState.HARDWARE_ERROR, error_code="invalid_data", detail=str(exc))
        raise AssertionError("unreachable")

    def status(self) -> DeviceStatus:
        with self._lock:
            return self._probe()

    # -------------------------------------------------------------------------------------------- rendering
    def _encode(self, line: str) -> bytes:
        raw = line.encode("gb18030", errors="replace")
        if self.kanji_mode and len(raw) != len(line):
            raw = FS_KANJI_ON + raw + FS_KANJI_OFF
        return raw + b"\n"

    def render(self, receipt: Receipt) -> bytes:
        """The job's bytes. Raises ValueError for content the printer cannot print (nothing has been sent)."""
        d = escpos_printers.Dummy(profile=self.profile)
        d.hw("INIT")
        for block in receipt.blocks:
            if isinstance(block, Text):
                scale = 2 if block.size == "double" else 1
                d.set(align=block.align, bold=block.bold, custom_size=True, width=scale, height=scale)
                for line in wrap_text(block.text, self.columns // scale):
                    d._raw(self._encode(line))
            elif isinstance(block, Rule):
                d.set(align="left", bold=False, custom_size=True, width=1, height=1)
                d._raw(self._encode(rule_line(block.char, self.columns)))
            elif isinstance(block, QRCode):
                if not block.data:
                    raise ValueError("QR code without data")
                d.set(align=block.align)
                d.ln()                                # a blank line above and below: the symbol's quiet zone
                try:
                    d.qr(block.data, ec=QR_ECLEVEL_M, size=min(16, max(1, block.size)), native=True)
                except (ValueError, EscposError) as exc:
                    raise ValueError(f"QR code cannot be printed: {exc}") from exc
                d.ln()
            elif isinstance(block, Barcode):
                d.ln()
                self._render_barcode(d, block)
                d.ln()
            elif isinstance(block, Feed):
                if block.lines > 0:
                    d.print_and_feed(min(255, block.lines))
            elif isinstance(block, Logo):
                self._render_logo(d, block)
            else:
                raise ValueError(f"unknown receipt block {block!r}")
        d.set(align="left", bold=False, custom_size=True, width=1, height=1)
        d.cut()
        return d.output

    def _render_logo(self, d: Any, block: Logo) -> None:
        """Raster image (GS v 0), at most a third of the paper width, dithered to black and white."""
        from PIL import Image

        try:
            with Image.open(block.path) as src:
                img = src.convert("RGBA")
        except OSError as exc:
            raise ValueError(f"logo cannot be printed: {exc}") from exc
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img).convert("L")
        max_px = (576 if self.cfg["paper_width_mm"] == 80 else 384) // 3
        if img.width > max_px:
            img = img.resize((max_px, max(1, round(img.height * max_px / img.width))))
        d.set(align=block.align)
        d.image(img.convert("1"), impl="bitImageRaster", center=False)

    def _render_barcode(self, d: Any, block: Barcode) -> None:
        symbology = block.symbology.upper()
        data, width = block.data, 2
        if symbology in ("CODE128", "GS1-128"):
            data = code128_payload(data)
            dots = self.columns * 12
            fitting = [w for w in (3, 2) if (code128_modules(data) + 20) * w <= dots]   # 10-module quiet zones
            if not fitting:
                raise ValueError(f"barcode {block.data!r} is too long for {dots}-dot paper")
            width = fitting[0]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # python-escpos prints "Using hardware barcode renderer"
                d.barcode(data, symbology, height=BARCODE_HEIGHT, width=width, pos="BELOW", font="A",
                          align_ct=True)
        except EscposError as exc:
            raise ValueError(f"barcode {block.data!r} ({block.symbology}) cannot be printed: {exc}") from exc

    # -------------------------------------------------------------------------------------------- printing
    def print_receipt(self, receipt: Receipt, *, before_send: Callable[[], None] | None = None) -> PrintResult:
        job_id = receipt.job_id or uuid.uuid4().hex
        job = self.render(receipt)
        with self._lock:
            started = time.monotonic()
            before = self._probe()
            error = error_for_status(before, job_id=job_id)
            if error is not None:
                self.jobs_failed += 1
                raise error
            if before_send is not None:
                before_send()
            sent = 0
            try:
                for i in range(0, len(job), CHUNK):
                    self._write(job[i:i + CHUNK])
                    sent += len(job[i:i + CHUNK])
                paper = self._confirm(job_id, sent)
            except _LinkLost as exc:
                self._disconnect()
                self.jobs_failed += 1
                raise job_error(NoDevice, f"connection to the printer lost during job {job_id}: {exc}",
                                bytes_sent=sent, job_id=job_id) from exc
            except DeviceError as exc:
                self.jobs_failed += 1
                if getattr(exc, "bytes_sent", None) is None:
                    raise job_error(type(exc), str(exc), bytes_sent=sent, job_id=job_id) from exc
                raise
            finally:
                self.bytes_sent += sent
            self.receipts_printed += 1
            return PrintResult(job_id=job_id, bytes_sent=sent, paper=paper,
                               duration_s=time.monotonic() - started)

    def _confirm(self, job_id: str, sent: int) -> PaperState:
        """After the last byte: wait until the printer has processed the job (GS r 1), polling DLE EOT meanwhile."""
        if not self.can_read_status:
            return PaperState.UNKNOWN
        if self.confirm_print:
            self._gsr_reply = None
            self._write(GS_R_PAPER)
            deadline = time.monotonic() + self.job_timeout_s
            while self._gsr_reply is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise job_error(DeviceTimeout, f"job {job_id} not confirmed within {self.job_timeout_s} s",
                                    bytes_sent=sent, job_id=job_id)
                b = self._next_byte(min(self.poll_interval_s, remaining))
                if b is None:                          # still printing, or stopped: ask why (real-time)
                    polled = self._read_status()
                    if self._gsr_reply is None:
                        error = error_for_status(polled, bytes_sent=sent, job_id=job_id)
                        if error is not None:
                            raise error
                elif b & 0x90 == 0x00:
                    self._gsr_reply = b
                elif b & 0x93 != 0x12:                 # a stray DLE EOT reply is harmless; anything else is not
                    raise job_error(ProtocolError, f"unexpected byte {b:#04x} while waiting for job {job_id}",
                                    bytes_sent=sent, job_id=job_id)
            # the printer processed the whole job; its GS r 1 reply carries the paper sensors
            reply = self._gsr_reply
            return PaperState.OUT if reply & 0x0C else PaperState.LOW if reply & 0x03 else PaperState.FULL
        after = self._read_status()
        error = error_for_status(after, bytes_sent=sent, job_id=job_id)
        if error is not None:
            raise error
        return after.paper or PaperState.UNKNOWN


__all__ = ["EscposReceiptPrinter", "SETTINGS_SCHEMA", "CAPABILITIES_CACHE_DIR", "escpos_printers", "wrap_text",
           "rule_line", "char_columns", "text_columns", "clean_text", "code128_payload"]
