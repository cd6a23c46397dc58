"""打印证明: proofs on demand (social-insurance payment record, medical-insurance participation, housing-fund deposit
record, real-estate registration record / 无房证明, household record), sealed by the issuing department on the platform.

    proof types (with a summary) → period (periodic types) → issue (Idempotency-Key per choice) → the PDF fetched into
    the session's private temp folder, its SHA-256 checked → first page rendered on screen (pdftoppm) → copies →
    printed on the licence printer through the print journal; another copy of the same proof in the session is a new
    job recorded as a counted reprint (as for e-certificates); a job that may have printed goes to staff

:class:`ProofsFlow` is ``core.proofs``. Its state lives in the session scratch (wiped, with the temp folder, at session
end). The blocking steps are ``*_now`` methods (tests drive them without Kivy); the others run them on workers.
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.licence_printer.base import LicenceOptions
from kiosk.errors import KioskError, PlatformUnavailable
from kiosk.platform_proofs import IssuedProof, ProofType, month_list, months_back
from kiosk.session import RatingTarget
from kiosk.usecases.booking import Callback, CoreFlow, rejection_text
from kiosk.usecases.certificates import NoLicencePrinter
from kiosk.usecases.printing import ReprintNeedsAuthorisation

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)

#: period lengths (months) offered besides the platform's default, where the record is long enough
PERIOD_CHOICES = (6, 12, 24, 36, 60)
MAX_COPIES = 5
PREVIEW_WIDTH_PX = 1400


class PreviewUnavailable(KioskError):
    """The first page could not be rendered for the screen (the proof can still be printed)."""

    code = "preview_unavailable"
    translation_key = "proofs.error.preview"


class DocumentMismatch(PlatformUnavailable):
    """The PDF fetched is not the document the platform issued (its SHA-256 differs): never printed."""

    code = "document_mismatch"


@dataclass(frozen=True)
class Period:
    months: int
    period_from: str
    period_to: str
    default: bool = False


@dataclass(frozen=True)
class ProofReady:
    """An issued proof on the kiosk, ready to preview and print."""

    proof: IssuedProof
    pdf_path: Path
    preview_path: Path | None
    pages: int


@dataclass(frozen=True)
class ProofPrinted:
    code: str
    job_id: str
    copies: int
    pages: int | None
    is_reprint: bool
    reprint_count: int


@dataclass
class ProofsState:
    types: list[ProofType] = field(default_factory=list)
    chosen: ProofType | None = None
    period: Period | None = None
    ready: ProofReady | None = None
    copies: int = 1
    printed: ProofPrinted | None = None
    jobs: dict[str, str] = field(default_factory=dict)   # proof code → journal id of its first print


def periods(proof_type: ProofType) -> list[Period]:
    """The period choices of a periodic proof: the platform's default first, then the last N months that fit the
    record and the platform's maximum; none for a proof without periods."""
    if not proof_type.periodic or not proof_type.latest_month:
        return []
    last = proof_type.latest_month
    available = len(month_list(proof_type.earliest_month or last, last))
    limit = min(available, proof_type.max_months or available)
    out: list[Period] = []
    if proof_type.default_from and proof_type.default_to:
        n = len(month_list(proof_type.default_from, proof_type.default_to))
        out.append(Period(n, proof_type.default_from, proof_type.default_to, default=True))
    for n in (*PERIOD_CHOICES, limit):
        if 1 <= n <= limit and all(p.months != n or p.period_to != last for p in out):
            out.append(Period(n, months_back(last, n), last))
    return out


def render_first_page(pdf: Path, out_stem: Path, width_px: int = PREVIEW_WIDTH_PX) -> Path:
    """The first page as PNG (poppler's pdftoppm), ``width_px`` wide: readable on the screen."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise PreviewUnavailable("pdftoppm missing (poppler-utils)")
    try:
        subprocess.run([exe, "-png", "-f", "1", "-l", "1", "-singlefile", "-scale-to-x", str(width_px),
                        "-scale-to-y", "-1", str(pdf), str(out_stem)], check=True, capture_output=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PreviewUnavailable(f"pdftoppm failed: {type(exc).__name__}") from None
    path = out_stem.with_suffix(".png")
    if not path.exists():
        raise PreviewUnavailable("pdftoppm wrote nothing")
    return path


def safe_name(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", code)[:60] or "proof"


class ProofsFlow(CoreFlow):
    name = "proofs"

    def __init__(self, ctx: "UseCaseContext") -> None:
        super().__init__(ctx)

    # --- state and availability ---------------------------------------------------------------------------------
    @property
    def state(self) -> ProofsState:
        return self.ctx.session.data.scratch.setdefault("proofs_state", ProofsState())

    def configured(self) -> bool:
        return "licence_printer" in self.ctx.profile.devices

    def unavailable_reason(self) -> str | None:
        """None when proofs can be printed now, else the translation key of why not (for the menu tile)."""
        if not self.configured():
            return "proofs.reason.no_printer"
        avail = self.ctx.availability
        if not avail.platform:
            return "proofs.reason.platform"
        if avail.devices and not avail.devices.get("licence_printer", False):
            return "proofs.reason.printer_fault"
        return None

    # --- blocking steps -----------------------------------------------------------------------------------------
    def types_now(self) -> list[ProofType]:
        types = self.with_token(self.ctx.platform.proof_types)
        state = self.state
        state.types = types
        return types

    def choose(self, proof_type: str) -> list[Period]:
        """Pick a type; its period choices (empty: no period to choose, issue at once)."""
        state = self.state
        chosen = next((t for t in state.types if t.type == proof_type), None)
        if chosen is None:
            raise KeyError(proof_type)
        self.ctx.touch()
        state.chosen, state.ready, state.printed, state.copies = chosen, None, None, 1
        choices = periods(chosen)
        state.period = choices[0] if choices else None
        return choices

    def set_period(self, period: Period) -> None:
        self.ctx.touch()
        self.state.period = period

    def set_copies(self, copies: int) -> int:
        self.ctx.touch()
        self.state.copies = max(1, min(MAX_COPIES, int(copies)))
        return self.state.copies

    def issue_now(self) -> ProofReady:
        """Issue the chosen proof (one per choice in the session: a retry gets the same one), fetch its PDF, check
        its hash and render its first page."""
        state = self.state
        if state.chosen is None:
            raise KeyError("no proof type chosen")
        if not self.configured():
            raise NoLicencePrinter("no licence printer in the profile")
        period = state.period
        key = self.key("issue", state.chosen.type, period.period_from if period else "",
                       period.period_to if period else "")
        proof = self.with_token(lambda token: self.ctx.platform.issue_proof(
            token, state.chosen.type, period.period_from if period else None, period.period_to if period else None,
            idempotency_key=key))
        ready = self._fetch(proof)
        state.ready, state.printed = ready, None
        self.audit("proof_issued", type=proof.type, pages=proof.pages, months=period.months if period else None)
        return ready

    def _fetch(self, proof: IssuedProof) -> ProofReady:
        self.ctx.require_storage("print")
        pdf = self.with_token(lambda token: self.ctx.platform.proof_pdf(token, proof.code))
        if proof.sha256 and hashlib.sha256(pdf).hexdigest() != proof.sha256.lower():
            raise DocumentMismatch("the proof's PDF does not match its issued hash")
        folder = self.ctx.session.temp_dir()
        path = folder / f"{safe_name(proof.code)}.pdf"
        try:
            with self.ctx.storage.writing("proof PDF"):
                path.write_bytes(pdf)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        try:
            preview: Path | None = render_first_page(path, folder / f"{safe_name(proof.code)}-p1")
        except PreviewUnavailable as exc:
            log.warning("proof preview not rendered: %s", exc)
            preview = None
        return ProofReady(proof, path, preview, proof.pages)

    def print_now(self) -> ProofPrinted:
        """Print the ready proof (``state.copies`` copies); the same proof again is a counted reprint."""
        state = self.state
        ready = state.ready
        if ready is None:
            raise KeyError("no proof issued")
        if not self.configured():
            raise NoLicencePrinter("no licence printer in the profile")
        service = self.ctx.print_service
        code = ready.proof.code
        first = state.jobs.get(code)
        entry = service.journal.get(first) if first else None
        if entry is not None and entry.state != "done" and entry.closed is None and entry.may_have_printed:
            raise ReprintNeedsAuthorisation(f"print job {first} may have printed: staff decide")
        if not ready.pdf_path.exists():   # (the session folder is private; it is gone only with the session)
            ready = state.ready = self._fetch(ready.proof)
        options = LicenceOptions(copies=state.copies)
        try:
            if entry is not None and entry.state == "done":
                result = service.print_licence_again(entry.id, ready.pdf_path, authorised_by="citizen_request")
                reprint = True
            else:
                result = service.print_licence(ready.pdf_path, options, document_type=f"proof:{ready.proof.type}",
                                               summary=f"证明 {ready.proof.name}", document_ref=code)
                reprint = False
                state.jobs[code] = result.job_id
        except BaseException as exc:
            job_id = getattr(exc, "job_id", "")
            if job_id and first is None:
                state.jobs[code] = job_id
            self.ctx.check_health()
            raise
        root = state.jobs[code]
        count = service.reprint_count(root)
        self.audit("proof_printed", type=ready.proof.type, job=result.job_id, reprint=reprint, reprints=count,
                   copies=state.copies, pages=result.pages)
        state.printed = ProofPrinted(code, result.job_id, state.copies, result.pages, reprint, count)
        return state.printed

    # --- for screens --------------------------------------------------------------------------------------------
    def types(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proof_types", self.types_now, on_result=on_result, on_error=on_error)

    def issue(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("proof_issue", self.issue_now, on_result=on_result, on_error=on_error)

    def print_proof(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("print_proof", self.print_now, on_result=on_result, on_error=on_error)

    def error_text(self, exc: BaseException) -> str:
        if isinstance(exc, ReprintNeedsAuthorisation):
            return self.ctx.translator.t("certificates.error.staff")
        if isinstance(exc, NoLicencePrinter):
            return self.ctx.translator.t("proofs.reason.no_printer")
        return rejection_text(self.ctx, exc, "proofs")

    def done(self) -> None:
        self.finish(RatingTarget("kiosk_action", "print_proof", "print_proof"))
