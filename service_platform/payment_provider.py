"""The unified-payment provider's signed payment notifications (the wallet callback of ``PUT /cashier/{no}/payment``).

The provider (WeChat Pay, Alipay, e-CNY behind the unified-payment platform; simulated by
``drivers/payment/wallet_sim.py``) signs every notification with its Ed25519 private key; the platform holds only the
provider's PUBLIC key (``service-platform serve --payment-provider-key FILE`` or env
``PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY``). Without a key the cashier answers 503 ``payment_provider_not_configured``
and never accepts an unsigned notification.

Wire format (version 1): the JSON body ``{"order_no", "amount_fen", "currency", "method", "provider_txn_id",
"timestamp", "nonce"}`` and the header ``X-Provider-Signature: v1=<base64 of the 64-byte Ed25519 signature>`` over
the UTF-8 bytes of the canonical string — the fields in this order, one per line, no trailing newline::

    cashier-payment-v1
    <order_no>
    <amount_fen as a decimal integer>
    <currency: CNY>
    <method: wechat_pay | alipay | ecny>
    <provider_txn_id: 8–64 of A–Z a–z 0–9 _ ->
    <timestamp: Unix seconds, decimal integer>
    <nonce: 16–64 of A–Z a–z 0–9 _ ->

Every field has a pattern without line breaks, so two different notifications never have the same canonical string.
The platform rebuilds the string from the parsed fields (JSON spacing and key order do not matter).
"""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ENV_VAR = "PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY"
SIGNATURE_HEADER = "X-Provider-Signature"
CONTEXT = "cashier-payment-v1"
#: how far a notification's timestamp may be from the platform's clock, either way
MAX_SKEW_S = 300
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"


def canonical_string(order_no: str, amount_fen: int, currency: str, method: str, provider_txn_id: str,
                     timestamp: int, nonce: str) -> str:
    return "\n".join([CONTEXT, order_no, str(int(amount_fen)), currency, method, provider_txn_id,
                      str(int(timestamp)), nonce])


def load_public_key(value: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The provider's key from a PEM file path, PEM text, or base64 of the 32 raw bytes."""
    text = str(value).strip()
    if not text.startswith("-----BEGIN") and len(text) < 4096 and Path(text).is_file():
        text = Path(text).read_text("ascii").strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("payment provider key: not a PEM file, PEM text or base64 of 32 bytes") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("payment provider key: not an Ed25519 public key")
    return key


def key_from_env() -> Ed25519PublicKey | None:
    value = os.environ.get(ENV_VAR, "").strip()
    return load_public_key(value) if value else None


def parse_signature(header: str | None) -> bytes | None:
    """The signature bytes of a ``v1=<base64>`` header; None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition("=")
    if scheme.strip() != "v1" or not encoded:
        return None
    try:
        raw = base64.b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def verify(key: Ed25519PublicKey, signature: bytes, message: str) -> bool:
    try:
        key.verify(signature, message.encode("utf-8"))
    except InvalidSignature:
        return False
    return True
