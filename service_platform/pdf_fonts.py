"""The CJK font of the platform's PDFs, made cheap to use (proof_pdf.py, ecert_pdf.py).

fpdf2 parses the whole font on every ``add_font`` (Noto Sans CJK: 65 535 glyphs, 44 810 code points) and, on
``output``, subsets it again with fontTools: ~1 s each per document on a quiet machine. Here

* the font (``ecert_pdf.find_cjk_font``) is cut once per machine to the code points a document of the platform
  normally uses — GB 2312 (its 6 763 hanzi), everything below U+2E80 (Latin, Greek, Cyrillic, punctuation, symbols),
  CJK symbols, kana and compatibility signs (U+3000–33FF) and the full-width forms — with the same fontTools options
  fpdf2 applies on output, and kept in ``$PLATFORM_FONT_CACHE`` (default ``$XDG_CACHE_HOME/govkiosk/fonts`` or
  ``~/.cache/govkiosk/fonts``; the name carries the source's path, size, mtime and face index and the fontTools and
  fpdf2 versions, so a changed font makes a new file). Same outlines, widths, CIDs and names: the PDFs come out byte
  for byte the same. Output subsets ~9 400 glyphs instead of 65 535, and each glyph's outline bounds are computed once
  per process, not several times per document;
* that small font is parsed once per process (an fpdf2 ``TTFFont``, read-only afterwards); each document gets a
  copy with its own glyph subset, its own width table and a fresh lazily-opened fontTools font (output's subsetting
  changes the fontTools font in place) — thread-safe, FastAPI draws PDFs in its thread pool;
* a document that uses a character outside that set (a rare hanzi in a name) is drawn again with the full font
  (:attr:`CjkFont.incomplete`), as before.

``PLATFORM_CJK_SUBSET=0`` turns all this off (every document parses the full font). If the cache folder cannot be
written, the full font is used.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fpdf import FPDF

LOG = logging.getLogger(__name__)
#: bump when the set of code points or the subsetting options change (a new cache file is made)
CHARSET_VERSION = 1
#: what fpdf2's output drops (fpdf/output.py, _add_fonts): the small font drops the same tables
FPDF_DROPPED_TABLES = ("FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT", "EBLC",
                       "EBSC", "SVG ", "CPAL", "COLR")


def cache_dir() -> Path:
    configured = os.environ.get("PLATFORM_FONT_CACHE", "").strip()
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "govkiosk" / "fonts"


def subset_enabled() -> bool:
    return os.environ.get("PLATFORM_CJK_SUBSET", "1").strip().lower() not in ("0", "false", "no", "off")


def wanted(codepoint: int) -> bool:
    """Whether the small font keeps ``codepoint``."""
    if codepoint < 0x2E80 or 0x3000 <= codepoint <= 0x33FF or 0xFF00 <= codepoint <= 0xFFEF:
        return True
    if 0x4E00 <= codepoint <= 0x9FFF or 0x2E80 <= codepoint < 0x3000 or 0xFE30 <= codepoint <= 0xFE4F:
        try:
            chr(codepoint).encode("gb2312")
        except UnicodeEncodeError:
            return False
        return True
    return False


def _fpdf_subset_options() -> Any:
    from fontTools import subset as ftsubset

    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += list(FPDF_DROPPED_TABLES)
    return options


def subset_file(source: str, index: int) -> Path:
    """Where the small font of face ``index`` of ``source`` is (or will be) kept."""
    import fontTools
    import fpdf

    st = os.stat(source)
    key = hashlib.sha256(f"{os.path.realpath(source)}|{index}|{st.st_size}|{st.st_mtime_ns}|{CHARSET_VERSION}|"
                         f"{fontTools.version}|{fpdf.__version__}".encode("utf-8")).hexdigest()[:20]
    return cache_dir() / f"cjk-{key}.otf"


def build_subset(source: str, index: int, target: Path) -> None:
    """Cut face ``index`` of ``source`` to :func:`wanted` code points into ``target`` (atomically; a few seconds)."""
    from fontTools import subset as ftsubset
    from fontTools.ttLib import TTFont

    # bounding boxes and time stamp as in the source: fpdf2 reads them for the PDF's font descriptor
    font = TTFont(source, fontNumber=index, lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    try:
        keep = {cp for cp in font.getBestCmap() if wanted(cp)}
        subsetter = ftsubset.Subsetter(_fpdf_subset_options())
        subsetter.populate(unicodes=keep)
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
    finally:
        font.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(out.getvalue())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Prepared:
    path: Path
    data: bytes
    template: Any  # fpdf.fonts.TTFFont, parsed once, never changed
    #: outline bounds by glyph name, filled as documents use glyphs (see _document_font_class)
    glyph_bounds: dict[str, Any] = field(default_factory=dict)


_lock = threading.Lock()
_prepared: dict[tuple[str, int, Path], _Prepared | None] = {}


def _prepare(source: str, index: int) -> _Prepared | None:
    """The small font of ``source``#``index`` parsed (made first if it is not in the cache); None: not usable."""
    try:
        target = subset_file(source, index)
    except OSError:
        return None
    key = (source, index, target)
    with _lock:
        if key in _prepared:
            return _prepared[key]
        prepared: _Prepared | None = None
        try:
            if not target.is_file():
                LOG.info("cutting the CJK font %s#%d to the platform's characters (once)", source, index)
                build_subset(source, index, target)
            prepared = _load(target)
        except Exception:  # noqa: BLE001 - the full font still works
            LOG.exception("no small CJK font (%s#%d): documents use the full font", source, index)
        _prepared[key] = prepared
        return prepared


def _load(path: Path) -> _Prepared | None:
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    data = path.read_bytes()
    template = TTFFont(FPDF(), path, "cjk", "")
    if template.color_font is not None or template.is_compressed:
        return None
    return _Prepared(path, data, template)


def warm_up() -> None:
    """Make and parse the small font now (app start-up, in a thread), so that the first PDF does not wait for it."""
    if not subset_enabled():
        return
    from service_platform.ecert_pdf import PdfUnavailable, find_cjk_font

    try:
        _prepare(*find_cjk_font())
    except PdfUnavailable:
        pass
    except Exception:  # noqa: BLE001 - documents report font problems themselves
        LOG.exception("CJK font warm-up failed")


@dataclass(frozen=True)
class CjkFont:
    """The CJK font as added to one document."""

    font: Any  # fpdf.fonts.TTFFont
    small: bool

    @property
    def incomplete(self) -> bool:
        """The small font lacked a character the document uses: draw it again with ``add_cjk_font(full=True)``."""
        return self.small and bool(self.font.missing_glyphs)

    def output(self, pdf: "FPDF") -> bytes | None:
        """``pdf.output()``, or None if the document is :attr:`incomplete` (checked before output, which is then
        skipped, and after: output draws the last page's footer)."""
        if self.incomplete:
            return None
        data = bytes(pdf.output())
        return None if self.incomplete else data


def add_cjk_font(pdf: "FPDF", family: str = "cjk", *, full: bool = False) -> CjkFont:
    """Add the platform's CJK font to ``pdf`` as ``family`` (the small one unless ``full`` or not available)."""
    from service_platform.ecert_pdf import find_cjk_font

    source, index = find_cjk_font()
    prepared = None if full or not subset_enabled() else _prepare(source, index)
    fontkey = family.lower()
    if prepared is None:
        pdf.add_font(family, fname=source, collection_font_number=index)
        return CjkFont(pdf.fonts[fontkey], small=False)
    font = _copy(prepared, len(pdf.fonts) + 1, fontkey)
    pdf.fonts[fontkey] = font
    if font.is_cff and font.is_cid_keyed:
        pdf._set_min_pdf_version("1.6")  # noqa: SLF001 - as FPDF.add_font does
    return CjkFont(font, small=True)


@lru_cache(maxsize=1)
def _document_font_class() -> type:
    """A fontTools TTFont that, when saved, takes each CFF glyph's bounds from a per-process cache: fontTools
    recomputes the bounding boxes (CFF FontBBox, head, hhea, vhea) from every glyph's outline program several times
    per save and fpdf2 compiles the CFF table twice — half of ``output``'s time. Same values, so the same bytes."""
    from fontTools.ttLib import TTFont

    class DocumentFont(TTFont):  # type: ignore[misc]
        glyph_bounds: dict[str, Any]

        def save(self, file: Any, reorderTables: bool | None = True) -> None:  # noqa: N803 - fontTools' name
            if "CFF " in self:
                char_strings = self["CFF "].cff.topDictIndex[0].CharStrings
                for name in char_strings.keys():
                    char_string = char_strings[name]
                    bounds = self.glyph_bounds.get(name, _MISSING)
                    if bounds is _MISSING:
                        bounds = self.glyph_bounds[name] = char_string.calcBounds(char_strings)
                    char_string.calcBounds = lambda glyph_set, _bounds=bounds: _bounds
            super().save(file, reorderTables)

    return DocumentFont


_MISSING = object()


def _copy(prepared: _Prepared, i: int, fontkey: str) -> Any:
    """A TTFFont for one document: the template's read-only tables shared, the mutable state fresh."""
    from fpdf.fonts import SubsetMap, TTFFont

    template = prepared.template
    font = TTFFont.__new__(TTFFont)
    for name in TTFFont.__slots__:
        try:
            setattr(font, name, getattr(template, name))
        except AttributeError:
            continue
    font.i = i
    font.fontkey = fontkey
    # output subsets this in place: each document its own (lazy: only the tables output reads are parsed)
    font.ttfont = _document_font_class()(io.BytesIO(prepared.data), recalcTimestamp=False, lazy=True)
    font.ttfont.glyph_bounds = prepared.glyph_bounds
    font.cw = defaultdict(template.cw.default_factory, template.cw)  # a defaultdict grows on lookups
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None  # noqa: SLF001
    font.subset = SubsetMap(font)
    return font
