"""The citizen journey through the kiosk core, without Kivy: real simulators (started by the device manager from the
profile, as on a kiosk), the real driver code, the real platform server."""
from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

import pytest

from device_profiles.loader import load_profile
from drivers.errors import PaperOut
from kiosk.core import KioskCore
from kiosk.session import State

ZHANG_ID = "340302195803172018"



@pytest.fixture
def core(make_profile, clock):
    kiosk = KioskCore(load_profile(make_profile(), environ={}), clock=clock)
    events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
    kiosk.subscribe(lambda name, payload: events.put((name, payload)))
    kiosk.start()
    kiosk.clock, kiosk.events = clock, events
    try:
        yield kiosk
    finally:
        kiosk.stop()


def next_event(core: KioskCore, name: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait for the named event (others are skipped)."""
    while True:
        try:
            got, payload = core.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no {name!r} event within {timeout} s")
        if got == name:
            return payload


def call(method, *args: Any, timeout: float = 15.0, **kwargs: Any) -> Any:
    """Run a core method that answers through callbacks; return its result or raise its error."""
    box: "queue.Queue[tuple[bool, Any]]" = queue.Queue()
    method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)), **kwargs)
    ok, value = box.get(timeout=timeout)
    if not ok:
        raise value
    return value


def test_card_to_progress_print_rating_and_timeout(core, platform_server, wait_for):
    reader_sim = core.devices.simulators["idcard"]
    printer_sim = core.devices.simulators["receipt_printer"]
    reader_sim.control("place_card", identity="zhang")
    identified = next_event(core, "identified")
    assert identified["id_masked"] == "3403**********2018"
    citizen = core.session.citizen
    assert citizen.name_masked == "张*华"

    apps = call(core.my_applications)
    assert apps, "the seeded applications of this citizen"
    owners = platform_server.query(
        "SELECT number FROM applications WHERE applicant_id_number = ?", ZHANG_ID)
    assert sorted(a.number for a in apps) == sorted(n for (n,) in owners)

    chosen = apps[0]
    result = call(core.print_progress, chosen)
    assert result.bytes_sent > 0
    next_event(core, "rating_requested")
    receipts = wait_for(lambda: printer_sim.control("receipts")["receipts"], what="a receipt in the emulator")
    text = receipts[-1]["text"]
    assert chosen.number in text and "办件进度回执" in text
    assert receipts[-1]["qr"] == [core.public_urls.application(chosen.number)], "the public verify page"
    assert receipts[-1]["images"] == 1, "the emblem printed as a raster image at the top"
    assert ZHANG_ID not in text and "张明华" not in text, "receipts carry masked personal data only"

    before = platform_server.query("SELECT max(id) FROM ratings")[0][0] or 0
    saved = call(core.submit_rating, 5, ["办事快捷"])
    rows = platform_server.query("SELECT id, stars, target_id, kiosk_id FROM ratings WHERE id > ?", before)
    assert rows == [(saved["id"], 5, chosen.number, core.kiosk_id)]

    # the citizen walks away: a warning first, then the session ends and is wiped
    core.rating_finished(continue_service=True)
    core.clock.advance(core.profile.session.idle_timeout_s - core.profile.session.warning_s + 1)
    core.tick()
    assert next_event(core, "warning")["seconds_left"] <= core.profile.session.warning_s
    core.clock.advance(core.profile.session.warning_s)
    core.tick()
    assert next_event(core, "ended")["reason"] == "timeout"
    assert core.session.state is State.IDLE and core.session.citizen is None
    assert citizen.document is None and citizen.platform_token == ""

    core.flush_audit()
    audit = (core.audit.path).read_text("utf-8")
    assert ZHANG_ID not in audit and "张明华" not in audit
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    for expected in ("session_start", "identified", "printed", "rated", "session_end"):
        assert expected in events
    assert core.audit.verify()


def test_guide_search_detail_and_notice_without_card(core, wait_for):
    results = call(core.search_services, "gjj")
    assert results and all("公积金" in s.name or "公积金" in s.department for s in results)
    detail = call(core.service_detail, results[0].code)
    assert detail.materials
    call(core.print_service_notice, detail)
    receipts = wait_for(lambda: core.devices.simulators["receipt_printer"].control("receipts")["receipts"])
    text = receipts[-1]["text"]
    assert "一次性告知单" in text and detail.summary.name in text
    for material in detail.materials:
        assert material.name in text
    assert core.session.state is State.RATING


def test_paper_out_refused_up_front(core, wait_for):
    core.devices.simulators["receipt_printer"].control("set_paper", state="out")
    results = call(core.search_services, "户口")
    detail = call(core.service_detail, results[0].code)
    with pytest.raises(PaperOut):
        call(core.print_service_notice, detail)
    assert core.devices.simulators["receipt_printer"].control("receipts")["receipts"] == []
    # the failure triggers a health check: printing is then shown as unavailable (and the kiosk out of service,
    # since the profile marks the printer as required)
    wait_for(lambda: not core.availability.feature("print"), what="printing shown as unavailable")
    assert core.availability.out_of_service


def test_expired_card_refused(core):
    core.devices.simulators["idcard"].control("place_card", identity="wang_expired")
    error = next_event(core, "card_error")["error"]
    assert error.code == "card_expired"
    assert core.session.citizen is None


def test_platform_down_is_out_of_service_saying_what_still_works(make_profile, wait_for):
    profile = load_profile(make_profile(platform__url="http://127.0.0.1:9", platform__retries=0,
                                        platform__timeout_s=1), environ={})
    kiosk = KioskCore(profile)
    try:
        kiosk.start()
        wait_for(lambda: not kiosk.availability.platform, what="the platform seen as down")
        avail = kiosk.availability
        assert avail.out_of_service
        assert set(avail.working_features()) == {"print", "identify"}
        with pytest.raises(Exception) as info:
            call(kiosk.search_services, "社保")
        assert info.value.code == "platform_unavailable"
    finally:
        kiosk.stop()


def test_operator_maintenance_waits_for_the_citizen(core, wait_for):
    wait_for(lambda: core.availability.feature("guide"), what="the kiosk in service")
    core.devices.simulators["idcard"].control("place_card", identity="li")
    next_event(core, "identified")
    core.set_maintenance("fleet: replace printer paper")
    assert core.availability.out_of_service and not core.availability.feature("guide")
    assert core.session.citizen is not None, "the citizen being served is not thrown out"
    core.check_health()
    wait_for(lambda: core.availability.maintenance, what="maintenance kept across health checks")
    core.set_maintenance(None)
    wait_for(lambda: not core.availability.out_of_service, what="back in service")
    core.flush_audit()
    assert [e for e in core.audit.entries() if e["event"] == "maintenance"][0]["reason"].startswith("fleet")


def test_paper_out_mid_receipt_then_reprint_after_refill(core, wait_for):
    printer = core.devices.simulators["receipt_printer"]
    detail = call(core.service_detail, call(core.search_services, "公积金")[0].code)
    printer.control("paper_out_after", bytes=300)
    with pytest.raises(PaperOut) as info:
        call(core.print_service_notice, detail)
    failed = info.value
    assert core.needs_reprint(failed)
    assert [e.id for e in core.print_service.unfinished()] == [failed.job_id]
    printer.control("set_paper", state="ok")
    result = call(core.reprint, failed, "notice", detail)
    receipts = wait_for(lambda: [r for r in printer.control("receipts")["receipts"] if r["cut"]],
                        what="the reprinted receipt")
    assert "补打" in receipts[-1]["text"] and failed.job_id in receipts[-1]["text"]
    assert result.job_id != failed.job_id
    assert core.print_service.unfinished() == [], "the failed job is settled by its reprint"


def test_jobs_left_open_by_a_crash_are_reported_at_start(make_profile, tmp_path):
    from kiosk.print_journal import PrintJournal

    profile = load_profile(make_profile(), environ={})
    with PrintJournal(Path(profile.kiosk.data_dir) / "print-journal.sqlite3") as journal:  # as a killed kiosk left it
        journal.create("receipt", "progress", "PJCRASH1", summary="办件进度回执")
        journal.mark_sent("PJCRASH1")
    kiosk = KioskCore(profile)
    events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
    kiosk.subscribe(lambda name, payload: events.put((name, payload)))
    kiosk.events = events
    try:
        kiosk.start()
        unfinished = next_event(kiosk, "print_unfinished")["jobs"]
        assert [e.id for e in unfinished] == ["PJCRASH1"]
    finally:
        kiosk.stop()
