"""Signed remote commands: the controller signs with an Ed25519 private key, every kiosk holds only public keys.

Why Ed25519 rather than HMAC with a per-kiosk secret: kiosks stand in public places and can be opened; with HMAC the
secret on a kiosk is also a key that forges commands (for that kiosk), and the controller must guard one secret per
kiosk. With a signature scheme a kiosk's disk holds nothing that can sign, the controller guards one private key, and
rotating it means shipping a new public key (kiosks accept a list of keys during a rotation). Verification costs
~0.1 ms; commands are rare.

Wire format on ``fleet/v1/{kiosk}/cmd/{id}`` (JSON)::

    {"body": "<canonical JSON of the command>", "sig": "<base64 Ed25519 signature over body's UTF-8 bytes>",
     "key_id": "<first 16 hex digits of SHA-256 of the raw public key>"}

The body is carried as a string so that the bytes verified are exactly the bytes signed. Body fields: ``v``, ``id``,
``kiosk_id``, ``name``, ``args``, ``issued_at`` and ``expires_at`` (ms), ``issuer``. The kiosk checks, in order: the
JSON shape, a known key id and a valid signature, the target kiosk (body and topic), the command id (body and topic),
expiry (with a clock-skew allowance), and that the id was not seen before (replay).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet.protocol import COMMAND_ID_RE, PROTOCOL_VERSION, canonical, now_ms

DEFAULT_TTL_S = 300.0
#: how far a kiosk's clock may be behind the controller's before a fresh command looks expired (and ahead before
#: a command looks issued in the future)
CLOCK_SKEW_MS = 120_000


class CommandRejected(Exception):
    """A command that must not run; ``reason`` is one of bad_format, unknown_key, bad_signature, wrong_target,
    id_mismatch, expired, not_yet_valid, replayed."""

    def __init__(self, reason: str, command_id: str | None = None, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id
        self.name = name


@dataclass(frozen=True)
class Command:
    id: str
    kiosk_id: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    issued_at: int = 0
    expires_at: int = 0
    issuer: str = ""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(directory: str | os.PathLike[str], name: str = "command-signing") -> tuple[Path, Path]:
    """Write ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pub`` (SubjectPublicKeyInfo PEM) into ``directory``.
    The .pub goes to every kiosk; the .key stays with the controllers."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_private_key(source: str | os.PathLike[str] | bytes | Ed25519PrivateKey) -> Ed25519PrivateKey:
    if isinstance(source, Ed25519PrivateKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the command-signing key must be an Ed25519 key")
    return key


def load_public_key(source: str | os.PathLike[str] | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the command verify key must be an Ed25519 public key")
    return key


class CommandSigner:
    """The controller's side: builds and signs command payloads."""

    def __init__(self, private_key: str | os.PathLike[str] | bytes | Ed25519PrivateKey, issuer: str = "controller"):
        self._key = load_private_key(private_key)
        self.public_key = self._key.public_key()
        self.key_id = key_id(self.public_key)
        self.issuer = issuer

    def sign(self, kiosk_id: str, name: str, args: Mapping[str, Any] | None = None, *, ttl_s: float = DEFAULT_TTL_S,
             command_id: str | None = None, issued_at: int | None = None, issuer: str | None = None
             ) -> tuple[Command, bytes]:
        issued = now_ms() if issued_at is None else issued_at
        cmd = Command(id=command_id or uuid.uuid4().hex, kiosk_id=kiosk_id, name=name, args=dict(args or {}),
                      issued_at=issued, expires_at=issued + int(ttl_s * 1000), issuer=issuer or self.issuer)
        body = canonical({"v": PROTOCOL_VERSION, "id": cmd.id, "kiosk_id": cmd.kiosk_id, "name": cmd.name,
                          "args": cmd.args, "issued_at": cmd.issued_at, "expires_at": cmd.expires_at,
                          "issuer": cmd.issuer}).decode("utf-8")
        sig = base64.b64encode(self._key.sign(body.encode("utf-8"))).decode("ascii")
        payload = json.dumps({"body": body, "sig": sig, "key_id": self.key_id}, ensure_ascii=False).encode("utf-8")
        return cmd, payload


class CommandVerifier:
    """The kiosk's side: accepts a command only if signed by a known key, meant for this kiosk, not expired and not
    seen before. ``seen`` is a set-like store of command ids (the agent persists it so replays fail after a
    restart too)."""

    def __init__(self, kiosk_id: str, keys: Iterable[Any] | Any, skew_ms: int = CLOCK_SKEW_MS) -> None:
        if isinstance(keys, (str, bytes, os.PathLike, Ed25519PublicKey)):
            keys = [keys]
        loaded = [load_public_key(k) for k in keys]
        if not loaded:
            raise ValueError("at least one command verify key is needed")
        self.kiosk_id = kiosk_id
        self.keys = {key_id(k): k for k in loaded}
        self.skew_ms = skew_ms

    def verify(self, payload: bytes, topic_command_id: str, now: int | None = None,
               seen: Any = None) -> Command:
        now = now_ms() if now is None else now
        try:
            outer = json.loads(payload)
            body_text, sig_text, kid = outer["body"], outer["sig"], outer["key_id"]
            if not (isinstance(body_text, str) and isinstance(sig_text, str) and isinstance(kid, str)):
                raise TypeError
            signature = base64.b64decode(sig_text, validate=True)
        except (ValueError, KeyError, TypeError):
            raise CommandRejected("bad_format", topic_command_id) from None
        key = self.keys.get(kid)
        if key is None:
            raise CommandRejected("unknown_key", topic_command_id)
        try:
            key.verify(signature, body_text.encode("utf-8"))
        except InvalidSignature:
            raise CommandRejected("bad_signature", topic_command_id) from None
        try:
            body = json.loads(body_text)
            cmd = Command(id=str(body["id"]), kiosk_id=str(body["kiosk_id"]), name=str(body["name"]),
                          args=dict(body.get("args") or {}), issued_at=int(body["issued_at"]),
                          expires_at=int(body["expires_at"]), issuer=str(body.get("issuer", "")))
        except (ValueError, KeyError, TypeError):
            raise CommandRejected("bad_format", topic_command_id) from None
        if cmd.kiosk_id != self.kiosk_id:
            raise CommandRejected("wrong_target", topic_command_id, cmd.name)
        if cmd.id != topic_command_id or not COMMAND_ID_RE.match(cmd.id):
            raise CommandRejected("id_mismatch", topic_command_id, cmd.name)
        if now > cmd.expires_at + self.skew_ms:
            raise CommandRejected("expired", cmd.id, cmd.name)
        if cmd.issued_at > now + self.skew_ms:
            raise CommandRejected("not_yet_valid", cmd.id, cmd.name)
        if seen is not None and cmd.id in seen:
            raise CommandRejected("replayed", cmd.id, cmd.name)
        return cmd
