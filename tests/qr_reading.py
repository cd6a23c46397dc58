"""Reading QR codes the way a phone does, for the tests: one reader for receipts, screens and printed PDFs.

OpenCV's classic detector misses some codes as the printer emulator, the screen or pdftoppm render them (about one in
fifteen random verify links; a phone reads them all). When it finds nothing, the picture is tried again with a wider
quiet zone at a few sizes, with the classic and the ArUco-based detector. What is decoded must still equal what was
printed: the tests compare the text, so a retry can only turn a miss into the right answer, never a wrong one."""
from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

_SCALES = (2.0, 0.5, 1.5, 0.75)


def _image(source: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    image = cv2.imread(str(source))
    assert image is not None, f"cannot read the picture {source}"
    return image


def _views(image: np.ndarray) -> Iterator[np.ndarray]:
    yield image
    wider = cv2.copyMakeBorder(image, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    for factor in _SCALES:
        yield cv2.resize(wider, None, fx=factor, fy=factor,
                         interpolation=cv2.INTER_NEAREST if factor > 1 else cv2.INTER_AREA)


def read_qr(source: str | Path | np.ndarray) -> str:
    """The text of the one QR code in a picture (a file or an image array), "" when none is found."""
    image = _image(source)
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for view in _views(image):
            data, _points, _ = detector.detectAndDecode(view)
            if data:
                return data
    return ""


def read_qr_codes(source: str | Path | np.ndarray) -> list[str]:
    """The text of every QR code in a picture, in the order the detector finds them; [] when none is found."""
    image = _image(source)
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for view in _views(image):
            ok, decoded, _points, _ = detector.detectAndDecodeMulti(view)
            found = [d for d in decoded if d] if ok else []
            if found:
                return found
    return []


def pdf_qr_codes(pdf: Path, dpi: int = 200, first_page_only: bool = False) -> list[str]:
    """The QR codes on the pages of a PDF as a scanner reads them (pdftoppm renders each page)."""
    pages = ["-f", "1", "-l", "1"] if first_page_only else []
    with tempfile.TemporaryDirectory(prefix="test-qr-") as folder:
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), *pages, str(pdf), f"{folder}/page"],
                       capture_output=True, check=True, timeout=120)
        return [code for page in sorted(Path(folder).glob("page*.png")) for code in read_qr_codes(page)]
