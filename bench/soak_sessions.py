"""Soak ("unattended for months"): N compressed citizen sessions through the kiosk core with the real simulators and
platform, mixing what citizens do — card read → my applications → print progress → rate; service guide → one-time
notice printed → rate; online application (form, pre-review, submit through the outbox); a fee paid on the card pad
with its voucher printed; and sessions abandoned to the idle timeout (the core's clock is moved past it; the shell's
``tick()`` ends them). Every ``--interval`` sessions it prints one row: resident memory, open file descriptors,
threads, the size of each SQLite file (with its WAL) and the rows of each journal; at the end a verdict line with the
slope per 1,000 sessions of RSS, descriptors and threads (least squares over the rows after the first) — target flat
(shared/README.md) — and, with ``--json``, one JSON object with every figure.

Run: ``.venv/bin/python bench/soak_sessions.py [--sessions 10000] [--interval 500] [--fleet] [--quick] [--json]``
(``--fleet``: the kiosk also reports to a mosquitto started here, as a deployed kiosk does; ``--retention-s 120``:
the journals keep 120 s of the run instead of the profile's days — the run's 10,000 sessions are months of a real
kiosk compressed into minutes, so without it no row is ever old enough to go and the rows grow by design).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import call, kiosk_signer, rss_mb, simulated_profile, start_platform  # noqa: E402

IDENTITIES = ["zhang", "li", "chen", "yang", "zhao", "huang_hk"]
APPLICANTS = ["zhang", "li", "chen", "yang", "zhao"]
#: citizen whose fee orders the payment sessions pay (filed beforehand, as if online at home)
PAYER = ("230202197511053015", "王建国")
#: one cycle of session kinds (10 sessions): 3 card + print, 2 guide + print, 1 application, 1 payment, 2 timeouts,
#: 1 guide read without printing
MIX = ("card_print", "guide_print", "timeout", "card_print", "application", "guide_read", "payment", "card_print",
       "guide_print", "timeout")
#: diagnostic kinds (not in the mix; ``--mix``/``--phased`` only): pieces of a receipt print, run on the bench thread
#: with no session — the receipt rendered (template → blocks → ESC/POS bytes), sent by the driver alone, or printed
#: through the print service and its journal
DIAGNOSTIC = ("render_receipt", "driver_print", "service_print", "worker_print", "core_print", "card_print_norate")
#: journals whose rows are counted: file → tables
JOURNALS = {"print-journal.sqlite3": ("jobs", "job_events"), "payments.sqlite3": ("payments", "payment_steps"),
            "outbox.sqlite3": ("outbox",), "fleet-outbox.sqlite3": ("outbox AS fleet_outbox",)}
#: "flat" in the verdict: below this growth per 1,000 sessions
FLAT = {"rss_mb": 0.5, "fds": 0.5, "threads": 0.5}


class OffsetClock:
    """time.monotonic() plus an offset the bench moves forward to let a session time out without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return threading.active_count()


def sqlite_bytes(data_dir: Path) -> dict[str, dict[str, int]]:
    """Bytes of each SQLite file in the kiosk's data folder and of its WAL (the WAL grows to ~4 MB, 1,000 pages,
    and is then reused after each checkpoint)."""
    out = {}
    for db in sorted(data_dir.glob("*.sqlite3")):
        wal = Path(f"{db}-wal")
        out[db.name] = {"db": db.stat().st_size, "wal": wal.stat().st_size if wal.exists() else 0}
    return out


def journal_rows(data_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, tables in JOURNALS.items():
        path = data_dir / name
        if not path.exists():
            continue
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            for table in tables:
                out[table.split(" AS ")[-1]] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            db.close()
    audit = data_dir / "audit.jsonl"
    if audit.exists():
        with audit.open("rb") as fh:
            out["audit_lines"] = sum(1 for _ in fh)
    return out


def slope_per_1000(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (session, value), per 1,000 sessions."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if not sxx:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx * 1000


def malloc_trim() -> None:
    """Diagnostic: hand glibc's free heap pages back to the system (``malloc_trim(0)``), to tell memory the process
    still holds from memory merely not returned (fragmentation)."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def pymalloc_arenas_mb() -> float:
    """MiB held in Python's small-object allocator: arenas allocated now (``sys._debugmallocstats``), 1 MiB each on
    64-bit CPython 3.10+ — moves in 1 MiB steps."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    for line in text.splitlines():
        if "arenas allocated current" in line:
            return float(int(line.split("=")[1].replace(",", "")))
    return float("nan")


def smaps() -> dict[str, tuple[str, int]]:
    """Resident KiB of each mapping of this process (/proc/self/smaps): ``start-end perms path`` → (path, KiB)."""
    out: dict[str, tuple[str, int]] = {}
    key, path = "", ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if not head[0].endswith(":") and "-" in head[0]:
            path = head[5] if len(head) > 5 else "[anon]"
            key = f"{head[0]} {head[1]} {path}"
        elif head[0] == "Rss:" and key:
            out[key] = (path, int(head[1]))
    return out


def smaps_growth(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]],
                 top: int = 6) -> list[str]:
    """The mappings whose resident size grew most between two :func:`smaps` snapshots. The kernel merges adjacent
    anonymous mappings (pymalloc arenas, malloc blocks), so each mapping now is compared with the resident size of
    every earlier mapping that started inside it."""
    starts = sorted((int(k.split("-")[0], 16), v[1]) for k, v in before.items())
    grown = []
    for key, (path, kib) in after.items():
        lo, hi = (int(x, 16) for x in key.split()[0].split("-"))
        delta = kib - sum(rss for start, rss in starts if lo <= start < hi)
        if delta:
            grown.append((delta, f"{delta:+6d} KiB  {key.split()[1]} {(hi - lo) / 2**20:8.2f} MiB  {path}"))
    return [text for _, text in sorted(grown, reverse=True)[:top]]


def memory_split() -> dict[str, float]:
    """Diagnostic (``--trim``): where resident memory is — anonymous / file-backed / shared (MB, /proc/self/status)
    — and what glibc's malloc has handed out (in use, MB: mallinfo2 ``uordblks`` + ``hblkhd``)."""
    import ctypes

    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("RssAnon", "RssFile", "RssShmem"):
            out[key] = round(int(line.split()[1]) / 1024, 2)

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    out["pymalloc_mb"] = pymalloc_arenas_mb()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    out["malloc_in_use"] = round((info.uordblks + info.hblkhd) / 2**20, 2)
    out["malloc_free"] = round(info.fordblks / 2**20, 2)
    return out


def type_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


def start_tracing(frames: int) -> tuple[Any, dict[str, int]]:
    """Diagnostic (``--tracemalloc``): a first snapshot of traced allocations and of object counts per type."""
    import tracemalloc

    gc.collect()
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
        return None, type_counts()   # the first snapshot is taken at the next call (nothing traced yet)
    return tracemalloc.take_snapshot(), type_counts()


def report_tracing(first: Any, counts: dict[str, int], top: int = 15) -> None:
    """Print the allocation sites that grew most since :func:`start_tracing`, and the types whose count grew."""
    import tracemalloc

    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if first is None:
        stats = snap.statistics("traceback")[:top]
        print(f"traced allocations still held (top {top}, since tracing started):", flush=True)
        for stat in stats:
            print(f"  {stat.size / 1024:9.1f} KiB in {stat.count:7d} blocks", flush=True)
            for line in stat.traceback.format()[-12:]:
                print("      " + line, flush=True)
    else:
        for stat in snap.compare_to(first, "traceback")[:top]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks", flush=True)
            for line in stat.traceback.format()[-12:]:
                print("      " + line, flush=True)
    now = type_counts()
    grown = sorted(((now.get(k, 0) - counts.get(k, 0), k) for k in now), reverse=True)[:top]
    print("object counts grown per type: " + ", ".join(f"{k} {d:+d}" for d, k in grown if d > 0), flush=True)


def object_ids() -> set[int]:
    """Ids of every object the collector tracks and of what each refers to directly (strings, bytes, numbers)."""
    gc.collect()
    ids: set[int] = set()
    for obj in gc.get_objects():
        if obj is ids:
            continue
        ids.add(id(obj))
        ids.update(id(ref) for ref in gc.get_referents(obj))
    return ids


def report_survivors(before: set[int], frames: int, top: int = 25) -> None:
    """Diagnostic (``--survivors``): objects allocated after ``before`` was taken and still alive now, grouped by
    where they were allocated. With a flat live heap these are what a bounded cache or queue replaced — long-lived
    objects born among a session's short-lived ones, which keep otherwise empty pymalloc pools and arenas alive."""
    import tracemalloc

    gc.collect()
    seen: set[int] = set()
    groups: dict[tuple[str, ...], list[int]] = {}
    kinds: dict[tuple[str, ...], dict[str, int]] = {}
    for obj in gc.get_objects():
        if obj is before or obj is seen:
            continue
        for o in (obj, *gc.get_referents(obj)):
            if id(o) in before or id(o) in seen:
                continue
            seen.add(id(o))
            tb = tracemalloc.get_object_traceback(o)
            key = tuple(f"{f.filename.split('/site-packages/')[-1].split('/main/')[-1]}:{f.lineno}"
                        for f in (tb or [])[-frames:]) or ("(untraced)",)
            entry = groups.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += sys.getsizeof(o)
            names = kinds.setdefault(key, {})
            names[type(o).__qualname__] = names.get(type(o).__qualname__, 0) + 1
    print(f"survivors: {len(seen)} objects born after the first row and still alive; by allocation site:", flush=True)
    for key, (count, size) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]:
        names = ", ".join(f"{n} {c}" for n, c in sorted(kinds[key].items(), key=lambda kv: -kv[1])[:4])
        print(f"  {count:7d} objects {size / 1024:8.1f} KiB  [{names}]", flush=True)
        for line in key[::-1][:frames]:
            print("      " + line, flush=True)


def profile_without(path: Path, devices: list[str]) -> None:
    """Remove ``devices`` from the profile (A/B runs: e.g. ``--without licence_printer``)."""
    import yaml

    data = yaml.safe_load(path.read_text("utf-8"))
    for name in devices:
        data["devices"].pop(name, None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


def profile_with_fleet(path: Path, broker_url: str, work: Path) -> None:
    """Report to the fleet over ``broker_url`` as a deployed kiosk does (telemetry, journeys, alarms through the
    agent's disk outbox); commands verified with a key made here."""
    import yaml

    from fleet.signing import generate_keypair

    _, public = generate_keypair(work / "fleet-keys")
    data = yaml.safe_load(path.read_text("utf-8"))
    data["fleet"] = {"broker_url": broker_url, "verify_key": str(public), "heartbeat_s": 5}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


class Soak:
    def __init__(self, work: Path, platform_url: str, without: list[str] | None = None,
                 mix: tuple[str, ...] = MIX, trim: bool = False, broker_url: str | None = None,
                 retention_s: float | None = None) -> None:
        from device_profiles.loader import load_profile
        from kiosk.core import KioskCore
        from kiosk.payments.service import PaymentConfig
        from kiosk.platform_client import PlatformClient

        self.clock = OffsetClock()
        self.mix, self.trim = mix, trim
        profile = simulated_profile(work, platform_url)
        if without:
            profile_without(profile, without)
        if broker_url:
            profile_with_fleet(profile, broker_url, work)
        self.core = KioskCore(load_profile(profile, environ={}), clock=self.clock)
        if retention_s:
            # compressed time: closed print jobs, resolved payments, settled outbox rows and rotated audit files are
            # kept retention_s of this run (a kiosk keeps 30/90/30/365 days; a profile may not set less than a day).
            # The core purges hourly by its own clock while idle — the timeout sessions move that clock forward.
            from dataclasses import replace

            from device_profiles.loader import RetentionConfig

            days = retention_s / 86400
            self.core.profile = replace(self.core.profile, retention=RetentionConfig(days, days, days, days))
        self.core.payments.service.config = PaymentConfig(wait_slice_s=0.05)
        self.events: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
        self.core.subscribe(self._on_event)
        self.core.start()
        self.data_dir = Path(self.core.profile.kiosk.data_dir)
        self.reader = self.core.devices.simulators["idcard"]
        self.printer = self.core.devices.simulators["receipt_printer"]
        self.pad = self.core.devices.simulators["payment_pad"]
        self.pad.control("set_timing", card_s=0.0, pin_s=0.0, host_s=0.0)
        # the citizen's own phone/browser, not the kiosk: files fee-bearing applications to pay at the kiosk
        self.home = PlatformClient(platform_url, "KSK-340302-0001", kiosk_signer(work), timeout_s=10)
        self.counts: dict[str, int] = {}
        self.runs: dict[str, Callable[[int], None]] = {
            "card_print": self.card_print, "guide_print": self.guide_print, "guide_read": self.guide_read,
            "application": self.application, "payment": self.payment, "timeout": self.timeout,
            "render_receipt": self.render_receipt, "driver_print": self.driver_print,
            "service_print": self.service_print, "worker_print": self.worker_print, "core_print": self.core_print,
            "card_print_norate": self.card_print_norate}
        self._app: Any = None
        self.smaps: dict[int, dict[str, tuple[str, int]]] = {}

    def _on_event(self, name: str, payload: dict[str, Any]) -> None:
        if name in ("identified", "card_error", "ended"):
            self.events.put((name, payload))

    def close(self) -> None:
        self.home.close()
        self.core.stop()

    # helpers ----------------------------------------------------------------------------------------------------------
    def expect(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got, payload = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == name:
                return payload
            if got == "card_error":
                raise AssertionError(f"card error while waiting for {name}: {payload}")

    def card(self, i: int, who: list[str], tries: int = 3) -> None:
        """Place the card and wait for the citizen to be identified; a read that failed (the reader did not answer in
        time on a loaded machine) is tried again as a citizen would — card taken away and put back — and counted."""
        for attempt in range(tries):
            self.reader.control("place_card", identity=who[i % len(who)])
            try:
                self.expect("identified")
                return
            except AssertionError:
                if attempt == tries - 1:
                    raise
                self.counts["card_read_retried"] = self.counts.get("card_read_retried", 0) + 1
                self.reader.control("remove_card")
                if self.core.session.active:
                    self.core.end_session("card_removed")
                    self.expect("ended")

    def finish(self, reason: str = "finished") -> None:
        self.core.end_session(reason)
        payload = self.expect("ended")
        assert payload["reason"] == reason, payload
        self.reader.control("remove_card")

    # session kinds ----------------------------------------------------------------------------------------------------
    def card_print(self, i: int) -> None:
        self.card(i, IDENTITIES)
        apps = call(self.core.my_applications)
        call(self.core.print_progress, apps[i % len(apps)])
        call(self.core.submit_rating, 4 + i % 2, [])
        self.finish()

    def guide_print(self, i: int) -> None:
        self.core.start_anonymous()
        services = call(self.core.search_services, ["户口", "公积金", "社保", "驾驶证", "hukou"][i % 5])
        detail = call(self.core.service_detail, services[i % len(services)].code)
        call(self.core.print_service_notice, detail)
        call(self.core.submit_rating, 5, ["clear"])
        self.finish()

    def guide_read(self, i: int) -> None:
        self.core.start_anonymous()
        services = call(self.core.search_services, "")
        call(self.core.service_detail, services[i % len(services)].code)
        self.finish()

    def face_passed(self) -> None:
        """Filing needs ``card+face`` (or ``card+pin``) and the simulated profile has no camera: stand in for a
        passed face check (benchmarked on its own in bench/face_bench.py) — the card-level platform session the core
        opened is closed and one with the face check's result opened, as the core does after a real check."""
        citizen = self.core.session.citizen
        assert citizen is not None
        scratch = self.core.session.data.scratch
        deadline = time.monotonic() + 5
        while "token_future" not in scratch and time.monotonic() < deadline:
            time.sleep(0.002)   # "identified" is emitted before the core submits the platform session it keeps here
        first = scratch["token_future"].result(15)
        deadline = time.monotonic() + 5
        while citizen.platform_token != first and time.monotonic() < deadline:
            time.sleep(0.002)   # the core's own callback stores the first token: let it, then replace it
        self.core.platform.close_citizen_session(first)
        self.core.session.data.scratch["face_result"] = {"match": True}
        self.core.citizen_token(fresh=True)
        assert citizen.level == "card+face", citizen.level

    def application(self, i: int) -> None:
        self.card(i, APPLICANTS)
        self.face_passed()
        flow = self.core.apply
        flow.start()
        call(flow.choose, "hukou-certificate")
        flow.accept_notice()
        flow.set_field("/purpose", "employment", typed=False)
        assert flow.finish_form() == []
        flow.next_after_attach()
        assert call(flow.pre_review).acceptable
        outcome = call(flow.submit)
        # "queued": the platform did not answer in time (a loaded box) — the citizen got an outbox reference and the
        # drainer sends it later, as on a real kiosk; counted, not a failure of the soak
        assert outcome.status == "submitted" and outcome.number or outcome.status == "queued", outcome
        if outcome.status == "queued":
            self.counts["application_queued"] = self.counts.get("application_queued", 0) + 1
        self.finish()

    def _fee_order(self) -> Any:
        from kiosk.platform_client import MaterialRef

        token = self.home.open_citizen_session(*PAYER, "resident_id", face_match=True).token
        certs = {c.type_code: c.id for c in self.home.my_e_certificates(token)}
        filed = self.home.file_application(
            token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                               "phone": "13905520004"},
            [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
             MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
        self.home.close_citizen_session(token)
        return filed.payment_orders[0]

    def payment(self, i: int) -> None:
        order_no = self._fee_order().order_no
        self.core.start_anonymous()
        order = call(self.core.payments.find, order_no)
        self.core.payments.announce(order)
        done = call(self.core.payments.pay, order, "card")
        assert done.outcome.status == "paid" and done.print_error is None, done
        self.finish()

    # diagnostic kinds: a receipt print taken apart -----------------------------------------------------------------
    def _progress_app(self) -> Any:
        if self._app is None:
            self.card(0, IDENTITIES)
            self._app = call(self.core.my_applications)[0]
            self.finish()
        return self._app

    def _receipt(self) -> Any:
        from kiosk.usecases.printing import new_job_id, progress_view

        svc = self.core.print_service
        return svc.render_receipt("progress", job_id=new_job_id(),
                                  application=progress_view(self._progress_app(), self.core.status_texts()))

    def render_receipt(self, i: int) -> None:
        self.core.print_service.receipt_printer().render(self._receipt())

    def driver_print(self, i: int) -> None:
        self.core.print_service.receipt_printer().print_receipt(self._receipt())

    def service_print(self, i: int) -> None:
        self.core.print_service.print_progress(self._progress_app(), self.core.status_texts())

    def worker_print(self, i: int) -> None:
        """The print service's print on one of the core's worker threads (as the core runs it), no session."""
        app, texts = self._progress_app(), self.core.status_texts()
        call(lambda on_result, on_error: self.core.workers.submit(
            self.core.print_service.print_progress, app, texts, on_result=on_result, on_error=on_error))

    def core_print(self, i: int) -> None:
        """An anonymous session that prints a progress receipt through the core, then ends (no card, no rating)."""
        app = self._progress_app()
        self.core.start_anonymous()
        call(self.core.print_progress, app)
        self.finish()

    def card_print_norate(self, i: int) -> None:
        self.card(i, IDENTITIES)
        apps = call(self.core.my_applications)
        call(self.core.print_progress, apps[i % len(apps)])
        self.finish()

    def timeout(self, i: int) -> None:
        self.card(i, IDENTITIES)
        call(self.core.my_applications)
        self.core.tick()
        self.clock.offset += self.core.session.idle_timeout_s + 1   # the citizen walked away
        self.core.tick()
        payload = self.expect("ended")
        assert payload["reason"] == "timeout", payload
        self.reader.control("remove_card")

    def run(self, i: int) -> None:
        kind = self.mix[i % len(self.mix)]
        self.runs[kind](i)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.core.tick()
        if i % 50 == 49:
            self.printer.control("clear")   # the emulator's own list of receipts (another process)

    def sample(self, n: int) -> dict[str, Any]:
        self.core.flush_audit()
        gc.collect()
        extra: dict[str, Any] = {}
        if self.trim:
            extra["rss_mb_untrimmed"] = round(rss_mb(), 2)
            malloc_trim()
            extra.update(memory_split())
            self.smaps[n] = smaps()
        import tracemalloc

        if tracemalloc.is_tracing():
            extra["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 3)
            extra["pymalloc_mb"] = pymalloc_arenas_mb()
        return {**extra, "session": n, "rss_mb": round(rss_mb(), 2), "fds": fds(), "threads": threads(),
                "sqlite_bytes": sqlite_bytes(self.data_dir), "rows": journal_rows(self.data_dir)}


def row_text(s: dict[str, Any], per_ms: float) -> str:
    dbs = " ".join(f"{k.removesuffix('.sqlite3')}={v['db'] / 1024:.0f}K+{v['wal'] / 1024:.0f}K"
                   for k, v in s["sqlite_bytes"].items())
    rows = " ".join(f"{k}={v}" for k, v in s["rows"].items())
    traced = (f" (traced {s['traced_mb']:.2f} MB, pymalloc arenas {s['pymalloc_mb']:.0f} MB)"
              if "traced_mb" in s else "")
    trimmed = traced + (f" (untrimmed {s['rss_mb_untrimmed']:.1f}; anon {s['RssAnon']:.1f} file {s['RssFile']:.1f} "
               f"shm {s['RssShmem']:.1f}; pymalloc {s['pymalloc_mb']:.0f}; malloc in use {s['malloc_in_use']:.2f} "
               f"free {s['malloc_free']:.2f})"
               if "rss_mb_untrimmed" in s else "")
    return (f"{s['session']:6d} {s['rss_mb']:8.1f}{trimmed} {s['fds']:4d} {s['threads']:4d} {per_ms:6.0f}  "
            f"sqlite: {dbs}  "
            f"rows: {rows}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--interval", type=int, default=500, help="sessions between two rows of figures")
    parser.add_argument("--quick", action="store_true", help="a small run: 200 sessions, a row every 50")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    parser.add_argument("--mix", default="", help="comma-separated session kinds to cycle instead of the full mix "
                        f"(A/B runs), of: {', '.join(sorted(set(MIX)))}; diagnostic: {', '.join(DIAGNOSTIC)}")
    parser.add_argument("--without", default="", help="comma-separated devices removed from the profile (A/B runs), "
                        "e.g. licence_printer")
    parser.add_argument("--fleet", action="store_true", help="report to a fleet broker (mosquitto started here) as "
                        "a deployed kiosk does: telemetry, journeys and alarms through the agent and its outbox")
    parser.add_argument("--trim", action="store_true", help="diagnostic: malloc_trim(0) before each RSS sample "
                        "(both figures printed)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="diagnostic: trace Python allocations (with FRAMES frames) from the first row after "
                             "start-up and print what grew most by the end, and the object counts per type that grew")
    parser.add_argument("--survivors", type=int, default=0, metavar="FRAMES",
                        help="diagnostic: trace allocations (FRAMES frames) from the start and print, by allocation "
                             "site, the objects born after the first row and still alive at the end")
    parser.add_argument("--retention-s", type=float, default=0.0, metavar="SECONDS",
                        help="keep journal rows and rotated audit files SECONDS of this run instead of the profile's "
                             "days (compressed time: the run's sessions would span months at a real kiosk)")
    parser.add_argument("--slope-from", type=int, default=None,
                        help="first session of the verdict's slope (default: the first row after start-up)")
    parser.add_argument("--phased", action="store_true",
                        help="bisect by kind: run --sessions sessions of each kind of the mix in turn, one after the "
                             "other in the same process, with an RSS slope per kind (from each block's second row)")
    args = parser.parse_args()
    mix = tuple(k for k in args.mix.split(",") if k) or MIX
    unknown = set(mix) - set(MIX) - set(DIAGNOSTIC)
    if unknown:
        parser.error(f"unknown session kinds: {', '.join(sorted(unknown))}")
    if args.quick:
        args.sessions, args.interval = min(args.sessions, 200), min(args.interval, 50)
    if args.survivors:
        import tracemalloc

        tracemalloc.start(args.survivors)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    platform = start_platform(work)
    broker = None
    try:
        if args.fleet:
            from fleet.broker import Mosquitto

            broker = Mosquitto(work / "broker", anonymous=True).start()
        soak = Soak(work, platform.endpoints["url"], [d for d in args.without.split(",") if d], mix, args.trim,
                    broker.url if broker else None, args.retention_s or None)
    except BaseException:
        if broker is not None:
            broker.stop()
        platform.stop()
        raise
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        samples.append(soak.sample(0))
        print(f"soak: {args.sessions} sessions, mix per {len(mix)}: {', '.join(mix)}" + ("; fleet link to mosquitto"
                                                                                       if broker else "")
              + (f"; without {args.without}" if args.without else "") + ("; malloc_trim before samples" if args.trim
                                                                         else "")
              + (f"; journals keep {args.retention_s:g} s of the run" if args.retention_s else ""), flush=True)
        print(f"{'n':>6} {'RSS MB':>8} {'fds':>4} {'thr':>4} {'ms/s':>6}  sqlite: file+WAL  rows: journal tables",
              flush=True)
        print(row_text(samples[0], 0), flush=True)
        last, last_t = 0, time.monotonic()
        kinds = list(dict.fromkeys(mix)) if args.phased else [None]
        blocks: dict[str, list[dict[str, Any]]] = {}
        traced: tuple[Any, dict[str, int]] | None = None
        born_before: set[int] | None = None
        total = args.sessions * len(kinds)
        for i in range(total):
            kind = kinds[i // args.sessions] if args.phased else None
            if kind is not None:
                soak.mix = (kind,)
            soak.run(i)
            n = i + 1
            if n % args.interval == 0 or n == total:
                now = time.monotonic()
                per_ms = (now - last_t) / max(1, n - last) * 1000
                last, last_t = n, now
                samples.append(soak.sample(n))
                samples[-1]["ms_per_session"] = round(per_ms, 1)
                if kind is not None:
                    samples[-1]["kind"] = kind
                    blocks.setdefault(kind, []).append(samples[-1])
                print(row_text(samples[-1], per_ms) + (f"  [{kind}]" if kind else ""), flush=True)
                if args.tracemalloc and traced is None:
                    traced = start_tracing(args.tracemalloc)
                if args.survivors and born_before is None:
                    born_before = object_ids()
        if traced is not None:
            report_tracing(*traced)
        if born_before is not None:
            report_survivors(born_before, args.survivors)
    finally:
        soak.close()
        if broker is not None:
            broker.stop()
        platform.stop()
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    for kind, rows in blocks.items():
        pts = rows[1:] if len(rows) > 2 else rows
        for key in ("rss_mb", "rss_mb_untrimmed", "RssAnon", "RssFile", "malloc_in_use", "pymalloc_mb"):
            if key in pts[0]:
                print(f"phase {kind}: {key} {slope_per_1000([(s['session'], float(s[key])) for s in pts]):+.2f} MB "
                      f"per 1,000 sessions ({pts[0]['session']}–{pts[-1]['session']}: "
                      f"{pts[0][key]:.1f} → {pts[-1][key]:.1f})", flush=True)
    # the first row after start-up is the baseline: imports, pools, caches and connections warm up before it
    if args.slope_from is not None:
        steady = [s for s in samples if s["session"] >= args.slope_from] or samples[-2:]
    else:
        steady = samples[1:] if len(samples) > 2 else samples
    slopes = {k: round(slope_per_1000([(s["session"], float(s[k])) for s in steady]), 3) for k in FLAT}
    flat = all(abs(slopes[k]) < FLAT[k] for k in FLAT)
    first, final = steady[0], samples[-1]
    done = samples[-1]["session"]
    print(f"verdict: {done} sessions in {elapsed:.0f} s ({elapsed / max(1, done) * 1000:.0f} ms/session); "
          f"per 1,000 sessions from session {first['session']}: RSS {slopes['rss_mb']:+.2f} MB, "
          f"fds {slopes['fds']:+.2f}, threads {slopes['threads']:+.2f}; "
          f"RSS {first['rss_mb']:.1f} → {final['rss_mb']:.1f} MB — {'FLAT' if flat else 'GROWING'}", flush=True)
    if args.trim:
        parts = {k: slope_per_1000([(s["session"], float(s[k])) for s in steady])
                 for k in ("rss_mb_untrimmed", "RssAnon", "RssFile", "pymalloc_mb", "malloc_in_use")}
        print("per 1,000 sessions: " + ", ".join(f"{k} {v:+.2f} MB" for k, v in parts.items())
              + " (pymalloc: arenas of 1 MiB, in steps)", flush=True)
        a, b = steady[0]["session"], steady[-1]["session"]
        if a in soak.smaps and b in soak.smaps:
            print(f"mappings grown most from session {a} to {b} (resident):", flush=True)
            for text in smaps_growth(soak.smaps[a], soak.smaps[b]):
                print("  " + text, flush=True)
    if args.json:
        print(json.dumps({"sessions": args.sessions, "without": args.without, "trim": args.trim, "fleet": args.fleet,
                          "retention_s": args.retention_s, "seconds": round(elapsed, 1), "mix": soak.counts,
                          "samples": samples, "slopes_per_1000": slopes, "flat": flat}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
