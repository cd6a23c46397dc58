"""Shared fixtures: free ports, and running servers/simulators started the way the kiosk starts them."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.printed_links import PRINTED_LINES

ROOT = Path(__file__).resolve().parent.parent
# python-escpos leaves a tmpXXXX folder per import unless told where to cache (shared/setup-notes.md). One folder per
# pytest-xdist worker: python-escpos writes its pickle in place, and on a fresh checkout both workers wrote and read one
# pickle at once ("EOFError: Ran out of input" at collection). A worker inherits the controller's environment, so its
# own folder is set, not defaulted.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER or "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(ROOT / "var" / "escpos-cache" / (_WORKER or "main"))
Path(os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")

# The unified-payment provider's key pair for this test run: every platform the tests start (they inherit the
# environment) trusts its public key; the ``wallet`` fixture signs notifications with the private key, as the
# citizen's wallet provider would (drivers/payment/wallet_sim.py).
from drivers.payment.wallet_sim import WalletSim  # noqa: E402

PAYMENT_PROVIDER = WalletSim()
os.environ["PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY"] = PAYMENT_PROVIDER.public_pem


@pytest.fixture(scope="session")
def wallet() -> WalletSim:
    """The simulated wallet / payment provider trusted by the test platforms: ``wallet.pay(url, order_no,
    amount_fen, method)``, ``wallet.notification(...)`` → (body, headers)."""
    return PAYMENT_PROVIDER


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", action="store_true", help="also run device contract suites on real hardware")
    parser.addoption("--allow-missing-pcsc", action="store_true",
                     help="skip (instead of fail) the PC/SC tests when pcscd, vpcd or pyscard is missing")


#: The test modules that talk to pcscd: one per machine, at its fixed socket, and some tests stop and restart it. Under
#: pytest-xdist (scripts/test.sh) they are one unit of work, run on one worker one after another.
PCSCD_MODULES = ("tests/drivers/smartcard/", "tests/e2e/test_social_security_card_journey.py")


def _work_unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return "pcscd" if module.startswith(PCSCD_MODULES) else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` as pytest-xdist does it — a test module runs whole on one worker, so its module-scoped kiosk,
    platform or broker starts once — except that the pcscd modules are one unit. (xdist's own ``loadgroup`` with
    ``xdist_group`` marks would say this, but on pytest 9.2 it silently stops grouping: pytest-dev/pytest-xdist#1386.)
    Other ``--dist`` modes are left to xdist."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses pcscd outside :data:`PCSCD_MODULES` is a collection error (it would race the others under
    xdist). On an xdist worker the longest units go first — the e2e modules, then the pcscd unit — so the run does not
    end with one worker alone on a long module (scripts/test.sh asks xdist to keep this order)."""
    strays = sorted({item.nodeid.split("::", 1)[0] for item in items if "pcscd" in getattr(item, "fixturenames", ())
                     and _work_unit(item.nodeid) != "pcscd"})
    if strays:
        raise pytest.UsageError(f"tests using pcscd outside PCSCD_MODULES (tests/conftest.py): {', '.join(strays)}")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: (0 if item.nodeid.startswith("tests/e2e/") else
                                     1 if _work_unit(item.nodeid) == "pcscd" else 2))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: keep a worker's tally of the QR links its e2e kiosks printed (tests/e2e/conftest.py)."""
    node.config.stash.setdefault(PRINTED_LINES, []).extend(getattr(node, "workeroutput", {}).get(
        "printed_links", []))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(PRINTED_LINES, [])
    if lines:
        terminalreporter.write_sep("-", "QR links printed by the e2e kiosks")
        for line in sorted(lines):
            terminalreporter.write_line(line)


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """A folder under test-output/ named after the test, kept after the run (screenshots, receipts)."""
    path = ROOT / "test-output" / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


class FakeClock:
    """A clock tests move by hand (``now += 5`` or ``advance(5)``), safe to read from worker threads."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def python() -> str:
    return sys.executable


# --- servers started the way the demo starts them ---------------------------------------------------------------------
import time  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

import yaml  # noqa: E402

from drivers.sim.process import ManagedProcess  # noqa: E402

# The demo kiosk's Ed25519 signing key pair for this test run (KIOSK-ED25519-V1): generated once, the private key
# written 0600 into a private temporary folder. Every platform the tests start runs with ``--demo
# --demo-kiosk-public-key <public key file>``; clients sign with ``kiosk_auth`` (an httpx.Auth); profiles name the
# private key as ``platform.key_file``; child processes find its path in env KIOSK_TEST_SIGNING_KEY.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from kiosk.request_signing import KioskRequestSigner, public_key_raw, write_private_key  # noqa: E402

DEMO_KIOSK_ID = "KSK-340302-0001"


@dataclass(frozen=True)
class KioskKeyPair:
    """One kiosk's signing key pair on disk: ``signer()`` signs httpx requests, ``platform_args`` enrol it as the
    demo kiosk's key of a ``service-platform serve``."""

    kiosk_id: str
    private_key_file: Path
    public_key_file: Path
    key_id: str
    public_key_b64: str

    def signer(self) -> KioskRequestSigner:
        return KioskRequestSigner.from_file(self.kiosk_id, self.private_key_file)

    @property
    def platform_args(self) -> list[str]:
        return ["--demo", "--demo-kiosk-public-key", str(self.public_key_file)]


def make_kiosk_key_pair(folder: Path, kiosk_id: str = DEMO_KIOSK_ID) -> KioskKeyPair:
    """A new key pair for ``kiosk_id`` in ``folder``: ``<id>.key`` (PEM, 0600) and ``<id>.pub`` (base64 raw key)."""
    import base64

    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"{kiosk_id}.key"
    key = write_private_key(private)
    raw = public_key_raw(key)
    public = folder / f"{kiosk_id}.pub"
    public.write_text(base64.b64encode(raw).decode("ascii") + "\n", "ascii")
    signer = KioskRequestSigner(kiosk_id, key)
    return KioskKeyPair(kiosk_id, private, public, signer.key_id, base64.b64encode(raw).decode("ascii"))


_KEY_DIR = Path(tempfile.mkdtemp(prefix="kiosk-test-keys-"))
atexit.register(shutil.rmtree, _KEY_DIR, True)
DEMO_KIOSK_KEYS = make_kiosk_key_pair(_KEY_DIR)
os.environ["KIOSK_TEST_SIGNING_KEY"] = str(DEMO_KIOSK_KEYS.private_key_file)


@pytest.fixture(scope="session")
def kiosk_key_pair() -> KioskKeyPair:
    """The demo kiosk's key pair, enrolled on every platform the tests start."""
    return DEMO_KIOSK_KEYS


@pytest.fixture(scope="session")
def kiosk_auth(kiosk_key_pair: KioskKeyPair) -> KioskRequestSigner:
    """``httpx.Client(..., auth=kiosk_auth)``: requests signed as the demo kiosk."""
    return kiosk_key_pair.signer()


@pytest.fixture(scope="session")
def new_kiosk_key_pair(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], KioskKeyPair]:
    """new_kiosk_key_pair(kiosk_id) → a fresh key pair for another kiosk (enrol it with ``service-platform kiosk
    add``)."""
    return lambda kiosk_id: make_kiosk_key_pair(tmp_path_factory.mktemp("kiosk-key"), kiosk_id)


class PlatformServer:
    def __init__(self, proc: ManagedProcess, db_path: Path) -> None:
        self.proc = proc
        self.url: str = proc.endpoints["url"]
        self.db_path = db_path

    def query(self, sql: str, *params: Any) -> list[tuple]:
        import sqlite3

        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()


def start_platform_server(folder: Path, photos: dict[str, str] | None = None) -> PlatformServer:
    """``service-platform serve`` on a free loopback port with a fresh SQLite file in ``folder``; ``photos`` maps ID
    numbers to image files served as their registered photos (face checks need a real face)."""
    env: dict[str, str] = {}
    if photos:
        env["PLATFORM_PHOTOS"] = str(folder / "photos.yaml")
        (folder / "photos.yaml").write_text(yaml.safe_dump({"identities": photos}), "utf-8")
    db = folder / "platform.db"
    proc = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", f"sqlite:///{db}",
                           "--host", "127.0.0.1", "--port", "0", *DEMO_KIOSK_KEYS.platform_args], "service-platform",
                           start_timeout=30, env=env)
    return PlatformServer(proc, db)


@pytest.fixture(scope="session")
def make_platform_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PlatformServer]]:
    """``make_platform_server(photos=None)``: another platform (stopped at the end of the session); a module
    overrides ``platform_server`` with one when it needs other seed data, e.g. real registered photos."""
    started: list[PlatformServer] = []

    def make(photos: dict[str, str] | None = None) -> PlatformServer:
        server = start_platform_server(tmp_path_factory.mktemp("platform"), photos)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.proc.stop()


@pytest.fixture(scope="session")
def platform_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServer]:
    """The reference service platform on a free loopback port with a fresh SQLite file."""
    server = start_platform_server(tmp_path_factory.mktemp("platform"))
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
def list_technician(platform_server: PlatformServer) -> Iterator[Callable[[str, str, str], None]]:
    """``list_technician(kiosk_id, card_number, pin)``: list a technician for a kiosk on the test platform (what
    ``service-platform technician add`` does, in-process: only the card number's hash and the PIN's hash are kept).
    The listings are removed after the test: the platform is shared, and a card listed here (a synthetic citizen's,
    say) must be a citizen's card again for the next test."""
    from sqlalchemy import create_engine, delete
    from sqlalchemy.orm import Session

    from service_platform.db import utcnow
    from service_platform.technicians import Technician, add_technician, card_hash

    added: list[tuple[str, str]] = []
    engine = create_engine(f"sqlite:///{platform_server.db_path}")

    def add(kiosk_id: str, number: str, pin: str) -> None:
        with Session(engine) as db:
            add_technician(db, kiosk_id, card_hash(number), pin, "", utcnow())
            db.commit()
        added.append((kiosk_id, card_hash(number)))

    try:
        yield add
        with Session(engine) as db:
            for kiosk_id, hashed in added:
                db.execute(delete(Technician).where(Technician.kiosk_id == kiosk_id, Technician.card_hash == hashed))
            db.commit()
    finally:
        engine.dispose()


@pytest.fixture
def make_profile(tmp_path: Path, platform_server: PlatformServer) -> Callable[..., Path]:
    """Write a copy of device_profiles/simulated.yaml pointing at the test platform, with overrides."""

    def make(**overrides: Any) -> Path:
        data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
        data["platform"]["url"] = platform_server.url
        data["platform"]["key_file"] = str(DEMO_KIOSK_KEYS.private_key_file)
        data["kiosk"]["data_dir"] = str(tmp_path / "kiosk-data")
        data["kiosk"]["demo_controls"] = False
        # no restart at a time of day: a test run at the profile's quiet hour (03:30) must not see its kiosk leave;
        # a test of the nightly run sets it (kiosk__nightly_restart_at="HH:MM")
        data["kiosk"].pop("nightly_restart_at", None)
        for dotted, value in overrides.items():
            node = data
            *parents, last = dotted.split("__")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        path = tmp_path / "profile.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
        return path

    return make


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes (then fail, saying what)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for
