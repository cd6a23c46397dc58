"""Licence/certificate printing through a CUPS queue with pycups (shared/protocols.md §4).

How a job goes (see :mod:`drivers.licence_printer.base` for the contract):

1. The document is checked to be a PDF; the queue's attributes are read (``Get-Printer-Attributes``): state
   (idle/processing/stopped), accepting jobs, ``printer-state-reasons``, marker (supply) levels, and the supported
   ``media``/``media-source``/``sides``/``copies`` values the options are checked against.
2. ``printFile`` (Print-Job) with ``media``, ``media-source`` (tray), ``sides`` (duplex) and ``copies`` as IPP
   attributes; the job name is ``kiosk-<journal id>`` so a job can be found again after a crash (:meth:`find_job`).
3. ``Get-Job-Attributes`` is polled (from 50 ms, backing off to ``poll_interval_s``) until the job is completed,
   cancelled or aborted. While it is pending/processing the printer's state reasons are read too: a printer fault
   (``media-empty``, ``media-jam``, ``cover-open``, ``offline``, ``toner-empty``, any ``*-error``) that lasts
   ``fault_grace_s`` fails the job; so does ``job_timeout_s``. Before failing, the job is cancelled
   (``cancel_on_failure``) so it cannot come out later unrecorded — and if it turns out to have completed meanwhile,
   it is reported as completed.

State reasons (RFC 8011 §5.4.12, PWG 5100.9): a reason ending in ``-report`` or ``-warning`` is information (paper low,
toner low); a reason ending in ``-error``, or with no suffix, is a fault. IPP printers report ``media-empty`` /
``media-low`` from their sensors, so with none of them the paper is taken as present (``full``). cupsd keeps the
reasons a backend reported after its job ends, so faults count only while a job is processing; on an idle queue they
are the last known state (``extra["last_fault"]``) and the next job finds out — a licence that meets paper-out is
cancelled before a page comes out, so "refused up front" here means "failed within the grace period, nothing printed".
A fault reason that was already there (stale) when the job was submitted counts only after ``stale_fault_grace_s``:
the new job's backend first reports the printer's current state (and clears the reason once paper is back).

pycups calls have no timeout of their own: a print server that accepts the connection and then hangs blocks the
call (libcups' own timeouts apply). Calls are made under the device lock, one at a time (a pycups connection is not
thread-safe); following a job does not hold the lock between polls, so status reads from a health check interleave.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

from drivers.base import DeviceState, DeviceStatus, PaperState
from drivers.errors import (CoverOpen, DeviceBusy, DeviceError, DeviceTimeout, HardwareError, NoDevice, PaperOut,
                            PrinterOffline, Unsupported)
from drivers.licence_printer.base import (DUPLEX, JobAborted, JobCanceled, JobInfo, JobResult, LicenceOptions,
                                          LicencePrinter, PaperJam, SupplyEmpty, check_pdf, job_error)

try:  # pycups (pip install pycups; builds against libcups2-dev). A folder named "cups" on sys.path would hide it.
    import cups as _cups
except ImportError:  # pragma: no cover - reported as no_device when the driver opens
    _cups = None

JOB_NAME_PREFIX = "kiosk-"

JOB_STATES = {3: "pending", 4: "held", 5: "processing", 6: "stopped", 7: "canceled", 8: "aborted", 9: "completed"}
PRINTER_STATES = {3: "idle", 4: "processing", 5: "stopped"}

IPP_NOT_FOUND = 0x406
IPP_NOT_POSSIBLE = 0x404
IPP_NOT_ACCEPTING = 0x506
IPP_PRINTER_BUSY = 0x507
#: IPP statuses that mean "the print server cannot be talked to" (rather than "it refused this request")
LINK_STATUSES = {0x500, 0x502, 0x503, -1}

# printer-state-reasons keyword (without suffix) → error code (see STATUS_ERRORS)
REASON_CODES: dict[str, str] = {
    "media-empty": "paper_out", "media-needed": "paper_out", "input-tray-missing": "paper_out",
    "media-jam": "paper_jammed",
    "cover-open": "cover_open", "door-open": "cover_open", "interlock-open": "cover_open",
    "offline": "printer_offline", "connecting-to-device": "printer_offline", "shutdown": "printer_offline",
    "timed-out": "printer_offline", "paused": "printer_offline",
    "toner-empty": "supply_empty", "marker-supply-empty": "supply_empty", "ink-empty": "supply_empty",
    "marker-waste-full": "supply_empty", "developer-empty": "supply_empty",
}
#: reasons that are faults even as a "-report" (CUPS backends report an unreachable printer as offline-report)
FAULT_EVEN_AS_REPORT = {"offline"}
#: reasons that are never faults, whatever their suffix
BENIGN_REASONS = {"none", "other", "cups-waiting-for-job-completed", "moving-to-paused", "processing-to-stop-point",
                  "media-low", "toner-low", "marker-supply-low", "ink-low", "developer-low", "marker-waste-almost-full",
                  "cups-remote-pending", "cups-remote-pending-held", "cups-remote-processing"}

STATUS_ERRORS: dict[str, type[DeviceError]] = {
    "no_device": NoDevice, "printer_offline": PrinterOffline, "paper_out": PaperOut, "paper_jammed": PaperJam,
    "cover_open": CoverOpen, "supply_empty": SupplyEmpty, "hardware_error": HardwareError, "timeout": DeviceTimeout,
}

PRINTER_ATTRIBUTES = [
    "printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
    "marker-names", "marker-types", "marker-colors", "marker-levels", "marker-low-levels", "marker-high-levels",
    "media-supported", "media-source-supported", "sides-supported", "copies-supported", "queued-job-count",
]
#: what a status poll reads (the health check, every 15 s): pycups 2.0.4 never frees the answer of
#: getPrinterAttributes (OpenPrinting/pycups#44, fixed by #64, not released on PyPI), so the kiosk leaked the whole
#: answer — media lists included — at every poll; asking for these alone shrinks that to a few hundred bytes
STATUS_ATTRIBUTES = [
    "printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
    "marker-names", "marker-types", "marker-colors", "marker-levels", "marker-low-levels", "marker-high-levels",
    "queued-job-count",
]
JOB_ATTRIBUTES = ["job-id", "job-state", "job-state-reasons", "job-name", "job-impressions-completed",
                  "job-media-sheets-completed", "job-printer-state-message"]

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Licence/certificate printer on a CUPS queue (pycups)",
    "type": "object",
    "additionalProperties": False,
    "required": ["queue"],
    "properties": {
        "queue": {"type": "string", "pattern": "^[^/#\\s]{1,127}$", "description": "CUPS queue (printer) name"},
        "server": {"type": "string", "minLength": 1,
                   "description": "print server: host, host:port or the path of cupsd's local socket; default: "
                                  "the system's (CUPS_SERVER, client.conf, /run/cups/cups.sock)"},
        "job_timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 120.0,
                          "description": "how long a job may take from submission to completed"},
        "poll_interval_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "default": 0.2,
                            "description": "longest pause between job-state polls (the first are 50 ms apart)"},
        "fault_grace_s": {"type": "number", "minimum": 0, "default": 1.0,
                          "description": "how long a job may stand on a printer fault (paper out, jam, ...) "
                                         "before it fails"},
        "stale_fault_grace_s": {"type": "number", "minimum": 0, "default": 5.0,
                                "description": "how long a fault left over from an earlier job (the print server "
                                               "keeps it) is ignored while the printer reports its state anew"},
        "cancel_on_failure": {"type": "boolean", "default": True,
                              "description": "cancel a job that failed or timed out, so it never prints later"},
        "check_supported": {"type": "boolean", "default": True,
                            "description": "refuse options the printer does not list as supported"},
        "defaults": {
            "type": "object", "additionalProperties": False,
            "description": "options used when a job gives none",
            "properties": {
                "paper_size": {"type": "string", "minLength": 1},
                "tray": {"type": "string", "minLength": 1},
                "copies": {"type": "integer", "minimum": 1, "maximum": 99},
                "duplex": {"enum": sorted(DUPLEX)},
            },
        },
    },
}

DEFAULTS: dict[str, Any] = {k: v["default"] for k, v in SETTINGS_SCHEMA["properties"].items() if "default" in v}


def _as_list(value: Any) -> list[Any]:
    """pycups gives a one-value attribute as a scalar and a multi-value one as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def split_reason(reason: str) -> tuple[str, str]:
    """``media-empty-error`` → (``media-empty``, ``error``); no suffix → severity ``error`` (RFC 8011)."""
    for suffix in ("-error", "-warning", "-report"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)], suffix[1:]
    return reason, "error"


def fault_code(reasons: list[str]) -> str | None:
    """The error code of the first fault among ``printer-state-reasons``, or None."""
    found: list[str] = []
    for reason in reasons:
        keyword, severity = split_reason(reason)
        if keyword in BENIGN_REASONS or severity == "warning" or \
                (severity == "report" and keyword not in FAULT_EVEN_AS_REPORT):
            continue
        found.append(REASON_CODES.get(keyword, "hardware_error"))
    for code in ("printer_offline", "cover_open", "paper_jammed", "paper_out", "supply_empty", "hardware_error"):
        if code in found:
            return code
    return None


def paper_from_reasons(reasons: list[str]) -> PaperState:
    keywords = {split_reason(r)[0]: split_reason(r)[1] for r in reasons}
    if "media-jam" in keywords and keywords["media-jam"] == "error":
        return PaperState.JAMMED
    if any(k in keywords and keywords[k] == "error" for k in ("media-empty", "media-needed", "input-tray-missing")):
        return PaperState.OUT
    if "media-low" in keywords or "media-empty" in keywords:  # media-empty-warning/-report: nearly out
        return PaperState.LOW
    return PaperState.FULL


def error_for_status(status: DeviceStatus, *, device_job_id: int | None = None, job_id: str = "") -> DeviceError | None:
    """The error a job must fail with in this status, or None if the printer can print."""
    if status.error_code is None and status.device is DeviceState.ONLINE:
        return None
    code = status.error_code or "printer_offline"
    cls = STATUS_ERRORS.get(code, HardwareError)
    return job_error(cls, f"licence printer not ready: {code}" + (f" ({status.detail})" if status.detail else ""),
                     device_job_id=device_job_id, job_id=job_id)


def cups_server_args(server: str | None) -> dict[str, Any]:
    """``cups.Connection`` keyword arguments for a server setting: ``host:port``, a host, a socket path, or none (the
    client's default server)."""
    kwargs: dict[str, Any] = {}
    if server:
        host, port = server, None
        if not host.startswith("/") and host.count(":") == 1:
            host, _, port_text = host.partition(":")
            port = int(port_text)
        kwargs["host"] = host
        if port:
            kwargs["port"] = port
    return kwargs


class _LinkDown(Exception):
    """The print server cannot be reached."""


class CupsLicencePrinter(LicencePrinter):
    """A licence/certificate printer behind a CUPS queue. Settings: see :data:`SETTINGS_SCHEMA`."""

    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)  # validates against SETTINGS_SCHEMA (InvalidSettings, a ValueError)
        cfg = {**DEFAULTS, **settings}
        self.cfg = cfg
        self.queue: str = cfg["queue"]
        self.server: str | None = cfg.get("server")
        self.job_timeout_s = float(cfg["job_timeout_s"])
        self.poll_interval_s = float(cfg["poll_interval_s"])
        self.fault_grace_s = float(cfg["fault_grace_s"])
        self.stale_fault_grace_s = float(cfg["stale_fault_grace_s"])
        self._stale_reasons: dict[int, frozenset[str]] = {}   # device job id → faults already there at submission
        self.cancel_on_failure: bool = cfg["cancel_on_failure"]
        self.check_supported: bool = cfg["check_supported"]
        self.default_options = LicenceOptions.from_dict(cfg.get("defaults"))
        self._conn: Any = None
        self.jobs_completed = 0
        self.jobs_failed = 0
        self.pages_printed = 0

    # -------------------------------------------------------------------------------------------- description
    @property
    def address(self) -> str:
        return f"{self.server or 'default'}/{self.queue}"

    @property
    def counters(self) -> dict[str, int]:
        return {"jobs_completed": self.jobs_completed, "jobs_failed": self.jobs_failed,
                "pages_printed": self.pages_printed}

    # -------------------------------------------------------------------------------------------- connection
    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        self._conn = None

    def _connect(self) -> None:
        if _cups is None:
            raise NoDevice("pycups is not installed (pip install pycups; needs libcups2-dev to build)")
        try:
            self._conn = _cups.Connection(**cups_server_args(self.server))
        except RuntimeError as exc:
            self._conn = None
            raise NoDevice(f"print server {self.server or 'default'} not reachable: {exc}") from exc

    def _call(self, name: str, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """One IPP operation under the lock. A dropped connection is re-opened and the call repeated once —
        only for calls that may be repeated (``retry``): Print-Job never is, it could print the licence twice."""
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._connect()
                try:
                    return getattr(self._conn, name)(*args, **kwargs)
                except _cups.IPPError as exc:
                    status = exc.args[0] if exc.args else -1
                    if status not in LINK_STATUSES:
                        raise
                    error: Exception = exc
                except (_cups.HTTPError, RuntimeError) as exc:
                    error = exc
                self._conn = None
                if attempt == 2 or not retry:
                    raise NoDevice(f"print server {self.server or 'default'} not reachable: {error}") from error
        raise AssertionError("unreachable")

    # -------------------------------------------------------------------------------------------- status
    def _printer_attributes(self, attributes: list[str] = PRINTER_ATTRIBUTES) -> dict[str, Any]:
        try:
            return self._call("getPrinterAttributes", self.queue, requested_attributes=attributes)
        except _cups.IPPError as exc:
            if exc.args and exc.args[0] == IPP_NOT_FOUND:
                raise NoDevice(f"no print queue {self.queue!r} on {self.server or 'the print server'}") from exc
            raise HardwareError(f"print server refused the status request: {exc.args[-1] if exc.args else exc}") \
                from exc

    @staticmethod
    def markers(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Marker (toner/ink/ribbon) supplies: name, type, color, level (0–100; <0 unknown), low/high levels."""
        names = _as_list(attrs.get("marker-names"))
        columns = {key: _as_list(attrs.get(f"marker-{key}s")) for key in ("type", "color", "level", "low-level",
                                                                         "high-level")}
        out = []
        for i, name in enumerate(names):
            row: dict[str, Any] = {"name": name}
            for key, values in columns.items():
                row[key.replace("-", "_")] = values[i] if i < len(values) else None
            level, low = row["level"], row["low_level"]
            row["low"] = isinstance(level, int) and level >= 0 and isinstance(low, int) and level <= low
            out.append(row)
        return out

    def _status_from(self, attrs: Mapping[str, Any]) -> DeviceStatus:
        """Status from the queue's attributes. Fault reasons count only while a job is processing: cupsd keeps the
        last reasons a backend reported after the job ends (a cancelled job's ``media-empty-error`` stays until the
        next job runs), so on an idle queue they are the last known state, kept in ``extra["last_fault"]``."""
        reasons = [r for r in _as_list(attrs.get("printer-state-reasons")) if r and r != "none"]
        state = PRINTER_STATES.get(attrs.get("printer-state", 0), "unknown")
        message = attrs.get("printer-state-message") or ""
        markers = self.markers(attrs)
        extra: dict[str, Any] = {"queue": self.queue, "server": self.server or "default", "printer_state": state,
                                 "reasons": reasons, "markers": markers,
                                 "queued_jobs": attrs.get("queued-job-count", 0)}
        code = fault_code(reasons)
        paper = paper_from_reasons(reasons)
        if state != "processing" and code is not None:
            extra["last_fault"] = code                  # stale: the printer said so during the last job
            code = None
            paper = PaperState.UNKNOWN if paper in (PaperState.OUT, PaperState.JAMMED) else paper
        if state == "stopped" or not attrs.get("printer-is-accepting-jobs", True):
            code = "printer_offline"
            message = message or ("queue stopped" if state == "stopped" else "queue not accepting jobs")
        low_supplies = [m["name"] for m in markers if m["low"]]
        detail = message or ", ".join(reasons) or ("supply low: " + ", ".join(low_supplies) if low_supplies else "")
        device = {None: DeviceState.ONLINE, "paper_out": DeviceState.ONLINE, "printer_offline": DeviceState.OFFLINE,
                  "cover_open": DeviceState.OFFLINE}.get(code, DeviceState.HARDWARE_ERROR)
        return DeviceStatus(kind=self.KIND, device=device, paper=paper, error_code=code, detail=detail,
                            counters=self.counters, extra=extra)

    def _read_status(self, ignore: frozenset[str] = frozenset()) -> DeviceStatus:
        try:
            attrs = self._printer_attributes(STATUS_ATTRIBUTES)
            if ignore:
                attrs = {**attrs, "printer-state-reasons": [r for r in _as_list(attrs.get("printer-state-reasons"))
                                                            if r not in ignore]}
            return self._status_from(attrs)
        except NoDevice as exc:
            return DeviceStatus(kind=self.KIND, device=DeviceState.NO_DEVICE, paper=PaperState.UNKNOWN,
                                error_code="no_device", detail=str(exc), counters=self.counters,
                                extra={"queue": self.queue, "server": self.server or "default"})
        except HardwareError as exc:
            return DeviceStatus(kind=self.KIND, device=DeviceState.HARDWARE_ERROR, paper=PaperState.UNKNOWN,
                                error_code="hardware_error", detail=str(exc), counters=self.counters,
                                extra={"queue": self.queue, "server": self.server or "default"})

    def status(self) -> DeviceStatus:
        return self._read_status()

    # -------------------------------------------------------------------------------------------- jobs
    @staticmethod
    def job_name(job_id: str) -> str:
        return JOB_NAME_PREFIX + (job_id or "licence")

    def _check_options(self, options: LicenceOptions, attrs: Mapping[str, Any]) -> None:
        if not self.check_supported:
            return
        checks = [("media", options.media, "media-supported", "paper size"),
                  ("sides", options.sides, "sides-supported", "duplex")]
        if options.tray:
            checks.append(("media-source", options.tray, "media-source-supported", "tray"))
        for _, value, attr, what in checks:
            supported = _as_list(attrs.get(attr))
            if supported and value not in supported:
                raise Unsupported(f"{what} {value!r} not supported by {self.queue}; supported: {supported}")
        copies = attrs.get("copies-supported")
        if isinstance(copies, tuple) and len(copies) == 2 and not copies[0] <= options.copies <= copies[1]:
            raise Unsupported(f"{options.copies} copies not supported by {self.queue} (range {copies})")

    def submit(self, pdf_path: str | os.PathLike[str], options: LicenceOptions | None = None, *,
               job_id: str = "", before_send: Callable[[], None] | None = None) -> int:
        options = options or self.default_options
        check_pdf(pdf_path)
        try:
            if not self.is_open:
                self.open()
            attrs = self._printer_attributes()
        except DeviceError as exc:
            self.jobs_failed += 1
            raise job_error(type(exc), str(exc), job_id=job_id) from exc
        error = error_for_status(self._status_from(attrs), job_id=job_id)
        if error is not None:
            self.jobs_failed += 1
            raise error
        self._check_options(options, attrs)
        stale = frozenset(r for r in _as_list(attrs.get("printer-state-reasons")) if fault_code([r]))
        if before_send is not None:
            before_send()
        try:
            device_job_id = int(self._call("printFile", self.queue, os.fspath(pdf_path), self.job_name(job_id),
                                           options.ipp_options(), retry=False))
            if stale:
                self._stale_reasons[device_job_id] = stale
            return device_job_id
        except _cups.IPPError as exc:
            self.jobs_failed += 1
            status, message = (exc.args + (None, ""))[:2]
            cls: type[DeviceError] = {IPP_NOT_FOUND: NoDevice, IPP_NOT_ACCEPTING: PrinterOffline,
                                      IPP_PRINTER_BUSY: DeviceBusy}.get(status, HardwareError)
            raise job_error(cls, f"print server refused the job: {message}", job_id=job_id) from exc
        except NoDevice as exc:
            self.jobs_failed += 1
            raise job_error(NoDevice, str(exc), job_id=job_id) from exc

    def _job_attributes(self, device_job_id: int) -> dict[str, Any] | None:
        try:
            return self._call("getJobAttributes", device_job_id, requested_attributes=JOB_ATTRIBUTES)
        except _cups.IPPError as exc:
            if exc.args and exc.args[0] == IPP_NOT_FOUND:
                return None
            raise HardwareError(f"job {device_job_id}: {exc.args[-1] if exc.args else exc}") from exc

    @staticmethod
    def _info(device_job_id: int, attrs: Mapping[str, Any]) -> JobInfo:
        pages = attrs.get("job-impressions-completed")
        return JobInfo(device_job_id=device_job_id, state=JOB_STATES.get(attrs.get("job-state", 0), "unknown"),
                       reasons=tuple(_as_list(attrs.get("job-state-reasons"))), name=attrs.get("job-name", ""),
                       pages=pages if isinstance(pages, int) else None)

    def job_info(self, device_job_id: int) -> JobInfo | None:
        attrs = self._job_attributes(device_job_id)
        return None if attrs is None else self._info(device_job_id, attrs)

    def find_job(self, job_id: str) -> JobInfo | None:
        name = self.job_name(job_id)
        jobs = self._call("getJobs", which_jobs="all", requested_attributes=JOB_ATTRIBUTES)
        matching = [self._info(jid, attrs) for jid, attrs in jobs.items() if attrs.get("job-name") == name]
        return max(matching, key=lambda info: info.device_job_id) if matching else None

    def cancel(self, device_job_id: int) -> bool:
        try:
            self._call("cancelJob", device_job_id)
        except _cups.IPPError as exc:
            if exc.args and exc.args[0] in (IPP_NOT_POSSIBLE, IPP_NOT_FOUND):
                return False        # already finished (or gone): nothing to cancel
            raise HardwareError(f"job {device_job_id} could not be cancelled: {exc.args[-1] if exc.args else exc}") \
                from exc
        return True

    def follow(self, device_job_id: int, *, job_id: str = "", timeout_s: float | None = None) -> JobResult:
        try:
            return self._follow(device_job_id, job_id, timeout_s)
        except DeviceError as exc:
            if getattr(exc, "device_job_id", None) is None:   # e.g. the print server went away while we waited
                self.jobs_failed += 1
                raise job_error(type(exc), str(exc), device_job_id=device_job_id, job_id=job_id) from exc
            raise

    def _follow(self, device_job_id: int, job_id: str, timeout_s: float | None) -> JobResult:
        stale = self._stale_reasons.pop(device_job_id, frozenset())
        started = time.monotonic()
        deadline = started + (timeout_s or self.job_timeout_s)
        interval = 0.05
        fault_since: float | None = None
        while True:
            attrs = self._job_attributes(device_job_id)
            if attrs is None:
                self.jobs_failed += 1
                raise job_error(JobAborted, f"job {device_job_id} is unknown to the print server",
                                device_job_id=device_job_id, job_id=job_id)
            state = JOB_STATES.get(attrs.get("job-state", 0), "unknown")
            if state in ("completed", "canceled", "aborted"):
                return self._finished(device_job_id, attrs, job_id, started)
            printer = self._read_status(ignore=stale if time.monotonic() - started < self.stale_fault_grace_s
                                        else frozenset())
            error = error_for_status(printer, device_job_id=device_job_id, job_id=job_id)
            if error is None and state == "held":
                error = job_error(DeviceBusy, f"job {device_job_id} is held on the print server",
                                  device_job_id=device_job_id, job_id=job_id)
            now = time.monotonic()
            if error is not None:
                fault_since = fault_since if fault_since is not None else now
                if now - fault_since >= self.fault_grace_s:
                    return self._fail(device_job_id, job_id, started, error)
            else:
                fault_since = None
            if now >= deadline:
                return self._fail(device_job_id, job_id, started, job_error(
                    DeviceTimeout, f"job {device_job_id} not completed within {timeout_s or self.job_timeout_s} s "
                                   f"(state {state})", device_job_id=device_job_id, job_id=job_id))
            time.sleep(min(interval, max(0.0, deadline - now)))   # a poll of the print server, bounded by the deadline
            interval = min(self.poll_interval_s, interval * 2)

    def _finished(self, device_job_id: int, attrs: Mapping[str, Any], job_id: str, started: float) -> JobResult:
        info = self._info(device_job_id, attrs)
        if info.state == "completed":
            sheets = attrs.get("job-media-sheets-completed")
            self.jobs_completed += 1
            self.pages_printed += info.pages or 0
            return JobResult(job_id=job_id, device_job_id=device_job_id, state="completed", pages=info.pages,
                             sheets=sheets if isinstance(sheets, int) else None,
                             duration_s=time.monotonic() - started, status=self._read_status())
        self.jobs_failed += 1
        message = attrs.get("job-printer-state-message") or ", ".join(info.reasons)
        if info.state == "canceled":
            raise job_error(JobCanceled, f"job {device_job_id} was cancelled on the print server ({message})",
                            device_job_id=device_job_id, job_id=job_id)
        raise job_error(JobAborted, f"job {device_job_id} aborted by the print server ({message})",
                        device_job_id=device_job_id, job_id=job_id)

    def _fail(self, device_job_id: int, job_id: str, started: float, error: DeviceError) -> JobResult:
        """Cancel the job (unless configured not to) and raise ``error`` — unless the job completed meanwhile."""
        if self.cancel_on_failure:
            try:
                self.cancel(device_job_id)
            except DeviceError:                          # the error below still carries the job id: the journal
                self.jobs_failed += 1                    # keeps the job open, and recovery asks the server again
                raise error from None
            deadline = time.monotonic() + 5.0
            while True:
                attrs = self._job_attributes(device_job_id)
                state = JOB_STATES.get((attrs or {}).get("job-state", 0), "unknown")
                if attrs is not None and state == "completed":
                    return self._finished(device_job_id, attrs, job_id, started)
                if attrs is None or state in ("canceled", "aborted") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)   # the server is stopping the job's processes
        self.jobs_failed += 1
        raise error


__all__ = ["CupsLicencePrinter", "SETTINGS_SCHEMA", "JOB_NAME_PREFIX", "fault_code", "paper_from_reasons",
           "split_reason", "error_for_status"]
