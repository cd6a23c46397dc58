"""Fleet controller benchmark: ingest rate with 1 and 2 controller processes sharing the subscription, that no message
is processed twice across controllers, and the time from a printer running out of paper to the alert on the API.

Everything real: mosquitto from fleet/broker's template, ``fleet-controller serve`` processes, a swarm of virtual
kiosks (``python -m fleet.agent.swarm``: one MQTT connection per kiosk, thousands per process), SQLite (default) or
PostgreSQL (``--pg`` starts a throw-away server; ``--db URL`` uses yours).

Two ingest figures per setup:
  sustained   swarm, broker and controller(s) all running on this machine's cores at once (what the box does)
  drain       the controller(s) are paused (SIGSTOP) while the swarm publishes N messages, which the broker queues;
              then resumed with the swarm idle: the rate at which they empty the queue is the controllers' own capacity

Both are also given per controller as CPU time per message (user + system time of the controller process, from
/proc, over the messages it processed): on a shared machine wall-clock rates move with whatever else runs, the CPU
cost per message much less; 1e6 / (µs per message) is what one controller sustains with a core to itself.

    .venv/bin/python bench/fleet_ingest.py [--kiosks 2000] [--seconds 10] [--pg] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from drivers.sim.control import send_command  # noqa: E402
from drivers.sim.process import ManagedProcess  # noqa: E402
from fleet.broker import Mosquitto  # noqa: E402
from fleet.signing import generate_keypair  # noqa: E402

PY = sys.executable
PASSWORD = "bench-password"


class Controller:
    def __init__(self, broker: str, db: str, key: Path, name: str, extra: list[str] | None = None) -> None:
        self.proc = ManagedProcess([PY, "-m", "fleet.controller.cli", "serve", "--broker", broker, "--db", db,
                                    "--http", "127.0.0.1:0", "--signing-key", str(key), "--controller-id", name,
                                    "--log-level", "warning", "--demo", *(extra or [])], f"controller {name}",
                                   start_timeout=30, env={"FLEET_ADMIN_PASSWORD": PASSWORD}, cwd=str(ROOT))
        self.url = "http://" + self.proc.endpoints["http"]
        self.http = httpx.Client(base_url=self.url, timeout=10)
        token = self.http.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        self.http.headers["Authorization"] = "Bearer " + token["access_token"]

    def stats(self) -> dict[str, Any]:
        return self.http.get("/api/v1/stats").json()["this"]

    def get(self, path: str, **params: Any) -> Any:
        return self.http.get(path, params=params).json()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.http.close()
        self.proc.stop(10)


class Swarm:
    def __init__(self, broker: str, pub: Path, count: int, first: int, prefix: str = "SW-") -> None:
        self.proc = ManagedProcess([PY, "-m", "fleet.agent.swarm", "--broker", broker, "--count", str(count),
                                    "--first", str(first), "--prefix", prefix, "--verify-key", str(pub)],
                                   f"swarm {first}", start_timeout=60, cwd=str(ROOT))
        self.control = self.proc.endpoints["control"]
        self.ids = [f"{prefix}{first + i:05d}" for i in range(count)]

    def cmd(self, name: str, **args: Any) -> dict[str, Any]:
        return send_command(self.control, name, timeout=15, **args)

    def stop(self) -> None:
        self.proc.stop(10)


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.1)


def processed(controllers: list[Controller]) -> int:
    return sum(c.stats()["processed"] for c in controllers)


def run_setup(n_controllers: int, args: argparse.Namespace, db_url: str | None, work: Path) -> dict[str, Any]:
    broker = Mosquitto(work / f"broker{n_controllers}", max_queued_messages=2_000_000, anonymous=True).start()
    key, pub = generate_keypair(work / f"keys{n_controllers}")
    db = db_url or str(work / f"fleet{n_controllers}.db")
    controllers = [Controller(broker.url, db, key, f"bench-c{i + 1}") for i in range(n_controllers)]
    half = args.kiosks // 2
    swarms = [Swarm(broker.url, pub, half, 1), Swarm(broker.url, pub, args.kiosks - half, half + 1)]
    out: dict[str, Any] = {"controllers": n_controllers, "kiosks": args.kiosks}
    try:
        wait(lambda: controllers[0].get("/api/v1/summary")["online"] >= args.kiosks, 120, "every kiosk's birth")
        # sustained: offer more than one controller can take
        offered = args.rate
        for s in swarms:
            s.cmd("set_rate", rate=offered / len(swarms))
        time.sleep(2)  # ramp up
        t1, p1, s1 = time.monotonic(), processed(controllers), sum(s.cmd("stats")["sent"] for s in swarms)
        c1, u1 = [(c.stats()["processed"], c.cpu_seconds()) for c in controllers], time.monotonic()
        time.sleep(args.seconds)
        t2, p2, s2 = time.monotonic(), processed(controllers), sum(s.cmd("stats")["sent"] for s in swarms)
        c2, u2 = [(c.stats()["processed"], c.cpu_seconds()) for c in controllers], time.monotonic()
        for s in swarms:
            s.cmd("set_rate", rate=0)
        out["sustained_offered_msg_s"] = round((s2 - s1) / (t2 - t1))
        out["sustained_ingest_msg_s"] = round((p2 - p1) / (t2 - t1))
        out["sustained_per_controller"] = [per_controller(b[0] - a[0], b[1] - a[1], u2 - u1) for a, b in zip(c1, c2)]
        sent = lambda: sum(s.cmd("stats")["sent"] for s in swarms)  # noqa: E731
        wait(lambda: processed(controllers) >= sent(), 180, "the backlog to drain")
        # drain: pause the controllers, let the broker queue a burst, resume with the swarm idle
        before = [c.stats()["processed"] for c in controllers]  # (a paused controller cannot answer)
        q0 = sum(before)
        for c in controllers:
            c.pause()
        b0 = sent()
        for s in swarms:
            s.cmd("set_rate", rate=args.rate * 2 / len(swarms))
        wait(lambda: sent() - b0 >= args.burst, 120, "the burst")
        for s in swarms:
            s.cmd("set_rate", rate=0)
        time.sleep(1.0)  # let the broker take in the last of it
        target = sent()
        start = [(p, c.cpu_seconds()) for p, c in zip(before, controllers)]
        t0 = time.monotonic()
        for c in controllers:
            c.resume()
        wait(lambda: processed(controllers) >= target, 300, "the controllers to drain the burst")
        wall = time.monotonic() - t0
        end = [(c.stats()["processed"], c.cpu_seconds()) for c in controllers]
        out["drain_msg_s"] = round((target - q0) / wall)
        cpu = sum(e[1] - s0[1] for s0, e in zip(start, end))
        # what the controllers do per second of CPU they get (the box is shared with broker, swarm and others)
        out["drain_msg_per_cpu_s"] = round((target - q0) / cpu) if cpu else 0
        out["drain_cpu_s"] = round(cpu, 2)
        out["drain_per_controller"] = [per_controller(e[0] - s0[0], e[1] - s0[1], wall) for s0, e in zip(start, end)]
        # nothing processed twice: every controller's count adds up to what was sent, each (kiosk, mid) stored once
        try:
            wait(lambda: processed(controllers) >= sent(), 30, "the last messages")
        except SystemExit:
            pass  # reported below as lost
        sent_all = sent()
        per = [c.stats() for c in controllers]
        out["per_controller_processed"] = [p["processed"] for p in per]
        out["messages_sent"] = sent_all
        out["messages_processed"] = sum(p["processed"] for p in per)
        out["duplicates_stored"] = sum(p["duplicates"] for p in per)
        from fleet.controller.store import Store

        store = Store(db)
        totals = store.sample_totals()
        store.dispose()
        out["time_series_rows"] = totals["rows"]
        out["distinct_kiosk_mid"] = totals["distinct"]
        out["processed_twice"] = max(0, out["messages_processed"] - out["messages_sent"])
        out["lost"] = max(0, out["messages_sent"] - out["messages_processed"])
        if n_controllers == 1:
            out["paper_out_alert_s"] = paper_latency(controllers[0], swarms, args)
    finally:
        for s in swarms:
            s.stop()
        for c in controllers:
            c.stop()
        broker.stop()
    return out


def per_controller(messages: int, cpu_s: float, wall_s: float) -> dict[str, Any]:
    """One controller over a phase: messages it processed, msg/s over the phase's wall time, CPU µs per message."""
    return {"messages": messages, "msg_s": round(messages / wall_s) if wall_s else 0, "cpu_s": round(cpu_s, 2),
            "cpu_us_per_msg": round(cpu_s / messages * 1e6, 1) if messages else None,
            "msg_per_cpu_s": round(messages / cpu_s) if cpu_s else None}


def paper_latency(controller: Controller, swarms: list[Swarm], args: argparse.Namespace) -> dict[str, Any]:
    """Printer runs out of paper (the kiosk publishes the change) → alert listed by GET /api/v1/alerts."""
    for s in swarms:
        s.cmd("set_rate", rate=args.background / len(swarms))
    time.sleep(1)
    samples = []
    for i in range(args.paper_trials):
        swarm = swarms[i % len(swarms)]
        kiosk = swarm.ids[(i * 37) % len(swarm.ids)]
        sent = swarm.cmd("set_paper", kiosk=kiosk, state="out")["sent_at"]
        while True:
            alerts = controller.get("/api/v1/alerts", kiosk_id=kiosk, status="open")
            if any(a["rule"] == "paper_out" for a in alerts):
                samples.append(time.time() - sent / 1000)
                break
            if time.time() - sent / 1000 > 10:
                samples.append(float("inf"))
                break
            time.sleep(0.01)
        swarm.cmd("set_paper", kiosk=kiosk, state="ok")
    for s in swarms:
        s.cmd("set_rate", rate=0)
    samples.sort()
    return {"background_msg_s": args.background, "trials": len(samples),
            "median": round(statistics.median(samples), 3), "max": round(samples[-1], 3),
            "p90": round(samples[int(0.9 * (len(samples) - 1))], 3)}


def agent_paper_latency(work: Path, db_url: str | None) -> float:
    """The same with a real FleetAgent (its monitor thread, outbox and MQTT 5 session) and notify_changed()."""
    from fleet.agent import FleetAgent
    from fleet.agent.virtual import VirtualKiosk

    broker = Mosquitto(work / "broker-agent", anonymous=True).start()
    key, pub = generate_keypair(work / "keys-agent")
    controller = Controller(broker.url, db_url or str(work / "agent.db"), key, "bench-agent")
    kiosk = VirtualKiosk("KSK-BENCH-0001")
    agent = FleetAgent(kiosk.kiosk_id, broker.url, kiosk.statuses, verify_key=pub, identity=kiosk.identity(),
                       app_source=kiosk.app, outbox_path=work / "agent-outbox.db", poll_s=30)
    kiosk.on_change = agent.notify_changed
    agent.start()
    try:
        wait(lambda: controller.get("/api/v1/summary")["online"] >= 1, 30, "the agent's birth")
        results = []
        for _ in range(5):
            t0 = time.monotonic()
            kiosk.set_paper("out")
            wait(lambda: any(a["rule"] == "paper_out" for a in controller.get(
                "/api/v1/alerts", kiosk_id=kiosk.kiosk_id, status="open")), 10, "the paper-out alert")
            results.append(time.monotonic() - t0)
            kiosk.set_paper("full")
            wait(lambda: not controller.get("/api/v1/alerts", kiosk_id=kiosk.kiosk_id, status="open"), 10,
                 "the alert to clear")
        return round(statistics.median(results), 3)
    finally:
        agent.stop()
        controller.stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=40000, help="offered msg/s in the sustained phase")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--burst", type=int, default=200000, help="messages queued for the drain phase")
    parser.add_argument("--background", type=float, default=2000, help="msg/s while measuring paper-out latency")
    parser.add_argument("--paper-trials", type=int, default=20)
    parser.add_argument("--pg", action="store_true", help="run against a throw-away PostgreSQL")
    parser.add_argument("--db", help="database URL to use instead (PostgreSQL; emptied tables are not assumed)")
    parser.add_argument("--quick", action="store_true", help="small run (CI smoke): 200 kiosks, short phases")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    if args.quick:
        args.kiosks, args.rate, args.seconds, args.burst, args.paper_trials = 200, 5000, 3, 20000, 5
    pg = None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        try:
            if args.pg:
                from fleet.controller.tempdb import TempPostgres

                pg = TempPostgres().start()
            for n in (1, 2):
                db_url = None
                if pg is not None:
                    db_url = pg.url.rsplit("/", 1)[0] + f"/bench{n}"
                    _createdb(pg, f"bench{n}")
                elif args.db:
                    db_url = args.db
                results[f"{n}_controller"] = run_setup(n, args, db_url, work)
                print(f"fleet_ingest: {n} controller(s): {json.dumps(results[f'{n}_controller'])}", file=sys.stderr)
            results["agent_paper_out_alert_s"] = agent_paper_latency(work, None)
        finally:
            if pg is not None:
                pg.stop()
    report(results, args)
    return 0


def _createdb(pg: Any, name: str) -> None:
    import subprocess

    subprocess.run([str(pg.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.run_as or "root",
                    name], check=True, preexec_fn=pg._demote)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(r))
        return
    db = "PostgreSQL" if args.pg else ("given database" if args.db else "SQLite")
    print(f"fleet controller ingest — {args.kiosks} virtual kiosks (2 swarm processes), mosquitto, {db}, "
          f"{os.cpu_count()} cores")
    for n in (1, 2):
        x = r[f"{n}_controller"]
        print(f"  {n} controller(s): sustained {x['sustained_ingest_msg_s']:,} msg/s (offered "
              f"{x['sustained_offered_msg_s']:,}) · drain {x['drain_msg_s']:,} msg/s wall, "
              f"{x['drain_msg_per_cpu_s']:,} msg per controller-CPU-second (target ≥ 20,000 msg/s per controller)")
        for i, (su, dr) in enumerate(zip(x["sustained_per_controller"], x["drain_per_controller"])):
            print(f"    controller {i + 1}: sustained {su['msg_s']:,} msg/s at {su['cpu_us_per_msg']} µs CPU/msg · "
                  f"drain {dr['msg_s']:,} msg/s wall at {dr['cpu_us_per_msg']} µs CPU/msg "
                  f"(= {dr['msg_per_cpu_s']:,} msg per CPU-second)")
        print(f"    sent {x['messages_sent']:,}, processed {x['messages_processed']:,} "
              f"(processed twice: {x['processed_twice']}, lost: {x['lost']}), time series rows {x['time_series_rows']:,} = distinct "
              f"(kiosk, mid) {x['distinct_kiosk_mid']:,}")
    p = r["1_controller"]["paper_out_alert_s"]
    print(f"  paper out → alert on the API (swarm kiosk, {p['background_msg_s']:,.0f} msg/s background): median "
          f"{p['median']} s, p90 {p['p90']} s, max {p['max']} s over {p['trials']} (target < 2 s)")
    print(f"  paper out → alert on the API (real FleetAgent, notify_changed): median {r['agent_paper_out_alert_s']} s")


if __name__ == "__main__":
    sys.exit(main())
