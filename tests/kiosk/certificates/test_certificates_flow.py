"""E-certificates printed on the licence printer through the kiosk core: a private cupsd with a cups-pdf queue, the
real pycups driver, the real platform; the print journal records each job, a second copy is a counted reprint."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kiosk.usecases.certificates import NoLicencePrinter, mask_number

# these flows need the holder confirmed (card+face): the test profiles have no camera
pytestmark = pytest.mark.usefixtures("face_verified")

ZHANG_ID, ZHANG_NAME = "340302195803172018", "张明华"


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def output_for(kiosk, device_job: str, wait_for) -> Path:
    out = Path(kiosk.core.devices.simulators["licence_printer"].endpoints["out"])
    return wait_for(lambda: next(iter(out.glob(f"job_{device_job}-*.pdf")), None), what="the cups-pdf output")


def test_list_print_and_reprint_a_certificate(kiosk, call, wait_for):
    flow = kiosk.core.certificates
    assert flow.configured()
    kiosk.identify("zhang")
    certs = call(flow.certificates)
    assert {c.type_name for c in certs} >= {"居民身份证", "结婚证"}
    for cert in certs:
        assert ZHANG_ID not in cert.number_masked and "*" in cert.number_masked
        assert cert.trust_level in "ABCD"
    marriage = next(c for c in certs if c.type_name == "结婚证")
    assert marriage.number_masked == "J3*************1023"

    first = call(flow.print_certificate, marriage.id)
    assert not first.is_reprint and first.reprint_count == 0
    entry = kiosk.core.print_journal.get(first.job_id)
    assert (entry.kind, entry.state, entry.is_reprint) == ("licence", "done", False)
    assert entry.summary == "电子证照 结婚证" and entry.template == "ecert:marriage_cert"
    text = pdf_text(output_for(kiosk, entry.device_job, wait_for))
    assert "结婚证" in text and "J340302-1984-001023" in text

    second = call(flow.print_certificate, marriage.id)
    assert second.is_reprint and second.reprint_count == 1
    again = kiosk.core.print_journal.get(second.job_id)
    assert (again.state, again.is_reprint, again.reprint_of) == ("done", True, first.job_id)
    assert "J340302-1984-001023" in pdf_text(output_for(kiosk, again.device_job, wait_for))
    assert kiosk.core.session.temp_dir().exists() and not list(kiosk.core.session.temp_dir().glob("*.pdf"))

    kiosk.core.flush_audit()
    lines = [json.loads(line) for line in kiosk.core.audit.path.read_text("utf-8").splitlines()]
    printed = [entry for entry in lines if entry["event"] == "certificate_printed"]
    assert [(p["reprint"], p["reprints"]) for p in printed] == [(False, 0), (True, 1)]
    raw = kiosk.core.audit.path.read_text("utf-8")
    assert ZHANG_ID not in raw and ZHANG_NAME not in raw and "J340302-1984-001023" not in raw

    # a new session starts afresh: its first print of the same certificate is not a reprint of the last citizen's
    kiosk.core.end_session("finished")
    kiosk.identify("zhang")
    call(flow.certificates)
    assert not call(flow.print_certificate, marriage.id).is_reprint


def test_without_a_licence_printer_the_tile_says_why(plain_kiosk, call):
    flow = plain_kiosk.core.certificates
    assert not flow.configured()
    assert flow.unavailable_reason() == "certificates.reason.no_printer"
    assert plain_kiosk.core.translator.t(flow.unavailable_reason()) == "本终端未配置证照打印机"
    plain_kiosk.identify("zhang")
    certs = call(flow.certificates)
    with pytest.raises(NoLicencePrinter):
        call(flow.print_certificate, certs[0].id)


def test_numbers_are_masked():
    assert mask_number("340302195803172018") == "34************2018"
    assert mask_number("J340302-1984-001023") == "J3*************1023"
    assert mask_number("12345") == "1****"
