"""Fixtures for the licence printer: a private cupsd with a cups-pdf queue (the simulated printer, see
drivers/licence_printer/simulator.py) and the real pycups driver talking to it."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from drivers.licence_printer.cups_printer import CupsLicencePrinter
from drivers.licence_printer.simulator import LocalCupsd, missing_requirements, sample_pdf

#: fast polling and a short grace keep the fault tests quick; the defaults are for real printers
FAST = {"poll_interval_s": 0.05, "fault_grace_s": 0.3, "stale_fault_grace_s": 2.0, "job_timeout_s": 20.0}


@pytest.fixture(scope="session")
def _cupsd() -> Iterator[LocalCupsd]:
    missing = missing_requirements()
    if missing:
        pytest.fail("the licence printer tests need: " + ", ".join(missing) + " (scripts/setup.sh installs them)")
    with LocalCupsd() as cupsd:
        yield cupsd


@pytest.fixture
def cupsd(_cupsd: LocalCupsd) -> LocalCupsd:
    """The session's print server, its printer switched back to normal (paper in, online, queue running)."""
    _cupsd.reset()
    return _cupsd


@pytest.fixture(scope="session")
def certificate_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-page synthetic certificate with Chinese and Latin text."""
    return sample_pdf(tmp_path_factory.mktemp("documents") / "certificate.pdf", pages=2)


@pytest.fixture
def make_licence_printer(cupsd: LocalCupsd) -> Iterator[Callable[..., CupsLicencePrinter]]:
    made: list[CupsLicencePrinter] = []

    def make(**settings: Any) -> CupsLicencePrinter:
        printer = CupsLicencePrinter(**{"queue": cupsd.queue, "server": cupsd.server, **FAST, **settings})
        made.append(printer)
        return printer

    yield make
    for printer in made:
        printer.close()


@pytest.fixture
def licence_printer(make_licence_printer: Callable[..., CupsLicencePrinter]) -> CupsLicencePrinter:
    return make_licence_printer()


def pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(name="pdf_info")
def pdf_info_fixture() -> Callable[[Path], dict[str, str]]:
    return pdf_info


@pytest.fixture(name="pdf_text")
def pdf_text_fixture() -> Callable[[Path], str]:
    return pdf_text
