"""Service platform under load on this machine: requests/s and latency (p50/p95/p99) for guide search and progress
query, with SQLite and with PostgreSQL.

The reference server runs as the demo runs it (``service-platform serve``, one uvicorn process, no access log); the load
comes from a second process with ``--concurrency`` keep-alive connections (asyncio + httpx), each request signed as
the demo kiosk (KIOSK-ED25519-V1, a key pair made for the run). Queries rotate through Chinese names, pinyin initials and full pinyin; progress numbers through the seeded
applications (and an unknown number, a 404, as citizens mistype). Both processes share the 2 cores: the figures are
for the whole box, client included.

    .venv/bin/python bench/platform_load.py [--seconds 10] [--concurrency 16] [--no-postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.sim.process import ManagedProcess  # noqa: E402

QUERIES = ("公积金", "gjj", "社保", "sbk", "户口", "hukou", "居住证", "营业执照", "yyzz", "老年", "不动产", "jsz")
NUMBERS = ("SP20261012000101", "SP20261027000102", "SP20261029000103", "SP20990101999999")


def start_platform(db_url: str, public_key: Path) -> ManagedProcess:
    return ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", db_url, "--port", "0",
                           "--no-access-log", "--log-level", "warning", "--demo", "--demo-kiosk-public-key",
                           str(public_key)], "platform", start_timeout=60)


async def _load(base: str, paths: list[str], seconds: float, concurrency: int, key_file: str) -> dict[str, object]:
    import httpx

    from kiosk.request_signing import KioskRequestSigner

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cycle = itertools.cycle(paths)
    auth = KioskRequestSigner.from_file("KSK-340302-0001", key_file)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, auth=auth, limits=limits, timeout=30) as client:
        for path in paths[:4]:          # warm up: first-request imports, SQLite page cache, pinyin tables
            await client.get(path)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(next(cycle))
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * (len(latencies) - 1)))] * 1000

    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50": pct(0.50), "p95": pct(0.95),
            "p99": pct(0.99), "mean": statistics.fmean(latencies) * 1000, "statuses": statuses}


def _client_process(args: tuple[str, list[str], float, int, str]) -> dict[str, object]:
    return asyncio.run(_load(*args))


def run(label: str, db_url: str, seconds: float, concurrency: int) -> None:
    from bench._support import demo_kiosk_key

    work = Path(tempfile.mkdtemp(prefix="platform-load-key-"))
    private, public = demo_kiosk_key(work)
    platform = start_platform(db_url, public)
    try:
        base = platform.endpoints["url"]
        cases = {
            "guide search": [f"/api/v1/services?q={q}&limit=20" for q in QUERIES],
            "progress query": [f"/api/v1/applications/{n}" for n in NUMBERS],
        }
        for name, paths in cases.items():
            with multiprocessing.get_context("spawn").Pool(1) as pool:   # the load in a process of its own
                r = pool.apply(_client_process, ((base, paths, seconds, concurrency, str(private)),))
            statuses = ", ".join(f"{code}×{count}" for code, count in sorted(r["statuses"].items()))  # type: ignore
            print(f"{label:10s} {name:15s} {r['rps']:7.0f} req/s   p50 {r['p50']:6.1f} ms   p95 {r['p95']:6.1f} ms   "
                  f"p99 {r['p99']:6.1f} ms   ({r['requests']} requests: {statuses})", flush=True)
    finally:
        platform.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"platform_load: {args.concurrency} connections, {args.seconds:.0f} s per case, one uvicorn process")
    with TemporaryDirectory(prefix="platform-load-") as work:
        run("SQLite", f"sqlite:///{Path(work) / 'platform.db'}", args.seconds, args.concurrency)
        if not args.no_postgres:
            from fleet.controller.tempdb import TempPostgres, pg_bindir

            if pg_bindir() is None:
                print("PostgreSQL   not installed — skipped")
            else:
                pg = TempPostgres().start()
                try:
                    run("PostgreSQL", pg.url, args.seconds, args.concurrency)
                finally:
                    pg.stop()
    print(json.dumps({"note": "client and server share the machine's 2 cores"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
