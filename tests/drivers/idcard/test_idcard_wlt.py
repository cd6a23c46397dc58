"""The WLT photo plug-in: a vendor-style shared library loaded through ctypes, and the photo source chain that lets
the platform supply the photo when there is no decoder."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import DeviceError
from drivers.idcard.identity import IdentityDocument
from drivers.idcard.serial_reader import Ga467SerialReader
from drivers.idcard.wlt import (
    BGR_SIZE, PHOTO_HEIGHT, PHOTO_WIDTH, CtypesWltDecoder, DecodedPhoto, FirstPhotoSource, PhotoSource,
    PhotoUnavailable, WltDecoder, WltPhotoSource, load_wlt_decoder,
)

# A stand-in for the vendor's libwlt2bmp.so with the same calling convention: int unpack(wlt, bgr, save_bmp).
# It "decodes" by painting a gradient keyed by the first WLT byte, and refuses anything not starting "SIM-WLT".
FAKE_VENDOR_LIBRARY = r"""
#include <string.h>
int unpack(const char *wlt, char *bgr, int save_bmp) {
    if (save_bmp != 0 || memcmp(wlt, "SIM-WLT", 7) != 0) return -2;
    for (int y = 0; y < 126; y++)
        for (int x = 0; x < 102; x++) {
            char *px = bgr + (y * 102 + x) * 3;
            px[0] = (char)x; px[1] = (char)y; px[2] = wlt[8];   /* B = x, G = y, R = a byte of the photo */
        }
    return 1;
}
"""


@pytest.fixture(scope="module")
def vendor_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler to build the stand-in vendor library: apt-get install gcc (scripts/setup.sh "
                    "installs it)", pytrace=False)
    folder = tmp_path_factory.mktemp("wlt")
    (folder / "fakewlt.c").write_text(FAKE_VENDOR_LIBRARY)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(folder / "libfakewlt.so"),
                    str(folder / "fakewlt.c")], check=True)
    return folder / "libfakewlt.so"


def test_ctypes_decoder_with_a_vendor_style_library(vendor_library: Path,
                                                    identities: dict[str, IdentityDocument]) -> None:
    decoder = load_wlt_decoder({"library": str(vendor_library)})
    assert isinstance(decoder, CtypesWltDecoder) and isinstance(decoder, WltDecoder)
    wlt = identities["zhang"].photo_wlt
    photo = decoder.decode(wlt)
    assert (photo.width, photo.height, len(photo.pixels)) == (PHOTO_WIDTH, PHOTO_HEIGHT, BGR_SIZE) == (102, 126, 38556)
    assert photo.pixels[:3] == bytes([0, 0, wlt[8]])                       # top-left: x = 0, y = 0
    assert photo.pixels[-3:] == bytes([101, 125, wlt[8]])                  # bottom-right
    image = photo.to_pil()
    assert image.size == (102, 126) and image.getpixel((5, 7)) == (wlt[8], 7, 5)   # RGB order for face checks
    assert photo.to_png().startswith(b"\x89PNG")
    assert repr(photo) == "DecodedPhoto(102x126, BGR)"
    flipped = CtypesWltDecoder(str(vendor_library), bottom_up=True).decode(wlt)
    assert flipped.pixels[:3] == bytes([0, 125, wlt[8]])


def test_ctypes_decoder_failures_are_typed(vendor_library: Path, tmp_path: Path) -> None:
    with pytest.raises(PhotoUnavailable) as info:
        CtypesWltDecoder(str(vendor_library)).decode(b"NOT-WLT!" + bytes(1016))     # the library says -2
    assert info.value.placeholders["result"] == -2 and info.value.code == "photo_unavailable"
    with pytest.raises(PhotoUnavailable):
        CtypesWltDecoder(str(vendor_library)).decode(bytes(10))                    # not 1024 bytes
    with pytest.raises(PhotoUnavailable):
        CtypesWltDecoder(str(tmp_path / "libmissing.so")).decode(bytes(1024))
    with pytest.raises(PhotoUnavailable):
        CtypesWltDecoder(str(vendor_library), function="GetBmp").decode(bytes(1024))
    assert issubclass(PhotoUnavailable, DeviceError)


class PlatformPhotos:
    """What the platform's registered-photo source (a later issue) looks like to the kiosk."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def photo_for(self, document: Any) -> DecodedPhoto | None:
        self.asked.append(document.masked_id())
        return DecodedPhoto(2, 1, bytes([1, 2, 3, 4, 5, 6]), "RGB")


def test_without_a_decoder_the_photo_comes_from_the_platform(identities: dict[str, IdentityDocument]) -> None:
    assert load_wlt_decoder(None) is None and load_wlt_decoder({}) is None
    assert Ga467SerialReader(port="/dev/null").wlt_decoder is None
    platform = PlatformPhotos()
    assert isinstance(platform, PhotoSource)
    chain = FirstPhotoSource([platform])
    assert chain.photo_for(identities["li"]).rgb_bytes() == bytes([1, 2, 3, 4, 5, 6])
    assert platform.asked == ["3501**********102X"]


def test_decoder_first_then_the_platform(vendor_library: Path, identities: dict[str, IdentityDocument]) -> None:
    platform = PlatformPhotos()
    reader = Ga467SerialReader(port="/dev/null", wlt_decoder={"library": str(vendor_library)})
    chain = FirstPhotoSource([WltPhotoSource(reader.wlt_decoder), platform])
    assert chain.photo_for(identities["zhang"]).width == 102 and platform.asked == []
    no_photo = identities["zhang"].__class__(**{**identities["zhang"].__dict__, "photo_wlt": b""})
    assert chain.photo_for(no_photo).width == 2 and len(platform.asked) == 1    # e.g. a social-security card
    broken = identities["zhang"].__class__(**{**identities["zhang"].__dict__, "photo_wlt": b"X" * 1024})
    assert chain.photo_for(broken).width == 2                                   # decoder failed: platform


def test_decoded_photo_validates_its_size() -> None:
    with pytest.raises(ValueError):
        DecodedPhoto(2, 2, bytes(11))
    with pytest.raises(ValueError):
        DecodedPhoto(1, 1, bytes(3), "CMYK")
    assert DecodedPhoto(1, 1, bytes([1, 2, 3])).rgb_bytes() == bytes([3, 2, 1])
