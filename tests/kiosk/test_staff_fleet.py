"""The count of print jobs waiting for staff goes to the fleet with the kiosk's app state (a number only), and a
change of it makes the agent report at once."""
from __future__ import annotations

from device_profiles.loader import load_profile
from fleet.signing import generate_keypair
from kiosk.core import KioskCore
from kiosk.fleet_link import FleetLink
from kiosk.usecases.printing import new_job_id


def test_unfinished_prints_are_a_fleet_counter(make_profile, tmp_path) -> None:
    _private, public = generate_keypair(tmp_path / "keys")
    profile = load_profile(make_profile(fleet={"broker_url": "mqtt://127.0.0.1:1", "verify_key": str(public)}),
                           environ={})
    core = KioskCore(profile)       # not started: no devices, no broker connection — the link is only built
    try:
        link = FleetLink(core.context)
        assert link._app_state()["counters"]["prints_unfinished"] == 0
        wakes: list[int] = []
        link.changed = lambda: wakes.append(1)  # type: ignore[method-assign]

        job = new_job_id()
        journal = core.print_journal
        journal.create("licence", "ecert:marriage_cert", job, summary="电子证照 结婚证")
        journal.mark_sent(job)
        assert link._app_state()["counters"]["prints_unfinished"] == 0, "printing right now: not waiting for staff"
        journal.mark_failed(job, "job_aborted", device_job=3)
        assert link._app_state()["counters"]["prints_unfinished"] == 1
        assert wakes == [1], "reported when the count changed (once)"
        core.print_service.dismiss(job, reason="handed_over", by="staff")
        assert link._app_state()["counters"]["prints_unfinished"] == 0 and wakes == [1, 1]
    finally:
        core.stop()
