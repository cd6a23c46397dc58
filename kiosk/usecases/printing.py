"""Printing: receipts from templates on the receipt printer and licences/certificates on the licence printer, every job
through the print journal (:mod:`kiosk.print_journal`) so none is lost or printed twice without a record.

:class:`PrintService` is what the kiosk core uses. Its calls block (device I/O): run them on a worker.

* :meth:`PrintService.print_receipt` — render a template, record the job (``queued``), mark it ``sent`` just before
  the first byte (after the printer's status check passed), then ``done`` or ``failed``. A job refused before its first
  byte (paper out, cover open, offline) is closed as ``not_printed``: nothing came out and the citizen was told.
* :meth:`PrintService.print_licence` — the same for a PDF on the licence printer; the print server's job id is
  recorded as soon as it is known, so after a crash :meth:`PrintService.recover` asks the print server what became of
  the job instead of guessing.
* :meth:`PrintService.unfinished` / :meth:`PrintService.reprint` / :meth:`PrintService.dismiss` — what did not
  complete; reprint a receipt (marked 补打 on the paper when the first one may have partly printed) or, with a staff
  member's authorisation, a licence (recorded as a reprint and counted).
* Paper near-end: every result's paper state is tracked per printer; a change is reported to listeners as
  ``("paper", {"device": kind, "state": "low", "previous": "full"})``, and licence supplies that run low as
  ``("supply_low", {...})``. Journal changes are reported as ``("print_job", entry.to_dict())``.

``print_service_notice`` / ``print_progress`` (module functions, no journal) are kept for the current kiosk core;
the service has methods of the same names that go through the journal.
"""
from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from drivers.base import PaperState
from drivers.errors import DeviceError, PaperOut
from drivers.licence_printer.base import JobResult, LicenceOptions, LicencePrinter
from drivers.receipt_printer.base import PrintResult, ReceiptPrinter
from drivers.receipt_printer.document import Receipt, Text
from kiosk import receipts
from kiosk.errors import DeviceUnavailable, KioskError
from kiosk.platform_client import Application, ServiceDetail
from kiosk.print_journal import JournalEntry, PrintJournal

log = logging.getLogger(__name__)

EventListener = Callable[[str, dict[str, Any]], None]
REPRINT_MARK = "【补打】"

#: non-personal summaries recorded in the journal per template
SUMMARIES = {"service_notice": "一次性告知单", "progress": "办件进度回执", "queue_ticket": "排队取号凭条",
             "payment_voucher": "缴费凭证", "fault_slip": "故障告知单", "transaction_receipt": "业务受理回执",
             "supplement_receipt": "补正材料回执"}


def new_job_id() -> str:
    return "PJ" + datetime.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


def _common(kiosk_id: str, kiosk_name: str) -> dict[str, Any]:
    return {"kiosk_id": kiosk_id, "kiosk_name": kiosk_name, "printed_at": datetime.now().strftime("%Y-%m-%d %H:%M")}


def progress_view(application: Application, status_text: Mapping[str, str], verify_url: str = "") -> dict[str, Any]:
    """What the progress template shows of an application (masked applicant only); ``verify_url``: the public page
    its QR opens (else the QR holds the number)."""
    return {"verify_url": verify_url,
        "number": application.number, "service_name": application.service_name,
        "applicant_masked": application.applicant_masked, "department": application.department,
        "submitted_at": application.submitted_at[:16].replace("T", " "),
        "status_text": status_text.get(application.status, application.status_text),
        "promised_date": application.promised_date,
        "timeline": [{"at": s.at[:16].replace("T", " "), "status_text": status_text.get(s.status, s.status),
                      "department": s.department, "note": s.note} for s in application.timeline],
    }


# --- errors ---------------------------------------------------------------------------------------------------------

class ReprintRefused(KioskError):
    """The job cannot be reprinted (already printed, unknown, or its document is not at hand)."""

    code = "reprint_refused"
    translation_key = "error.generic"


class ReprintNeedsAuthorisation(ReprintRefused):
    """A licence that may have printed is reprinted only with a staff member's authorisation (recorded, counted)."""

    code = "reprint_needs_authorisation"


# --- the service ----------------------------------------------------------------------------------------------------

def _storage_guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """A print is a transaction: refused with StorageFull while the data disk is below the threshold (the journal
    records every job before its first byte), and a disk-full failure of a journal write becomes StorageFull (each
    journal write is one SQLite transaction: nothing half-recorded)."""
    @functools.wraps(method)
    def guarded(self: "PrintService", *args: Any, **kwargs: Any) -> Any:
        storage = self.storage
        if storage is None:
            return method(self, *args, **kwargs)
        storage.require("print")
        with storage.writing("print journal"):
            return method(self, *args, **kwargs)
    return guarded


class PrintService:
    """Printing with the journal. Printers are given directly or looked up by kind through ``devices`` (e.g. the
    device manager's ``get``), at each call, so a printer that comes back later is used."""

    def __init__(self, journal: PrintJournal, *, receipt_printer: ReceiptPrinter | None = None,
                 licence_printer: LicencePrinter | None = None,
                 devices: Callable[[str], Any] | None = None, kiosk_id: str = "", kiosk_name: str = "",
                 staff_hotline: str = "12345", listener: EventListener | None = None) -> None:
        self.journal = journal
        self._receipt_printer = receipt_printer
        self._licence_printer = licence_printer
        self._devices = devices
        self.kiosk_id = kiosk_id
        self.kiosk_name = kiosk_name
        self.staff_hotline = staff_hotline
        self._listeners: list[EventListener] = [listener] if listener else []
        self._paper: dict[str, PaperState] = {}
        self._low_supplies: dict[str, frozenset[str]] = {}
        self._state_lock = threading.Lock()
        #: the kiosk's storage guard (kiosk/storage.py), set by the core; None: no free-space check
        self.storage: Any = None
        #: the kiosk's public URLs (kiosk/public_urls.py), set by the core; None: QR codes hold bare numbers
        self.urls: Any = None
        journal.subscribe(lambda entry: self._emit("print_job", **entry.to_dict()))

    # ------------------------------------------------------------------------------------------ events
    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _emit(self, name: str, **payload: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, payload)
            except Exception:  # a listener's failure must not turn a printed job into an error
                log.exception("print event listener failed on %s", name)

    @property
    def paper(self) -> dict[str, PaperState]:
        """Last known paper state per printer kind (from job results and errors)."""
        with self._state_lock:
            return dict(self._paper)

    def note_paper(self, device: str, state: PaperState | None) -> None:
        """Record a printer's paper state; a change is reported as a ``paper`` event (near-end before it runs out)."""
        if state is None or state is PaperState.UNKNOWN:
            return
        with self._state_lock:
            previous = self._paper.get(device)
            self._paper[device] = state
        if previous is not state:
            self._emit("paper", device=device, state=state.value, previous=previous.value if previous else None)

    def _note_supplies(self, device: str, markers: list[Mapping[str, Any]]) -> None:
        low = frozenset(m["name"] for m in markers if m.get("low"))
        with self._state_lock:
            previous = self._low_supplies.get(device, frozenset())
            self._low_supplies[device] = low
        if low - previous:
            self._emit("supply_low", device=device, supplies=sorted(low),
                       levels={m["name"]: m.get("level") for m in markers})

    # ------------------------------------------------------------------------------------------ devices
    def _device(self, kind: str, given: Any) -> Any:
        device = given if given is not None else (self._devices(kind) if self._devices else None)
        if device is None:
            raise DeviceUnavailable(f"no {kind.replace('_', ' ')} configured")
        return device

    def receipt_printer(self) -> ReceiptPrinter:
        return self._device("receipt_printer", self._receipt_printer)

    def licence_printer(self) -> LicencePrinter:
        return self._device("licence_printer", self._licence_printer)

    # ------------------------------------------------------------------------------------------ receipts
    def render_receipt(self, template: str, job_id: str = "", **context: Any) -> Receipt:
        ctx = {**_common(self.kiosk_id, self.kiosk_name), "staff_hotline": self.staff_hotline, **context}
        return receipts.render(template, job_id=job_id, **ctx)

    @_storage_guarded
    def print_receipt(self, template: str, *, summary: str = "", **context: Any) -> PrintResult:
        """Render ``template`` with ``context`` and print it through the journal."""
        printer = self.receipt_printer()
        job_id = new_job_id()
        receipt = self.render_receipt(template, job_id=job_id, **context)
        self.journal.create("receipt", template, job_id, summary=summary or SUMMARIES.get(template, template),
                            payload=receipt.to_dict())
        return self._send_receipt(printer, job_id, receipt)

    def _send_receipt(self, printer: ReceiptPrinter, job_id: str, receipt: Receipt) -> PrintResult:
        try:
            result = printer.print_receipt(receipt, before_send=lambda: self.journal.mark_sent(job_id))
        except DeviceError as exc:
            bytes_sent = getattr(exc, "bytes_sent", None)
            nothing_sent = self.journal.get(job_id).state == "queued" or bytes_sent == 0
            if isinstance(exc, PaperOut):
                self.note_paper("receipt_printer", PaperState.OUT)
            self.journal.mark_failed(job_id, exc.code, detail=str(exc), bytes_sent=bytes_sent,
                                     close="not_printed" if nothing_sent else None)
            raise
        except ValueError as exc:                       # the printer cannot render it: nothing was sent
            self.journal.mark_failed(job_id, "invalid_data", detail=str(exc), bytes_sent=0, close="not_printed")
            raise
        try:
            self.journal.mark_done(job_id, bytes_sent=result.bytes_sent, paper=result.paper.value)
        except Exception:  # printed: the citizen has the receipt; the job stays "sent" and shows up as unfinished
            log.exception("print job %s printed but could not be recorded as done", job_id)
        self.note_paper("receipt_printer", result.paper)
        return result

    def print_service_notice(self, detail: ServiceDetail, guide_url: str) -> PrintResult:
        return self.print_receipt("service_notice", summary=f"一次性告知单 {detail.summary.code}", service=detail,
                                  guide_url=guide_url)

    def print_progress(self, application: Application, status_text: Mapping[str, str]) -> PrintResult:
        url = self.urls.application(application.number) if self.urls is not None else ""
        return self.print_receipt("progress", application=progress_view(application, status_text, url))

    def print_fault_slip(self, what: str, code: str, failed_job_id: str = "",
                         advice: str = "本次操作未能完成，请勿重复操作。") -> PrintResult:
        """A slip for the citizen to take to staff: what failed, the error code and the journal's job id."""
        fault = {"what": what, "code": code, "job_id": failed_job_id, "advice": advice,
                 "occurred_at": datetime.now().strftime("%Y-%m-%d %H:%M")}
        return self.print_receipt("fault_slip", summary=f"故障告知单 {code}", fault=fault)

    # ------------------------------------------------------------------------------------------ licences
    @_storage_guarded
    def print_licence(self, pdf_path: str | os.PathLike[str], options: LicenceOptions | None = None, *,
                      document_type: str = "licence", summary: str = "", document_ref: str = "") -> JobResult:
        """Print a PDF licence/certificate. ``document_type`` names it in the journal (e.g. ``business_licence``);
        ``document_ref`` is how the kiosk can fetch the document again (the platform's id), never the document."""
        printer = self.licence_printer()
        options = options or getattr(printer, "default_options", None) or LicenceOptions()
        job_id = new_job_id()
        self.journal.create("licence", document_type, job_id, summary=summary or document_type,
                            payload={"options": options.to_dict(), "document_ref": document_ref})
        return self._send_licence(printer, job_id, pdf_path, options)

    @_storage_guarded
    def print_licence_again(self, original_job_id: str, pdf_path: str | os.PathLike[str], *,
                            authorised_by: str | None = None) -> JobResult:
        """Another copy of a licence that printed completely (e.g. the citizen asks for the same certificate again):
        a new job recorded as a reprint of ``original_job_id`` — marked and counted (:meth:`reprint_count`).
        An unfinished job goes through :meth:`reprint` instead."""
        try:
            original = self.journal.get(original_job_id)
        except KeyError:
            raise ReprintRefused(f"no print job {original_job_id}") from None
        if original.kind != "licence" or original.state != "done":
            raise ReprintRefused(f"print job {original_job_id} is not a completed licence")
        printer = self.licence_printer()
        payload = original.payload or {}   # (a completed job's payload may have been dropped already)
        options = LicenceOptions.from_dict(payload["options"]) if payload.get("options") else \
            getattr(printer, "default_options", None) or LicenceOptions()
        job_id = new_job_id()
        self.journal.create("licence", original.template, job_id, summary=original.summary,
                            payload={"options": options.to_dict(), "document_ref": payload.get("document_ref", "")},
                            reprint_of=original_job_id, is_reprint=True, authorised_by=authorised_by)
        return self._send_licence(printer, job_id, pdf_path, options)

    def _send_licence(self, printer: LicencePrinter, job_id: str, pdf_path: str | os.PathLike[str],
                      options: LicenceOptions) -> JobResult:
        try:
            result = printer.print_pdf(pdf_path, options, job_id=job_id,
                                       before_send=lambda: self.journal.mark_sent(job_id),
                                       on_submitted=lambda device_job: self.journal.set_device_job(job_id, device_job))
        except (DeviceError, ValueError) as exc:
            self._licence_failed(printer, job_id, exc)
            raise
        try:
            self.journal.mark_done(job_id, pages=result.pages, paper=self._status_paper(result))
        except Exception:
            log.exception("licence job %s printed but could not be recorded as done", job_id)
        if result.status is not None:
            self.note_paper("licence_printer", result.status.paper)
            self._note_supplies("licence_printer", list(result.status.extra.get("markers", [])))
        return result

    @staticmethod
    def _status_paper(result: JobResult) -> str | None:
        return result.status.paper.value if result.status is not None and result.status.paper else None

    def _licence_failed(self, printer: LicencePrinter, job_id: str, exc: Exception) -> None:
        code = getattr(exc, "code", "invalid_data")
        entry = self.journal.get(job_id)
        device_job = getattr(exc, "device_job_id", None)
        if isinstance(exc, PaperOut):
            self.note_paper("licence_printer", PaperState.OUT)
        if entry.state == "queued":                    # refused before anything was sent
            self.journal.mark_failed(job_id, code, detail=str(exc), close="not_printed")
            return
        if device_job is None and entry.device_job is None:
            # submission failed after the journal said "sent": did the print server take it after all?
            try:
                found = printer.find_job(job_id)
            except DeviceError:
                found = None
            if found is None:
                self.journal.mark_failed(job_id, code, detail=str(exc), close="not_printed")
                return
            device_job = found.device_job_id
        self.journal.mark_failed(job_id, code, detail=str(exc), device_job=device_job)

    # ------------------------------------------------------------------------------------------ after a crash
    def unfinished(self, kind: str | None = None) -> list[JournalEntry]:
        """Jobs that did not complete and are not settled, oldest first (receipts: offer a reprint; licences:
        hand to staff)."""
        return self.journal.pending(kind)

    def recover(self) -> list[JournalEntry]:
        """At start-up: ask the print server what became of licence jobs the journal left open (completed →
        done; never submitted → closed as not printed; cancelled/aborted → failed, for staff), then return
        :meth:`unfinished`. Receipt printers keep no job history, so open receipts are left as they are."""
        for entry in self.journal.pending("licence"):
            try:
                self._reconcile_licence(entry)
            except (DeviceError, DeviceUnavailable) as exc:
                log.warning("licence job %s not reconciled: %s", entry.id, getattr(exc, "code", exc))
        return self.unfinished()

    def _reconcile_licence(self, entry: JournalEntry) -> JournalEntry:
        if entry.state == "queued":
            return self.journal.mark_failed(entry.id, "not_sent", detail="the kiosk stopped before sending",
                                            close="not_printed")
        printer = self.licence_printer()
        info = printer.job_info(int(entry.device_job)) if entry.device_job else printer.find_job(entry.id)
        if info is None:
            if entry.device_job is None and entry.state == "sent":
                return self.journal.mark_failed(entry.id, "not_submitted",
                                                detail="the print server has no job for it", close="not_printed")
            return entry                                # the server forgot the job: staff decide (unfinished)
        if entry.device_job is None:
            entry = self.journal.set_device_job(entry.id, info.device_job_id)
        if info.state == "completed":
            return self.journal.mark_done(entry.id, pages=info.pages, detail="completed (found after restart)")
        if info.state in ("canceled", "aborted") and entry.state == "sent":
            return self.journal.mark_failed(entry.id, f"job_{info.state}", detail=", ".join(info.reasons))
        return entry                                    # still pending/processing, or already failed: leave it

    @_storage_guarded
    def reprint(self, job_id: str, *, pdf_path: str | os.PathLike[str] | None = None,
                authorised_by: str | None = None) -> PrintResult | JobResult:
        """Print an unfinished job again as a new job with ``reprint_of`` = ``job_id`` (the original is closed).

        Receipts: from the blocks the journal kept; marked 【补打】 when the first may have partly printed.
        Licences: ``pdf_path`` is the document fetched again; when the first may have printed, ``authorised_by``
        (a staff id) is required and the job is recorded as a reprint and counted."""
        try:
            entry = self.journal.get(job_id)
        except KeyError:
            raise ReprintRefused(f"no print job {job_id}") from None
        if entry.kind == "licence" and entry.state != "done" and entry.closed is None:
            try:
                entry = self._reconcile_licence(entry)
            except (DeviceError, DeviceUnavailable):
                pass                                    # server unreachable: decide on what the journal says
        if entry.state == "done":
            raise ReprintRefused(f"print job {job_id} completed; it is not reprinted")
        if entry.closed is not None and not entry.closed == "not_printed":
            raise ReprintRefused(f"print job {job_id} is settled ({entry.closed})")
        marked = entry.may_have_printed
        new_id = new_job_id()
        if entry.kind == "receipt":
            if not entry.payload:
                raise ReprintRefused(f"print job {job_id} has nothing kept to reprint")
            printer = self.receipt_printer()
            original = Receipt.from_dict(entry.payload)
            blocks = ([Text(REPRINT_MARK, bold=True, align="center"), Text(f"原凭条：{job_id}", align="center")]
                      if marked else []) + list(original.blocks)
            receipt = Receipt(blocks=blocks, job_id=new_id, title=original.title)
            self.journal.create("receipt", entry.template, new_id, summary=entry.summary, payload=receipt.to_dict(),
                                reprint_of=job_id, is_reprint=marked)
            return self._send_receipt(printer, new_id, receipt)
        if marked and not authorised_by:
            raise ReprintNeedsAuthorisation(f"licence job {job_id} may have printed: a staff member must authorise")
        if pdf_path is None:
            raise ReprintRefused(f"licence job {job_id}: the document must be fetched again to reprint it")
        printer = self.licence_printer()
        options = LicenceOptions.from_dict((entry.payload or {}).get("options") or {})
        self.journal.create("licence", entry.template, new_id, summary=entry.summary,
                            payload={"options": options.to_dict(),
                                     "document_ref": (entry.payload or {}).get("document_ref", "")},
                            reprint_of=job_id, is_reprint=marked, authorised_by=authorised_by if marked else None)
        return self._send_licence(printer, new_id, pdf_path, options)

    def dismiss(self, job_id: str, reason: str = "dismissed", by: str | None = None) -> JournalEntry:
        """Staff settle an unfinished job without printing it (e.g. the citizen left; licence handed over by hand)."""
        return self.journal.close_job(job_id, f"{reason}:{by}" if by else reason)

    def reprint_count(self, job_id: str) -> int:
        return self.journal.reprint_count(job_id)


# --- the staff desk: unfinished jobs for staff, behind the maintenance PIN ------------------------------------------

PIN_HASH_SCHEME = "pbkdf2_sha256"
PIN_ITERATIONS = 200_000
#: wrong PINs in a row before the desk refuses to check PINs for :data:`PIN_LOCKOUT_S`
PIN_ATTEMPTS = 5
PIN_LOCKOUT_S = 300.0
#: a queued/sent job younger than this may still be printing: not offered to staff yet
IN_FLIGHT_S = 120.0


def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """The profile's ``maintenance_pin_hash`` for ``pin``: ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``
    (``python -c 'from kiosk.usecases.printing import hash_pin; print(hash_pin("…"))'``)."""
    import hashlib

    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"{PIN_HASH_SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, pin_hash: str) -> bool:
    """Whether ``pin`` matches ``pin_hash`` (constant-time); False for an empty or malformed hash (no PIN set: the
    staff desk stays locked rather than open)."""
    import hashlib
    import hmac

    try:
        scheme, iterations, salt, expected = pin_hash.split("$")
        if scheme != PIN_HASH_SCHEME or not pin:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


class StaffLocked(KioskError):
    """The staff desk needs the maintenance PIN first (or is refusing PINs for a while after wrong ones)."""

    code = "staff_locked"
    translation_key = "staff.error.locked"


class StaffActionRefused(KioskError):
    """The action does not apply to this job (e.g. a licence is never reprinted from the desk)."""

    code = "staff_action_refused"
    translation_key = "staff.error.refused"


@dataclass(frozen=True)
class StaffJob:
    """One unfinished job as staff see it: what, when, why, how often reprinted — never personal data (the journal
    keeps a non-personal summary only)."""

    id: str
    kind: str
    summary: str
    state: str
    reason: str | None
    created_at: float
    reprint_count: int
    may_have_printed: bool

    @property
    def actions(self) -> tuple[str, ...]:
        """Receipts: reprint or dismiss; licences: hand over / mark handled (a licence is reprinted only with the
        document fetched again, through :meth:`PrintService.reprint`)."""
        return ("reprint", "dismiss") if self.kind == "receipt" else ("handed_over", "handled")


class StaffDesk:
    """Unfinished print jobs for staff, behind the profile's maintenance PIN; every action audited.

    ``audit(event, **fields)`` records an entry (the kiosk's audit journal); blocking calls (reprint): on a worker."""

    def __init__(self, service: PrintService, pin_hash: str, audit: Callable[..., None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.service = service
        self._pin_hash = pin_hash
        self._audit = audit or (lambda event, **fields: None)
        self._clock = clock or time.monotonic
        self._unlocked = False
        self._failures = 0
        self._locked_until = 0.0
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self._pin_hash.startswith(PIN_HASH_SCHEME + "$")

    @property
    def unlocked(self) -> bool:
        return self._unlocked

    def unlock(self, pin: str) -> bool:
        """Check the PIN (never stored, logged or audited). After :data:`PIN_ATTEMPTS` wrong ones in a row, PINs are
        refused for :data:`PIN_LOCKOUT_S` (:class:`StaffLocked`)."""
        with self._lock:
            now = self._clock()
            if now < self._locked_until:
                self._audit("staff_unlock", result="locked_out")
                raise StaffLocked("too many wrong PINs; try again later")
            ok = self.configured and check_pin(pin, self._pin_hash)
            if ok:
                self._failures, self._unlocked = 0, True
            else:
                self._failures += 1
                if self._failures >= PIN_ATTEMPTS:
                    self._failures, self._locked_until = 0, now + PIN_LOCKOUT_S
            self._audit("staff_unlock", result="ok" if ok else "wrong_pin")
            return ok

    def open_for_technician(self) -> None:
        """Unlocked by maintenance mode (a technician's card + PIN checked by the platform: kiosk/maintenance.py)."""
        with self._lock:
            self._unlocked = True
        self._audit("staff_unlock", result="technician")

    def lock(self) -> None:
        if self._unlocked:
            self._unlocked = False
            self._audit("staff_lock")

    def _require(self) -> None:
        if not self._unlocked:
            raise StaffLocked("enter the maintenance PIN first")

    def jobs(self) -> list[StaffJob]:
        """Open jobs (unfinished or failed, not settled), oldest first."""
        self._require()
        return [StaffJob(id=e.id, kind=e.kind, summary=e.summary, state=e.state, reason=e.reason,
                         created_at=e.created_at, reprint_count=self.service.reprint_count(e.id),
                         may_have_printed=e.may_have_printed)
                for e in self._open()]

    def _open(self) -> list[JournalEntry]:
        import time

        now = time.time()   # the journal's stamps are wall-clock times (they survive restarts)
        # not one printing right now: failed, or last changed more than IN_FLIGHT_S ago — or "in the future": the
        # wall clock was stepped back (NTP) since, so its age is unknown and it is not hidden from staff for hours
        return [e for e in self.service.unfinished()
                if e.state == "failed" or not 0 <= now - e.updated_at <= IN_FLIGHT_S]

    def count(self) -> int:
        """How many jobs wait for staff (no PIN needed: a number only, for telemetry and a hint on screens)."""
        return len(self._open())

    def _job(self, job_id: str) -> StaffJob:
        for job in self.jobs():
            if job.id == job_id:
                return job
        raise StaffActionRefused(f"print job {job_id} is not open")

    def reprint(self, job_id: str) -> PrintResult:
        """Reprint an unfinished receipt (marked 补打 when the first may have partly printed)."""
        job = self._job(job_id)
        if job.kind != "receipt":
            raise StaffActionRefused("licences are handed over or marked handled, not reprinted here")
        try:
            result = self.service.reprint(job_id)
        except Exception as exc:
            self._audit("staff_reprint", job=job_id, result=getattr(exc, "code", "failed"))
            raise
        self._audit("staff_reprint", job=job_id, new_job=result.job_id, result="printed")
        return result

    def settle(self, job_id: str, how: str) -> JournalEntry:
        """Close an open job without printing: ``dismiss`` (a receipt nobody waits for), ``handed_over`` (a licence
        given to the citizen by hand) or ``handled`` (staff dealt with it otherwise)."""
        job = self._job(job_id)
        if how not in job.actions or how == "reprint":
            raise StaffActionRefused(f"{how!r} does not apply to a {job.kind}")
        entry = self.service.dismiss(job_id, reason="dismissed" if how == "dismiss" else how, by="staff")
        self._audit("staff_settled", job=job_id, kind=job.kind, how=how)
        return entry
