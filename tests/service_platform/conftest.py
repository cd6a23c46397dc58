"""Fixtures: the REAL service platform started as a subprocess (`service-platform serve --port 0`), httpx clients,
the seeded citizens, a settable clock for in-process apps.

The server announces itself with one JSON line on stdout; we wait for it with a deadline (no sleeps) and stop the
process by PID at the end. (Tests run with --import-mode=importlib, so helpers are handed out as fixtures.)
"""
from __future__ import annotations

import datetime as dt
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

KIOSK_ID = "KSK-340302-0001"
KIOSK_KEY = "test-kiosk-key-7f3a"  # given to the server through PLATFORM_DEMO_KIOSK_KEY

# The synthetic citizens of the seed and their application numbers (see service_platform/seed/demo.yaml).
CITIZENS: dict[str, tuple[str, list[str]]] = {
    "340302195803172018": ("张明华", ["SP20261029000103", "SP20261027000102", "SP20261012000101"]),
    "35010219490822102X": ("李秀英", ["SP20261030000202", "SP20261013000201"]),
    "230202197511053015": ("王建国", ["SP20261009000301"]),
    "520302199002144027": ("陈静怡", ["SP20261028000401", "SP20261015000402"]),
    "530102198306301518": ("杨志强", ["SP20261026000501"]),
    "810000199205082049": ("黄嘉欣", ["SP20261021000601"]),
    "340302194501013033": ("赵德顺", ["SP20261016000701"]),
}


@dataclass
class PlatformProcess:
    proc: subprocess.Popen[bytes]
    url: str
    pid: int
    db_path: Path
    announcement: dict[str, Any]

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError(f"service-platform printed no URL line within {timeout} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"service-platform exited with {proc.wait()} before announcing its URL")
            data += chunk
    finally:
        sel.close()
    return data.split(b"\n", 1)[0]


def start_platform(db: str | Path, *extra: str, stderr_path: Path | None = None, timeout: float = 20.0,
                   db_path: Path | None = None) -> PlatformProcess:
    cmd = [sys.executable, "-m", "service_platform.cli", "serve", "--db", str(db), "--port", "0", *extra]
    env = {**os.environ, "PLATFORM_DEMO_KIOSK_KEY": KIOSK_KEY}
    stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=env)
    finally:
        if stderr_path:
            stderr.close()  # type: ignore[union-attr]
    try:
        line = _read_line(proc, timeout)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    info = json.loads(line)
    return PlatformProcess(proc=proc, url=info["url"], pid=info["pid"],
                           db_path=db_path or Path(str(db).removeprefix("sqlite:///")), announcement=info)


def session_body(id_number: str, name: str, kind: str = "resident_id", method: str = "card+face",
                 face_match: bool | None = True) -> dict[str, Any]:
    return {"id_number": id_number, "name": name, "document_kind": kind,
            "verification": {"method": method, "face_match": face_match}}


class FakeClock:
    """A settable clock for in-process apps (session expiry without sleeping)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    tmp = tmp_path_factory.mktemp("platform")
    db_path = tmp / "p.db"
    server = start_platform(f"sqlite:///{db_path}", stderr_path=tmp / "server.log", db_path=db_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def public(platform: PlatformProcess) -> Iterator[httpx.Client]:
    """No credentials: catalogue reads and public progress."""
    with httpx.Client(base_url=platform.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def kiosk(platform: PlatformProcess) -> Iterator[httpx.Client]:
    """Authenticated as the demo kiosk."""
    with httpx.Client(base_url=platform.url, timeout=10,
                      headers={"X-Kiosk-Id": KIOSK_ID, "X-Kiosk-Key": KIOSK_KEY}) as client:
        yield client


@pytest.fixture
def open_session(kiosk: httpx.Client) -> Callable[[str], dict[str, str]]:
    """open_session(id_number) → Authorization header of a fresh citizen session for that seeded citizen."""

    def _open(id_number: str) -> dict[str, str]:
        name = CITIZENS[id_number][0]
        kind = "hmt_residence_permit" if id_number.startswith("81") else "resident_id"
        r = kiosk.post("/api/v1/citizen-sessions", json=session_body(id_number, name, kind))
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    return _open


@pytest.fixture(scope="session")
def clock_factory() -> type[FakeClock]:
    """FakeClock, for fixtures of any scope."""
    return FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def citizens() -> dict[str, tuple[str, list[str]]]:
    """id number → (name, application numbers newest first), as seeded."""
    return CITIZENS


@pytest.fixture(scope="session")
def kiosk_id() -> str:
    return KIOSK_ID


@pytest.fixture(scope="session")
def start_server() -> Callable[..., PlatformProcess]:
    """start_server(db, *extra_args) → a running PlatformProcess (the caller stops it)."""
    return start_platform


@pytest.fixture(scope="session")
def make_session_body() -> Callable[..., dict[str, Any]]:
    return session_body


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``citizen_id``: every seeded citizen; ``seeded_application``: every (id number, name, number)."""
    if "citizen_id" in metafunc.fixturenames:
        metafunc.parametrize("citizen_id", list(CITIZENS))
    if "seeded_application" in metafunc.fixturenames:
        apps = [(id_number, name, number) for id_number, (name, numbers) in CITIZENS.items() for number in numbers]
        metafunc.parametrize("seeded_application", apps, ids=[a[2] for a in apps])
