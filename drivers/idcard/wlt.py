"""Turning the card's WLT photo into an image — a plug-in, because only licensed vendor libraries can.

The ID card carries its photo as 1024 bytes of WLT (shared/protocols.md §1), decodable only by a licensed library
(``libwlt2bmp.so`` / ``WltRS``) into a 102×126 BGR bitmap. The driver keeps the raw bytes (``photo_wlt``); what the
kiosk needs for face verification is a :class:`PhotoSource`:

* :class:`WltPhotoSource` — decodes ``photo_wlt`` with a :class:`WltDecoder` (e.g. :class:`CtypesWltDecoder`, the
  vendor library through ctypes, configured in the profile: ``wlt_decoder: {library: /opt/vendor/libwlt2bmp.so}``);
* the platform's registered photo is the fallback when there is no decoder or it fails (the kiosk's face check,
  ``kiosk/usecases/face_check.py``: the card's own photo wins when it can be decoded);
* :class:`FirstPhotoSource` tries several in order — so "decoder when configured, else the platform" is one line,
  and a kiosk without a decoder simply has no WLT source (``load_wlt_decoder(None)`` is None).

No photo bytes or decoded pixels are ever logged; errors are :class:`PhotoUnavailable` (a typed DeviceError).
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from drivers.errors import Unsupported

#: the decoded photo's size (shared/protocols.md §1): 102 × 126 pixels, 3 bytes (B, G, R) each = 38556 bytes
PHOTO_WIDTH = 102
PHOTO_HEIGHT = 126
BGR_SIZE = PHOTO_WIDTH * PHOTO_HEIGHT * 3
WLT_SIZE = 1024

#: JSON Schema of the ``wlt_decoder`` setting (used by the ID card reader driver's settings)
WLT_DECODER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "library": {"type": "string", "minLength": 1, "description": "path of the vendor's shared library"},
        "function": {"type": "string", "minLength": 1, "default": "unpack",
                     "description": "int f(const char *wlt1024, char *bgr38556, int save_bmp)"},
        "success": {"type": "integer", "default": 1, "description": "the function's return value on success"},
        "bottom_up": {"type": "boolean", "default": False,
                      "description": "rows come bottom row first (as in a BMP file)"},
    },
    "required": ["library"],
    "additionalProperties": False,
}


class PhotoUnavailable(Unsupported):
    """No image could be made from the card's photo (no decoder, the decoder failed, or it is not WLT data)."""

    code = "photo_unavailable"


@dataclass(frozen=True, repr=False)
class DecodedPhoto:
    """A decoded photo: ``pixels`` row-major, top row first, 3 bytes per pixel in ``mode`` order ("BGR"/"RGB")."""

    width: int
    height: int
    pixels: bytes
    mode: str = "BGR"

    def __post_init__(self) -> None:
        if self.mode not in ("BGR", "RGB") or len(self.pixels) != self.width * self.height * 3:
            raise ValueError("pixels do not match width × height × 3")

    def rgb_bytes(self) -> bytes:
        if self.mode == "RGB":
            return self.pixels
        out = bytearray(self.pixels)
        out[0::3], out[2::3] = self.pixels[2::3], self.pixels[0::3]
        return bytes(out)

    def to_pil(self) -> Any:
        """A Pillow RGB image (what face verification and screens use)."""
        from PIL import Image

        return Image.frombytes("RGB", (self.width, self.height), self.rgb_bytes())

    def to_png(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.to_pil().save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        return f"DecodedPhoto({self.width}x{self.height}, {self.mode})"


@runtime_checkable
class WltDecoder(Protocol):
    """Turns 1024 bytes of WLT into a :class:`DecodedPhoto`; raises :class:`PhotoUnavailable`."""

    name: str

    def decode(self, wlt: bytes) -> DecodedPhoto: ...


@runtime_checkable
class PhotoSource(Protocol):
    """Where the kiosk gets the photo to verify a face against. ``document`` is an IdentityDocument."""

    def photo_for(self, document: Any) -> DecodedPhoto | None: ...


class CtypesWltDecoder:
    """A vendor WLT library through ctypes: ``int unpack(const char *wlt, char *bgr, int save_bmp)``.

    The calling convention is the one of the widely shipped ``libwlt2bmp.so`` (1024 bytes in, 38556 bytes of BGR
    out, 1 on success; vendor samples size the output buffer as 38556). Vendors differ in the function name, the
    success value and the row order, so all three are settings. The library is loaded on first use; calls are
    serialised (these libraries are not known to be thread-safe). ``save_bmp`` is always 0: nothing is written to
    disk.
    """

    def __init__(self, library: str, function: str = "unpack", success: int = 1, bottom_up: bool = False) -> None:
        self.library = library
        self.function = function
        self.success = success
        self.bottom_up = bottom_up
        self.name = f"ctypes:{Path(library).name}:{function}"
        self._func: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._func is None:
            try:
                lib = ctypes.CDLL(self.library)
                func = getattr(lib, self.function)
            except (OSError, AttributeError) as exc:
                raise PhotoUnavailable(f"WLT library {self.name} cannot be loaded: {type(exc).__name__}") from None
            func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
            func.restype = ctypes.c_int
            self._func = func
        return self._func

    def decode(self, wlt: bytes) -> DecodedPhoto:
        if len(wlt) != WLT_SIZE:
            raise PhotoUnavailable(f"photo of {len(wlt)} bytes is not a {WLT_SIZE}-byte WLT block")
        with self._lock:
            func = self._load()
            out = ctypes.create_string_buffer(BGR_SIZE)
            result = func(bytes(wlt), out, 0)
        if result != self.success:
            raise PhotoUnavailable(f"WLT library {self.name} failed with {result}", result=result)
        pixels = out.raw
        if self.bottom_up:
            row = PHOTO_WIDTH * 3
            pixels = b"".join(pixels[i: i + row] for i in range(BGR_SIZE - row, -1, -row))
        return DecodedPhoto(PHOTO_WIDTH, PHOTO_HEIGHT, pixels, "BGR")


def load_wlt_decoder(settings: Mapping[str, Any] | None) -> WltDecoder | None:
    """The decoder a profile's ``wlt_decoder`` block asks for, or None when there is none (then the photo must come
    from the platform)."""
    if not settings:
        return None
    return CtypesWltDecoder(str(settings["library"]), str(settings.get("function", "unpack")),
                            int(settings.get("success", 1)), bool(settings.get("bottom_up", False)))


class WltPhotoSource:
    """The photo decoded from the card itself."""

    def __init__(self, decoder: WltDecoder) -> None:
        self.decoder = decoder

    def photo_for(self, document: Any) -> DecodedPhoto | None:
        wlt = getattr(document, "photo_wlt", b"")
        if not wlt:
            return None        # a card without a photo (e.g. a social-security card): let the next source try
        return self.decoder.decode(wlt)


class FirstPhotoSource:
    """Tries each source in order; the first photo wins. A source that fails with PhotoUnavailable is skipped."""

    def __init__(self, sources: Sequence[PhotoSource]) -> None:
        self.sources = list(sources)

    def photo_for(self, document: Any) -> DecodedPhoto | None:
        last: PhotoUnavailable | None = None
        for source in self.sources:
            try:
                photo = source.photo_for(document)
            except PhotoUnavailable as exc:
                last = exc
                continue
            if photo is not None:
                return photo
        if last is not None:
            raise last
        return None


__all__ = ["WltDecoder", "PhotoSource", "DecodedPhoto", "CtypesWltDecoder", "WltPhotoSource", "FirstPhotoSource",
           "PhotoUnavailable", "load_wlt_decoder", "WLT_DECODER_SCHEMA", "PHOTO_WIDTH", "PHOTO_HEIGHT", "BGR_SIZE"]
