"""Shared fixtures: free ports, and running servers/simulators started the way the kiosk starts them."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# python-escpos leaves a tmpXXXX folder per import unless told where to cache (shared/setup-notes.md)
os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(ROOT / "var" / "escpos-cache"))
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", action="store_true", help="also run device contract suites on real hardware")


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
from typing import Any, Callable, Iterator  # noqa: E402

import yaml  # noqa: E402

from drivers.sim.process import ManagedProcess  # noqa: E402

DEMO_KIOSK_KEY = "test-kiosk-key"


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
    env = {"PLATFORM_DEMO_KIOSK_KEY": DEMO_KIOSK_KEY}
    if photos:
        env["PLATFORM_PHOTOS"] = str(folder / "photos.yaml")
        (folder / "photos.yaml").write_text(yaml.safe_dump({"identities": photos}), "utf-8")
    db = folder / "platform.db"
    proc = ManagedProcess([sys.executable, "-m", "service_platform.cli", "serve", "--db", f"sqlite:///{db}",
                           "--host", "127.0.0.1", "--port", "0"], "service-platform", start_timeout=30, env=env)
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
def make_profile(tmp_path: Path, platform_server: PlatformServer) -> Callable[..., Path]:
    """Write a copy of device_profiles/simulated.yaml pointing at the test platform, with overrides."""

    def make(**overrides: Any) -> Path:
        data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
        data["platform"]["url"] = platform_server.url
        data["platform"]["kiosk_key"] = DEMO_KIOSK_KEY
        data["platform"].pop("kiosk_key_env", None)
        data["kiosk"]["data_dir"] = str(tmp_path / "kiosk-data")
        data["kiosk"]["demo_controls"] = False
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
