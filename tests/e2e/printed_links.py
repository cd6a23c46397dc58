"""No dead QR link: every QR code an e2e kiosk printed — on the receipt printer (the codes the ESC/POS stream asked
for, and any QR drawn as a picture) and on the licence printer (every page of every cups-pdf output, rendered with
pdftoppm and read with OpenCV, as a phone would) — is opened against its platform when the kiosk is torn down
(``start_kiosk`` in conftest.py), while that test's platform is still up. A link that does not answer 200 fails the
test that printed it; a link whose host no longer answers at all (a test took its platform down on purpose) is
skipped and counted; a kiosk that already left (crash, restart tests) is counted as unread. The totals per module are
shown at the end of the session (``pytest_terminal_summary``)."""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.sim.control import send_command
from tests.qr_reading import pdf_qr_codes, read_qr_codes


#: the summary lines of every kiosk's tallies (pytest_sessionfinish in conftest.py, or the xdist workers'), printed
#: at the end of the session by tests/conftest.py
PRINTED_LINES = pytest.StashKey[list[str]]()


@dataclass
class KioskLinks:
    """What one kiosk printed and what its links answered."""

    codes: list[str] = field(default_factory=list)
    opened: dict[str, int | str] = field(default_factory=dict)   # link → HTTP status (or what went wrong)
    host_down: list[str] = field(default_factory=list)        # the link's host no longer answers (platform stopped)
    unread: bool = False                                       # the kiosk no longer answered: nothing collected

    @property
    def links(self) -> list[str]:
        return [c for c in self.codes if c.startswith(("http://", "https://"))]

    @property
    def not_links(self) -> list[str]:
        return [c for c in self.codes if not c.startswith(("http://", "https://"))]

    @property
    def dead(self) -> dict[str, int | str]:
        return {link: status for link, status in self.opened.items() if status != 200}


@dataclass
class ModuleTally:
    kiosks: int = 0
    unread: int = 0
    codes: int = 0
    opened: int = 0
    dead: int = 0
    host_down: int = 0
    not_links: int = 0
    seconds: float = 0.0


class PrintedLinks:
    """The session's collector: :meth:`check` one kiosk (before it is stopped), the tallies per module."""

    def __init__(self) -> None:
        self.modules: dict[str, ModuleTally] = defaultdict(ModuleTally)

    def check(self, automation: str, module: str) -> KioskLinks:
        started = time.monotonic()
        try:
            return self._check(automation, self.modules[module])
        finally:
            self.modules[module].seconds += time.monotonic() - started

    def _check(self, automation: str, tally: ModuleTally) -> KioskLinks:
        found = KioskLinks()
        codes = printed_codes(automation)
        tally.kiosks += 1
        if codes is None:
            found.unread = True
            tally.unread += 1
            return found
        found.codes = codes
        with httpx.Client(timeout=10, follow_redirects=True) as client:
            for link in dict.fromkeys(found.links):        # each distinct link once
                try:
                    found.opened[link] = client.get(link).status_code
                except httpx.ConnectError:
                    found.host_down.append(link)
                except httpx.HTTPError as exc:             # a timeout or a broken answer is a dead link too
                    found.opened[link] = type(exc).__name__
        tally.codes += len(codes)
        tally.opened += len(found.opened)
        tally.dead += len(found.dead)
        tally.host_down += len(found.host_down)
        tally.not_links += len(found.not_links)
        return found

    def summary(self) -> list[str]:
        lines = []
        for module, t in sorted(self.modules.items()):
            lines.append(f"{module}: {t.kiosks} kiosk(s), {t.codes} QR code(s) printed, {t.opened} link(s) opened, "
                         f"{t.dead} dead, {t.host_down} skipped (platform stopped), {t.not_links} not a link, "
                         f"{t.unread} kiosk(s) gone before reading ({t.seconds:.1f} s)")
        return lines


def printed_codes(automation: str) -> list[str] | None:
    """Every QR code the kiosk behind ``automation`` printed so far; None when the kiosk no longer answers."""
    try:
        reply = send_command(automation, "simulators", timeout=10)
    except (OSError, ValueError):
        return None
    if not reply.get("ok"):
        return None
    sims: dict[str, Any] = {k: v for k, v in reply.items() if k != "ok"}
    codes: list[str] = []
    receipt = sims.get("receipt_printer") or {}
    if receipt.get("control"):
        try:
            receipts = send_command(receipt["control"], "receipts", timeout=10)["receipts"]
        except (OSError, ValueError, KeyError):
            receipts = []
        for r in receipts:
            codes += r.get("qr") or []
            if r.get("images") and not r.get("qr") and Path(r.get("png", "")).is_file():
                codes += read_qr_codes(r["png"])       # a QR sent as a raster picture
    licence = sims.get("licence_printer") or {}
    if licence.get("out") and Path(licence["out"]).is_dir():
        for pdf in sorted(Path(licence["out"]).glob("*.pdf")):
            codes += pdf_qr_codes(pdf)
    return codes
