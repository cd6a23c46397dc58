"""``kiosk-sim receipt-printer``: an ESC/POS receipt printer on TCP (like port 9100) and/or a pseudo-terminal.

The byte stream goes through :class:`~drivers.receipt_printer.escpos_parser.EscPosParser`; the printer executes the
events the way a thermal printer would: it keeps a line buffer that prints on LF / ESC d / automatic wrap, prints QR
codes (GS ( k), barcodes (GS k) and raster images (GS v 0, GS ( L, ESC *), and on a cut (GS V) writes the receipt
to the output folder as ``receipt-0001.txt`` (one line per printed line) and ``receipt-0001.png`` (rendered at
8 dots/mm). Real-time status requests (DLE EOT n) are answered in the printer's own format, and GS r n (a status that
is answered only once everything before it has been processed) too.

Control endpoint (``drivers.sim.control``): ``set_paper(state="ok"|"near_end"|"out")``, ``paper_out_after(bytes=N)``,
``set_cover(open=bool)``, ``set_online(online=bool)``, ``set_error(kind=None|"autocutter"|"unrecoverable"|
"recoverable")``, ``set_paper_width(mm=58|80)``, ``set_gs_r(supported=bool)``, ``receipts()``, ``clear()``
(receipts and counters), ``reset()`` (everything back to power-on), ``status()``, ``drop_connections()`` (TCP: hang
up on the clients).

While the printer is stopped — paper out, cover open, offline, error — it executes only real-time commands; every
other byte is discarded (counted in ``discarded_bytes``), so a job interrupted by paper-out never resumes half-way.
Paper-out in the middle of a page saves what was printed so far as ``receipt-000N.partial.txt/png``.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import socket
import socketserver
import shutil
import tempfile
import threading
import tty
from typing import Any

from drivers.receipt_printer import paper as P
from drivers.receipt_printer.escpos_parser import Command, EscPosParser, Event, Text
from drivers.sim.control import ControlServer

# DLE EOT n replies (Epson ESC/POS reference, "DLE EOT"): bits 1 and 4 are always 1, bits 0 and 7 always 0
# (pattern 0xx1xx10). Bit values below are the ones that mean trouble.
EOT_FIXED = 0x12
EOT1_OFFLINE = 0x08                     # n=1 printer status: offline
EOT2_COVER_OPEN = 0x04                  # n=2 offline cause: cover is open
EOT2_PAPER_END_STOP = 0x20              # n=2: printing stopped by paper end
EOT2_ERROR = 0x40                       # n=2: an error occurred
EOT3_AUTOCUTTER = 0x08                  # n=3 error cause: autocutter error
EOT3_UNRECOVERABLE = 0x20               # n=3: unrecoverable error
EOT3_AUTO_RECOVERABLE = 0x40            # n=3: automatically recoverable error (e.g. head too hot)
EOT4_NEAR_END = 0x0C                    # n=4 roll paper sensor: near-end detected
EOT4_PAPER_END = 0x60                   # n=4: paper end detected
# GS r 1 reply (paper sensor): bit 4 is 0, which tells it apart from DLE EOT replies
GSR_NEAR_END = 0x03
GSR_PAPER_END = 0x0C

ERROR_KINDS = {"autocutter": EOT3_AUTOCUTTER, "unrecoverable": EOT3_UNRECOVERABLE,
               "recoverable": EOT3_AUTO_RECOVERABLE}
PAPER_STATES = ("ok", "near_end", "out")
SYMBOLOGIES = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR",
               65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR",
               72: "CODE93", 73: "CODE128", 74: "GS1-128", 75: "GS1 DATABAR OMNIDIRECTIONAL",
               76: "GS1 DATABAR TRUNCATED", 77: "GS1 DATABAR LIMITED", 78: "GS1 DATABAR EXPANDED"}


def decode_code128(data: bytes) -> str:
    """The characters a CODE128 symbol encodes, from ESC/POS GS k data: ``{A``/``{B``/``{C`` select the code set,
    ``{{`` is a literal brace, ``{S`` and ``{1``–``{4`` (shift, FNC) carry no character; in code set C each byte
    0–99 is two digits."""
    out: list[str] = []
    code_set = "B"
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x7B and i + 1 < len(data):
            sel = chr(data[i + 1])
            i += 2
            if sel in "ABC":
                code_set = sel
            elif sel == "{":
                out.append("{")
            continue
        out.append(f"{b:02d}" if code_set == "C" else chr(b))
        i += 1
    return "".join(out)


class EmulatedPrinter:
    """The printer: status switches, print state, the page being printed and the receipts cut so far."""

    def __init__(self, out_dir: str, paper_width_mm: int = 80, kanji_default: bool = True) -> None:
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self._lock = threading.RLock()
        self.kanji_default = kanji_default
        self.paper_width_mm = paper_width_mm
        self._file_index = 0
        self.reset()

    # ------------------------------------------------------------------------------------------------ state
    def reset(self) -> None:
        with self._lock:
            self.paper = "ok"
            self.cover_open = False
            self.online = True
            self.error: str | None = None
            self.paper_budget: int | None = None
            self.gs_r_supported = True
            self.parser = EscPosParser(self.kanji_default)
            self._init_modes()
            self.page: list[P.Element] = []
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self.receipts: list[dict[str, Any]] = []
            self.bytes_received = 0
            self.data_bytes = 0
            self.discarded_bytes = 0
            self.unknown_commands = 0
            self.status_requests = 0

    def _init_modes(self) -> None:
        """ESC @: print modes back to power-on values; the line buffer is discarded, printed paper stays."""
        self.bold = False
        self.underline = 0
        self.align = P.ALIGN_LEFT
        self.ank_size = (1, 1)
        self.kanji_size = (1, 1)
        self.line_spacing = P.DEFAULT_LINE_SPACING
        self.qr = {"model": 2, "module": 3, "ec": 0, "data": b""}
        self.bar = {"height": 162, "module": 3, "hri": 0}
        self.graphics: P.Image.Image | None = None
        self.line = P.TextLine()
        self.band: P.Image.Image | None = None

    @property
    def dots(self) -> int:
        return P.PRINTABLE_DOTS.get(self.paper_width_mm, self.paper_width_mm * P.DOTS_PER_MM)

    @property
    def stopped(self) -> bool:
        return self.paper == "out" or self.cover_open or not self.online or self.error is not None

    def status_byte(self, n: int) -> int:
        with self._lock:
            if n == 1:
                return EOT_FIXED | (EOT1_OFFLINE if self.stopped else 0)
            if n == 2:
                return (EOT_FIXED | (EOT2_COVER_OPEN if self.cover_open else 0)
                        | (EOT2_PAPER_END_STOP if self.paper == "out" else 0)
                        | (EOT2_ERROR if self.error else 0))
            if n == 3:
                return EOT_FIXED | (ERROR_KINDS[self.error] if self.error else 0)
            if n == 4:
                return (EOT_FIXED | (EOT4_NEAR_END if self.paper in ("near_end", "out") else 0)
                        | (EOT4_PAPER_END if self.paper == "out" else 0))
            return EOT_FIXED

    # ------------------------------------------------------------------------------------------------ input
    def receive(self, data: bytes) -> bytes:
        """Process bytes from the host; return the bytes the printer sends back."""
        with self._lock:
            self.bytes_received += len(data)
            reply = bytearray()
            for event in self.parser.feed(data):
                self._consume(event, reply)
            return bytes(reply)

    def _consume(self, event: Event, reply: bytearray) -> None:
        if isinstance(event, Command) and event.realtime:
            self._realtime(event, reply)
            return
        self.data_bytes += event.nbytes
        if self.stopped:
            self.discarded_bytes += event.nbytes
            return
        if self.paper_budget is not None and event.nbytes > self.paper_budget:
            used = 0
            if isinstance(event, Text):         # the characters that still fit on the paper get printed
                fitting = []
                for ch in event.text:
                    size = len(ch.encode("gb18030", "replace")) if event.kanji and ord(ch) > 0x7F else 1
                    if used + size > self.paper_budget:
                        break
                    fitting.append(ch)
                    used += size
                self._text(Text("".join(fitting), used, event.kanji))
            self.discarded_bytes += event.nbytes - used
            self.paper_budget = None
            self._paper_runs_out()
            return
        if self.paper_budget is not None:
            self.paper_budget -= event.nbytes
        self._execute(event, reply)

    def _realtime(self, cmd: Command, reply: bytearray) -> None:
        if cmd.name == "DLE EOT":
            self.status_requests += 1
            reply.append(self.status_byte(cmd.params[0]))
        elif cmd.name == "DLE ENQ" and cmd.params[0] in (1, 2) and self.error in ("autocutter", "recoverable"):
            self.error = None                  # recover from a recoverable error
        elif cmd.name == "DLE DC4" and cmd.params and cmd.params[0] == 8:
            self.line = P.TextLine(align=self.align, spacing=self.line_spacing)   # clear buffers

    # ------------------------------------------------------------------------------------------------ printing
    def _execute(self, ev: Event, reply: bytearray) -> None:
        if isinstance(ev, Text):
            self._text(ev)
            return
        name, p = ev.name, ev.params
        if name == "LF":
            self._print_line(feed_if_empty=True)
        elif name == "ESC d":
            if self._print_line(feed_if_empty=False):
                self._feed_lines(max(0, p[0] - 1))
            else:
                self._feed_lines(p[0])
        elif name == "ESC J":
            self._print_line(feed_if_empty=False)
            self.page.append(P.Feed(dots=p[0]))
        elif name == "HT":
            col = self.line.width // P.ANK_CELL
            self._text(Text(" " * (8 - col % 8), 0, False))
        elif name == "ESC @":
            self._init_modes()
        elif name == "ESC !":
            self.bold = bool(p[0] & 0x08)
            self.underline = 1 if p[0] & 0x80 else 0
            self.ank_size = (2 if p[0] & 0x20 else 1, 2 if p[0] & 0x10 else 1)
        elif name in ("ESC E", "ESC G"):
            self.bold = bool(p[0] & 1)
        elif name == "ESC -":
            self.underline = p[0] % 48 if p[0] % 48 <= 2 else 0
        elif name == "ESC a":
            self.align = p[0] % 48 if p[0] % 48 <= 2 else 0
            if not self.line.cells:
                self.line.align = self.align
        elif name == "ESC 2":
            self.line_spacing = P.DEFAULT_LINE_SPACING
        elif name == "ESC 3":
            self.line_spacing = p[0]
        elif name == "GS !":
            size = ((p[0] >> 4 & 7) + 1, (p[0] & 7) + 1)
            self.ank_size = self.kanji_size = size
        elif name == "FS !":
            self.kanji_size = (2 if p[0] & 0x04 else 1, 2 if p[0] & 0x08 else 1)
        elif name in ("GS V", "ESC i", "ESC m"):
            self._print_line(feed_if_empty=False)
            if len(p) == 2:                     # GS V 65/66 n: feed n dots, then cut
                self.page.append(P.Feed(dots=p[1]))
            self._cut()
        elif name == "GS ( k":
            self._qr(ev)
        elif name == "GS k":
            self._barcode(ev)
        elif name == "GS h":
            self.bar["height"] = p[0] or 1
        elif name == "GS w":
            self.bar["module"] = p[0]
        elif name == "GS H":
            self.bar["hri"] = p[0] % 48 if p[0] % 48 <= 3 else 0
        elif name == "GS v 0":
            m, x, y = p
            self._picture(_raster(ev.data, x, y), (2 if m in (1, 3, 49, 51) else 1, 2 if m in (2, 3, 50, 51) else 1))
        elif name in ("GS ( L", "GS 8 L"):
            self._graphics(ev)
        elif name == "ESC *":
            self._bit_image(ev)
        elif name == "GS r" and self.gs_r_supported:
            if p[0] in (1, 49):
                reply.append((GSR_NEAR_END if self.paper == "near_end" else 0))
            elif p[0] in (2, 50):
                reply.append(0)
        elif name.startswith(("ESC ?", "GS ?", "FS ?", "DLE ?", "CTRL")):
            self.unknown_commands += 1
        # everything else (code pages, margins, fonts, buzzer, ...) changes nothing we draw

    def _text(self, ev: Text) -> None:
        for ch in ev.text:
            wide = ev.kanji and ord(ch) > 0x7F
            w, h = self.kanji_size if wide else self.ank_size
            cell = P.Cell(ch, wide, self.bold, self.underline, w, h)
            if self.line.width + cell.width > self.dots and self.line.cells:
                self._print_line(feed_if_empty=False)           # automatic wrap at the right edge
            if not self.line.cells:
                self.line.align = self.align
            self.line.cells.append(cell)

    def _print_line(self, feed_if_empty: bool) -> bool:
        """Print the line buffer (True if it held anything)."""
        if self.band is not None:
            self.page.append(P.Picture(self.band, self.align))
            self.band = None
            if not self.line.cells:
                return True
        if self.line.cells:
            self.line.spacing = self.line_spacing
            self.page.append(self.line)
            self.line = P.TextLine(align=self.align)
            return True
        if feed_if_empty:
            self._feed_lines(1)
        return False

    def _feed_lines(self, n: int) -> None:
        if n > 0:
            self.page.append(P.Feed(dots=n * self.line_spacing, lines=n))

    def _qr(self, ev: Command) -> None:
        if len(ev.params) != 2 or ev.params[0] != 49:        # cn 49 = QR; PDF417 (48) and others: not drawn
            return
        fn, d = ev.params[1], ev.data
        if fn == 65 and d:
            self.qr["model"] = d[0] - 48
        elif fn == 67 and d:
            self.qr["module"] = d[0]
        elif fn == 69 and d:
            self.qr["ec"] = (d[0] - 48) & 3
        elif fn == 80:
            self.qr["data"] = d[1:]                          # d[0] is m (48)
        elif fn == 81 and self.qr["data"]:
            self._print_line(feed_if_empty=False)
            self.page.append(P.QrSymbol(self.qr["data"], self.qr["module"], self.qr["ec"], self.align))

    def _barcode(self, ev: Command) -> None:
        symbology = SYMBOLOGIES.get(ev.params[0], f"m={ev.params[0]}")
        data = decode_code128(ev.data) if symbology in ("CODE128", "GS1-128") else ev.data.decode("latin-1")
        self._print_line(feed_if_empty=False)
        self.page.append(P.BarcodeSymbol(symbology, data, max(1, self.bar["module"]), self.bar["height"],
                                         self.bar["hri"], self.align))

    def _picture(self, image: P.Image.Image, scale: tuple[int, int] = (1, 1)) -> None:
        if scale != (1, 1):
            image = image.resize((image.width * scale[0], image.height * scale[1]), P.Image.Resampling.NEAREST)
        self._print_line(feed_if_empty=False)
        self.page.append(P.Picture(image, self.align))

    def _graphics(self, ev: Command) -> None:
        if len(ev.params) != 2:
            return
        fn, d = ev.params[1], ev.data
        if fn == 112 and len(d) >= 8:                        # store: a bx by c xL xH yL yH d1...dk
            bx, by = d[1], d[2]
            x, y = d[4] + 256 * d[5], d[6] + 256 * d[7]
            img = _raster(d[8:], (x + 7) // 8, y).crop((0, 0, x, y))
            self.graphics = img.resize((x * bx, y * by), P.Image.Resampling.NEAREST) if (bx, by) != (1, 1) else img
        elif fn == 50 and self.graphics is not None:        # print the stored graphics
            self._picture(self.graphics)

    def _bit_image(self, ev: Command) -> None:
        """ESC * m nL nH: one band of column-format bit image, printed with the line (python-escpos sends a LF)."""
        m, width = ev.params
        rows = 24 if m in (32, 33) else 8
        per_col = rows // 8
        img = P.Image.new("L", (width, rows), 255)
        px = img.load()
        for col in range(width):
            for k in range(per_col):
                byte = ev.data[col * per_col + k] if col * per_col + k < len(ev.data) else 0
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        px[col, k * 8 + bit] = 0
        sx, sy = (2 if m in (0, 32) else 1), (3 if m in (0, 1) else 1)
        self.band = img.resize((width * sx, rows * sy), P.Image.Resampling.NEAREST) if (sx, sy) != (1, 1) else img

    # ------------------------------------------------------------------------------------------------ output
    def _has_print(self) -> bool:
        return any(not isinstance(el, P.Feed) for el in self.page)

    def _cut(self) -> None:
        if self._has_print():
            self._save(cut=True)
        self.page = []

    def _paper_runs_out(self) -> None:
        self.paper = "out"
        self._print_line(feed_if_empty=False)
        if self._has_print():
            self._save(cut=False)
        self.page = []

    def _save(self, cut: bool) -> None:
        self._file_index += 1
        stem = os.path.join(self.out_dir, f"receipt-{self._file_index:04d}" + ("" if cut else ".partial"))
        lines = P.page_lines(self.page)
        text = "\n".join(lines)
        with open(stem + ".txt", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        P.render_page(self.page, self.dots).save(stem + ".png")
        self.receipts.append({
            "index": self._file_index,
            "text": text,
            "qr": [el.text for el in self.page if isinstance(el, P.QrSymbol)],
            "barcodes": [{"symbology": el.symbology, "data": el.data}
                         for el in self.page if isinstance(el, P.BarcodeSymbol)],
            "images": sum(isinstance(el, P.Picture) for el in self.page),
            "png": stem + ".png",
            "txt": stem + ".txt",
            "cut": cut,
            "partial": not cut,
        })

    # ------------------------------------------------------------------------------------------------ control
    def handlers(self) -> dict[str, Any]:
        return {
            "set_paper": self.set_paper, "paper_out_after": self.paper_out_after, "set_cover": self.set_cover,
            "set_online": self.set_online, "set_error": self.set_error, "set_paper_width": self.set_paper_width,
            "set_gs_r": self.set_gs_r,
            "receipts": lambda: {"receipts": list(self.receipts)}, "clear": self._clear_cmd,
            "reset": self._reset_cmd, "status": self.status,
        }

    def set_paper(self, state: str) -> dict[str, Any]:
        if state not in PAPER_STATES:
            raise ValueError(f"state must be one of {PAPER_STATES}")
        with self._lock:
            if state == "out" and self.paper != "out":
                self._paper_runs_out()
            self.paper = state
            self.paper_budget = None
            return self.status()

    def paper_out_after(self, bytes: int) -> dict[str, Any]:  # noqa: A002 - the control command's argument name
        if int(bytes) < 0:
            raise ValueError("bytes must be >= 0")
        with self._lock:
            self.paper_budget = int(bytes)
            return self.status()

    def set_cover(self, open: bool) -> dict[str, Any]:  # noqa: A002
        with self._lock:
            self.cover_open = bool(open)
            return self.status()

    def set_online(self, online: bool) -> dict[str, Any]:
        with self._lock:
            self.online = bool(online)
            return self.status()

    def set_error(self, kind: str | None = None) -> dict[str, Any]:
        if kind is not None and kind not in ERROR_KINDS:
            raise ValueError(f"kind must be null or one of {sorted(ERROR_KINDS)}")
        with self._lock:
            self.error = kind
            return self.status()

    def set_paper_width(self, mm: int) -> dict[str, Any]:
        if int(mm) not in P.PRINTABLE_DOTS:
            raise ValueError(f"mm must be one of {sorted(P.PRINTABLE_DOTS)}")
        with self._lock:
            self.paper_width_mm = int(mm)
            return self.status()

    def set_gs_r(self, supported: bool) -> dict[str, Any]:
        """Emulate a printer without GS r (it then never answers the driver's job confirmation)."""
        with self._lock:
            self.gs_r_supported = bool(supported)
            return self.status()

    def _clear_cmd(self) -> dict[str, Any]:
        self.clear()
        return self.status()

    def _reset_cmd(self) -> dict[str, Any]:
        self.reset()
        return self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "paper": self.paper, "cover_open": self.cover_open, "online": self.online, "error": self.error,
                "stopped": self.stopped, "paper_budget": self.paper_budget, "paper_width_mm": self.paper_width_mm,
                "gs_r_supported": self.gs_r_supported,
                "kanji_mode": self.parser.kanji, "status_bytes": {str(n): self.status_byte(n) for n in (1, 2, 3, 4)},
                "bytes_received": self.bytes_received, "data_bytes": self.data_bytes,
                "discarded_bytes": self.discarded_bytes, "status_requests": self.status_requests,
                "unknown_commands": self.unknown_commands, "receipts": len(self.receipts), "out": self.out_dir,
            }


def _raster(data: bytes, width_bytes: int, height: int) -> P.Image.Image:
    """Raster bits (rows of ``width_bytes`` bytes, MSB left, 1 = print) → an "L" image, black = printed."""
    need = width_bytes * height
    data = bytes(data[:need]).ljust(need, b"\x00")
    img = P.Image.frombytes("1", (width_bytes * 8, height), bytes(255 - b for b in data))
    return img.convert("L")


# transports ------------------------------------------------------------------------------------------------------------

class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], printer: EmulatedPrinter) -> None:
        self.printer = printer
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _TcpHandler)

    def close_connections(self) -> int:
        """Hang up on every client (as a printer that restarts); returns how many there were."""
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(conns)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: _TcpServer = self.server  # type: ignore[assignment]
        conn: socket.socket = self.request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with server.conn_lock:
            server.connections.add(conn)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                reply = server.printer.receive(data)
                if reply:
                    conn.sendall(reply)
        except OSError:
            pass
        finally:
            with server.conn_lock:
                server.connections.discard(conn)


class _PtyServer:
    """The printer on a pseudo-terminal: the slave's path is what a serial driver opens."""

    def __init__(self, printer: EmulatedPrinter) -> None:
        self.printer = printer
        self.master, self._slave = os.openpty()   # keeping the slave open: the master never sees EIO between clients
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="printer-pty", daemon=True)

    def start(self) -> "_PtyServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                continue
            reply = self.printer.receive(data)
            if reply:
                os.write(self.master, reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    own_out_dir = not getattr(args, "out", None)  # a folder of our own is removed at exit: printed data
    out_dir = getattr(args, "out", None) or tempfile.mkdtemp(prefix="kiosk-receipt-printer-")  # never outlives us
    printer = EmulatedPrinter(os.path.abspath(out_dir))
    endpoints: dict[str, str] = {}
    tcp: _TcpServer | None = None
    pty: _PtyServer | None = None
    if getattr(args, "tcp", None) or not getattr(args, "pty", False):
        tcp = _TcpServer(args.tcp or ("127.0.0.1", 0), printer)
        threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.1}, name="printer-tcp",
                         daemon=True).start()
        host, port = tcp.server_address[:2]
        endpoints["tcp"] = f"{host}:{port}"
    if getattr(args, "pty", False):
        pty = _PtyServer(printer).start()
        endpoints["pty"] = pty.path
    control_host, control_port = getattr(args, "control", None) or ("127.0.0.1", 0)
    handlers = printer.handlers()
    if tcp is not None:
        handlers["drop_connections"] = lambda: {"dropped": tcp.close_connections()}
    control = ControlServer(handlers, control_host, control_port).start()
    endpoints["control"] = control.address
    endpoints["out"] = printer.out_dir
    print(json.dumps(endpoints), flush=True)
    try:
        stop_event.wait()
    finally:
        if tcp is not None:
            tcp.shutdown()
            tcp.close_connections()
            tcp.server_close()
        if pty is not None:
            pty.stop()
        control.stop()
        if own_out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
