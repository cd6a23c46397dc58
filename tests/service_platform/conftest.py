"""Fixtures: the REAL service platform started as a subprocess (`service-platform serve --port 0`), on SQLite and on
PostgreSQL (every test using ``platform``/``public``/``kiosk`` runs on both), httpx clients, the seeded citizens, a
settable clock for in-process apps.

PostgreSQL: a private server (``initdb`` + ``postgres`` from the Debian package ``postgresql``) in a temporary
directory, run as the non-root user ``postgres`` when the tests run as root, on a free loopback port, stopped by PID.
Missing binaries FAIL the run (no skips): CI installs the package.

The servers announce themselves (one JSON line on stdout / a connection that succeeds); we wait with a deadline (no
sleeps) and stop the processes by PID at the end. (Tests run with --import-mode=importlib, so helpers are handed out
as fixtures.)
"""
from __future__ import annotations

import datetime as dt
import glob
import itertools
import json
import os
import pwd
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

KIOSK_ID = "KSK-340302-0001"
# The kiosk signs with the session's demo key pair (tests/conftest.py: ``kiosk_key_pair``, ``kiosk_auth``); every
# server started here runs with ``--demo --demo-kiosk-public-key <its public key>``.

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
    db_url: str = ""
    log_path: Path | None = None
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return "postgresql" if self.db_url.startswith("postgres") else "sqlite"

    def engine(self) -> Engine:
        if self._engine is None:
            from service_platform.db import normalize_db_url

            self._engine = create_engine(normalize_db_url(self.db_url or str(self.db_path)), poolclass=NullPool)
        return self._engine

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read in the server's database (``:name`` parameters), on either backend."""
        with self.engine().connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine().begin() as conn:
            conn.execute(text(sql), params)

    def stop(self, timeout: float = 10.0) -> int:
        if self._engine is not None:
            self._engine.dispose()
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


def _demo_public_key_file() -> str:
    return os.path.join(os.path.dirname(os.environ["KIOSK_TEST_SIGNING_KEY"]), f"{KIOSK_ID}.pub")


def start_platform(db: str | Path, *extra: str, stderr_path: Path | None = None, timeout: float = 20.0,
                   db_path: Path | None = None, demo: bool = True) -> PlatformProcess:
    """``serve`` on ``db`` (with ``demo``: ``--demo`` and the test run's demo kiosk key enrolled)."""
    demo_args = ["--demo", "--demo-kiosk-public-key", _demo_public_key_file()] if demo else []
    cmd = [sys.executable, "-m", "service_platform.cli", "serve", "--db", str(db), "--port", "0", *demo_args, *extra]
    env = dict(os.environ)
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
                           db_path=db_path or Path(str(db).removeprefix("sqlite:///")), announcement=info,
                           db_url=str(db) if "://" in str(db) else "", log_path=stderr_path)


# --- PostgreSQL ----------------------------------------------------------------------------------------------------

def _pg_binary(name: str) -> str:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):  # Debian: newest version first
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"PostgreSQL server program {name!r} not found: apt-get install postgresql (tests need it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    user: str = "platform"
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "platform") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # fast shutdown: roll back, disconnect, exit
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(timeout: float = 30.0) -> PostgresServer:
    import psycopg

    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    run_as: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="platform-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root needs the user 'postgres' (created by the package postgresql)")
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    data = root / "data"
    subprocess.run([initdb, "-D", str(data), "-U", "platform", "--auth=trust", "-E", "UTF8", "--no-locale",
                    "--no-sync"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                   **run_as)
    for _attempt in range(3):
        port = _free_port()
        log = open(root / "postgres.log", "wb")
        proc = subprocess.Popen(
            [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(root),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, **run_as)
        log.close()
        server = PostgresServer(proc=proc, port=port, root=root)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="platform", dbname="postgres",
                                connect_timeout=2).close()
                return server
            except psycopg.OperationalError:
                time.sleep(0.05)  # polling a starting server, bounded by the deadline
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = (root / "postgres.log").read_text(errors="replace")
        if "could not bind" not in output and "Address already in use" not in output:
            shutil.rmtree(root, ignore_errors=True)
            pytest.fail(f"PostgreSQL did not start within {timeout} s:\n{output[-2000:]}")
    shutil.rmtree(root, ignore_errors=True)
    pytest.fail("PostgreSQL found no free port")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def new_db_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """new_db_url(backend) → the URL of a new, empty database on that backend."""
    counter = itertools.count()

    def make(backend: str) -> str:
        if backend == "postgresql":
            return request.getfixturevalue("postgres").create_database()
        return f"sqlite:///{tmp_path_factory.mktemp('db') / f'p{next(counter)}.db'}"

    return make


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


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, backend: str,
             new_db_url: Callable[[str], str]) -> Iterator[PlatformProcess]:
    """The real server on a fresh database of each backend (tests using it run twice)."""
    tmp = tmp_path_factory.mktemp(f"platform-{backend}")
    url = new_db_url(backend)
    db_path = Path(url.removeprefix("sqlite:///")) if backend == "sqlite" else tmp / "unused.db"
    # the whole suite opens sessions for many made-up citizens from one kiosk: no hourly limit in the way
    # (tests/security/test_identity_levels.py starts its own server with a small one)
    server = start_platform(url, "--max-citizens-per-hour", "100000", stderr_path=tmp / "server.log",
                            db_path=db_path)
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
def kiosk(platform: PlatformProcess, kiosk_auth: httpx.Auth) -> Iterator[httpx.Client]:
    """Authenticated as the demo kiosk: every request signed (KIOSK-ED25519-V1)."""
    with httpx.Client(base_url=platform.url, timeout=10, auth=kiosk_auth) as client:
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


def synthetic_id(n: int, birth: str = "19800101", region: str = "340302") -> str:
    """A made-up resident ID number with a valid GB 11643 check digit (sequence ``n``, 0–999)."""
    from service_platform.identity import check_digit

    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + check_digit(first17)


def register_citizen(server: PlatformProcess, id_number: str, name: str) -> None:
    """Add a made-up person to the server's population registry (sessions need the card to match it), once."""
    if not server.query("SELECT 1 FROM registered_citizens WHERE id_number = :n", n=id_number):
        server.execute("INSERT INTO registered_citizens (id_number, name, sex, birth_date, nation, address, photo) "
                       "VALUES (:n, :name, 'male', :born, NULL, '', 'placeholder')", n=id_number, name=name,
                       born=dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])))


@pytest.fixture(scope="session")
def registry() -> Callable[[PlatformProcess, str, str], None]:
    """registry(server, id_number, name): add a made-up person to that server's population registry."""
    return register_citizen


@pytest.fixture
def open_synthetic(kiosk: httpx.Client, platform: PlatformProcess) -> Callable[..., tuple[str, dict[str, str]]]:
    """open_synthetic(n) → (id number, Authorization header) for a made-up citizen with no data (added to the
    registry first: a session needs the card to match it)."""

    def _open(n: int, name: str = "测试员") -> tuple[str, dict[str, str]]:
        id_number = synthetic_id(n)
        register_citizen(platform, id_number, name)
        r = kiosk.post("/api/v1/citizen-sessions", json=session_body(id_number, name))
        assert r.status_code == 201, r.text
        return id_number, {"Authorization": f"Bearer {r.json()['token']}"}

    return _open


def file_renewal(client: Any, auth: dict[str, str], pickup: str = "window") -> dict[str, Any]:
    """File a driving-licence renewal for the citizen of ``auth`` (王建国 has the e-certificates it needs) through
    ``client`` (an httpx.Client or a TestClient); returns the 201 answer, with its pending 10-yuan order."""
    import uuid

    mine = {c["type_code"]: c["id"] for c in client.get("/api/v1/me/e-certificates", headers=auth).json()["items"]}
    r = client.post("/api/v1/me/applications", headers={**auth, "Idempotency-Key": str(uuid.uuid4())}, json={
        "service_code": "driving-licence-renewal",
        "form": {"licence_file_no": "230200123456", "pickup": pickup, "phone": "13905520004"},
        "materials": [{"index": 1, "e_certificate_id": mine["driving_licence"]},
                      {"index": 2, "e_certificate_id": mine["health_exam"]}, {"index": 3, "defer": True}],
        "commitment": True})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="session")
def renewal() -> Callable[..., dict[str, Any]]:
    """renewal(client, auth, pickup="window") → a new driving-licence renewal (see :func:`file_renewal`)."""
    return file_renewal


@pytest.fixture(scope="session")
def idem() -> Callable[[], dict[str, str]]:
    """idem() → a fresh Idempotency-Key header."""
    import uuid

    return lambda: {"Idempotency-Key": str(uuid.uuid4())}


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
