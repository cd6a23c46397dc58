"""The staff desk: unfinished print jobs behind the maintenance PIN (hashed in the profile), reprint for receipts,
hand over / mark handled for licences, every action audited, no personal data; on the real ESC/POS emulator."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from drivers.receipt_printer.escpos_printer import EscposReceiptPrinter
from drivers.sim.process import SimulatorProcess
from kiosk.print_journal import PrintJournal
from kiosk.usecases.printing import (
    PIN_ATTEMPTS, PIN_LOCKOUT_S, REPRINT_MARK, PrintService, StaffActionRefused, StaffDesk, StaffLocked, check_pin,
    hash_pin, new_job_id)

PIN = "246810"
TICKET = {"number": "B017", "service_name": "社保业务", "area": "C区", "waiting": 5, "issued_at": "2026-04-15 10:02",
          "query_url": ""}


@pytest.fixture(scope="module")
def _emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with SimulatorProcess("receipt-printer", "--tcp", "127.0.0.1:0", "--out",
                          str(tmp_path_factory.mktemp("receipts"))) as sim:
        yield sim


@pytest.fixture
def emulator(_emulator: SimulatorProcess) -> SimulatorProcess:
    _emulator.control("reset")
    return _emulator


@pytest.fixture
def service(tmp_path: Path, emulator: SimulatorProcess) -> Iterator[PrintService]:
    # jobs written "an hour ago": left over from before a crash, not printing right now
    journal = PrintJournal(tmp_path / "print-journal.sqlite3", clock=lambda: time.time() - 3600)
    host, port = emulator.endpoints["tcp"].rsplit(":", 1)
    printer = EscposReceiptPrinter(connection="network", host=host, port=int(port), timeout_s=1.0,
                                   poll_interval_s=0.05, job_timeout_s=5.0)
    yield PrintService(journal, receipt_printer=printer, kiosk_id="KSK-340302-0001", kiosk_name="东海社区自助终端")
    printer.close()
    journal.close()


def left_unfinished(service: PrintService) -> tuple[str, str]:
    """A receipt cut off by a crash after it was sent, and a licence the print server aborted."""
    receipt_id = new_job_id()
    receipt = service.render_receipt("queue_ticket", job_id=receipt_id, ticket=TICKET)
    service.journal.create("receipt", "queue_ticket", receipt_id, summary="排队取号凭条 B017", payload=receipt.to_dict())
    service.journal.mark_sent(receipt_id)
    licence_id = new_job_id()
    service.journal.create("licence", "ecert:marriage_cert", licence_id, summary="电子证照 结婚证",
                           payload={"options": {"paper_size": "A4"}, "document_ref": "ec_1"})
    service.journal.mark_sent(licence_id)
    service.journal.mark_failed(licence_id, "job_aborted", device_job=7)
    return receipt_id, licence_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pin_then_reprint_receipt_and_hand_over_licence(service: PrintService, emulator: SimulatorProcess,
                                                        wait_for) -> None:
    receipt_id, licence_id = left_unfinished(service)
    audit: list[tuple[str, dict[str, Any]]] = []
    desk = StaffDesk(service, hash_pin(PIN), audit=lambda event, **fields: audit.append((event, fields)))

    with pytest.raises(StaffLocked):
        desk.jobs()
    assert desk.count() == 2, "the number (no details) is there without the PIN: telemetry"
    assert not desk.unlock("000000") and not desk.unlocked
    assert desk.unlock(PIN) and desk.unlocked
    jobs = {j.id: j for j in desk.jobs()}
    assert set(jobs) == {receipt_id, licence_id}
    receipt, licence = jobs[receipt_id], jobs[licence_id]
    assert (receipt.kind, receipt.summary, receipt.state, receipt.reprint_count) == ("receipt", "排队取号凭条 B017",
                                                                                     "sent", 0)
    assert (licence.kind, licence.reason, licence.actions) == ("licence", "job_aborted", ("handed_over", "handled"))
    assert receipt.actions == ("reprint", "dismiss") and receipt.may_have_printed

    with pytest.raises(StaffActionRefused):
        desk.reprint(licence_id)                      # a licence is never reprinted from the desk
    result = desk.reprint(receipt_id)
    printed = wait_for(lambda: emulator.control("receipts")["receipts"], what="the reprint")[-1]
    assert REPRINT_MARK in printed["text"] and "B017" in printed["text"]
    assert service.journal.get(result.job_id).is_reprint and service.reprint_count(receipt_id) == 1

    desk.settle(licence_id, "handed_over")
    assert service.journal.get(licence_id).closed == "handed_over:staff"
    assert desk.jobs() == []
    with pytest.raises(StaffActionRefused):
        desk.settle(licence_id, "handled")            # settled already

    events = [(e, f.get("result") or f.get("how")) for e, f in audit]
    assert events == [("staff_unlock", "wrong_pin"), ("staff_unlock", "ok"), ("staff_reprint", "printed"),
                      ("staff_settled", "handed_over")]
    assert PIN not in repr(audit) and "000000" not in repr(audit)
    desk.lock()
    assert not desk.unlocked and audit[-1][0] == "staff_lock"
    with pytest.raises(StaffLocked):
        desk.jobs()


def test_wrong_pins_lock_the_desk_for_a_while(service: PrintService) -> None:
    clock = Clock()
    desk = StaffDesk(service, hash_pin(PIN), clock=clock)
    for _ in range(PIN_ATTEMPTS):
        assert not desk.unlock("111111")
    with pytest.raises(StaffLocked):
        desk.unlock(PIN)                              # even the right PIN, during the lockout
    clock.now += PIN_LOCKOUT_S + 1
    assert desk.unlock(PIN)


def test_no_pin_configured_keeps_the_desk_locked(service: PrintService) -> None:
    desk = StaffDesk(service, "")
    assert not desk.configured and not desk.unlock("") and not desk.unlock(PIN)
    assert not check_pin(PIN, "sha256$nonsense") and not check_pin(PIN, "pbkdf2_sha256$x$y$z")


def test_a_job_printing_right_now_is_not_offered(tmp_path: Path, emulator: SimulatorProcess) -> None:
    with PrintJournal(tmp_path / "now.sqlite3") as journal:
        service = PrintService(journal)
        job = new_job_id()
        journal.create("receipt", "queue_ticket", job, summary="排队取号凭条")
        journal.mark_sent(job)
        desk = StaffDesk(service, hash_pin(PIN))
        assert desk.unlock(PIN) and desk.jobs() == [] and desk.count() == 0
        journal.mark_failed(job, "paper_out", bytes_sent=100)
        assert [j.id for j in desk.jobs()] == [job] and desk.count() == 1
