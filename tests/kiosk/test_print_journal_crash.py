"""kill -9 between the journal's states: a child process prints through the real PrintService, journal and drivers
(receipts on the ESC/POS emulator, licences on a private cupsd with cups-pdf), holds still right after the state a
test chose was committed, and is SIGKILLed there. The journal, reopened, must say exactly which jobs did not complete —
and the kiosk must then reprint receipts (marked when they may have printed) and never print a licence twice."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from drivers.licence_printer.cups_printer import CupsLicencePrinter
from drivers.licence_printer.simulator import LocalCupsd, missing_requirements, sample_pdf
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess
from kiosk.print_journal import PrintJournal
from kiosk.usecases.printing import REPRINT_MARK, PrintService, ReprintRefused

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, sys
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["root"])
from kiosk.print_journal import PrintJournal
from kiosk.usecases.printing import PrintService

journal = PrintJournal(cfg["journal"])
stop = cfg.get("stop")
order = []

def hold_at_chosen_state(entry):
    if entry.id not in order:
        order.append(entry.id)
    if not stop or order.index(entry.id) + 1 != stop["job"] or entry.state != stop["state"]:
        return
    if "device_job" in stop and (entry.device_job is not None) != stop["device_job"]:
        return
    print(json.dumps({"stopped": entry.id, "state": entry.state, "device_job": entry.device_job}), flush=True)
    sys.stdin.readline()                      # committed; now wait here for SIGKILL

journal.subscribe(hold_at_chosen_state)
if cfg["kind"] == "receipt":
    from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
    host, port = cfg["printer"].rsplit(":", 1)
    printer = EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0,
                                   job_timeout_s=120.0, poll_interval_s=0.05)
    service = PrintService(journal, receipt_printer=printer, kiosk_id="KSK-340302-0001", kiosk_name="测试终端")
    for number in cfg["tickets"]:
        result = service.print_receipt("queue_ticket", ticket={"number": number, "service_name": "户籍业务",
                                       "area": "B区", "waiting": 3, "issued_at": "09:30", "query_url": ""})
        print(json.dumps({"done": result.job_id}), flush=True)
else:
    from drivers.licence_printer.cups_printer import CupsLicencePrinter
    printer = CupsLicencePrinter(queue=cfg["queue"], server=cfg["server"], poll_interval_s=0.05)
    service = PrintService(journal, licence_printer=printer)
    result = service.print_licence(cfg["pdf"], document_type="business_licence", document_ref="DOC-1")
    print(json.dumps({"done": result.job_id}), flush=True)
print(json.dumps({"finished": True}), flush=True)
sys.stdin.readline()
'''


class Child:
    """The printing process; ``line()`` is its next JSON line (with a deadline), ``kill()`` is SIGKILL."""

    def __init__(self, script: Path, cfg: dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), json.dumps({"root": str(ROOT), **cfg})],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self._lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def line(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            pytest.fail(f"the printing process said nothing within {timeout} s (exit code {self.proc.poll()})")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "print_child.py"
    path.write_text(CHILD, "utf-8")
    return path


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[SimulatorProcess]:
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out", str(tmp_path / "receipts")) as sim:
        yield sim


def test_receipts_killed_between_states(script: Path, tmp_path: Path, emulator: SimulatorProcess, wait_for) -> None:
    journal_path = str(tmp_path / "print-journal.sqlite3")
    base = {"kind": "receipt", "journal": journal_path, "printer": emulator.endpoints["tcp"]}

    # run 1: A001 prints; A002 is killed right after "queued" was recorded (nothing sent)
    child = Child(script, {**base, "tickets": ["A001", "A002", "A003"], "stop": {"job": 2, "state": "queued"}})
    done_1 = child.line()["done"]
    queued = child.line()
    child.kill()
    # run 2: A004 is killed right after "sent" was recorded, before its first byte
    child = Child(script, {**base, "tickets": ["A004"], "stop": {"job": 1, "state": "sent"}})
    sent_unsent = child.line()
    child.kill()
    # run 3: A005 reaches the printer whole, then the kiosk dies before the printer confirms it
    emulator.control("set_gs_r", supported=False)
    child = Child(script, {**base, "tickets": ["A005"]})
    wait_for(lambda: len(emulator.control("receipts")["receipts"]) == 2, what="A005 printed")
    child.kill()

    with PrintJournal(journal_path) as journal:
        pending = [(e.id, e.state, e.attempts, e.may_have_printed) for e in journal.pending()]
        last = journal.jobs()[-1].id
        assert pending == [(queued["stopped"], "queued", 0, False), (sent_unsent["stopped"], "sent", 1, True),
                           (last, "sent", 1, True)]
        assert journal.get(done_1).state == "done"
        assert journal.counts() == {"queued": 1, "sent": 2, "done": 1, "failed": 0, "pending": 3, "reprints": 0}
        printed = [r["text"] for r in emulator.control("receipts")["receipts"]]
        assert ["A001" in t for t in printed] == [True, False] and "A005" in printed[1]
        assert not any("A002" in t or "A004" in t for t in printed)

        # the kiosk comes back: every open receipt is reprinted; only those that may have printed are marked
        emulator.control("set_gs_r", supported=True)
        emulator.control("clear")
        host, port = emulator.endpoints["tcp"].rsplit(":", 1)
        with EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0) as printer:
            service = PrintService(journal, receipt_printer=printer)
            for job_id, *_ in pending:
                service.reprint(job_id)
        reprinted = [r["text"].split("\n") for r in emulator.control("receipts")["receipts"]]
        assert [REPRINT_MARK in lines for lines in reprinted] == [False, True, True]
        assert f"原凭条：{sent_unsent['stopped']}" in reprinted[1]
        assert ["A002" in "".join(t) for t in reprinted] == [True, False, False]
        assert journal.pending() == []
        assert [journal.reprint_count(j) for j, *_ in pending] == [0, 1, 1]


@pytest.fixture(scope="module")
def cupsd() -> Iterator[LocalCupsd]:
    missing = missing_requirements()
    if missing:
        pytest.fail("the licence printer (a private cupsd with cups-pdf) needs: " + ", ".join(missing)
                    + " (scripts/setup.sh installs them)", pytrace=False)
    with LocalCupsd() as server:
        yield server


def test_licences_killed_between_states_are_never_printed_twice(script: Path, tmp_path: Path, cupsd: LocalCupsd,
                                                                wait_for) -> None:
    journal_path = str(tmp_path / "print-journal.sqlite3")
    pdf = sample_pdf(tmp_path / "licence.pdf", pages=2)
    base = {"kind": "licence", "journal": journal_path, "queue": cupsd.queue, "server": cupsd.server, "pdf": str(pdf)}
    printer = CupsLicencePrinter(queue=cupsd.queue, server=cupsd.server)

    # A: killed once the print server had accepted the job (its CUPS id recorded); the job goes on without us
    child = Child(script, {**base, "stop": {"job": 1, "state": "sent", "device_job": True}})
    a = child.line()
    child.kill()
    wait_for(lambda: printer.job_info(int(a["device_job"])).state == "completed", what="job A completing in CUPS")
    # B: killed after "sent" was recorded but before the document went to the print server
    child = Child(script, {**base, "stop": {"job": 1, "state": "sent", "device_job": False}})
    b = child.line()
    child.kill()
    # C: killed right after "queued"
    child = Child(script, {**base, "stop": {"job": 1, "state": "queued"}})
    c = child.line()
    child.kill()

    with PrintJournal(journal_path) as journal:
        assert [(e.id, e.state, e.device_job) for e in journal.pending()] == \
            [(a["stopped"], "sent", a["device_job"]), (b["stopped"], "sent", None), (c["stopped"], "queued", None)]

        service = PrintService(journal, licence_printer=printer)
        assert service.recover() == []                                 # the print server settles all three
        done, lost, never = (journal.get(x["stopped"]) for x in (a, b, c))
        assert (done.state, done.pages) == ("done", 2)
        assert (lost.state, lost.reason, lost.closed) == ("failed", "not_submitted", "not_printed")
        assert (never.state, never.reason, never.closed) == ("failed", "not_sent", "not_printed")
        with pytest.raises(ReprintRefused, match="completed"):
            service.reprint(a["stopped"], pdf_path=pdf, authorised_by="staff-07")
        assert list(cupsd.outputs()) == [int(a["device_job"])]       # one licence came out, once
        assert printer.find_job(b["stopped"]) is None and printer.find_job(c["stopped"]) is None
    printer.close()
