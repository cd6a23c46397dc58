"""Nothing lost, nothing done twice: the platform server stopped in the middle of a citizen's application, and a
kiosk process killed with SIGKILL between every two outbox states. The platform's database is the judge: exactly
one application per confirmed request."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from device_profiles.loader import load_profile
from drivers.sim.process import ManagedProcess
from kiosk.core import KioskCore
from kiosk.outbox import Outbox
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.apply import Step, register_senders

ROOT = Path(__file__).resolve().parents[2]
DEMO_ARGS = ["--demo", "--demo-kiosk-public-key",
             os.path.join(os.path.dirname(os.environ["KIOSK_TEST_SIGNING_KEY"]), "KSK-340302-0001.pub")]
ZHAO = ("340302194501013033", "赵德顺", "resident_id")

#: a kiosk process that journals an application (or drains) and stops dead at one outbox state
CHILD = r"""
import json, os, sys
from kiosk.outbox import Outbox
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.apply import register_senders

db, url, token, stop_at, mode = sys.argv[1:]

def hook(item_id, state):
    if state == stop_at:
        print(json.dumps({"id": item_id, "state": state}), flush=True)
        sys.stdin.read()  # wait here to be killed

box = Outbox(db, on_state=hook)
signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
client = PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10)
register_senders(box, client)
if mode == "new":
    item = box.put("application", {"token": token, "service_code": "hukou-certificate",
                                   "form": {"purpose": "travel_abroad", "copies": 2}, "materials": []})
    box.attempt(item.id)
else:
    box.drain()
print(json.dumps({"done": True}), flush=True)
"""


def run_until(script: Path, args: list[str], timeout: float = 30) -> dict:
    """Start the child, wait for the line it prints at the chosen state, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: "queue.Queue[bytes]" = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = json.loads(lines.get(timeout=timeout))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return line


def rows(platform_server, before: int) -> list[tuple]:
    return platform_server.query("SELECT number FROM applications WHERE id > ? AND applicant_id_number = ? AND "
                                 "service_code = 'hukou-certificate'", before, ZHAO[0])


@pytest.mark.parametrize("stop_at", ["pending", "sending", "answered"])
def test_kill_9_between_outbox_states(stop_at, tmp_path: Path, platform_server) -> None:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    token = client.open_citizen_session(*ZHAO, face_match=True).token
    script = tmp_path / "child.py"
    script.write_text(CHILD, "utf-8")
    db = tmp_path / "outbox.sqlite3"
    before = platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]

    killed = run_until(script, [str(db), platform_server.url, token, stop_at, "new"])
    assert killed["state"] == stop_at
    expected_now = 1 if stop_at == "answered" else 0  # "answered": the platform filed it, the kiosk did not record
    assert len(rows(platform_server, before)) == expected_now

    # a second kiosk process dies while draining it (sent again, same key), then a third one finishes
    if stop_at != "pending":
        assert run_until(script, [str(db), platform_server.url, token, "sending", "drain"])["id"] == killed["id"]
    box = Outbox(db)
    register_senders(box, client)
    report = box.drain()
    assert [i.id for i in report.submitted] == [killed["id"]]
    item = box.get(killed["id"])
    assert item.state == "submitted" and item.payload is None
    assert rows(platform_server, before) == [(item.result["number"],)], "exactly one application on the platform"
    assert box.drain().submitted == [] and rows(platform_server, before) == [(item.result["number"],)]
    box.close()
    client.close()


@pytest.fixture
def own_platform(tmp_path: Path):
    """A platform server of this test's own, which it stops and starts again on the same port."""
    db = tmp_path / "platform.db"

    def start(port: int = 0) -> ManagedProcess:
        return ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", f"sqlite:///{db}",
                               "--host", "127.0.0.1", "--port", str(port), *DEMO_ARGS], "service-platform",
                              start_timeout=30)

    procs = [start()]
    state = {"procs": procs, "start": start, "db": db}
    yield state
    for proc in procs:
        proc.stop()


@pytest.mark.usefixtures("face_verified")
def test_platform_stopped_mid_flow_then_submitted_once(own_platform, make_profile, call_flow, wait_for) -> None:
    import sqlite3

    first = own_platform["procs"][0]
    url = first.endpoints["url"]
    core = KioskCore(load_profile(make_profile(platform__url=url), environ={}))
    identified = threading.Event()
    core.subscribe(lambda name, _p: identified.set() if name == "identified" else None)
    core.start()
    try:
        core.devices.simulators["idcard"].control("place_card", identity="zhao")
        assert identified.wait(10)
        flow = core.apply
        flow.start()
        call_flow(flow.choose, "hukou-certificate")
        flow.accept_notice()
        flow.set_field("/purpose", "employment", typed=False)
        assert flow.finish_form() == []
        flow.next_after_attach()
        assert call_flow(flow.pre_review).acceptable

        first.stop()  # the platform goes away between pre-review and submit
        outcome = call_flow(flow.submit)
        assert outcome.status == "queued" and outcome.number is None and outcome.reference.startswith("KQ")
        assert flow.step is Step.RESULT
        assert core.outbox.pending_count() == 1
        core.end_session("finished")  # the citizen leaves with the reference

        own_platform["procs"].append(own_platform["start"](int(url.rsplit(":", 1)[1])))
        core.outbox_drainer.wake()
        item = wait_for(lambda: next(iter(core.outbox.items(("submitted",))), None), timeout=30,
                        what="the queued application submitted by the drainer")
        assert item.reference == outcome.reference
        with sqlite3.connect(own_platform["db"]) as db:
            filed = db.execute("SELECT number FROM applications WHERE applicant_id_number = ? AND "
                               "service_code = 'hukou-certificate'", (ZHAO[0],)).fetchall()
        assert filed == [(item.result["number"],)]
    finally:
        core.stop()


@pytest.fixture
def call_flow():
    def run(method, *args):
        box: "queue.Queue[tuple[bool, object]]" = queue.Queue()
        method(*args, on_result=lambda r: box.put((True, r)), on_error=lambda e: box.put((False, e)))
        ok, value = box.get(timeout=30)
        if not ok:
            raise value  # type: ignore[misc]
        return value
    return run
