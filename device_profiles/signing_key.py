"""The kiosk's signing key file (``platform.key_file`` in the profile): read and checked here, so that the profile
loader can validate it and the kiosk's request signer (``kiosk/request_signing.py``) can load it.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SigningKeyError(ValueError):
    """The signing key file is missing, unreadable, too widely readable, or not an Ed25519 private key."""


def check_key_file_mode(path: str | os.PathLike[str]) -> None:
    """Refuse a key file that the group or others may read or write (it must be 0600 or 0400)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise SigningKeyError(f"the signing key {path} is not a regular file")
    if mode & 0o077:
        raise SigningKeyError(f"the signing key {path} is readable or writable by group/others "
                              f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")


def load_private_key(path: str | os.PathLike[str], *, check_mode: bool = True) -> Ed25519PrivateKey:
    if check_mode:
        check_key_file_mode(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key
