"""Two controller processes sharing the subscription ($share/controllers/…) and one database: the load is split,
nothing is stored twice, the sequence audit sees no false gaps, and when one controller dies the other carries on
(it takes over the sweeper lease: offline detection and commands keep working)."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from drivers.sim.control import send_command
from drivers.sim.process import ManagedProcess
from fleet.controller.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_two_controllers_split_the_load_without_duplicates_and_survive_each_other(
        broker: Any, keys: tuple[Path, Path], pg_url: str, start_controller: Any, wait_for: Any) -> None:
    c1 = start_controller("--offline-after", "1", db=pg_url, name="ctl-a")
    c2 = start_controller("--offline-after", "1", db=pg_url, name="ctl-b")
    swarm = ManagedProcess([sys.executable, "-m", "fleet.agent.swarm", "--broker", broker.url, "--count", "40",
                            "--prefix", "SW-", "--verify-key", str(keys[1])], "swarm", start_timeout=30,
                           cwd=str(ROOT))
    try:
        ctl = swarm.endpoints["control"]
        wait_for(lambda: c1.get("/api/v1/summary")["online"] == 40, 20, what="40 swarm kiosks online")
        send_command(ctl, "set_rate", rate=400)
        wait_for(lambda: send_command(ctl, "stats")["sent"] > 1200, 15, what="1,200 messages sent")
        send_command(ctl, "set_rate", rate=0)
        sent = send_command(ctl, "stats")["sent"]
        wait_for(lambda: c1.stats()["processed"] + c2.stats()["processed"] >= sent, 15, what="all processed")
        s1, s2 = c1.stats(), c2.stats()
        assert s1["processed"] + s2["processed"] == sent  # each message processed by exactly one controller
        assert s1["processed"] > sent * 0.3 and s2["processed"] > sent * 0.3  # and the load was shared
        store = Store(pg_url)
        try:
            totals = store.sample_totals()
        finally:
            store.dispose()
        assert totals["rows"] == totals["distinct"] == sent
        assert not [a for a in c1.alerts(status="all") if a["rule"] == "seq_gap"], "false sequence gaps"
        assert {s1["leader"], s2["leader"]} == {True, False}

        survivor, victim = (c2, c1) if s1["leader"] else (c1, c2)
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(lambda: survivor.stats()["leader"], 10, what="the survivor to take over the sweeper lease")
        send_command(ctl, "drop", kiosk="SW-00007", hold=3)  # its connection dies: the Will goes to the survivor
        wait_for(lambda: [a for a in survivor.alerts() if a["rule"] == "kiosk_offline" and
                          a["kiosk_id"] == "SW-00007"], 15, what="the offline alert from the survivor")
        r = survivor.post("/api/v1/kiosks/SW-00003/commands", {"name": "rebirth"})
        wait_for(lambda: survivor.get(f"/api/v1/commands/{r.json()['id']}")["status"] == "succeeded", 10,
                 what="a command through the survivor")
        wait_for(lambda: survivor.kiosk("SW-00007")["online"], 15, what="the dropped kiosk to reconnect")
    finally:
        swarm.stop()
