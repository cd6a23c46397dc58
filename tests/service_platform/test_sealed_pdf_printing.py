"""Sealed documents stay printable as text through CUPS' PostScript path (pdftopdf, then pdftops with pdftocairo —
what the simulated licence printer's queue runs), and stay validly signed.

Regression: fpdf put a transparency group on every page; pdftopdf flattens the signed seal (an image with a soft mask)
into the page, and pdftocairo then rasterized the whole page group — the printout had no text left."""
from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
from pathlib import Path

import pytest
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from drivers.licence_printer.simulator import PPD  # the simulated licence printer's PPD
from service_platform.ecert_pdf import CertDocument, render_for_seal
from service_platform.proof_pdf import DrawnPdf
from service_platform.seal import SealKeeper, seal_image

FILTERS = Path("/usr/lib/cups/filter")
DEPARTMENT = "蚌埠市公安局"
DOC = CertDocument(cert_id="ec_test", type_name="居民户口簿", type_name_en="Household register",
                   holder_name="王建国", number="340302195803172018", issuer=DEPARTMENT,
                   issued_on=dt.date(2026, 1, 2), valid_until=None, status_text="有效", trust_level="A",
                   fields=(("住址", "安徽省蚌埠市龙子湖区"),))


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    folder = tmp_path_factory.mktemp("seal")
    drawn: DrawnPdf = render_for_seal(DOC, "ABCD-EFGH-JKMN-PQR0", "https://v.example/verify/d/x")
    signed = SealKeeper(folder, auto_init=True).sign(drawn.data, DEPARTMENT, box=drawn.seal_box, page=-1,
                                                      seal_png=seal_image(DEPARTMENT))
    return signed.data, folder / "ca.pem"


def _filter(name: str, source: Path, ppd: Path, content_type: str) -> Path:
    """Run one CUPS filter as cupsd would (argv: job user title copies options file; output on stdout)."""
    env = {**os.environ, "PPD": str(ppd), "CONTENT_TYPE": content_type,
           "FINAL_CONTENT_TYPE": "application/vnd.cups-postscript"}
    target = source.with_name(f"{source.stem}.{name}")
    with target.open("wb") as out:
        subprocess.run([str(FILTERS / name), "1", "user", "title", "1",
                        "media=iso_a4_210x297mm PageSize=A4 pdftops-renderer=pdftocairo", str(source)],
                       stdout=out, stderr=subprocess.DEVNULL, env=env, timeout=60, check=True)
    return target


def test_the_pages_have_no_transparency_group(sealed: tuple[bytes, Path]) -> None:
    reader = PdfFileReader(io.BytesIO(sealed[0]))
    pages = reader.root["/Pages"]["/Kids"]
    assert len(pages) >= 1
    assert all("/Group" not in page.get_object() for page in pages)


def test_the_sealed_certificate_prints_as_text_and_stays_signed(sealed: tuple[bytes, Path], tmp_path: Path) -> None:
    data, ca_pem = sealed
    [signature] = PdfFileReader(io.BytesIO(data)).embedded_signatures
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[load_cert_from_pemder(str(ca_pem))]))
    assert status.intact and status.valid and status.trusted
    if not all((FILTERS / f).exists() for f in ("pdftopdf", "pdftops")):
        pytest.skip("cups-filters not installed")
    ppd = tmp_path / "printer.ppd"
    ppd.write_text(PPD)
    (tmp_path / "sealed.pdf").write_bytes(data)
    flattened = _filter("pdftopdf", tmp_path / "sealed.pdf", ppd, "application/pdf")
    postscript = _filter("pdftops", flattened, ppd, "application/vnd.cups-pdf")
    assert postscript.read_bytes().startswith(b"%!PS")
    subprocess.run(["ps2pdf", str(postscript), str(tmp_path / "out.pdf")], check=True, timeout=60)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(tmp_path / "out.pdf"), "-"], capture_output=True,
                          text=True, check=True, timeout=30).stdout
    assert "居民户口簿" in text and "王建国" in text and "ABCD-EFGH-JKMN-PQR0" in text
