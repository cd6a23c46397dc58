"""A simulated licence printer: a private ``cupsd`` (foreground, its own folder, loopback port + local socket, stopped
by PID) with one queue whose device is Debian's ``cups-pdf`` behind a switchable backend.

The kiosk's real driver (:class:`~drivers.licence_printer.cups_printer.CupsLicencePrinter`) talks to it exactly as to
a production print server: the document goes through the CUPS filter chain (pdftopdf applies copies and paper size,
pdftops renders PostScript with pdftocairo so the text stays extractable) to ``cups-pdf``, which writes
``<out>/job_<cups job id>-<title>.pdf``.

The queue's backend (``kiosksim``, a shell script in the private ServerBin) is the printer's "hardware": before it
hands the job to cups-pdf it reports marker (toner) levels and, while the switches say so, paper out
(``media-empty-error``), offline (``offline-report``) or simply keeps the job printing (``hang``) — reported to cupsd
the way real backends do (``STATE:``/``ATTR:`` lines, see backend(7)). Switches are files in ``<root>/sim``.

Machine-wide side effects (cups-pdf reads its configuration only from ``/etc/cups``): the per-queue file
``/etc/cups/cups-pdf-<queue>.conf`` is written at start and removed at stop. Queue names are unique per instance.
Needs root (cups-pdf runs as root, cupsd drops filters to user ``lp``) and the Debian packages cups-daemon,
cups-client, cups-filters, printer-driver-cups-pdf, ghostscript, poppler-utils.

Also ``python -m drivers.licence_printer.simulator [--out DIR] [--control HOST:PORT]``: runs it as a ``kiosk-sim``-style
process (first stdout line: JSON with ``server``, ``queue``, ``port``, ``out``, ``control``).
"""
from __future__ import annotations

import argparse
import grp
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from drivers.sim.process import _die_with_parent

CUPS_BIN = Path("/usr/lib/cups")
CUPS_PDF_BACKEND = CUPS_BIN / "backend" / "cups-pdf"
CUPS_PDF_CONF_DIR = Path("/etc/cups")        # fixed in Debian's cups-pdf build
BACKEND_NAME = "kiosksim"
PAPER_STATES = ("ok", "low", "out")
OUTPUT_RE = re.compile(r"^job_(\d+)-.*\.pdf$")

CUPSD_CONF = """\
LogLevel info
Listen 127.0.0.1:{port}
Listen {socket}
Browsing No
BrowseLocalProtocols none
WebInterface No
MaxJobs 0
PreserveJobHistory Yes
PreserveJobFiles Yes
JobRetryLimit 0
ErrorPolicy abort-job
<Location />
  Order allow,deny
  Allow from 127.0.0.1
  Allow from @LOCAL
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {root}
RequestRoot {root}/spool
TempDir {root}/spool/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin {root}/serverbin
DataDir /usr/share/cups
DocumentRoot /usr/share/cups/doc-root
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
User lp
Group lp
SystemGroup root lpadmin
FileDevice No
Sandboxing Relaxed
"""

# cups-pdf per-queue configuration (keys: /etc/cups/cups-pdf.conf)
CUPS_PDF_CONF = """\
Out {out}
AnonDirName {out}
Spool {root}/cups-pdf-spool
Log {root}/log
Label 1
LogType 3
UserUMask 0022
Grp lp
"""

BACKEND = """\
#!/bin/sh
# {name}: the simulated licence printer's hardware. cups-pdf behind switches (files in {sim}).
S='{sim}'
if [ $# -eq 0 ]; then echo 'direct {name} "Unknown" "GovKiosk simulated licence printer"'; exit 0; fi
[ -f "$S/markers" ] && cat "$S/markers" >&2
paper=$(cat "$S/paper" 2>/dev/null)
if [ "$paper" = low ]; then echo "STATE: +media-low-report" >&2; else echo "STATE: -media-low-report" >&2; fi
shown=none
while [ -f "$S/offline" ] || [ -f "$S/hang" ] || [ "$(cat "$S/paper" 2>/dev/null)" = out ]; do
  if [ -f "$S/offline" ]; then want=offline-report
  elif [ "$(cat "$S/paper" 2>/dev/null)" = out ]; then want=media-empty-error
  else want=none; fi
  if [ "$want" != "$shown" ]; then
    echo "STATE: -offline-report,media-empty-error" >&2
    [ "$want" != none ] && echo "STATE: +$want" >&2
    shown=$want
  fi
  sleep 0.05
done
echo "STATE: -offline-report,media-empty-error" >&2
DEVICE_URI="cups-pdf:/${{DEVICE_URI#*:/}}" exec {cups_pdf} "$@"
"""

# A page printer that takes PostScript (cups-pdf renders it), with the options a licence printer has.
PPD = """\
*PPD-Adobe: "4.3"
*FormatVersion: "4.3"
*FileVersion: "1.0"
*LanguageVersion: English
*LanguageEncoding: ISOLatin1
*PCFileName: "KIOSKLIC.PPD"
*Manufacturer: "GovKiosk"
*Product: "(Simulated licence printer)"
*ModelName: "GovKiosk simulated licence printer"
*ShortNickName: "GovKiosk licence (cups-pdf)"
*NickName: "GovKiosk simulated licence printer (cups-pdf)"
*PSVersion: "(3010.000) 0"
*LanguageLevel: "3"
*ColorDevice: True
*DefaultColorSpace: RGB
*FileSystem: False
*Throughput: "20"
*LandscapeOrientation: Plus90
*TTRasterizer: Type42
*cupsVersion: 2.4
*cupsManualCopies: True
*HWMargins: 0 0 0 0
*OpenUI *PageSize/Media Size: PickOne
*OrderDependency: 10 AnySetup *PageSize
*DefaultPageSize: A4
*PageSize A4/A4: "<</PageSize[595 842]>>setpagedevice"
*PageSize A5/A5: "<</PageSize[420 595]>>setpagedevice"
*PageSize A3/A3: "<</PageSize[842 1191]>>setpagedevice"
*PageSize B5/JIS B5: "<</PageSize[516 729]>>setpagedevice"
*CloseUI: *PageSize
*OpenUI *PageRegion/Media Size: PickOne
*OrderDependency: 10 AnySetup *PageRegion
*DefaultPageRegion: A4
*PageRegion A4/A4: "<</PageSize[595 842]>>setpagedevice"
*PageRegion A5/A5: "<</PageSize[420 595]>>setpagedevice"
*PageRegion A3/A3: "<</PageSize[842 1191]>>setpagedevice"
*PageRegion B5/JIS B5: "<</PageSize[516 729]>>setpagedevice"
*CloseUI: *PageRegion
*DefaultImageableArea: A4
*ImageableArea A4/A4: "0 0 595 842"
*ImageableArea A5/A5: "0 0 420 595"
*ImageableArea A3/A3: "0 0 842 1191"
*ImageableArea B5/JIS B5: "0 0 516 729"
*DefaultPaperDimension: A4
*PaperDimension A4/A4: "595 842"
*PaperDimension A5/A5: "420 595"
*PaperDimension A3/A3: "842 1191"
*PaperDimension B5/JIS B5: "516 729"
*OpenUI *InputSlot/Media Source: PickOne
*OrderDependency: 20 AnySetup *InputSlot
*DefaultInputSlot: Tray1
*InputSlot Tray1/Tray 1: "<</MediaPosition 0>>setpagedevice"
*InputSlot Tray2/Tray 2: "<</MediaPosition 1>>setpagedevice"
*InputSlot Manual/Manual feed: "<</MediaPosition 3>>setpagedevice"
*CloseUI: *InputSlot
*OpenUI *Duplex/Two-sided: PickOne
*OrderDependency: 30 AnySetup *Duplex
*DefaultDuplex: None
*Duplex None/Off: "<</Duplex false>>setpagedevice"
*Duplex DuplexNoTumble/Long edge: "<</Duplex true/Tumble false>>setpagedevice"
*Duplex DuplexTumble/Short edge: "<</Duplex true/Tumble true>>setpagedevice"
*CloseUI: *Duplex
*DefaultFont: Courier
*Font Courier: Standard "(002.004S)" Standard ROM
"""


class CupsdStartError(RuntimeError):
    code = "simulator_start_failed"


def missing_requirements() -> list[str]:
    """What this machine lacks to run the simulated printer (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (cups-pdf and cupsd's privilege drop need it)")
    for tool in ("cupsd", "lpadmin", "cupsenable", "cupsdisable", "gs", "pdftocairo"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(tool)
    if not CUPS_PDF_BACKEND.exists():
        missing.append("printer-driver-cups-pdf")
    if not (CUPS_BIN / "filter" / "pdftopdf").exists():
        missing.append("cups-filters")
    return missing


def remove_stale_configs() -> list[Path]:
    """Remove /etc/cups/cups-pdf-KioskLicence_<pid>_*.conf left by instances whose process is gone (killed)."""
    removed = []
    for conf in CUPS_PDF_CONF_DIR.glob("cups-pdf-KioskLicence_*_*.conf"):
        match = re.match(r"cups-pdf-KioskLicence_(\d+)_", conf.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            conf.unlink(missing_ok=True)
            removed.append(conf)
    return removed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCupsd:
    """A private print server with one simulated licence printer. Use as a context manager or start()/stop()."""

    def __init__(self, queue: str | None = None, out_dir: str | os.PathLike[str] | None = None,
                 start_timeout: float = 10.0) -> None:
        self.queue = queue or f"KioskLicence_{os.getpid()}_{secrets.token_hex(3)}"
        if not re.fullmatch(r"[A-Za-z0-9_]{1,100}", self.queue):
            raise ValueError("queue: letters, digits and _ only")
        self.start_timeout = start_timeout
        self.root = Path(tempfile.mkdtemp(prefix="kiosk-cupsd-"))
        self.out_dir = Path(out_dir) if out_dir else self.root / "out"
        self._own_out = out_dir is None
        self.sim_dir = self.root / "sim"
        self.socket = str(self.root / "cups.sock")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.cups_pdf_conf = CUPS_PDF_CONF_DIR / f"cups-pdf-{self.queue}.conf"

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def server(self) -> str:
        """What the driver's ``server`` setting takes (cupsd's local socket)."""
        return self.socket

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def _layout(self) -> None:
        lp = grp.getgrnam("lp").gr_gid
        os.chmod(self.root, 0o755)                     # filters run as lp and read the spool below
        for sub, mode, group in [("spool", 0o710, lp), ("spool/tmp", 0o1770, lp), ("cache", 0o770, lp),
                                 ("state", 0o755, None), ("log", 0o755, None), ("serverbin", 0o755, None),
                                 ("serverbin/backend", 0o755, None), ("ppd", 0o755, None), ("sim", 0o755, None),
                                 ("cups-pdf-spool", 0o755, None)]:
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
            if group is not None:
                os.chown(path, 0, group)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for entry in CUPS_BIN.iterdir():               # the system's filters etc., plus our backend
            if entry.name != "backend":
                (self.root / "serverbin" / entry.name).symlink_to(entry)
        for entry in (CUPS_BIN / "backend").iterdir():
            (self.root / "serverbin" / "backend" / entry.name).symlink_to(entry)
        backend = self.root / "serverbin" / "backend" / BACKEND_NAME
        backend.write_text(BACKEND.format(name=BACKEND_NAME, sim=self.sim_dir, cups_pdf=CUPS_PDF_BACKEND))
        os.chmod(backend, 0o700)                       # not world-executable: cupsd runs it as root, as cups-pdf needs
        (self.root / "ppd" / "kiosk-licence.ppd").write_text(PPD)
        self.port = _free_port()
        (self.root / "cupsd.conf").write_text(CUPSD_CONF.format(port=self.port, socket=self.socket))
        (self.root / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=self.root))
        self.cups_pdf_conf.write_text(CUPS_PDF_CONF.format(out=self.out_dir, root=self.root))
        self.set_paper("ok")

    def start(self) -> "LocalCupsd":
        missing = missing_requirements()
        if missing:
            raise CupsdStartError("cannot run the simulated licence printer: missing " + ", ".join(missing))
        remove_stale_configs()
        try:
            self._layout()
            self.proc = subprocess.Popen(
                ["cupsd", "-f", "-c", str(self.root / "cupsd.conf"), "-s", str(self.root / "cups-files.conf")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=_die_with_parent)           # a test run killed with -9 leaves no cupsd behind
            self._wait_ready()
            self._lp("lpadmin", "-p", self.queue, "-E", "-v", f"{BACKEND_NAME}:/{self.queue}",
                     "-P", str(self.root / "ppd" / "kiosk-licence.ppd"),
                     "-o", "pdftops-renderer-default=pdftocairo", "-o", "printer-error-policy=abort-job")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise CupsdStartError(f"cupsd exited with {self.proc.returncode}: {err.strip()[-500:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise CupsdStartError(f"cupsd not ready within {self.start_timeout} s") from None
                time.sleep(0.02)                       # poll for the socket, bounded by the deadline

    def _lp(self, tool: str, *args: str) -> str:
        done = subprocess.run([tool, "-h", self.socket, *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise CupsdStartError(f"{tool} {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()
        try:
            self.cups_pdf_conf.unlink()
        except FileNotFoundError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)   # the output folder too, unless the caller gave one

    def __enter__(self) -> "LocalCupsd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ switches
    def _switch(self, name: str, on: bool, content: str = "") -> None:
        path = self.sim_dir / name
        if on:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(content)
            os.replace(tmp, path)                      # the backend never reads a half-written switch
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def set_paper(self, state: str) -> dict[str, Any]:
        """ok, low (media-low-report at the next job) or out (the printer stops on the job until paper is back)."""
        if state not in PAPER_STATES:
            raise ValueError(f"state must be one of {PAPER_STATES}")
        self._switch("paper", True, state)
        return self.state()

    def set_offline(self, offline: bool) -> dict[str, Any]:
        """The printer stops answering: a job stands with ``offline-report`` until it is back."""
        self._switch("offline", bool(offline))
        return self.state()

    def set_hang(self, hang: bool) -> dict[str, Any]:
        """The printer keeps the current job "printing" until released (slow device, stuck job)."""
        self._switch("hang", bool(hang))
        return self.state()

    def set_markers(self, levels: dict[str, int], low: int = 10) -> dict[str, Any]:
        """Toner levels (0–100) reported at the next job, e.g. ``{"Black Toner": 8}``."""
        if not levels:
            self._switch("markers", False)
            return self.state()
        names = ",".join(n.replace(" ", "\\ ").replace(",", "\\,") for n in levels)
        values = ",".join(str(int(v)) for v in levels.values())
        count = len(levels)
        line = (f"ATTR: marker-names={names} marker-levels={values} marker-types={','.join(['toner'] * count)} "
                f"marker-colors={','.join(['#000000'] * count)} marker-low-levels={','.join([str(low)] * count)} "
                f"marker-high-levels={','.join(['100'] * count)}\n")
        self._switch("markers", True, line)
        return self.state()

    def set_queue(self, enabled: bool = True, accepting: bool = True) -> dict[str, Any]:
        """Stop/start the queue (``cupsdisable``/``cupsenable``) and reject/accept jobs, as staff or CUPS do."""
        self._lp("cupsenable" if enabled else "cupsdisable", self.queue)
        self._lp("cupsaccept" if accepting else "cupsreject", self.queue)
        return self.state()

    def reset(self) -> dict[str, Any]:
        for name in ("offline", "hang", "markers"):
            self._switch(name, False)
        self.set_paper("ok")
        self.set_queue(True, True)
        return self.state()

    def state(self) -> dict[str, Any]:
        def read(name: str) -> str | None:
            try:
                return (self.sim_dir / name).read_text()
            except FileNotFoundError:
                return None
        return {"paper": read("paper") or "ok", "offline": read("offline") is not None,
                "hang": read("hang") is not None, "markers": read("markers") or "", "queue": self.queue,
                "outputs": len(self.outputs())}

    # ------------------------------------------------------------------------------------------ output
    def outputs(self) -> dict[int, Path]:
        """CUPS job id → the PDF cups-pdf wrote for it."""
        found = {}
        for path in self.out_dir.glob("job_*.pdf"):
            match = OUTPUT_RE.match(path.name)
            if match:
                found[int(match.group(1))] = path
        return found

    def output_for(self, device_job_id: int) -> Path | None:
        return self.outputs().get(device_job_id)

    def handlers(self) -> dict[str, Any]:
        """Control commands (``drivers.sim.control``) for the kiosk-sim-style process."""
        return {
            "set_paper": self.set_paper, "set_offline": self.set_offline, "set_hang": self.set_hang,
            "set_markers": self.set_markers, "set_queue": self.set_queue, "reset": self.reset,
            "status": self.state,
            "outputs": lambda: {"outputs": {str(k): str(v) for k, v in sorted(self.outputs().items())}},
        }


CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"   # fonts-noto-cjk
CJK_FONT_INDEX = 2                                                    # "Noto Sans CJK SC" in the collection


def sample_pdf(path: str | os.PathLike[str], pages: int = 2, title: str = "营业执照（副本）",
               reference: str = "LIC-2026-0001") -> Path:
    """Write a synthetic certificate PDF (for tests, benchmarks and the demo): on page i the lines
    ``{title}第{i}页`` (Chinese, embedded Noto Sans CJK SC) and ``GOVKIOSK TEST CERTIFICATE {reference} PAGE i/n``.
    Needs fpdf2 (a development dependency) and fonts-noto-cjk."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creator("govkiosk simulator")
    pdf.add_font("cjk", fname=CJK_FONT, collection_font_number=CJK_FONT_INDEX)
    for page in range(1, pages + 1):
        pdf.add_page()
        pdf.rect(15, 15, 180, 267)
        pdf.set_xy(25, 30)
        pdf.set_font("cjk", size=26)
        pdf.cell(text=f"{title}第{page}页")
        pdf.set_xy(25, 50)
        pdf.set_font("helvetica", size=12)
        pdf.cell(text=f"GOVKIOSK TEST CERTIFICATE {reference} PAGE {page}/{pages}")
    out = Path(path)
    pdf.output(str(out))
    return out


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    """``kiosk-sim licence-printer``-style entry: print the endpoints line, serve until ``stop_event``."""
    from drivers.sim.control import ControlServer

    host, port = getattr(args, "control", None) or ("127.0.0.1", 0)
    with LocalCupsd(out_dir=getattr(args, "out", None)) as cupsd:
        control = ControlServer(cupsd.handlers(), host, port).start()
        print(json.dumps({"server": cupsd.server, "queue": cupsd.queue, "port": cupsd.port,
                          "out": str(cupsd.out_dir), "control": control.address}), flush=True)
        try:
            stop_event.wait()
        finally:
            control.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.licence_printer.simulator`` is ``kiosk-sim licence-printer``."""
    from drivers.sim.cli import main as kiosk_sim

    return kiosk_sim(["licence-printer", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
