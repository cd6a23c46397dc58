"""Every proof type the platform lists for the citizen is issued,
printed on the simulated licence printer through the print journal, and what the print server received is the sealed
document (pyHanko: intact and trusted); a proof revoked on the platform afterwards shows revoked on its verify page."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.kiosk.proofs.sealcheck import pyhanko_verdict, seal_root
from tests.kiosk.proofs.test_proofs_flow import FIVE, LICENCE_PRINTER

pytestmark = pytest.mark.usefixtures("face_verified")


def test_all_five_proofs_print_and_a_revoked_one_says_so(make_harness, platform_server):
    harness = make_harness(devices__licence_printer=LICENCE_PRINTER)
    core = harness.core
    harness.identify("zhang")      # 张明华: properties, a household record, contributions
    flow, journal = core.proofs, core.print_journal
    spool = Path(core.devices.simulators["licence_printer"].endpoints["out"]).parent / "spool"
    root = seal_root(platform_server.url)
    printed: dict[str, str] = {}
    for proof_type in sorted({t.type for t in flow.types_now()} & FIVE):
        flow.choose(proof_type)                       # the platform's default period where the type has one
        ready = flow.issue_now()
        job = flow.print_now()
        entry = journal.get(job.job_id)
        assert entry.state == "done" and entry.template == f"proof:{proof_type}" and not job.is_reprint
        received = (spool / f"d{int(entry.device_job):05d}-001").read_bytes()
        assert received == ready.pdf_path.read_bytes(), proof_type
        assert pyhanko_verdict(received, root) == (True, True), proof_type
        printed[proof_type] = ready.proof.verify_url
    assert set(printed) == FIVE, sorted(printed)

    url = printed["real_estate_record"]
    code = url.rsplit("/", 1)[1]
    revoke = subprocess.run([sys.executable, "-m", "service_platform.cli", "document", "revoke", "--db",
                             f"sqlite:///{platform_server.db_path}", "--code", code, "--reason", "issued in error"],
                            capture_output=True, text=True, timeout=60)
    assert revoke.returncode == 0, revoke.stderr
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and 'data-status="revoked"' in page.text and "已撤销" in page.text
    assert 'data-status="valid"' in httpx.get(printed["household_record"], timeout=10).text
