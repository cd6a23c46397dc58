"""Pushed device profiles: what a kiosk refuses unless the profile itself is signed for it.

A ``push_profile`` command is signed by the controllers' command key (:mod:`fleet.signing`), so anyone who holds the
controller — or an operator account with the right role — could push any profile. A profile decides where the kiosk
sends citizens' data and which credentials it uses, so the settings that matter for security are guarded a second
time, by a key that never sits on a controller:

* any device switched to ``simulate: true`` (a simulated ID reader accepts any "card"; a simulated pad approves any
  payment) — a device already simulated in the kiosk's own profile (a demo kiosk) stays allowed;
* ``kiosk.demo_controls: true`` (the demo bar that places fake cards), unless already on;
* ``kiosk.maintenance_pin_hash`` (the staff screen's PIN);
* anything in ``platform`` but ``timeout_s`` / ``retries`` (the URL, the key file, any credential setting);
* anything in ``fleet`` but ``heartbeat_s`` (broker, command verify key, this very profile-signing key).

Such a profile is applied only with a **profile signature**: Ed25519 by a profile-signing key the kiosk trusts
(``fleet.profile_signing_key: PATH`` in its local profile, a public key), over the context string, the target kiosk
id, the expiry and the canonical bytes of the profile (sorted-key JSON of the parsed YAML), so it cannot be replayed
on another kiosk or after it expires. Made with ``fleet-controller sign-profile`` (or :func:`sign_profile`), whose
output is the ``push_profile`` command's arguments: ``{"profile": "<yaml>", "profile_signature": {...}}``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet.protocol import now_ms
from fleet.signing import CLOCK_SKEW_MS, key_id, load_private_key, load_public_key

CONTEXT = b"kiosk-profile-v1"
HARMLESS_PLATFORM = frozenset({"timeout_s", "retries"})
HARMLESS_FLEET = frozenset({"heartbeat_s"})
#: longest validity a profile signature may claim (a signed profile is for one roll-out, not forever)
MAX_VALIDITY_MS = 90 * 86_400_000


class ProfileSignatureError(Exception):
    """``code``: profile_signature_malformed · profile_signature_unknown_key · profile_signature_invalid ·
    profile_signature_wrong_kiosk · profile_signature_expired · profile_signature_too_long ·
    no_profile_signing_key."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


def canonical_profile(data: Any) -> bytes:
    """The bytes a profile signature covers: the parsed profile as sorted-key compact JSON (YAML formatting and
    comments do not matter; values YAML reads as dates and the like are taken as their text)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def signed_message(data: Any, kiosk_id: str, expires_at: int) -> bytes:
    return b"\n".join([CONTEXT, kiosk_id.encode("utf-8"), str(int(expires_at)).encode("ascii"),
                       canonical_profile(data)])


def sign_profile(private_key: str | os.PathLike[str] | bytes | Ed25519PrivateKey, data: Any, kiosk_id: str,
                 expires_at: int) -> dict[str, Any]:
    """The ``profile_signature`` object for this parsed profile, for this kiosk, valid until ``expires_at`` (ms)."""
    key = load_private_key(private_key)
    sig = key.sign(signed_message(data, kiosk_id, expires_at))
    return {"kiosk_id": kiosk_id, "expires_at": int(expires_at), "key_id": key_id(key.public_key()),
            "sig": base64.b64encode(sig).decode("ascii")}


def verify_profile(keys: Iterable[Any] | Any, data: Any, kiosk_id: str, signature: Any,
                   now: int | None = None) -> None:
    """Raise :class:`ProfileSignatureError` unless ``signature`` is a valid profile signature of ``data`` for
    ``kiosk_id``, by one of ``keys`` (public keys or their PEM paths), not expired."""
    if isinstance(keys, (str, bytes, os.PathLike, Ed25519PublicKey)):
        keys = [keys]
    try:
        known = {key_id(k): k for k in (load_public_key(k) for k in keys if k)}
    except (OSError, ValueError) as exc:
        raise ProfileSignatureError("no_profile_signing_key", f"cannot load the profile-signing key: {exc}") from None
    if not known:
        raise ProfileSignatureError("no_profile_signing_key", "this kiosk trusts no profile-signing key")
    if not isinstance(signature, Mapping):
        raise ProfileSignatureError("profile_signature_malformed")
    try:
        target, expires_at = str(signature["kiosk_id"]), signature["expires_at"]
        kid, raw = str(signature["key_id"]), base64.b64decode(str(signature["sig"]), validate=True)
        if type(expires_at) is not int:
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise ProfileSignatureError("profile_signature_malformed") from None
    key = known.get(kid)
    if key is None:
        raise ProfileSignatureError("profile_signature_unknown_key")
    try:
        key.verify(raw, signed_message(data, target, expires_at))
    except InvalidSignature:
        raise ProfileSignatureError("profile_signature_invalid") from None
    if target != kiosk_id:
        raise ProfileSignatureError("profile_signature_wrong_kiosk", f"signed for {target}, not {kiosk_id}")
    now = now_ms() if now is None else now
    if now > expires_at + CLOCK_SKEW_MS:
        raise ProfileSignatureError("profile_signature_expired")
    if expires_at - now > MAX_VALIDITY_MS:
        raise ProfileSignatureError("profile_signature_too_long")


def _section(data: Any, name: str) -> dict[str, Any]:
    value = data.get(name) if isinstance(data, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def protected_changes(current: Any, new: Any) -> list[str]:
    """What a pushed profile ``new`` changes that needs a profile signature, against the kiosk's ``current`` profile
    (both parsed YAML); [] when the push is harmless. See the module doc."""
    out: list[str] = []
    cur_devices, new_devices = _section(current, "devices"), _section(new, "devices")
    for kind, dev in sorted(new_devices.items()):
        if isinstance(dev, Mapping) and dev.get("simulate") is True:
            before = cur_devices.get(kind)
            if not (isinstance(before, Mapping) and before.get("simulate") is True):
                out.append(f"devices.{kind}.simulate")
    cur_kiosk, new_kiosk = _section(current, "kiosk"), _section(new, "kiosk")
    if new_kiosk.get("demo_controls") is True and cur_kiosk.get("demo_controls") is not True:
        out.append("kiosk.demo_controls")
    if new_kiosk.get("maintenance_pin_hash") != cur_kiosk.get("maintenance_pin_hash"):
        out.append("kiosk.maintenance_pin_hash")
    for section, harmless in (("platform", HARMLESS_PLATFORM), ("fleet", HARMLESS_FLEET)):
        cur, nxt = _section(current, section), _section(new, section)
        for key in sorted((set(cur) | set(nxt)) - harmless):
            if cur.get(key) != nxt.get(key):
                out.append(f"{section}.{key}")
    return out


def profile_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_expiry(text: str, now: int | None = None) -> int:
    """``30m``, ``24h``, ``7d`` from now, an ISO 8601 time (``2025-07-01T18:00+08:00``) or ms since the epoch."""
    import datetime as dt

    now = now_ms() if now is None else now
    text = text.strip()
    units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
    if text[-1:] in units and text[:-1].isdigit():
        return now + int(text[:-1]) * units[text[-1]]
    if text.isdigit():
        return int(text)
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("give the expiry's time zone (e.g. +08:00)")
    return int(when.timestamp() * 1000)


def push_profile_args(private_key: Any, profile_text: str, kiosk_id: str, expires_at: int) -> dict[str, Any]:
    """The ``push_profile`` command's arguments for a profile signed for one kiosk (what ``fleet-controller
    sign-profile`` prints): ``{"profile": text, "sha256": …, "profile_signature": {...}}``."""
    import yaml

    data = yaml.safe_load(profile_text)
    kiosk = data.get("kiosk") if isinstance(data, Mapping) else None
    if not isinstance(kiosk, Mapping) or kiosk.get("id") != kiosk_id:
        raise ValueError(f"the profile's kiosk.id is not {kiosk_id}")
    return {"profile": profile_text, "sha256": profile_digest(profile_text),
            "profile_signature": sign_profile(private_key, data, kiosk_id, expires_at)}
