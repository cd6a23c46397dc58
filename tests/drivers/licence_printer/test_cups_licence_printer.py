"""The licence-printer contract through the real pycups driver against a real cupsd whose queue prints with cups-pdf:
what comes out of cups-pdf is the document the kiosk sent (pages, paper size, text), faults are typed, and a job that
fails is cancelled so it never prints later."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cups
import pytest

from drivers import registry
from drivers.base import DeviceState, InvalidSettings, PaperState
from drivers.errors import DeviceTimeout, NoDevice, PaperOut, PrinterOffline, Unsupported
from drivers.licence_printer.base import JobCanceled, JobResult, LicenceOptions
from drivers.licence_printer.cups_printer import CupsLicencePrinter, fault_code, paper_from_reasons
from drivers.licence_printer.simulator import LocalCupsd

PAGE_1 = "营业执照（副本）第1页"
PAGE_2 = "营业执照（副本）第2页"


def server_jobs(cupsd: LocalCupsd) -> dict[int, dict[str, Any]]:
    return cups.Connection(host=cupsd.server).getJobs(which_jobs="all", requested_attributes=["job-id", "job-name",
                                                                                               "job-state"])


class Background:
    """Run a blocking print in a thread; ``result()`` returns its value or raises its error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._box.put((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self._box.put((False, exc))

    def result(self, timeout: float = 30.0) -> Any:
        ok, value = self._box.get(timeout=timeout)
        if not ok:
            raise value
        return value


def processing(printer: CupsLicencePrinter, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        info = printer.find_job(job_id)
        return info is not None and info.state == "processing"
    return check


# --- printing ----------------------------------------------------------------------------------------------------------

def test_the_pdf_that_comes_out_is_the_document_sent(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                                     certificate_pdf: Path, pdf_info, pdf_text) -> None:
    submitted: list[int] = []
    sent: list[bool] = []

    result = licence_printer.print_pdf(certificate_pdf, job_id="PJT001", before_send=lambda: sent.append(True),
                                       on_submitted=submitted.append)

    assert isinstance(result, JobResult) and result.state == "completed"
    assert sent == [True] and submitted == [result.device_job_id]
    assert result.job_id == "PJT001" and result.pages == 2
    output = cupsd.output_for(result.device_job_id)
    assert output is not None, f"cups-pdf wrote nothing for job {result.device_job_id}"
    info = pdf_info(output)
    assert info["Pages"] == "2" and "(A4)" in info["Page size"]
    text = pdf_text(output)
    assert PAGE_1 in text and PAGE_2 in text                          # Chinese text survives the CUPS filter chain
    assert "GOVKIOSK TEST CERTIFICATE LIC-2026-0001 PAGE 2/2" in text
    assert text.index(PAGE_1) < text.index(PAGE_2)
    status = licence_printer.status()
    assert (status.device, status.error_code, status.extra["printer_state"]) == (DeviceState.ONLINE, None, "idle")
    assert licence_printer.counters == {"jobs_completed": 1, "jobs_failed": 0, "pages_printed": 2}
    found = licence_printer.find_job("PJT001")
    assert found is not None and (found.device_job_id, found.state) == (result.device_job_id, "completed")


def test_paper_size_tray_duplex_and_copies_reach_the_printer(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                                             certificate_pdf: Path, pdf_info, pdf_text) -> None:
    options = LicenceOptions(paper_size="A5", tray="tray-2", duplex="long", copies=2)

    result = licence_printer.print_pdf(certificate_pdf, options, job_id="PJT002")

    attrs = cups.Connection(host=cupsd.server).getJobAttributes(result.device_job_id)
    assert (attrs["media"], attrs["media-source"], attrs["sides"], attrs["copies"]) == \
        ("iso_a5_148x210mm", "tray-2", "two-sided-long-edge", 2)
    output = cupsd.output_for(result.device_job_id)
    info = pdf_info(output)
    assert info["Pages"] == "4" and "(A5)" in info["Page size"]        # two collated copies of two pages, on A5
    assert pdf_text(output).count(PAGE_1) == 2
    assert result.pages == 4


@pytest.mark.parametrize("options", [
    LicenceOptions(tray="tray-9"),
    LicenceOptions(paper_size="A2"),
    LicenceOptions(copies=99, paper_size="jis_b4_257x364mm"),
])
def test_options_the_printer_does_not_have_are_refused_before_sending(licence_printer: CupsLicencePrinter,
                                                                      cupsd: LocalCupsd, certificate_pdf: Path,
                                                                      options: LicenceOptions) -> None:
    before = server_jobs(cupsd)
    sent: list[bool] = []

    with pytest.raises(Unsupported):
        licence_printer.print_pdf(certificate_pdf, options, job_id="PJT003", before_send=lambda: sent.append(True))

    assert sent == [] and server_jobs(cupsd) == before


def test_bad_options_and_documents_fail_before_anything_is_sent(licence_printer: CupsLicencePrinter,
                                                                cupsd: LocalCupsd, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplex"):
        LicenceOptions(duplex="both")
    with pytest.raises(ValueError, match="copies"):
        LicenceOptions(copies=0)
    with pytest.raises(ValueError, match="unknown"):
        LicenceOptions.from_dict({"colour": "red"})
    text_file = tmp_path / "licence.pdf"
    text_file.write_text("not a pdf")
    before = server_jobs(cupsd)
    with pytest.raises(ValueError, match="not a PDF"):
        licence_printer.print_pdf(text_file)
    with pytest.raises(ValueError, match="cannot be read"):
        licence_printer.print_pdf(tmp_path / "missing.pdf")
    assert server_jobs(cupsd) == before


# --- state and supplies ------------------------------------------------------------------------------------------------

def test_marker_levels_and_low_supply_are_reported(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                                   certificate_pdf: Path) -> None:
    cupsd.set_markers({"Black Toner": 8, "Drum": 60})

    result = licence_printer.print_pdf(certificate_pdf)

    markers = {m["name"]: m for m in result.status.extra["markers"]}
    assert (markers["Black Toner"]["level"], markers["Black Toner"]["low"]) == (8, True)
    assert (markers["Drum"]["level"], markers["Drum"]["low"], markers["Drum"]["type"]) == (60, False, "toner")
    status = licence_printer.status()                                 # levels stay known between jobs
    assert status.usable and [(m["name"], m["level"], m["low"]) for m in status.extra["markers"]] == \
        [("Black Toner", 8, True), ("Drum", 60, False)]


def test_paper_low_is_reported_not_raised(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                          certificate_pdf: Path) -> None:
    cupsd.set_paper("low")

    result = licence_printer.print_pdf(certificate_pdf)

    assert result.state == "completed" and result.status.paper is PaperState.LOW
    assert licence_printer.status().usable


def test_a_stopped_queue_is_refused_up_front(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                             certificate_pdf: Path) -> None:
    cupsd.set_queue(enabled=False)
    status = licence_printer.status()
    assert (status.device, status.error_code, status.usable) == (DeviceState.OFFLINE, "printer_offline", False)
    before = server_jobs(cupsd)
    sent: list[bool] = []

    with pytest.raises(PrinterOffline) as raised:
        licence_printer.print_pdf(certificate_pdf, job_id="PJT010", before_send=lambda: sent.append(True))

    assert raised.value.device_job_id is None and raised.value.job_id == "PJT010"
    assert sent == [] and server_jobs(cupsd) == before

    cupsd.set_queue(enabled=True, accepting=False)                  # running, but rejecting jobs
    with pytest.raises(PrinterOffline):
        licence_printer.print_pdf(certificate_pdf)


def test_paper_running_out_mid_job_cancels_it_and_nothing_comes_out(licence_printer: CupsLicencePrinter,
                                                                     cupsd: LocalCupsd, certificate_pdf: Path,
                                                                     wait_for) -> None:
    cupsd.set_hang(True)                                            # the printer takes its time with the job
    job = Background(lambda: licence_printer.print_pdf(certificate_pdf, job_id="PJT020"))
    wait_for(processing(licence_printer, "PJT020"), what="the job printing")

    cupsd.set_paper("out")
    with pytest.raises(PaperOut) as raised:
        job.result()

    device_job = raised.value.device_job_id
    assert device_job is not None and raised.value.placeholders["device_job_id"] == device_job
    assert licence_printer.job_info(device_job).state == "canceled"  # so it can never come out later
    cupsd.set_hang(False)
    assert cupsd.output_for(device_job) is None

    # the print server keeps the last fault the printer reported; on an idle queue it is the last known state
    status = licence_printer.status()
    assert status.extra["last_fault"] == "paper_out" and status.paper is PaperState.UNKNOWN and status.usable
    # staff refill: the next job prints and the printer's report clears the fault
    cupsd.set_paper("ok")
    result = licence_printer.print_pdf(certificate_pdf)
    assert cupsd.output_for(result.device_job_id) is not None
    after = licence_printer.status()
    assert after.paper is PaperState.FULL and "last_fault" not in after.extra


def test_paper_out_when_the_job_starts_fails_fast_with_nothing_printed(licence_printer: CupsLicencePrinter,
                                                                        cupsd: LocalCupsd,
                                                                        certificate_pdf: Path) -> None:
    licence_printer.print_pdf(certificate_pdf)                      # the print server holds no fault from before
    cupsd.set_paper("out")
    started = time.monotonic()

    with pytest.raises(PaperOut) as raised:
        licence_printer.print_pdf(certificate_pdf, job_id="PJT021")

    assert time.monotonic() - started < 5.0
    assert licence_printer.job_info(raised.value.device_job_id).state == "canceled"
    assert cupsd.output_for(raised.value.device_job_id) is None


def test_a_fault_left_from_the_last_job_counts_only_if_the_printer_reports_it_again(
        make_licence_printer, cupsd: LocalCupsd, certificate_pdf: Path, wait_for) -> None:
    printer = make_licence_printer(stale_fault_grace_s=4.0)  # long enough for a loaded CI box to start the job
    cupsd.set_paper("out")
    with pytest.raises(PaperOut):
        printer.print_pdf(certificate_pdf)
    wait_for(lambda: printer.status().extra.get("last_fault") == "paper_out",  # kept by the print server
             what="the print server keeping the fault after the job was cancelled")

    with pytest.raises(PaperOut) as still_out:                     # still no paper: the printer says so again
        printer.print_pdf(certificate_pdf)
    assert cupsd.output_for(still_out.value.device_job_id) is None

    cupsd.set_paper("ok")                                          # refilled: the old fault must not fail the job
    result = printer.print_pdf(certificate_pdf)
    assert result.state == "completed" and cupsd.output_for(result.device_job_id) is not None


def test_printer_going_offline_mid_job_is_printer_offline(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                                          certificate_pdf: Path, wait_for) -> None:
    cupsd.set_hang(True)
    job = Background(lambda: licence_printer.print_pdf(certificate_pdf, job_id="PJT022"))
    wait_for(processing(licence_printer, "PJT022"), what="the job printing")

    cupsd.set_offline(True)
    with pytest.raises(PrinterOffline) as raised:
        job.result()

    assert licence_printer.job_info(raised.value.device_job_id).state == "canceled"


def test_a_job_that_does_not_complete_in_time_is_cancelled(make_licence_printer, cupsd: LocalCupsd,
                                                           certificate_pdf: Path) -> None:
    printer = make_licence_printer(job_timeout_s=1.0)
    cupsd.set_hang(True)

    with pytest.raises(DeviceTimeout) as raised:
        printer.print_pdf(certificate_pdf, job_id="PJT030")

    assert printer.job_info(raised.value.device_job_id).state == "canceled"
    cupsd.set_hang(False)
    assert cupsd.output_for(raised.value.device_job_id) is None


def test_without_cancel_on_failure_a_timed_out_job_may_still_print(make_licence_printer, cupsd: LocalCupsd,
                                                                   certificate_pdf: Path, wait_for) -> None:
    """Why the journal keeps a timed-out licence open with its CUPS job id: it can complete later."""
    printer = make_licence_printer(job_timeout_s=0.5, cancel_on_failure=False)
    cupsd.set_hang(True)

    with pytest.raises(DeviceTimeout) as raised:
        printer.print_pdf(certificate_pdf, job_id="PJT031")

    device_job = raised.value.device_job_id
    cupsd.set_hang(False)
    wait_for(lambda: printer.job_info(device_job).state == "completed", what="the job completing later")
    assert cupsd.output_for(device_job) is not None


def test_a_job_cancelled_by_staff_is_job_canceled(licence_printer: CupsLicencePrinter, cupsd: LocalCupsd,
                                                  certificate_pdf: Path, wait_for) -> None:
    cupsd.set_hang(True)
    job = Background(lambda: licence_printer.print_pdf(certificate_pdf, job_id="PJT040"))
    wait_for(processing(licence_printer, "PJT040"), what="the job printing")

    cups.Connection(host=cupsd.server).cancelJob(licence_printer.find_job("PJT040").device_job_id)

    with pytest.raises(JobCanceled):
        job.result()


# --- no printer --------------------------------------------------------------------------------------------------------

def test_unknown_queue_and_unreachable_server_are_no_device(make_licence_printer, cupsd: LocalCupsd,
                                                            certificate_pdf: Path, tmp_path: Path) -> None:
    for printer in (make_licence_printer(queue="NoSuchQueue"), make_licence_printer(server=str(tmp_path / "x.sock"))):
        status = printer.status()
        assert (status.device, status.error_code) == (DeviceState.NO_DEVICE, "no_device")
        with pytest.raises(NoDevice) as raised:
            printer.print_pdf(certificate_pdf, job_id="PJT050")
        assert raised.value.device_job_id is None


def test_settings_are_validated_and_the_registry_knows_the_driver() -> None:
    assert registry.resolve("licence_printer", "cups") is CupsLicencePrinter
    with pytest.raises(InvalidSettings) as info:
        CupsLicencePrinter(queue="bad queue", job_timeout_s=0, defaults={"duplex": "sideways"}, colour=True)
    problems = " ".join(info.value.problems)
    for field in ("queue", "job_timeout_s", "defaults.duplex", "colour"):
        assert field in problems, problems
    with pytest.raises(InvalidSettings):
        CupsLicencePrinter(server="127.0.0.1:631")                    # no queue
    printer = CupsLicencePrinter(queue="Q", defaults={"paper_size": "A5", "duplex": "short", "copies": 2})
    assert printer.default_options.ipp_options() == {"media": "iso_a5_148x210mm", "sides": "two-sided-short-edge",
                                                     "copies": "2"}


@pytest.mark.parametrize(("reasons", "code", "paper"), [
    ([], None, PaperState.FULL),
    (["media-low-report"], None, PaperState.LOW),
    (["media-empty-warning"], None, PaperState.LOW),
    (["media-empty-error"], "paper_out", PaperState.OUT),
    (["media-needed"], "paper_out", PaperState.OUT),
    (["media-jam-error", "media-low-report"], "paper_jammed", PaperState.JAMMED),
    (["cover-open-error"], "cover_open", PaperState.FULL),
    (["offline-report"], "printer_offline", PaperState.FULL),
    (["toner-low-report", "toner-empty-error"], "supply_empty", PaperState.FULL),
    (["toner-low-warning"], None, PaperState.FULL),
    (["fuser-over-temp-error"], "hardware_error", PaperState.FULL),
    (["cups-waiting-for-job-completed"], None, PaperState.FULL),
])
def test_printer_state_reasons_map_to_faults(reasons: list[str], code: str | None, paper: PaperState) -> None:
    assert fault_code(reasons) == code
    assert paper_from_reasons(reasons) is paper


def test_print_server_going_away_mid_job_is_no_device_carrying_the_job(certificate_pdf: Path, wait_for) -> None:
    """The outcome is unknown then: the error keeps the CUPS job id so the journal can ask again later."""
    with LocalCupsd() as server:
        printer = CupsLicencePrinter(queue=server.queue, server=server.server, poll_interval_s=0.05)
        server.set_hang(True)
        job = Background(lambda: printer.print_pdf(certificate_pdf, job_id="PJT060"))
        wait_for(processing(printer, "PJT060"), what="the job printing")
        device_job = printer.find_job("PJT060").device_job_id

        server.stop()
        with pytest.raises(NoDevice) as raised:
            job.result()

    assert raised.value.device_job_id == device_job and raised.value.job_id == "PJT060"
    assert printer.status().device is DeviceState.NO_DEVICE
