"""Licence printing figure: job submit → completed on a CUPS queue with cups-pdf (private cupsd, as in the tests).

Times ``CupsLicencePrinter.print_pdf`` for a 2-page A4 certificate with Chinese text (status check, Print-Job,
the CUPS filter chain pdftopdf → pdftops(pdftocairo) → cups-pdf/ghostscript, until the job state is completed),
and the same through ``PrintService`` (journal). Needs root and the CUPS packages (see drivers/licence_printer).

Run: ``.venv/bin/python bench/print_licence.py [--runs 10]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.licence_printer.base import LicenceOptions  # noqa: E402
from drivers.licence_printer.cups_printer import CupsLicencePrinter  # noqa: E402
from drivers.licence_printer.simulator import LocalCupsd, missing_requirements, sample_pdf  # noqa: E402
from kiosk.print_journal import PrintJournal  # noqa: E402
from kiosk.usecases.printing import PrintService  # noqa: E402


def s(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values):.2f} s, min {values[0]:.2f} s, max {values[-1]:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        print("print_licence: cannot run, missing " + ", ".join(missing), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-licence-") as folder:
        return run(args, Path(folder))


def run(args: argparse.Namespace, work: Path) -> int:
    pdf = sample_pdf(work / "licence.pdf", pages=2)
    started = time.perf_counter()
    with LocalCupsd() as cupsd:
        print(f"private cupsd + queue ready in {time.perf_counter() - started:.2f} s")
        with CupsLicencePrinter(queue=cupsd.queue, server=cupsd.server) as printer:
            submit, total = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = printer.print_pdf(pdf, LicenceOptions(), on_submitted=lambda _id: submit.append(
                    time.perf_counter() - t0))
                total.append(time.perf_counter() - t0)
                assert result.pages == 2 and cupsd.output_for(result.device_job_id) is not None
            with PrintJournal(work / "journal.sqlite3") as journal:
                service = PrintService(journal, licence_printer=printer)
                journaled = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    service.print_licence(pdf, document_type="business_licence")
                    journaled.append(time.perf_counter() - t0)
    print(f"licence (2 pages A4, CJK): check + submit accepted: {s(submit)}")
    print(f"licence (2 pages A4, CJK): submit → completed with cups-pdf: {s(total)}")
    print(f"licence through PrintService (journal): {s(journaled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
