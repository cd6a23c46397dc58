"""An incremental ESC/POS byte-stream parser: bytes in, :class:`Text` and :class:`Command` events out.

It is a state machine over the stream, fed in arbitrary chunks (TCP reads split commands and multi-byte characters
anywhere): every command is recognised from its prefix, its fixed parameters are collected, and variable-length data
is read by the length the command itself declares (``GS ( k pL pH``, ``GS v 0 xL xH yL yH``, ``ESC * m nL nH``,
``GS k m n`` / NUL-terminated, ...). Text is decoded as GB18030 while Kanji (Chinese) mode is on — the power-on default
of printers sold in China — and through the selected single-byte code page while it is off (``FS .``).

What it does not interpret it still skips by the right length, so the stream never falls out of step.

Command layouts follow the Epson "ESC/POS Command Reference for TM printers" (commands ESC @ ! E G - a d J 2 3 M t
* ; GS ! V k ( k ( L 8 L v 0 r h w H f B; FS & . ! C; DLE EOT ENQ DC4) and the bytes python-escpos 3.1 produces.
Real-time commands (DLE EOT, DLE ENQ, DLE DC4) are recognised between commands, not inside another command's data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF, CAN, NUL = 0x0A, 0x0D, 0x09, 0x0C, 0x18, 0x00

REALTIME_COMMANDS = frozenset({"DLE EOT", "DLE ENQ", "DLE DC4"})

# ESC t n → Python codec for the single-byte tables (used only while Kanji mode is off)
CODE_PAGES: dict[int, str] = {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 16: "cp1252", 17: "cp866",
                              18: "cp852", 19: "cp858"}

# Fixed number of parameter bytes after ``ESC x`` / ``GS x`` / ``FS x`` (x as a character). Commands with a length
# field or data are handled separately below; anything unknown is taken to have no parameters (reported as unknown).
_ESC_FIXED = {
    "@": 0, "!": 1, "E": 1, "G": 1, "-": 1, "a": 1, "d": 1, "J": 1, "2": 0, "3": 1, "M": 1, "t": 1, "R": 1,
    "V": 1, "{": 1, " ": 1, "$": 2, "\\": 2, "p": 3, "=": 1, "i": 0, "m": 0, "r": 1, "%": 1, "?": 1, "U": 1,
    "L": 0, "S": 0, "T": 1, "W": 8, "e": 1, "c": 2, "B": 2, "<": 0, "u": 1, "v": 0,
}
_GS_FIXED = {
    "!": 1, "H": 1, "h": 1, "w": 1, "f": 1, "B": 1, "b": 1, "L": 2, "W": 2, "a": 1, "r": 1, "I": 1, "P": 2,
    "/": 1, ":": 0, "$": 2, "\\": 2, "T": 1, "^": 3, "|": 1, "E": 1, "c": 0,
}
_FS_FIXED = {"&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "S": 2, "W": 1, "p": 2, "r": 1}


@dataclass(frozen=True)
class Text:
    """Printable characters, decoded."""

    text: str
    #: how many stream bytes the characters took (GB18030: 1, 2 or 4 per character)
    nbytes: int = field(default=0, compare=False)
    #: whether Kanji mode was on: non-ASCII characters then came from multi-byte codes and print full width
    kanji: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class Command:
    """One command: ``name`` is its mnemonic ("ESC !", "GS ( k", "LF"), ``params`` its small integer parameters and
    ``data`` its variable-length payload (QR content, barcode data, raster bits, ...)."""

    name: str
    params: tuple[int, ...] = ()
    data: bytes = b""
    nbytes: int = field(default=0, compare=False)

    @property
    def realtime(self) -> bool:
        """Real-time commands are executed even while the printer is offline or out of paper."""
        return self.name in REALTIME_COMMANDS


Event = Union[Text, Command]


class EscPosParser:
    """Feed bytes with :meth:`feed`; each call returns the events completed by those bytes.

    ``kanji_default``: whether Kanji (GB18030) mode is on at power-on and after ``ESC @``.
    """

    def __init__(self, kanji_default: bool = True) -> None:
        self.kanji_default = kanji_default
        self.reset()

    # state ------------------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.kanji = self.kanji_default
        self.code_page = 0
        self._events: list[Event] = []
        self._text: list[str] = []
        self._text_bytes = 0
        self._mb = bytearray()          # a GB18030 character in progress
        self._need = 0                  # bytes still to collect for the current command (0: in text)
        self._buf = bytearray()         # bytes collected for the current step
        self._then: Callable[[bytes], None] | None = None
        self._cmd_bytes = 0             # bytes of the current command so far

    @property
    def idle(self) -> bool:
        """True between commands and characters (nothing half-received)."""
        return self._then is None and not self._mb

    # feeding ----------------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Event]:
        i, n = 0, len(data)
        while i < n:
            if self._then is not None:                      # collecting a command's parameters/data
                take = min(self._need - len(self._buf), n - i)
                self._buf += data[i:i + take]
                i += take
                self._cmd_bytes += take
                if len(self._buf) == self._need:
                    got, then = bytes(self._buf), self._then
                    self._buf.clear()
                    self._then = None
                    then(got)
                continue
            b = data[i]
            i += 1
            if self._mb:
                self._continue_multibyte(b)
                continue
            if 0x20 <= b < 0x7F:
                # a run of plain ASCII: take it in one slice
                j = i
                while j < n and 0x20 <= data[j] < 0x7F:
                    j += 1
                self._add_text(data[i - 1:j].decode("ascii"), j - i + 1)
                i = j
            elif b >= 0x80:
                if self.kanji:
                    self._mb.append(b)
                    if not 0x81 <= b <= 0xFE:                   # 0x80 / 0xFF never start a GB18030 character
                        self._flush_multibyte()
                else:
                    self._add_text(bytes([b]).decode(CODE_PAGES.get(self.code_page, "cp437"), "replace"), 1)
            else:
                self._control(b)
        self._flush_text()
        events, self._events = self._events, []
        return events

    # text -------------------------------------------------------------------------------------------------------------
    def _add_text(self, text: str, nbytes: int) -> None:
        self._text.append(text)
        self._text_bytes += nbytes

    def _flush_text(self) -> None:
        if self._text:
            self._events.append(Text("".join(self._text), self._text_bytes, self.kanji))
            self._text.clear()
            self._text_bytes = 0

    def _continue_multibyte(self, b: int) -> None:
        """GB18030: lead 81–FE, then either one trail byte (40–7E, 80–FE) or 30–39 + 81–FE + 30–39."""
        mb = self._mb
        pos = len(mb)
        ok = ((pos == 1 and (0x40 <= b <= 0x7E or 0x80 <= b <= 0xFE or 0x30 <= b <= 0x39))
              or (pos == 2 and 0x81 <= b <= 0xFE)
              or (pos == 3 and 0x30 <= b <= 0x39))
        if not ok:                                      # broken sequence: U+FFFD, then the byte on its own
            self._flush_multibyte()
            self._redispatch(b)
            return
        mb.append(b)
        if len(mb) == 2 and not 0x30 <= mb[1] <= 0x39 or len(mb) == 4:
            self._flush_multibyte()

    def _redispatch(self, b: int) -> None:
        """Handle one byte in text state (after a broken multi-byte sequence)."""
        if 0x20 <= b < 0x7F:
            self._add_text(chr(b), 1)
        elif b >= 0x80:
            if self.kanji and 0x81 <= b <= 0xFE:
                self._mb.append(b)
            else:
                self._add_text("\ufffd", 1)
        else:
            self._control(b)

    def _flush_multibyte(self) -> None:
        raw = bytes(self._mb)
        self._mb.clear()
        self._add_text(raw.decode("gb18030", "replace") if len(raw) > 1 else "\ufffd", len(raw))

    # commands ---------------------------------------------------------------------------------------------------------
    def _emit(self, name: str, params: tuple[int, ...] = (), data: bytes = b"") -> None:
        self._flush_text()
        self._events.append(Command(name, params, data, self._cmd_bytes))
        self._cmd_bytes = 0

    def _collect(self, count: int, then: Callable[[bytes], None]) -> None:
        if count == 0:
            then(b"")
            return
        self._need = count
        self._buf.clear()
        self._then = then

    def _control(self, b: int) -> None:
        self._cmd_bytes = 1
        if b == LF:
            self._emit("LF")
        elif b == CR:
            self._emit("CR")
        elif b == HT:
            self._emit("HT")
        elif b == FF:
            self._emit("FF")
        elif b == CAN:
            self._emit("CAN")
        elif b == ESC:
            self._collect(1, self._esc)
        elif b == GS:
            self._collect(1, self._gs)
        elif b == FS:
            self._collect(1, self._fs)
        elif b == DLE:
            self._collect(1, self._dle)
        else:
            self._emit("NUL" if b == NUL else f"CTRL {b:02X}")

    def _fixed(self, name: str, count: int) -> None:
        self._collect(count, lambda p: self._emit(name, tuple(p)))

    # ESC ----------------------------------------------------------------------------------------------------------
    def _esc(self, c: bytes) -> None:
        ch = chr(c[0])
        name = f"ESC {ch}"
        if ch == "*":                                   # ESC * m nL nH d1..dk (bit image, k = n or 3n)
            def header(p: bytes) -> None:
                m, width = p[0], p[1] + 256 * p[2]
                size = width * (3 if m in (32, 33) else 1)
                self._collect(size, lambda d: self._emit(name, (m, width), d))
            self._collect(3, header)
        elif ch == "@":
            self._flush_text()
            self.kanji = self.kanji_default
            self.code_page = 0
            self._emit(name)
        elif ch == "t":
            def codepage(p: bytes) -> None:
                self.code_page = p[0]
                self._emit(name, (p[0],))
            self._collect(1, codepage)
        elif ch == "&":                                 # ESC & y c1 c2 [x d1..d(y*x)]k: user-defined characters
            def define(p: bytes) -> None:
                y, c1, c2 = p
                self._define_chars(name, y, max(0, c2 - c1 + 1), (y, c1, c2), b"")
            self._collect(3, define)
        elif ch in _ESC_FIXED:
            self._fixed(name, _ESC_FIXED[ch])
        else:
            self._emit(f"ESC ? {c[0]:02X}", (c[0],))

    def _define_chars(self, name: str, y: int, left: int, params: tuple[int, ...], acc: bytes) -> None:
        if left == 0:
            self._emit(name, params, acc)
            return

        def width(p: bytes) -> None:
            self._collect(y * p[0], lambda d: self._define_chars(name, y, left - 1, params, acc + p + d))
        self._collect(1, width)

    # GS -----------------------------------------------------------------------------------------------------------
    def _gs(self, c: bytes) -> None:
        ch = chr(c[0])
        name = f"GS {ch}"
        if ch == "(":                                   # GS ( X pL pH <pL+256pH bytes>
            def function(f: bytes) -> None:
                sub = f"GS ( {chr(f[0])}"
                self._collect(2, lambda p: self._collect(p[0] + 256 * p[1], lambda d: self._gs_paren(sub, d)))
            self._collect(1, function)
        elif ch == "8":                                 # GS 8 L p1 p2 p3 p4 <...>: GS ( L with a 4-byte length
            def ext(f: bytes) -> None:
                sub = f"GS 8 {chr(f[0])}"
                self._collect(4, lambda p: self._collect(int.from_bytes(p, "little"),
                                                         lambda d: self._gs_paren(sub, d)))
            self._collect(1, ext)
        elif ch == "v":                                 # GS v 0 m xL xH yL yH d1..dk, k = x*y
            def raster(p: bytes) -> None:
                m, x, y = p[1], p[2] + 256 * p[3], p[4] + 256 * p[5]
                self._collect(x * y, lambda d: self._emit("GS v 0", (m, x, y), d))
            self._collect(6, raster)
        elif ch == "k":                                 # GS k m d1..dk NUL (m 0–6) | GS k m n d1..dn (m 65–)
            def symbology(p: bytes) -> None:
                m = p[0]
                if m <= 6:
                    self._until_nul(lambda d: self._emit(name, (m,), d))
                else:
                    self._collect(1, lambda q: self._collect(q[0], lambda d: self._emit(name, (m,), d)))
            self._collect(1, symbology)
        elif ch == "V":                                 # GS V m [n]
            def cut(p: bytes) -> None:
                m = p[0]
                if m in (65, 66, 97, 98, 103, 104):
                    self._collect(1, lambda q: self._emit(name, (m, q[0])))
                else:
                    self._emit(name, (m,))
            self._collect(1, cut)
        elif ch == "*":                                 # GS * x y d1..d(x*y*8): define downloaded bit image
            self._collect(2, lambda p: self._collect(p[0] * p[1] * 8, lambda d: self._emit(name, tuple(p), d)))
        elif ch in _GS_FIXED:
            self._fixed(name, _GS_FIXED[ch])
        else:
            self._emit(f"GS ? {c[0]:02X}", (c[0],))

    def _gs_paren(self, name: str, body: bytes) -> None:
        """``GS ( k`` → params (cn, fn), data = the rest; ``GS ( L`` / ``GS 8 L`` → params (m, fn), data = the rest."""
        if len(body) >= 2:
            self._emit(name, (body[0], body[1]), body[2:])
        else:
            self._emit(name, tuple(body))

    def _until_nul(self, then: Callable[[bytes], None], acc: bytes = b"") -> None:
        def step(b: bytes) -> None:
            if b == b"\x00" or len(acc) >= 255:
                then(acc)
            else:
                self._until_nul(then, acc + b)
        self._collect(1, step)

    # FS -----------------------------------------------------------------------------------------------------------
    def _fs(self, c: bytes) -> None:
        ch = chr(c[0])
        name = f"FS {ch}"
        if ch in "&.":
            self._flush_text()                          # text so far was decoded in the old mode
            self.kanji = ch == "&"
            self._emit(name)
        elif ch == "(":                                 # FS ( X pL pH <...>
            self._collect(1, lambda f: self._collect(
                2, lambda p: self._collect(p[0] + 256 * p[1], lambda d: self._emit(f"FS ( {chr(f[0])}", (), d))))
        elif ch == "2":                                 # FS 2 c1 c2 d1..d72: define a user Kanji character
            self._collect(2, lambda p: self._collect(72, lambda d: self._emit(name, tuple(p), d)))
        elif ch in _FS_FIXED:
            self._fixed(name, _FS_FIXED[ch])
        else:
            self._emit(f"FS ? {c[0]:02X}", (c[0],))

    # DLE (real-time) ----------------------------------------------------------------------------------------------
    def _dle(self, c: bytes) -> None:
        if c[0] == 0x04:                                # DLE EOT n (n = 7, 8: DLE EOT n a)
            def status(p: bytes) -> None:
                if p[0] in (7, 8):
                    self._collect(1, lambda a: self._emit("DLE EOT", (p[0], a[0])))
                else:
                    self._emit("DLE EOT", (p[0],))
            self._collect(1, status)
        elif c[0] == 0x05:                              # DLE ENQ n
            self._fixed("DLE ENQ", 1)
        elif c[0] == 0x14:                              # DLE DC4 fn ...
            def function(f: bytes) -> None:
                fn = f[0]
                count = {1: 2, 2: 2, 7: 3, 8: 7}.get(fn, 0)
                self._collect(count, lambda p: self._emit("DLE DC4", (fn, *p)))
            self._collect(1, function)
        else:
            self._emit(f"DLE ? {c[0]:02X}", (c[0],))
