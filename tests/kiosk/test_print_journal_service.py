"""PrintService: every print through the journal, on the real drivers and simulated printers (ESC/POS emulator,
private cupsd with cups-pdf). Paper out up front and mid-job, reprints, near-end reporting, licences and staff
authorisation."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import cups
import pytest

from drivers.base import PaperState
from drivers.errors import PaperOut, PrinterOffline
from drivers.licence_printer.base import LicenceOptions
from drivers.licence_printer.cups_printer import CupsLicencePrinter
from drivers.licence_printer.simulator import LocalCupsd, missing_requirements, sample_pdf
from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess
from kiosk.errors import DeviceUnavailable
from kiosk.platform_client import Application, ProgressStep
from kiosk.print_journal import PrintJournal
from kiosk.usecases.printing import REPRINT_MARK, PrintService, ReprintNeedsAuthorisation, ReprintRefused

TICKET = {"number": "B017", "service_name": "社保业务", "area": "C区", "waiting": 5, "issued_at": "2026-04-15 10:02",
          "query_url": "https://zwfw.example.gov.cn/queue/B017"}


@pytest.fixture(scope="module")
def _emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    out = tmp_path_factory.mktemp("receipts")
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out", str(out)) as sim:
        yield sim


@pytest.fixture
def emulator(_emulator: SimulatorProcess) -> SimulatorProcess:
    _emulator.control("reset")
    return _emulator


@pytest.fixture(scope="module")
def _cupsd() -> Iterator[LocalCupsd]:
    missing = missing_requirements()
    if missing:
        pytest.fail("the licence printer (a private cupsd with cups-pdf) needs: " + ", ".join(missing)
                    + " (scripts/setup.sh installs them)", pytrace=False)
    with LocalCupsd() as server:
        yield server


@pytest.fixture
def cupsd(_cupsd: LocalCupsd) -> LocalCupsd:
    _cupsd.reset()
    return _cupsd


@pytest.fixture(scope="module")
def licence_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_pdf(tmp_path_factory.mktemp("docs") / "licence.pdf", pages=2)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[PrintJournal]:
    with PrintJournal(tmp_path / "print-journal.sqlite3") as j:
        yield j


@pytest.fixture
def events() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def service(journal: PrintJournal, emulator: SimulatorProcess, events: list) -> Iterator[PrintService]:
    host, port = emulator.endpoints["tcp"].rsplit(":", 1)
    printer = EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0,
                                   poll_interval_s=0.05, job_timeout_s=5.0)
    svc = PrintService(journal, receipt_printer=printer, kiosk_id="KSK-340302-0001", kiosk_name="东海社区自助终端",
                       listener=lambda name, payload: events.append((name, payload)))
    yield svc
    printer.close()


@pytest.fixture
def licence_service(journal: PrintJournal, cupsd: LocalCupsd, events: list) -> Iterator[PrintService]:
    printer = CupsLicencePrinter(queue=cupsd.queue, server=cupsd.server, poll_interval_s=0.05, fault_grace_s=0.3,
                                 stale_fault_grace_s=2.0)
    yield PrintService(journal, licence_printer=printer, listener=lambda name, payload: events.append((name, payload)))
    printer.close()


def printed(emulator: SimulatorProcess) -> list[dict[str, Any]]:
    return emulator.control("receipts")["receipts"]


# --- receipts -----------------------------------------------------------------------------------------------------------

def test_a_receipt_is_recorded_before_it_is_sent_and_done_after(service: PrintService, journal: PrintJournal,
                                                                emulator: SimulatorProcess, events: list) -> None:
    result = service.print_receipt("queue_ticket", ticket=TICKET)

    entry = journal.get(result.job_id)
    assert (entry.state, entry.kind, entry.template, entry.summary) == ("done", "receipt", "queue_ticket", "排队取号凭条")
    assert (entry.attempts, entry.bytes_sent, entry.paper, entry.payload) == (1, result.bytes_sent, "full", None)
    assert journal.history(result.job_id) == [("queued", None), ("sent", None), ("done", None)]
    assert [p["state"] for name, p in events if name == "print_job"] == ["queued", "sent", "done"]
    [receipt] = printed(emulator)
    assert "B017" in receipt["text"] and receipt["qr"] == [TICKET["query_url"]]
    assert service.unfinished() == []


def test_paper_out_up_front_is_refused_and_settled(service: PrintService, journal: PrintJournal,
                                                   emulator: SimulatorProcess, events: list) -> None:
    emulator.control("set_paper", state="out")

    with pytest.raises(PaperOut):
        service.print_receipt("queue_ticket", ticket=TICKET)

    [entry] = journal.jobs()
    assert (entry.state, entry.reason, entry.attempts, entry.closed) == ("failed", "paper_out", 0, "not_printed")
    assert service.unfinished() == [] and printed(emulator) == []
    assert ("paper", {"device": "receipt_printer", "state": "out", "previous": None}) in events
    assert service.paper == {"receipt_printer": PaperState.OUT}


def test_paper_out_mid_job_leaves_it_open_and_the_reprint_is_marked(service: PrintService, journal: PrintJournal,
                                                                    emulator: SimulatorProcess) -> None:
    job_size = len(service.receipt_printer().render(service.render_receipt("queue_ticket", ticket=TICKET)))
    emulator.control("paper_out_after", bytes=job_size - 100)       # mid-job: after the emblem and some text

    with pytest.raises(PaperOut) as raised:
        service.print_receipt("queue_ticket", ticket=TICKET)

    [open_job] = service.unfinished()
    assert open_job.id == raised.value.job_id
    assert (open_job.state, open_job.reason, open_job.bytes_sent, open_job.may_have_printed) == \
        ("failed", "paper_out", job_size, True)
    assert open_job.payload is not None                               # kept to print it again
    assert [r["partial"] for r in printed(emulator)] == [True]

    emulator.control("set_paper", state="ok")                         # staff refill
    result = service.reprint(open_job.id)

    again = journal.get(result.job_id)
    assert (again.state, again.reprint_of, again.is_reprint) == ("done", open_job.id, True)
    assert journal.get(open_job.id).closed == f"reprinted:{result.job_id}"
    assert journal.reprint_count(open_job.id) == 1 and service.unfinished() == []
    lines = printed(emulator)[-1]["text"].split("\n")
    assert lines[:2] == [REPRINT_MARK, f"原凭条：{open_job.id}"] and "B017" in lines
    with pytest.raises(ReprintRefused):
        service.reprint(result.job_id)                                # printed: nothing to reprint
    with pytest.raises(ReprintRefused):
        service.reprint("PJ-no-such-job")


def test_paper_near_end_is_reported_once_when_it_changes(service: PrintService, emulator: SimulatorProcess,
                                                         events: list) -> None:
    service.print_receipt("queue_ticket", ticket=TICKET)
    emulator.control("set_paper", state="near_end")
    low = service.print_receipt("queue_ticket", ticket=TICKET)
    service.print_receipt("queue_ticket", ticket=TICKET)
    emulator.control("set_paper", state="ok")
    service.print_receipt("queue_ticket", ticket=TICKET)

    assert low.paper is PaperState.LOW
    assert [(p["state"], p["previous"]) for name, p in events if name == "paper"] == \
        [("full", None), ("low", "full"), ("full", "low")]


def test_progress_receipt_through_the_service_keeps_masked_names_only(service: PrintService, journal: PrintJournal,
                                                                      emulator: SimulatorProcess) -> None:
    app = Application(number="SP2026041500123", service_code="S01", service_name="户口迁移", status="in_review",
                      status_text="审核中", applicant_masked="张*华", submitted_at="2026-04-15T09:30:00",
                      department="蚌埠市公安局龙子湖分局", promised_date="2026-04-22",
                      timeline=[ProgressStep("received", "2026-04-15T09:30:00", "东海社区", "已受理")])
    emulator.control("paper_out_after", bytes=200)                     # so the journal keeps the blocks

    with pytest.raises(PaperOut):
        service.print_progress(app, {"in_review": "审核中", "received": "已收件"})

    [entry] = service.unfinished()
    assert entry.summary == "办件进度回执"                             # the summary names no one
    stored = str(entry.payload)
    assert "张*华" in stored and "张明华" not in stored and "SP2026041500123" in stored


def test_no_printer_is_device_unavailable(journal: PrintJournal) -> None:
    with pytest.raises(DeviceUnavailable):
        PrintService(journal).print_receipt("queue_ticket", ticket=TICKET)
    with pytest.raises(DeviceUnavailable):
        PrintService(journal, devices={}.get).print_licence("x.pdf")
    assert journal.jobs() == []


# --- licences -----------------------------------------------------------------------------------------------------------

def test_a_licence_is_printed_and_recorded_with_its_print_server_job(licence_service: PrintService,
                                                                     journal: PrintJournal, cupsd: LocalCupsd,
                                                                     licence_pdf: Path, events: list) -> None:
    cupsd.set_markers({"Black Toner": 6})

    result = licence_service.print_licence(licence_pdf, LicenceOptions(copies=1, tray="tray-1"),
                                           document_type="business_licence", document_ref="DOC-77")

    entry = journal.get(result.job_id)
    assert (entry.state, entry.kind, entry.template, entry.device_job, entry.pages) == \
        ("done", "licence", "business_licence", str(result.device_job_id), 2)
    assert cupsd.output_for(result.device_job_id) is not None
    assert ("supply_low", {"device": "licence_printer", "supplies": ["Black Toner"],
                           "levels": {"Black Toner": 6}}) in events


def test_a_licence_refused_up_front_is_settled_and_may_be_printed_again_freely(
        licence_service: PrintService, journal: PrintJournal, cupsd: LocalCupsd, licence_pdf: Path) -> None:
    cupsd.set_queue(enabled=False)
    with pytest.raises(PrinterOffline):
        licence_service.print_licence(licence_pdf, document_ref="DOC-1")
    [entry] = journal.jobs()
    assert (entry.state, entry.closed, entry.attempts) == ("failed", "not_printed", 0)

    cupsd.set_queue(enabled=True)
    result = licence_service.reprint(entry.id, pdf_path=licence_pdf)   # nothing came out: no authorisation needed

    again = journal.get(result.job_id)
    assert (again.state, again.reprint_of, again.is_reprint, again.authorised_by) == ("done", entry.id, False, None)
    assert journal.reprint_count(entry.id) == 0


def test_a_licence_that_failed_mid_job_goes_to_staff_and_its_reprint_is_authorised_and_counted(
        licence_service: PrintService, journal: PrintJournal, cupsd: LocalCupsd, licence_pdf: Path) -> None:
    cupsd.set_paper("out")
    with pytest.raises(PaperOut) as raised:
        licence_service.print_licence(licence_pdf, LicenceOptions(paper_size="A4", duplex="long"),
                                      document_type="residence_permit", document_ref="DOC-9")

    [open_job] = licence_service.recover()                             # the print server agrees: cancelled
    assert (open_job.state, open_job.reason, open_job.device_job) == \
        ("failed", "paper_out", str(raised.value.device_job_id))
    cupsd.set_paper("ok")
    with pytest.raises(ReprintNeedsAuthorisation):
        licence_service.reprint(open_job.id, pdf_path=licence_pdf)
    with pytest.raises(ReprintRefused, match="fetched again"):
        licence_service.reprint(open_job.id, authorised_by="staff-07")
    assert licence_service.unfinished() == [journal.get(open_job.id)]   # refusals changed nothing

    result = licence_service.reprint(open_job.id, pdf_path=licence_pdf, authorised_by="staff-07")

    again = journal.get(result.job_id)
    assert (again.state, again.is_reprint, again.authorised_by, again.reprint_of) == \
        ("done", True, "staff-07", open_job.id)
    assert again.payload is None and journal.reprint_count(open_job.id) == 1
    attrs = cups.Connection(host=cupsd.server).getJobAttributes(result.device_job_id)
    assert attrs["sides"] == "two-sided-long-edge"                     # the original's options, kept by the journal
    assert licence_service.unfinished() == []
    assert cupsd.output_for(result.device_job_id) is not None
    assert cupsd.output_for(raised.value.device_job_id) is None        # the failed one never came out


def test_staff_can_dismiss_an_open_job(licence_service: PrintService, journal: PrintJournal, cupsd: LocalCupsd,
                                       licence_pdf: Path) -> None:
    cupsd.set_paper("out")
    with pytest.raises(PaperOut):
        licence_service.print_licence(licence_pdf)
    [open_job] = licence_service.unfinished()

    licence_service.dismiss(open_job.id, "handed_over_at_counter", by="staff-07")

    assert licence_service.unfinished() == []
    assert journal.get(open_job.id).closed == "handed_over_at_counter:staff-07"
    with pytest.raises(ReprintRefused, match="settled"):
        licence_service.reprint(open_job.id, pdf_path=licence_pdf, authorised_by="staff-07")
