"""``python -m fleet.agent`` — run N virtual kiosks, each with a real :class:`FleetAgent`, in this process.

For tests of the controller, the demo fleet and small benches (for thousands of kiosks in one process use
``python -m fleet.agent.swarm``). The first stdout line is one JSON object: ``{"pid": …, "control": "127.0.0.1:PORT",
"kiosks": [...]}``. The control endpoint takes one JSON command per line (as the device simulators'):
``{"cmd": "set_paper", "kiosk": "KSK-T-0001", "state": "out"}``, ``set_device`` (kind, state, error_code),
``serve_citizen``, ``stats``, ``stop_agent``, ``start_agent``. SIGTERM stops every agent cleanly (explicit deaths).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from drivers.sim.control import ControlServer
from fleet.agent.agent import FleetAgent
from fleet.agent.host import HostProbe
from fleet.agent.virtual import VirtualKiosk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True, help="mqtt://host:port (or mqtts://… with ca/cert/key)")
    parser.add_argument("--verify-key", required=True, action="append", help="controller public key (PEM file)")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--prefix", default="KSK-V-")
    parser.add_argument("--first", type=int, default=1, help="number of the first kiosk")
    parser.add_argument("--outbox-dir", help="keep each agent's outbox in DIR/<kiosk>.db (default: in memory)")
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--rebirth-jitter", type=float, default=2.0)
    parser.add_argument("--control", default="127.0.0.1:0", help="control endpoint HOST:PORT (0 = free port)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")

    keys = [Path(p).read_bytes() for p in args.verify_key]
    kiosks: dict[str, VirtualKiosk] = {}
    agents: dict[str, FleetAgent] = {}
    lock = threading.Lock()

    def make_agent(kiosk: VirtualKiosk) -> FleetAgent:
        outbox = Path(args.outbox_dir) / f"{kiosk.kiosk_id}.db" if args.outbox_dir else None
        agent = FleetAgent(kiosk.kiosk_id, args.broker, kiosk.statuses, verify_key=keys,
                           identity=kiosk.identity(), command_handlers=kiosk.handlers(), app_source=kiosk.app,
                           host_probe=HostProbe(args.outbox_dir or "."), outbox_path=outbox,
                           heartbeat_s=args.heartbeat, poll_s=args.poll, rebirth_jitter_s=args.rebirth_jitter)
        kiosk.on_change = agent.notify_changed
        return agent

    for i in range(args.count):
        kiosk_id = f"{args.prefix}{args.first + i:04d}"
        kiosks[kiosk_id] = VirtualKiosk(kiosk_id, args.first + i - 1)
        agents[kiosk_id] = make_agent(kiosks[kiosk_id]).start()

    def kiosk_of(kiosk: str) -> VirtualKiosk:
        if kiosk not in kiosks:
            raise KeyError(f"no kiosk {kiosk}")
        return kiosks[kiosk]

    def stats(kiosk: str) -> dict[str, Any]:
        with lock:
            agent = agents.get(kiosk)
        if agent is None:
            return {"running": False}
        return {"running": True, "connected": agent.connected, "bd_seq": agent.bd_seq, "pending": agent.pending(),
                "stats": dict(agent.stats), "service": kiosks[kiosk].service,
                "announcement": kiosks[kiosk].announcement, "restarts": kiosks[kiosk].restarts}

    def stop_agent(kiosk: str) -> dict[str, Any]:
        with lock:
            agent = agents.pop(kiosk, None)
        if agent:
            agent.stop()
        return {"stopped": agent is not None}

    def start_agent(kiosk: str) -> dict[str, Any]:
        with lock:
            if kiosk not in agents:
                agents[kiosk] = make_agent(kiosk_of(kiosk)).start()
        return {"started": True}

    handlers = {
        "set_paper": lambda kiosk, state: kiosk_of(kiosk).set_paper(state),
        "set_device": lambda kiosk, kind, state="online", error_code=None, detail="":
            kiosk_of(kiosk).set_device(kind, state, error_code, detail),
        "serve_citizen": lambda kiosk, receipts=1: kiosk_of(kiosk).serve_citizen(receipts),
        "stats": stats, "stop_agent": stop_agent, "start_agent": start_agent,
        "list": lambda: {"kiosks": sorted(kiosks)},
    }
    host, _, port = args.control.rpartition(":")
    control = ControlServer(handlers, host or "127.0.0.1", int(port)).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write(json.dumps({"pid": os.getpid(), "control": control.address, "kiosks": sorted(kiosks)}) + "\n")
    sys.stdout.flush()
    stop.wait()
    control.stop()
    with lock:
        running = list(agents.values())
    threads = [threading.Thread(target=a.stop) for a in running]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
