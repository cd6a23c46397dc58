"""The kiosk's side of scheme ``KIOSK-ED25519-V1``: every platform request signed with the kiosk's own Ed25519 key.

The platform implements the same wire format on its own (it shares no code with the kiosk; see
``service_platform/README.md``). Headers: ``X-Kiosk-Id``, ``X-Kiosk-Key-Id`` (first 16 hex characters of SHA-256 of
the raw 32-byte public key), ``X-Kiosk-Timestamp`` (Unix seconds), ``X-Kiosk-Nonce`` (22 base64url characters, 128
random bits) and ``X-Kiosk-Signature`` (standard base64 of the 64-byte signature) over these lines joined by ``\\n``::

    KIOSK-ED25519-V1, kiosk id, key id, METHOD, raw path (percent-encoded, no query), raw query (may be empty),
    timestamp, nonce, lowercase hex SHA-256 of the body bytes

``kiosk keygen --out FILE`` writes a new private key (PEM, mode 0600) and prints the public key and key id a
technician enrols with ``service-platform kiosk add``; the profile names the file as ``platform.key_file``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Generator
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# the key file named by the profile (read and checked below the profile loader; re-exported for the kiosk)
from device_profiles.signing_key import SigningKeyError, check_key_file_mode, load_private_key  # noqa: F401

SCHEME = "KIOSK-ED25519-V1"


def public_key_raw(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def write_private_key(path: str | os.PathLike[str], key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """Write ``key`` (default: a new one) as PKCS#8 PEM, created with mode 0600; refuses to overwrite a file."""
    key = key or Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    return key


def key_pair_files(folder: str | os.PathLike[str], stem: str = "kiosk-platform") -> tuple[Path, Path]:
    """``(private, public)`` key files under ``folder`` for a demo or bench kiosk: the private key PEM (0600, made on
    first use), and the public key as base64 of the raw 32 bytes (rewritten from the private key each call) — what
    ``service-platform kiosk add --public-key`` and ``serve --demo-kiosk-public-key`` read."""
    private, public = Path(folder) / f"{stem}.key", Path(folder) / f"{stem}.pub"
    key = load_private_key(private) if private.exists() else write_private_key(private)
    public.write_text(base64.b64encode(public_key_raw(key)).decode("ascii") + "\n", "ascii")
    return private, public


def public_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def string_to_sign(kiosk_id: str, key_id: str, method: str, raw_path: str, query: str, timestamp: int, nonce: str,
                   body: bytes) -> bytes:
    return "\n".join([SCHEME, kiosk_id, key_id, method.upper(), raw_path, query, str(timestamp), nonce,
                      hashlib.sha256(body).hexdigest()]).encode("utf-8")


class KioskRequestSigner(httpx.Auth):
    """httpx auth that signs every request (``httpx.Client(auth=KioskRequestSigner(...))``); thread-safe."""

    requires_request_body = True

    def __init__(self, kiosk_id: str, private_key: Ed25519PrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        self.kiosk_id = kiosk_id
        self._key = private_key
        self.public_key = public_key_raw(private_key)
        self.key_id = key_id_of(self.public_key)
        self._clock = clock

    @classmethod
    def from_file(cls, kiosk_id: str, path: str | os.PathLike[str]) -> "KioskRequestSigner":
        return cls(kiosk_id, load_private_key(path))

    def headers_for(self, method: str, raw_target: bytes, body: bytes) -> dict[str, str]:
        """The five headers for one request; ``raw_target`` is the path with its query as sent (``/a%20b?x=1``)."""
        path, _, query = raw_target.partition(b"?")
        timestamp = int(self._clock())
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")
        message = string_to_sign(self.kiosk_id, self.key_id, method, path.decode("ascii"), query.decode("ascii"),
                                 timestamp, nonce, body)
        return {"X-Kiosk-Id": self.kiosk_id, "X-Kiosk-Key-Id": self.key_id, "X-Kiosk-Timestamp": str(timestamp),
                "X-Kiosk-Nonce": nonce,
                "X-Kiosk-Signature": base64.b64encode(self._key.sign(message)).decode("ascii")}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers_for(request.method, request.url.raw_path, request.content))
        yield request


def keygen_command(out: str) -> int:
    """``kiosk keygen --out FILE``: a new private key (0600) at ``out``; prints the public key and key id (JSON)."""
    import json
    import sys

    try:
        key = write_private_key(out)
    except FileExistsError:
        print(f"kiosk keygen: {out} exists; not overwriting a signing key (remove it first, then enrol the new "
              "public key and revoke the old one)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kiosk keygen: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 1
    raw = public_key_raw(key)
    print(json.dumps({"private_key_file": str(out), "public_key": base64.b64encode(raw).decode("ascii"),
                      "key_id": key_id_of(raw),
                      "enrol": "service-platform kiosk add --id <KIOSK-ID> --name <NAME> --public-key <file holding "
                               "public_key>"}))
    return 0
