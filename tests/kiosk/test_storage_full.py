"""Disk full ("unattended for months"): with the kiosk's data disk full the kiosk refuses new transactions
honestly (``storage_full``, with zh/en text), marks those services unavailable on the menu, keeps serving guides, and
raises the fleet alarm ``storage_full`` — cleared, and transactions working again, once space returns. A disk that
fills up mid-transaction gives the same typed error with nothing half-recorded.

For real: the kiosk's data_dir is a small tmpfs (mounted here; we run as root), filled with a file."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from fleet.signing import generate_keypair
from kiosk.audit import verify_dir
from kiosk.storage import MB, StorageFull

# the application flow needs the holder confirmed (card+face): the test profiles have no camera
pytestmark = pytest.mark.usefixtures("face_verified")

DEVICES = {
    "idcard": {"driver": "ga467_serial", "required": False, "simulate": True, "settings": {"baud": 115200}},
    "receipt_printer": {"driver": "escpos", "required": True, "simulate": True,
                        "settings": {"connection": "network", "host": "127.0.0.1", "port": 9100,
                                     "profile": "TM-T88V", "paper_width_mm": 80}},
}
DISK_MB = 16


@pytest.fixture
def data_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs for the kiosk's data_dir (unmounted at the end). No skipping: a failed mount fails the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)   # a straggler still holds a file: detach


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``disk`` with one file, leaving about ``leave`` bytes (0: until ENOSPC)."""
    filler = disk / "filler.bin"
    chunk = b"\0" * (256 * 1024)
    with open(filler, "ab") as fh:
        while True:
            room = free_bytes(disk) - leave
            if room <= 0:
                break
            try:
                fh.write(chunk[:min(len(chunk), room)] if leave else chunk)
                fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    return filler


def core_on(disk: Path, make_harness, tmp_path: Path, min_free_mb: float) -> Any:
    _private, public = generate_keypair(tmp_path / "fleet-keys")
    # the fleet broker is away (nothing listens on port 1): the agent keeps every message in its on-disk outbox,
    # where this test reads the alarms it would send
    return make_harness(devices=DEVICES, kiosk__data_dir=str(disk / "kiosk"), kiosk__min_free_mb=min_free_mb,
                        fleet={"broker_url": "mqtt://127.0.0.1:1", "verify_key": str(public)})


def storage_alarms(core) -> list[dict[str, Any]]:
    events = []
    for row in core.fleet.agent.outbox.peek(limit=1000):
        if row.kind == "alarm":
            events += [e for e in row.payload["events"] if e["code"] == "storage_full"]
    return events


def ready_application(harness, call) -> Any:
    """The birth registration of 陈 filled in and pre-reviewed: one tap from submitting (tests/kiosk/apply)."""
    flow = harness.core.apply
    harness.identify("chen")
    flow.start()
    call(flow.choose, "birth-registration")
    flow.accept_notice()
    flow.set_field("/phone", "13905520003")
    flow.set_field("/child_order", "2")
    assert flow.finish_form() == []
    flow.attach_suggested()
    assert call(flow.pre_review).acceptable
    return flow


def test_full_disk_refuses_transactions_serves_guides_alarms_and_recovers(data_disk, make_harness, tmp_path, call,
                                                                         wait_for):
    harness = core_on(data_disk, make_harness, tmp_path, min_free_mb=4)
    core = harness.core
    wait_for(lambda: core.fleet is not None and not core._health_running.is_set(), what="first health check")
    assert not core.storage.full and core.feature_lock("apply") is None
    flow = ready_application(harness, call)
    detail = call(core.service_detail, call(core.search_services, "公积金")[0].code)
    rows_before = len(core.outbox.items())

    filler = fill(data_disk, leave=1 * MB)       # below the 4 MB the profile asks to keep
    assert free_bytes(data_disk) < 4 * MB

    # a transaction is refused honestly, before anything is journaled or sent
    with pytest.raises(StorageFull) as refused:
        call(flow.submit)
    assert refused.value.code == "storage_full"
    assert "storage_full" in core.translator.error_text(refused.value)
    core.translator.set_language("en")
    assert "storage is full" in core.translator.error_text(refused.value)
    core.translator.set_language("zh_CN")
    assert "存储空间已满" in core.translator.error_text(refused.value)
    assert len(core.outbox.items()) == rows_before, "nothing journaled in the outbox"
    with pytest.raises(StorageFull):                # a print too (its journal row would go on the same disk)
        call(core.print_service_notice, detail)
    assert harness.receipts() == [], "nothing printed"

    # the menu shows those services unavailable, with the reason; guides and progress still work
    wait_for(lambda: core.availability.storage_full, what="availability says the disk is full")
    for feature in ("apply", "pay", "delivery", "certificates"):
        assert core.feature_lock(feature) == "storage.unavailable"
    assert not core.availability.feature("print")
    assert core.availability.feature("guide") and core.availability.feature("progress")
    assert not core.availability.out_of_service, "guides are still served: the kiosk stays in service"
    assert core.translator.t("storage.unavailable") != "storage.unavailable"
    guides = call(core.search_services, "户口")
    assert guides and call(core.service_detail, guides[0].code).materials

    # operators are told: a major storage_full alarm in the fleet agent's queue
    alarms = wait_for(lambda: storage_alarms(core), what="storage_full alarm queued for the fleet")
    assert alarms[-1]["active"] is True and alarms[-1]["severity"] == "major" and alarms[-1]["device"] == "app"

    # space comes back: the next health check clears the alarm, and the same application goes through
    filler.unlink()
    wait_for(lambda: (core.check_health(), not core.availability.storage_full)[1],
             what="availability back after space returned")
    assert core.feature_lock("pay") != "storage.unavailable" and core.availability.feature("print")
    alarms = wait_for(lambda: len(storage_alarms(core)) >= 2 and storage_alarms(core), what="alarm cleared")
    assert alarms[-1]["active"] is False
    outcome = call(flow.submit)
    assert outcome.status == "submitted" and outcome.number
    call(core.print_service_notice, detail)
    assert len(harness.receipts()) == 1


def test_disk_filling_up_mid_transaction_leaves_nothing_half_recorded(data_disk, make_harness, tmp_path, call,
                                                                       wait_for):
    # min_free_mb 0: the check before the transaction passes, the disk fills up while it writes its journals
    harness = core_on(data_disk, make_harness, tmp_path, min_free_mb=0)
    core = harness.core
    flow = ready_application(harness, call)
    core.flush_audit()
    data_dir = data_disk / "kiosk"
    audit_file = data_dir / "audit.jsonl"
    rows_before = len(core.outbox.items())
    detail = call(core.service_detail, call(core.search_services, "公积金")[0].code)
    jobs_before = len(core.print_journal.jobs())

    filler = fill(data_disk)                      # until ENOSPC

    with pytest.raises(StorageFull) as refused:   # the outbox write fails: the same typed error
        call(flow.submit)
    assert refused.value.code == "storage_full"
    assert isinstance(refused.value.__cause__, Exception)
    assert len(core.outbox.items()) == rows_before, "no half-written outbox row"
    assert core.storage.full, "the guard noted the full disk"

    # the audit journal: an append that cannot be written is cut back, never left as half a line (short entries
    # may still fit in the file's last, partly used page: those are whole)
    core.flush_audit()
    audit_size = audit_file.stat().st_size
    with pytest.raises(OSError) as no_room:
        core.audit.record("probe_full_disk", note="x" * 16384)
    assert no_room.value.errno == errno.ENOSPC
    assert audit_file.stat().st_size == audit_size, "no partial audit line"
    assert audit_file.read_bytes().endswith(b"\n")
    with pytest.raises(StorageFull):              # a print: its journal row cannot be written, nothing is sent
        call(core.print_service_notice, detail)
    assert len(core.print_journal.jobs()) == jobs_before and harness.receipts() == []

    filler.unlink()
    wait_for(lambda: (core.check_health(), not core.storage.full)[1], what="guard sees the space again")
    outcome = call(flow.submit)
    assert outcome.status == "submitted" and outcome.number
    core.flush_audit()
    report = verify_dir(data_dir)
    assert report.ok, report.problems
