"""The seal image is the signature's own appearance: the
signature field's widget sits at the seal box on the last page and its normal appearance draws an image — what a PDF
reader shows as the signed seal, not a picture printed beside an invisible signature."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from service_platform.ecert_pdf import render_for_seal
from service_platform.seal import SealKeeper, seal_image
from tests.service_platform.test_sealed_pdf_printing import DEPARTMENT, DOC


def _images(xobjects: dict) -> int:
    """Image XObjects reachable from an appearance's resources (forms nested in forms included)."""
    found = 0
    for ref in xobjects.values():
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Image":
            found += 1
        elif obj.get("/Subtype") == "/Form":
            found += _images(obj.get("/Resources", {}).get("/XObject", {}))
    return found


def test_the_seal_image_is_the_signature_widget(tmp_path: Path) -> None:
    drawn = render_for_seal(DOC, "ABCD-EFGH-JKMN-PQR0", "https://v.example/verify/d/x")
    signed = SealKeeper(tmp_path, auto_init=True).sign(drawn.data, DEPARTMENT, box=drawn.seal_box, page=-1,
                                                        seal_png=seal_image(DEPARTMENT))
    reader = PdfFileReader(io.BytesIO(signed.data))
    [sig] = reader.embedded_signatures
    widget = sig.sig_field
    rect = [float(v) for v in widget["/Rect"]]
    assert rect == pytest.approx(list(drawn.seal_box), abs=0.5), "the field is where the seal box is, not 0×0"
    last = reader.root["/Pages"]["/Kids"][-1].get_object()
    assert any(a.get_object().get("/FT") == "/Sig" for a in last.get("/Annots", [])), "on the last page"
    appearance = widget["/AP"]["/N"].get_object()
    assert _images(appearance.get("/Resources", {}).get("/XObject", {})) >= 1, "the appearance draws the seal"
