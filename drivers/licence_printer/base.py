"""The licence/certificate printer interface (异地打证): a PDF printed on a page printer behind a CUPS queue.

Contract of :meth:`LicencePrinter.print_pdf` (and of its two halves, :meth:`~LicencePrinter.submit` and
:meth:`~LicencePrinter.follow`):

1. Nothing is sent for a job that cannot print: the document must be a readable PDF and the options must be ones the
   printer supports (``ValueError`` / :class:`~drivers.errors.Unsupported`), and the printer's state is read first —
   queue missing or print server unreachable → :class:`~drivers.errors.NoDevice`; queue stopped or not accepting →
   :class:`~drivers.errors.PrinterOffline`; paper out, jam, cover open, supply empty → :class:`~drivers.errors.PaperOut`,
   :class:`PaperJam`, :class:`~drivers.errors.CoverOpen`, :class:`SupplyEmpty`.
2. ``before_send()`` (if given) is called after those checks and before the document leaves the kiosk, so a journal
   can record the job as sent first; if it raises, nothing is sent.
3. ``on_submitted(device_job_id)`` is called as soon as the print server has accepted the job.
4. The job is then followed to its end. A job that completes returns a :class:`JobResult`. A job that stops on a
   printer fault (paper out, jam, cover, offline) for longer than the driver's grace period, is cancelled or aborted,
   or does not complete within the job timeout raises the matching error carrying ``device_job_id`` (attribute and
   placeholder); by default the driver cancels the job first, so a licence never comes out later, unrecorded.
5. A driver never re-submits a job by itself: a licence is printed at most once per call.
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from drivers.base import Device, DeviceStatus
from drivers.errors import DeviceError, HardwareError

# --- errors specific to page printers (same translation keys as their parents: the locales need no new text) ------


class PaperJam(HardwareError):
    code = "paper_jammed"
    action = "call_staff"


class SupplyEmpty(HardwareError):
    """Toner/ink/ribbon (a marker supply) is empty."""

    code = "supply_empty"
    action = "maintenance"


class JobCanceled(DeviceError):
    """The job was cancelled on the print server (by staff or the system) before it completed."""

    code = "job_canceled"
    translation_key = "error.device.hardware_error"
    action = "call_staff"


class JobAborted(HardwareError):
    """The print server gave up on the job (filter failure, unreadable document, backend error)."""

    code = "job_aborted"
    action = "call_staff"


def job_error(cls: type[DeviceError], message: str, *, device_job_id: int | None = None,
              job_id: str = "") -> DeviceError:
    """An error for a licence job; ``device_job_id`` is None when the print server never accepted the job."""
    exc = cls(message, device_job_id=device_job_id, job_id=job_id)
    exc.device_job_id = device_job_id  # type: ignore[attr-defined]
    exc.job_id = job_id  # type: ignore[attr-defined]
    return exc


# --- options and results ------------------------------------------------------------------------------------------

#: common paper names → PWG 5101.1 media names (what IPP ``media`` carries); a PWG name passes through unchanged
PAPER_SIZES: dict[str, str] = {
    "A3": "iso_a3_297x420mm", "A4": "iso_a4_210x297mm", "A5": "iso_a5_148x210mm", "A6": "iso_a6_105x148mm",
    "B5": "jis_b5_182x257mm", "JIS-B5": "jis_b5_182x257mm", "ISO-B5": "iso_b5_176x250mm",
    "LETTER": "na_letter_8.5x11in", "LEGAL": "na_legal_8.5x14in", "16K": "om_16k_184x260mm",
}
#: duplex words → IPP ``sides`` keywords
DUPLEX: dict[str, str] = {
    "one-sided": "one-sided", "none": "one-sided", "off": "one-sided", "simplex": "one-sided",
    "two-sided-long-edge": "two-sided-long-edge", "long": "two-sided-long-edge", "long-edge": "two-sided-long-edge",
    "two-sided-short-edge": "two-sided-short-edge", "short": "two-sided-short-edge",
    "short-edge": "two-sided-short-edge",
}
MAX_COPIES = 99


@dataclass(frozen=True)
class LicenceOptions:
    """How to print one document. ``tray`` is an IPP ``media-source`` keyword (``tray-1``, ``tray-2``, ``manual``,
    …); ``paper_size`` a common name (A4, A5, B5, Letter) or a PWG media name; ``duplex`` one-sided /
    two-sided-long-edge / two-sided-short-edge (or none/long/short)."""

    paper_size: str = "A4"
    tray: str | None = None
    copies: int = 1
    duplex: str = "one-sided"

    def __post_init__(self) -> None:
        if not isinstance(self.copies, int) or isinstance(self.copies, bool) or not 1 <= self.copies <= MAX_COPIES:
            raise ValueError(f"copies must be an integer 1..{MAX_COPIES}, not {self.copies!r}")
        if self.duplex.lower() not in DUPLEX:
            raise ValueError(f"duplex must be one of {sorted(set(DUPLEX.values()))}, not {self.duplex!r}")
        if not self.paper_size or not self.paper_size.strip():
            raise ValueError("paper_size must not be empty")
        if self.tray is not None and not self.tray.strip():
            raise ValueError("tray must be a media-source keyword or None")

    @property
    def media(self) -> str:
        return PAPER_SIZES.get(self.paper_size.upper(), self.paper_size)

    @property
    def sides(self) -> str:
        return DUPLEX[self.duplex.lower()]

    def ipp_options(self) -> dict[str, str]:
        """The job's IPP attributes as the print server's option strings."""
        opts = {"media": self.media, "sides": self.sides, "copies": str(self.copies)}
        if self.tray:
            opts["media-source"] = self.tray
        return opts

    def to_dict(self) -> dict[str, Any]:
        return {"paper_size": self.paper_size, "tray": self.tray, "copies": self.copies, "duplex": self.duplex}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "LicenceOptions":
        data = dict(data or {})
        unknown = set(data) - {"paper_size", "tray", "copies", "duplex"}
        if unknown:
            raise ValueError(f"unknown licence print options: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class JobResult:
    """A licence job the print server reports as completed. ``pages`` = impressions completed (None if unknown)."""

    job_id: str
    device_job_id: int
    state: str
    pages: int | None
    sheets: int | None
    duration_s: float
    status: DeviceStatus | None = None


@dataclass(frozen=True)
class JobInfo:
    """A job's state on the print server: pending, held, processing, stopped, canceled, aborted, completed."""

    device_job_id: int
    state: str
    reasons: tuple[str, ...] = ()
    name: str = ""
    pages: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("canceled", "aborted", "completed")


def check_pdf(path: str | os.PathLike[str]) -> None:
    """Raise ValueError unless ``path`` is a readable file that starts like a PDF (before anything is sent)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise ValueError(f"document cannot be read: {exc.strerror}") from exc
    if b"%PDF-" not in head:
        raise ValueError("document is not a PDF")


class LicencePrinter(Device):
    """A printer of PDF documents (licences, certificates, forms). See the module doc for the contract."""

    KIND = "licence_printer"

    @abc.abstractmethod
    def submit(self, pdf_path: str | os.PathLike[str], options: LicenceOptions | None = None, *,
               job_id: str = "", before_send: Callable[[], None] | None = None) -> int:
        """Check, then hand the document to the print server; return its job id there."""

    @abc.abstractmethod
    def follow(self, device_job_id: int, *, job_id: str = "", timeout_s: float | None = None) -> JobResult:
        """Wait for the job to complete; raise a DeviceError (after cancelling the job) if it does not."""

    @abc.abstractmethod
    def job_info(self, device_job_id: int) -> JobInfo | None:
        """The job's state now (None if the print server does not know the job)."""

    @abc.abstractmethod
    def find_job(self, job_id: str) -> JobInfo | None:
        """The print server's job submitted for our ``job_id`` (by job name), or None."""

    @abc.abstractmethod
    def cancel(self, device_job_id: int) -> bool:
        """Cancel the job; True if it is now cancelled (False: it had already finished)."""

    def print_pdf(self, pdf_path: str | os.PathLike[str], options: LicenceOptions | None = None, *,
                  job_id: str = "", before_send: Callable[[], None] | None = None,
                  on_submitted: Callable[[int], None] | None = None, timeout_s: float | None = None) -> JobResult:
        device_job_id = self.submit(pdf_path, options, job_id=job_id, before_send=before_send)
        if on_submitted is not None:
            on_submitted(device_job_id)
        return self.follow(device_job_id, job_id=job_id, timeout_s=timeout_s)
