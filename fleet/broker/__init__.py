"""mosquitto for the fleet, started from the configuration templates beside this file (``mosquitto.conf.j2``,
``acl.j2``): used by the tests, the bench and the demo so they all run the broker the way production does.

``Mosquitto(workdir, ...).start()`` writes ``mosquitto.conf`` + ``acl`` into ``workdir``, runs ``mosquitto -c`` in
the foreground, waits until it accepts connections and ``stop()``s it by PID.

Who connects is authenticated — the username picks the ACL, so it must be proven: the rendering needs **client
certificates** (``tls_listener``: ``require_certificate`` + ``use_identity_as_username``, so the ACL's ``%u`` is the
certificate's CN; optionally a ``crlfile`` of revoked certificates) **or a password file** (``password_file``, made
with ``mosquitto_passwd``). Without either it refuses (:class:`BrokerConfigError`). ``anonymous=True`` adds a plain,
unauthenticated listener (the username taken as given) for tests and demos only, and only on a loopback address.
``dev_pki()`` makes a throw-away CA, a server certificate and one client certificate per kiosk (CN = kiosk id).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import jinja2

HERE = Path(__file__).resolve().parent
CONTROLLER_USER = "fleet-controller"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def render(template: str, **values: object) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(template).render(**values)


class BrokerConfigError(ValueError):
    """A broker configuration that would let clients in unauthenticated (or is otherwise unsafe)."""


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class TlsListener:
    """A listener that requires a client certificate issued by ``cafile``; its CN becomes the MQTT username.
    ``crlfile``: a PEM CRL from the same CA — certificates listed there are refused (revocation)."""

    port: int
    cafile: str
    certfile: str
    keyfile: str
    host: str = "127.0.0.1"
    crlfile: str | None = None
    tls: bool = True


@dataclass
class Mosquitto:
    """One mosquitto process. ``port`` 0 picks a free port (kept across ``restart()``) for the plain listener, which
    exists only with ``anonymous`` (loopback only: tests and demos) or a ``password_file``; with only a
    ``tls_listener`` the broker accepts client certificates and nothing else."""

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    controller_users: Iterable[str] = (CONTROLLER_USER,)
    tls_listener: TlsListener | None = None
    password_file: str | None = None
    anonymous: bool = False
    persistence: bool = False
    max_queued_messages: int = 100000
    log_to_file: bool = True
    proc: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)

    @property
    def plain_listener(self) -> bool:
        return self.anonymous or bool(self.password_file)

    @property
    def url(self) -> str:
        """The plain listener's URL (``anonymous`` or ``password_file`` brokers)."""
        if not self.plain_listener:
            raise BrokerConfigError("this broker has no plain listener: use tls_url(cert, key)")
        return f"mqtt://{self.host}:{self.port}"

    def tls_url(self, cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> str:
        """``mqtts://`` URL of the TLS listener for a client holding this certificate and key (fleet.mqtt's form)."""
        tls = self.tls_listener
        if tls is None:
            raise BrokerConfigError("this broker has no TLS listener")
        return f"mqtts://{tls.host}:{tls.port}?ca={tls.cafile}&cert={cert}&key={key}"

    def check(self) -> None:
        """Refuse what would let anyone in: no authentication at all, or an anonymous listener off loopback."""
        if self.anonymous and not is_loopback(self.host):
            raise BrokerConfigError(f"an anonymous listener only on a loopback address (tests, demo), not on "
                                    f"{self.host!r}: use client certificates (tls_listener) or a password_file")
        if not (self.anonymous or self.password_file or self.tls_listener):
            raise BrokerConfigError("the broker needs client certificates (tls_listener) or a password_file; "
                                    "anonymous=True is for tests and demos on loopback only")
        if self.anonymous and self.password_file:
            raise BrokerConfigError("anonymous and password_file exclude each other")

    def write_config(self) -> Path:
        self.check()
        acl = self.workdir / "acl"
        acl.write_text(render("acl.j2", controller_users=list(self.controller_users)))
        listeners: list[object] = []
        if self.plain_listener:
            listeners.append({"port": self.port, "host": self.host, "tls": False})
        if self.tls_listener:
            listeners.append(self.tls_listener)
        persistence_dir = self.workdir / "persist" if self.persistence else None
        if persistence_dir:
            persistence_dir.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(render("mosquitto.conf.j2", listeners=listeners, password_file=self.password_file,
                               allow_anonymous=self.anonymous,
                               acl_file=str(acl), persistence_dir=str(persistence_dir) if persistence_dir else "",
                               log_dest=f"file {self.workdir / 'mosquitto.log'}" if self.log_to_file else "stdout",
                               max_queued_messages=self.max_queued_messages,
                               run_as=pwd.getpwuid(os.geteuid()).pw_name))
        return conf

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        conf = self.write_config()
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        ports = ([self.port] if self.plain_listener else []) + ([self.tls_listener.port] if self.tls_listener else [])
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = (self.workdir / "mosquitto.log")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err} {tail}")
            if all(_accepts(self.host, p) for p in ports):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {ports} within {timeout} s")
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> "Mosquitto":
        self.stop()
        deadline = time.monotonic() + 5
        port = self.port if self.plain_listener else self.tls_listener.port  # type: ignore[union-attr]
        while _accepts(self.host, port) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.start()

    def log_text(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started the broker dies, even by kill -9 (no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class DevPki:
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]


def dev_pki(directory: str | os.PathLike[str], client_names: Iterable[str], server_name: str = "127.0.0.1",
            days: int = 30) -> DevPki:
    """A throw-away CA with a server certificate (SAN = ``server_name``) and client certificates whose CN is the
    name given (a kiosk id, or ``fleet-controller``). For tests and demos; production uses the real PKI."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
        path.chmod(0o644)  # mosquitto may run as another user; these are throw-away test keys
        return path

    def issue(cn: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
              issuer_name: x509.Name | None, ca: bool = False, server: bool = False) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kiosk fleet dev"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            try:
                san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(cn))
            except ValueError:
                san = x509.DNSName(cn)
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        elif not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue("kiosk fleet dev CA", ca_key, ca_key, None, ca=True)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(name, key, ca_key, ca_cert.subject, server=server)
        stem = "server" if server else name
        cert_path = directory / f"{stem}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, write_key(key, directory / f"{stem}.key")

    server_cert, server_key = leaf(server_name, server=True)
    clients = {name: leaf(name) for name in client_names}
    return DevPki(ca_path, server_cert, server_key, clients)
