"""A throw-away PostgreSQL server for tests and benches: ``initdb`` into a temporary folder and ``postgres`` in the
foreground on a free loopback port, run as a non-root user (``postgres`` when started by root), stopped by PID.
Needs Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``); starting does not touch the system
cluster or systemd."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    def __init__(self, base: str | os.PathLike[str] | None = None, user: str | None = None) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.run_as = user or ("postgres" if os.geteuid() == 0 else None)
        self.base = Path(tempfile.mkdtemp(prefix="fleet-pg-", dir=str(base) if base else None))
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.dbname = "fleet"

    @property
    def url(self) -> str:
        user = self.run_as or pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql://{user}@127.0.0.1:{self.port}/{self.dbname}"

    def _demote(self) -> None:
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.setgid(pw.pw_gid)
            os.initgroups(self.run_as, pw.pw_gid)
            os.setuid(pw.pw_uid)

    def start(self, timeout: float = 30.0) -> "TempPostgres":
        self.sock.mkdir()
        self.base.chmod(0o755)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            for p in (self.base, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-E", "UTF8",
                        "--no-instructions", "-U", self.run_as or pwd.getpwuid(os.geteuid()).pw_name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                       preexec_fn=self._demote, cwd=str(self.base))
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.sock), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=50", "-c", "shared_buffers=64MB"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.base / "postgres.log", "wb"),
            env=env, preexec_fn=self._demote, start_new_session=True, cwd=str(self.base))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (self.base / "postgres.log").read_text(errors="replace"))
            rc = subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            if rc == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not get ready")
            time.sleep(0.05)
        subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        self.run_as or pwd.getpwuid(os.geteuid()).pw_name, self.dbname], check=True, env=env,
                       preexec_fn=self._demote, cwd=str(self.base))
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
