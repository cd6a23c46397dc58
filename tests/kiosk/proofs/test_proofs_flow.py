"""打印证明 through the core (no Kivy) against the real platform and a simulated licence printer (a private cupsd with a
cups-pdf queue): the citizen's proof types, a period, the sealed PDF fetched (its hash checked) and its first page
rendered for the screen, copies, printed through the print journal; the same proof again is a counted reprint."""
from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from kiosk.usecases.proofs import periods
from tests.kiosk.proofs.sealcheck import pdfsig_verdict, pyhanko_verdict, seal_root
from tests.qr_reading import pdf_qr_codes, read_qr

# proofs need the holder confirmed (card+face); the test profiles have no face camera
pytestmark = pytest.mark.usefixtures("face_verified")

LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}
FIVE = {"social_insurance_payment", "medical_insurance", "housing_fund_deposit", "real_estate_record",
        "household_record"}


@pytest.fixture
def kiosk(make_harness):
    from drivers.licence_printer.simulator import missing_requirements

    missing = missing_requirements()
    if missing:
        pytest.fail("the simulated licence printer needs: " + ", ".join(missing), pytrace=False)
    return make_harness(devices__licence_printer=LICENCE_PRINTER)


def test_proof_with_a_period_previewed_printed_and_reprinted(kiosk, platform_server, wait_for, tmp_path):
    core, flow = kiosk.core, kiosk.core.proofs
    kiosk.identify("zhang")
    assert flow.unavailable_reason() is None
    types = {t.type: t for t in flow.types_now()}
    assert FIVE <= set(types), sorted(types)

    choices = flow.choose("social_insurance_payment")
    assert choices and choices[0].default, "the platform's default period comes first"
    assert all(p.period_to == types["social_insurance_payment"].latest_month for p in choices[1:])
    twelve = next(p for p in choices if p.months == 12)
    flow.set_period(twelve)
    ready = flow.issue_now()
    proof = ready.proof
    assert (proof.period_from, proof.period_to) == (twelve.period_from, twelve.period_to)
    data = ready.pdf_path.read_bytes()
    assert data.startswith(b"%PDF") and hashlib.sha256(data).hexdigest() == proof.sha256
    assert ready.pdf_path.parent == core.session.temp_dir(), "kept in the session's private folder only"
    with Image.open(ready.preview_path) as page:
        assert page.width == 1400 and page.height > page.width, "an upright A4 page, readable on screen"
        assert min(page.convert("L").getextrema()) < 100, "the page has text on it"
    assert flow.issue_now().proof.code == proof.code, "the same choice again: the same proof, not a second one"

    out = Path(core.devices.simulators["licence_printer"].endpoints["out"])
    before = set(out.glob("*.pdf"))
    assert flow.set_copies(9) == 5 and flow.set_copies(2) == 2
    first = flow.print_now()
    assert not first.is_reprint and first.copies == 2
    assert core.print_journal.get(first.job_id).state == "done"
    again = flow.print_now()
    assert again.is_reprint and again.reprint_count == 1
    entry = core.print_journal.get(again.job_id)
    assert entry.is_reprint and entry.reprint_of == first.job_id
    printed = wait_for(lambda: sorted(set(out.glob("*.pdf")) - before) if len(set(out.glob("*.pdf")) - before) >= 2
                       else None, timeout=30, what="both prints out of cups-pdf")

    # what reached the print server is the sealed document itself: both validators say intact and signed by the seal
    job = core.print_journal.get(first.job_id).device_job
    received = (out.parent / "spool" / f"d{int(job):05d}-001").read_bytes()
    assert received == data
    root = seal_root(platform_server.url)
    assert pyhanko_verdict(received, root) == (True, True)
    spooled = tmp_path / "received.pdf"
    spooled.write_bytes(received)
    assert "Signature is Valid." in pdfsig_verdict(spooled)
    tampered = bytearray(received)
    at = received.index(b"stream", len(received) // 4) + 10      # a byte inside a signed content stream
    tampered[at] ^= 0x01
    spooled.write_bytes(bytes(tampered))
    assert "Signature is Valid." not in pdfsig_verdict(spooled)
    assert pyhanko_verdict(bytes(tampered), root)[0] is False

    # the paper (cups-pdf renders what the printer would put on paper): its QR opens the proof's verify page
    codes = pdf_qr_codes(printed[0], first_page_only=True)
    assert proof.verify_url in codes, codes
    page = httpx.get(proof.verify_url, params={"sha256": proof.sha256}, timeout=10)
    assert page.status_code == 200 and proof.code in page.text

    folder = core.session.temp_dir()
    core.end_session("finished")
    assert not folder.exists(), "the proof's PDF and preview go with the session"


def test_periods_fit_the_record_and_the_maximum():
    from kiosk.platform_proofs import ProofType

    t = ProofType(type="x", name="x", name_en="", issuer="", periodic=True, earliest_month="2025-03",
                  latest_month="2026-10", default_from="2025-11", default_to="2026-10", max_months=120)
    got = [(p.months, p.period_from, p.period_to, p.default) for p in periods(t)]
    assert got == [(12, "2025-11", "2026-10", True), (6, "2026-05", "2026-10", False),
                   (20, "2025-03", "2026-10", False)]
    assert periods(ProofType(type="h", name="h", name_en="", issuer="", periodic=False)) == []
