"""Printing the identified citizen's e-certificates (电子证照打印, 异地打证) on the licence printer.

The list shows each certificate's type, its number masked, the trust level (A–D) and the validity. Printing fetches
the PDF from the platform into the session's private temp folder (deleted at session end) and prints it through
:class:`~kiosk.usecases.printing.PrintService` (journaled before the first byte). A second print of the same
certificate in the session is a new job recorded as a reprint of the first and counted; if the first did not complete
but may have printed, it is left to staff (the staff screen lists it) rather than printed again by the citizen.

:class:`CertificatesFlow` is ``core.certificates``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.errors import DeviceUnavailable
from kiosk.platform_client import ECertificate
from kiosk.session import RatingTarget
from kiosk.usecases.booking import Callback, CoreFlow, rejection_text
from kiosk.usecases.printing import ReprintNeedsAuthorisation

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)


class NoLicencePrinter(DeviceUnavailable):
    """This kiosk has no licence printer (the profile names none)."""

    code = "no_licence_printer"
    translation_key = "certificates.error.no_printer"


class NotPrintable(DeviceUnavailable):
    """The certificate cannot be printed here (revoked)."""

    code = "certificate_not_printable"
    translation_key = "certificates.error.not_printable"


def mask_number(number: str) -> str:
    """A certificate number for the screen: the first 2 and last 4 characters, the rest as ``*``."""
    number = number or ""
    if len(number) <= 6:
        return number[:1] + "*" * max(len(number) - 1, 0)
    return number[:2] + "*" * (len(number) - 6) + number[-4:]


def safe_name(cert_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", cert_id)[:60] or "cert"


@dataclass(frozen=True)
class CertView:
    """What a list row shows: never the number in full, nor the holder's name."""

    id: str
    type_name: str
    number_masked: str
    trust_level: str
    issued_on: str
    valid_until: str | None
    status: str
    printable: bool


@dataclass(frozen=True)
class CertPrinted:
    cert_id: str
    job_id: str
    pages: int | None
    is_reprint: bool
    reprint_count: int


def cert_view(cert: ECertificate) -> CertView:
    return CertView(id=cert.id, type_name=cert.type_name, number_masked=mask_number(cert.number),
                    trust_level=cert.trust_level, issued_on=cert.issued_on, valid_until=cert.valid_until,
                    status=cert.status, printable=cert.status != "revoked")


class CertificatesFlow(CoreFlow):
    name = "certificates"

    def __init__(self, ctx: "UseCaseContext") -> None:
        super().__init__(ctx)

    # --- availability -------------------------------------------------------------------------------------------
    def configured(self) -> bool:
        return "licence_printer" in self.ctx.profile.devices

    def unavailable_reason(self) -> str | None:
        """None when certificates can be printed now, else the translation key of why not (for the menu tile)."""
        if not self.configured():
            return "certificates.reason.no_printer"
        avail = self.ctx.availability
        if not avail.platform:
            return "certificates.reason.platform"
        if avail.devices and not avail.devices.get("licence_printer", False):
            return "certificates.reason.printer_fault"
        return None

    # --- blocking steps -----------------------------------------------------------------------------------------
    def list_now(self) -> list[CertView]:
        certs = self.with_token(self.ctx.platform.my_e_certificates)
        self.ctx.session.data.scratch["certificates"] = {c.id: c for c in certs}
        return [cert_view(c) for c in certs]

    def _jobs(self) -> dict[str, str]:
        """certificate id → journal id of its first print in this session (wiped with the session)."""
        return self.ctx.session.data.scratch.setdefault(("certificates", "jobs"), {})

    def print_now(self, cert_id: str) -> CertPrinted:
        if not self.configured():
            raise NoLicencePrinter("no licence printer in the profile")
        cert = self.ctx.session.data.scratch.get("certificates", {}).get(cert_id)
        if cert is None:
            cert = self.with_token(lambda token: self.ctx.platform.e_certificate(token, cert_id))
        if cert.status == "revoked":
            raise NotPrintable("revoked certificate")
        service = self.ctx.print_service
        first = self._jobs().get(cert_id)
        entry = service.journal.get(first) if first else None
        if entry is not None and entry.state != "done" and entry.closed is None and entry.may_have_printed:
            raise ReprintNeedsAuthorisation(f"print job {first} may have printed: staff decide")
        self.ctx.require_storage("print")   # the PDF and its print job go on the data disk
        pdf = self.with_token(lambda token: self.ctx.platform.e_certificate_pdf(token, cert_id))
        path = self.ctx.session.temp_dir() / f"{safe_name(cert_id)}.pdf"
        try:
            with self.ctx.storage.writing("certificate PDF"):
                path.write_bytes(pdf)
        except BaseException:
            path.unlink(missing_ok=True)   # no half-written document left behind
            raise
        try:
            if entry is not None and entry.state == "done":
                result = service.print_licence_again(entry.id, path, authorised_by="citizen_request")
                reprint = True
            else:
                result = service.print_licence(path, document_type=f"ecert:{cert.type_code}",
                                               summary=f"电子证照 {cert.type_name}", document_ref=cert_id)
                reprint = False
                self._jobs()[cert_id] = result.job_id
        except BaseException as exc:
            job_id = getattr(exc, "job_id", "")
            if job_id and first is None:
                self._jobs()[cert_id] = job_id
            self.ctx.check_health()
            raise
        finally:
            path.unlink(missing_ok=True)
        root = self._jobs()[cert_id]
        count = service.reprint_count(root)
        self.audit("certificate_printed", type=cert.type_code, job=result.job_id, reprint=reprint,
                   reprints=count, pages=result.pages)
        return CertPrinted(cert_id, result.job_id, result.pages, reprint, count)

    # --- for screens --------------------------------------------------------------------------------------------
    def certificates(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("certificates", self.list_now, on_result=on_result, on_error=on_error)

    def print_certificate(self, cert_id: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("print_certificate", self.print_now, cert_id, on_result=on_result, on_error=on_error)

    def error_text(self, exc: BaseException) -> str:
        if isinstance(exc, ReprintNeedsAuthorisation):
            return self.ctx.translator.t("certificates.error.staff")
        return rejection_text(self.ctx, exc, "certificates")

    def done(self) -> None:
        self.finish(RatingTarget("kiosk_action", "print_certificate", "print_certificate"))
