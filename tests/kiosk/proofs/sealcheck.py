"""Checking a sealed PDF the way a citizen's bank or employer would: pyHanko's validation against the platform's seal
root (served at /verify/ca.pem) and poppler's ``pdfsig`` (the QR a page carries: tests/qr_reading.py)."""
from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import httpx


def seal_root(platform_url: str) -> bytes:
    response = httpx.get(f"{platform_url.rstrip('/')}/verify/ca.pem", timeout=10)
    assert response.status_code == 200 and b"BEGIN CERTIFICATE" in response.content, response.text[:200]
    return response.content


def pyhanko_verdict(pdf: bytes, root_pem: bytes) -> tuple[bool, bool]:
    """(intact, trusted) of the document's first signature according to pyHanko."""
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    with tempfile.NamedTemporaryFile(suffix=".pem") as f:
        f.write(root_pem)
        f.flush()
        root = load_cert_from_pemder(f.name)
    reader = PdfFileReader(io.BytesIO(pdf))
    assert reader.embedded_signatures, "the PDF carries no signature"
    status = validate_pdf_signature(reader.embedded_signatures[0], ValidationContext(trust_roots=[root]))
    return bool(status.intact and status.valid), bool(status.trusted)


def pdfsig_verdict(path: Path) -> str:
    """poppler's pdfsig report of a file."""
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60).stdout
