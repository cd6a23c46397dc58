"""The shared core harness (tests/kiosk/conftest.py) on the simulated profile plus a simulated licence printer (a private
cupsd with a cups-pdf queue)."""
from __future__ import annotations

import pytest


#: a licence printer whose simulator the device manager starts (fast polling: the defaults are for real printers)
LICENCE_PRINTER = {"driver": "cups", "simulate": True, "required": False,
                   "settings": {"queue": "KioskPDF", "poll_interval_s": 0.05, "fault_grace_s": 0.3,
                                "job_timeout_s": 30.0}}


@pytest.fixture
def kiosk(make_harness):
    from drivers.licence_printer.simulator import missing_requirements

    missing = missing_requirements()  # loud, never a skip or a quietly unavailable printer
    if missing:
        pytest.fail("the simulated licence printer (a private cupsd with cups-pdf) needs: " + ", ".join(missing)
                    + " (scripts/setup.sh installs them)", pytrace=False)
    return make_harness(devices__licence_printer=LICENCE_PRINTER)


@pytest.fixture
def plain_kiosk(make_profile, make_harness):
    """The simulated profile without its licence printer."""
    import yaml

    path = make_profile()
    data = yaml.safe_load(path.read_text("utf-8"))
    data["devices"].pop("licence_printer", None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return make_harness(profile_path=path)
