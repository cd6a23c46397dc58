"""The citizen's phone wallet and its unified-payment provider, simulated: after the citizen scans the cashier QR a
kiosk shows (``{platform}/cashier/{order_no}``) and pays, the provider notifies the platform with a notification
signed by the PROVIDER's Ed25519 private key. Neither the kiosk nor the platform holds that key: the platform has the
public key only (``service-platform serve --payment-provider-key FILE``), the kiosk nothing.

Wire format: see service_platform/README.md ("Payment provider notifications"). This module repeats the canonical
string on purpose (the layers share nothing but the HTTP API); tests check that both sides agree.

    python -m drivers.payment.wallet_sim keygen DIR            # DIR/payment-provider.key (0600) and .pub
    python -m drivers.payment.wallet_sim pay --key DIR/payment-provider.key --amount-fen 2000 URL ORDER_NO
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CONTEXT = "cashier-payment-v1"
SIGNATURE_HEADER = "X-Provider-Signature"
TXN_PREFIX = {"wechat_pay": "WX", "alipay": "ALI", "ecny": "ECNY"}


def canonical_string(order_no: str, amount_fen: int, currency: str, method: str, provider_txn_id: str,
                     timestamp: int, nonce: str) -> str:
    return "\n".join([CONTEXT, order_no, str(int(amount_fen)), currency, method, provider_txn_id,
                      str(int(timestamp)), nonce])


def generate_keypair(directory: str | os.PathLike[str], name: str = "payment-provider") -> tuple[Path, Path]:
    """``<name>.key`` (PKCS#8 PEM, mode 0600: the provider's) and ``<name>.pub`` (PEM: for the platform)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub_path.write_bytes(public_pem(private))
    return key_path, pub_path


def public_pem(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


class WalletSim:
    """Signs payment notifications as the provider and sends them to a platform's cashier."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        self.private_key = private_key or Ed25519PrivateKey.generate()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "WalletSim":
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(key)

    @property
    def public_pem(self) -> str:
        return public_pem(self.private_key).decode("ascii")

    def sign(self, body: dict[str, Any]) -> str:
        """The ``X-Provider-Signature`` value for a notification body."""
        message = canonical_string(body["order_no"], body["amount_fen"], body["currency"], body["method"],
                                   body["provider_txn_id"], body["timestamp"], body["nonce"])
        return "v1=" + base64.b64encode(self.private_key.sign(message.encode("utf-8"))).decode("ascii")

    def notification(self, order_no: str, amount_fen: int, method: str = "wechat_pay", *,
                     provider_txn_id: str | None = None, timestamp: int | None = None, nonce: str | None = None,
                     currency: str = "CNY") -> tuple[dict[str, Any], dict[str, str]]:
        """(JSON body, headers) of a signed notification that the wallet paid ``amount_fen`` for ``order_no``."""
        body = {"order_no": order_no, "amount_fen": int(amount_fen), "currency": currency, "method": method,
                "provider_txn_id": provider_txn_id or f"{TXN_PREFIX.get(method, 'PP')}{secrets.token_hex(12)}",
                "timestamp": int(time.time()) if timestamp is None else int(timestamp),
                "nonce": nonce or secrets.token_urlsafe(18)}
        return body, {SIGNATURE_HEADER: self.sign(body)}

    def pay(self, base_url: str, order_no: str, amount_fen: int, method: str = "wechat_pay",
            timeout: float = 10.0) -> Any:
        """Send the signed notification (``PUT {base_url}/api/v1/cashier/{order_no}/payment``); the httpx response."""
        import httpx

        body, headers = self.notification(order_no, amount_fen, method)
        return httpx.put(base_url.rstrip("/") + f"/api/v1/cashier/{order_no}/payment", json=body, headers=headers,
                         timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wallet_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="write the provider's key pair")
    keygen.add_argument("directory")
    pay = sub.add_parser("pay", help="pay an order as the citizen's wallet")
    pay.add_argument("--key", required=True, help="the provider's private key (PEM)")
    pay.add_argument("--amount-fen", type=int, required=True)
    pay.add_argument("--method", default="wechat_pay", choices=sorted(TXN_PREFIX))
    pay.add_argument("platform_url")
    pay.add_argument("order_no")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        key, pub = generate_keypair(args.directory)
        print(json.dumps({"key": str(key), "pub": str(pub)}))
        return 0
    answer = WalletSim.load(args.key).pay(args.platform_url, args.order_no, args.amount_fen, args.method)
    print(answer.text)
    return 0 if answer.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
