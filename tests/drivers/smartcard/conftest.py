"""Fixtures for the smart card tests: the real ``pcscd`` with vsmartcard's ``vpcd`` reader, our virtual card process
(``kiosk-sim smartcard``) connected to it, and the real PC/SC driver.

pcscd's socket (/run/pcscd/pcscd.comm) is fixed, so there is one pcscd per machine: when one already runs with the
vpcd reader it is used as it is (stock config: vpcd on TCP 35963); otherwise the session starts ``pcscd -f -c <dir>``
itself with a vpcd reader config of its own and stops it by PID at the end. (No ``-a``/``-d``: those would log APDUs,
i.e. card data.)

Our config puts vpcd on TCP ``TEST_VPCD_PORT``, below the kernel's ephemeral range (32768–60999): the stock 35963 lies
inside it, so any free-port server or client socket of another test could hold it, and then vpcd's bind fails
("Address already in use") while pcscd runs on without the reader — seen once in CI.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# hypothesis keeps a cache folder; keep it under the ignored var/ instead of the repository root
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      str(Path(__file__).resolve().parents[3] / "var" / "hypothesis"))

from drivers.base import MediaState  # noqa: E402
from drivers.idcard.identity import IdentityDocument  # noqa: E402
from drivers.idcard.simulator import load_identities  # noqa: E402
from drivers.sim.process import ManagedProcess, SimulatorProcess  # noqa: E402
from drivers.smartcard.pcsc_reader import PcscSmartCardReader  # noqa: E402

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_READER = "Virtual PCD 00 00"
VPCD_READER_2 = "Virtual PCD 00 01"
STOCK_VPCD_PORT = 35963
#: vpcd's first slot when this session starts pcscd (the second slot is the next port); outside the ephemeral range
TEST_VPCD_PORT = 29963
#: the vpcd port the card processes connect to (STOCK_VPCD_PORT when a pcscd was already running)
vpcd_port = TEST_VPCD_PORT


def vpcd_conf_text(port: int) -> str:
    """A reader.conf entry for vpcd on TCP ``port`` (the same as Debian's /etc/reader.conf.d/vpcd but the port)."""
    return (f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x{port:04X}\n'
            f"LIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{port:04X}\n")


INSTALL_HINT = ("install them with scripts/setup.sh, or: apt-get install pcscd vsmartcard-vpcd libpcsclite-dev swig; "
                "pip install pyscard")


def _unavailable(reason: str, config: pytest.Config) -> None:
    """Without pcscd/vpcd the PC/SC tests cannot run: a failure with the reason and how to install them, whatever the
    environment says. Only an explicit ``--allow-missing-pcsc`` turns it into a skip (still with the reason)."""
    message = f"PC/SC test environment missing: {reason} — {INSTALL_HINT}"
    if config.getoption("--allow-missing-pcsc", default=False):
        pytest.skip(message + " (skipped: --allow-missing-pcsc)")
    pytest.fail(message + " (or pass --allow-missing-pcsc to skip these tests on purpose)", pytrace=False)


def listed_readers() -> list[str] | None:
    """The readers pcscd lists, or None when no pcscd answers."""
    from smartcard import scard as sc

    hr, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        return None
    try:
        hr, readers = sc.SCardListReaders(context, [])
        return list(readers) if hr == sc.SCARD_S_SUCCESS else []
    finally:
        sc.SCardReleaseContext(context)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class Pcscd:
    """The pcscd the tests use; ``started`` when this session started it (then ``restart()`` is allowed)."""

    def __init__(self, conf_dir: Path | None, log_path: Path | None) -> None:
        self.conf_dir = conf_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        return self.proc is not None

    def start(self, timeout: float = 15.0) -> None:
        assert self.conf_dir is not None and self.log_path is not None
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["pcscd", "-f", "-c", str(self.conf_dir)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while VPCD_READER not in (listed_readers() or []):
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pcscd exited with {code}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pcscd did not list {VPCD_READER!r} within {timeout} s; its log ends: {tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 5
        while listed_readers() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Pcscd]:
    global vpcd_port
    try:
        import smartcard  # noqa: F401
    except ImportError:
        _unavailable("pyscard is not installed", pytestconfig)
    readers = listed_readers()
    if readers is not None:
        if VPCD_READER not in readers:
            _unavailable(f"a pcscd already runs without the vpcd reader (lists {readers}); install "
                         f"vsmartcard-vpcd and restart pcscd, or stop it and let the tests start their own",
                         pytestconfig)
        vpcd_port = STOCK_VPCD_PORT
        yield Pcscd(None, None)
        return
    if shutil.which("pcscd") is None:
        _unavailable("pcscd is not installed (no pcscd on PATH)", pytestconfig)
    if not VPCD_DRIVER.exists():
        _unavailable(f"the vpcd reader driver is not installed ({VPCD_DRIVER} missing)", pytestconfig)
    conf = tmp_path_factory.mktemp("pcscd") / "reader.conf.d"
    conf.mkdir()
    (conf / "vpcd").write_text(vpcd_conf_text(TEST_VPCD_PORT))
    vpcd_port = TEST_VPCD_PORT
    daemon = Pcscd(conf, conf.parent / "pcscd.log")
    daemon.start()
    try:
        yield daemon
    finally:
        from drivers.smartcard.watcher import stop_monitor_thread

        stop_monitor_thread()   # pyscard's monitor would print a traceback when pcscd goes
        daemon.stop()


def _systemd_pcscd_active() -> bool:
    """Whether systemd manages pcscd here (socket activation on a stock Debian starts one on the first client)."""
    if shutil.which("systemctl") is None:
        return False
    states = subprocess.run(["systemctl", "is-active", "pcscd.socket", "pcscd.service"], capture_output=True,
                            text=True, timeout=10).stdout.split()
    return "active" in states


def _running_pcscd_pid() -> int | None:
    """The running pcscd's pid: its pid file (pcscd writes one when it daemonises), else a look through /proc."""
    try:
        pid = int(Path("/run/pcscd/pcscd.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        pass
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "pcscd" \
                    and " Z " not in (proc / "stat").read_text():
                return int(proc.name)
        except OSError:
            continue
    return None


@pytest.fixture
def restartable_pcscd(pcscd: Pcscd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """A pcscd this test may stop and start. The session's own one as it is; when the session found one already
    running, and systemd runs it (pcscd.socket, socket activation), the test stops the socket and the service, runs a
    pcscd of its own with vpcd on the same port for the test, and gives the machine back to systemd after (socket
    started again). A pcscd that nobody here can restart (started by hand or by another test run) is a failure with
    the reason — never a silent skip."""
    if pcscd.started:
        yield pcscd
        return
    if not _systemd_pcscd_active():
        pid = _running_pcscd_pid()
        pytest.fail(f"a pcscd not started by this test session is running (pid {pid or 'unknown'}) and systemd does "
                    f"not manage it, so this test cannot restart it; stop it (kill {pid or '<pid>'}) and run the "
                    f"tests again: they start their own pcscd", pytrace=False)
    subprocess.run(["systemctl", "stop", "pcscd.socket", "pcscd.service"], check=True, timeout=30)
    conf = tmp_path_factory.mktemp("pcscd-takeover") / "reader.conf.d"
    conf.mkdir()
    (conf / "vpcd").write_text(vpcd_conf_text(STOCK_VPCD_PORT))   # the card processes already use the stock port
    own = Pcscd(conf, conf.parent / "pcscd.log")
    try:
        own.start()
        yield own
    finally:
        from drivers.smartcard.watcher import stop_monitor_thread

        stop_monitor_thread()
        own.stop()
        subprocess.run(["systemctl", "start", "pcscd.socket"], check=False, timeout=30)


def start_card_process(*args: str) -> ManagedProcess:
    """``kiosk-sim smartcard``: the virtual card process, connected to pcscd's vpcd reader (``args`` may name another
    ``--tcp``: the last one given wins)."""
    return SimulatorProcess("smartcard", "--tcp", f"127.0.0.1:{vpcd_port}", "--vpcd-base", str(vpcd_port), *args)


class CardSlot:
    """The virtual card process, as tests use it."""

    def __init__(self, proc: ManagedProcess) -> None:
        self.proc = proc
        self.endpoints: dict[str, Any] = proc.endpoints

    @property
    def reader_name(self) -> str:
        return self.endpoints["reader"]

    def control(self, cmd: str, **args: Any) -> dict[str, Any]:
        from drivers.sim.control import send_command

        reply = send_command(self.endpoints["control"], cmd, **args)
        return reply

    def must(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = self.control(cmd, **args)
        assert reply["ok"], reply
        return reply


@pytest.fixture(scope="session")
def _card_process(pcscd: Pcscd) -> Iterator[CardSlot]:
    proc = start_card_process()
    try:
        yield CardSlot(proc)
    finally:
        proc.stop()


def wait_media(reader: PcscSmartCardReader, media: MediaState, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while reader.status().media is not media:
        if time.monotonic() > deadline:
            raise AssertionError(f"reader media did not become {media.value} within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def make_reader() -> Iterator[Callable[..., PcscSmartCardReader]]:
    readers: list[PcscSmartCardReader] = []

    def make(open_: bool = True, **settings: Any) -> PcscSmartCardReader:
        reader = PcscSmartCardReader(**settings)
        readers.append(reader)
        return reader.open() if open_ else reader  # type: ignore[return-value]

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture
def card(_card_process: CardSlot, make_reader: Callable[..., PcscSmartCardReader]) -> CardSlot:
    """The virtual card process with the slot empty, no fault armed, and pcscd agreeing the slot is empty."""
    _card_process.must("clear_faults")
    _card_process.must("remove_card")
    wait_media(make_reader(reader=_card_process.reader_name), MediaState.NOT_PRESENT)
    return _card_process


@pytest.fixture
def reader(card: CardSlot, make_reader: Callable[..., PcscSmartCardReader]) -> PcscSmartCardReader:
    return make_reader(reader=card.reader_name)


@pytest.fixture
def insert(card: CardSlot, reader: PcscSmartCardReader) -> Callable[..., dict[str, Any]]:
    """``insert(card="bank", bank=...)``: put a card in and wait until pcscd sees it."""

    def put(**args: Any) -> dict[str, Any]:
        if reader.status().media is not MediaState.NOT_PRESENT:   # a card is in: take it out first, as a person would
            card.must("remove_card")
            wait_media(reader, MediaState.NOT_PRESENT)
        reply = card.must("insert_card", **args)
        deadline = time.monotonic() + 5
        while not card.must("status")["connected"]:     # the card is in vpcd's slot (after the swap gap) …
            assert time.monotonic() < deadline, "the virtual card did not connect to vpcd"
            time.sleep(0.02)
        wait_media(reader, MediaState.PRESENT)          # … and pcscd has seen it
        return reply

    return put


@pytest.fixture(scope="session")
def identities() -> dict[str, IdentityDocument]:
    return load_identities()


@pytest.fixture
def start_card() -> Iterator[Callable[..., ManagedProcess]]:
    """``start_card(*args)``: another virtual card process (stopped after the test)."""
    procs: list[ManagedProcess] = []

    def start(*args: str) -> ManagedProcess:
        proc = start_card_process(*args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()
