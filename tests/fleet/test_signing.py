"""Signed commands: what a kiosk accepts and what it refuses (fleet.signing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.signing import CommandRejected, CommandSigner, CommandVerifier


def reason(verifier: CommandVerifier, payload: bytes, command_id: str, **kw: object) -> str:
    with pytest.raises(CommandRejected) as err:
        verifier.verify(payload, command_id, **kw)  # type: ignore[arg-type]
    return err.value.reason


def test_a_signed_command_verifies_and_carries_its_fields(keys: tuple[Path, Path]) -> None:
    signer = CommandSigner(keys[0])
    cmd, payload = signer.sign("KSK-1", "show_announcement", {"text": "今日系统维护"}, ttl_s=60)
    got = CommandVerifier("KSK-1", keys[1]).verify(payload, cmd.id)
    assert (got.id, got.name, dict(got.args), got.kiosk_id) == (cmd.id, "show_announcement",
                                                                {"text": "今日系统维护"}, "KSK-1")
    assert got.expires_at - got.issued_at == 60_000


def test_forged_and_tampered_commands_are_refused(keys: tuple[Path, Path], other_keys: tuple[Path, Path]) -> None:
    verifier = CommandVerifier("KSK-1", keys[1])
    cmd, payload = CommandSigner(keys[0]).sign("KSK-1", "back_in_service")
    outer = json.loads(payload)
    tampered = json.dumps({**outer, "body": outer["body"].replace("back_in_service", "restart_app")}).encode()
    assert reason(verifier, tampered, cmd.id) == "bad_signature"
    forged_cmd, forged = CommandSigner(other_keys[0]).sign("KSK-1", "restart_app")
    assert reason(verifier, forged, forged_cmd.id) == "unknown_key"
    # a forger who copies the real key id still cannot sign
    spoofed = json.dumps({**json.loads(forged), "key_id": outer["key_id"]}).encode()
    assert reason(verifier, spoofed, forged_cmd.id) == "bad_signature"
    assert reason(verifier, b"not json", "x") == "bad_format"
    assert reason(verifier, b'{"body": "{}", "sig": "%%%", "key_id": "k"}', "x") == "bad_format"


def test_target_id_expiry_and_replay(keys: tuple[Path, Path]) -> None:
    signer = CommandSigner(keys[0])
    verifier = CommandVerifier("KSK-1", keys[1], skew_ms=1000)
    other, payload = signer.sign("KSK-2", "restart_app")
    assert reason(verifier, payload, other.id) == "wrong_target"
    cmd, payload = signer.sign("KSK-1", "restart_app")
    assert reason(verifier, payload, "another-id") == "id_mismatch"
    old, payload = signer.sign("KSK-1", "restart_app", ttl_s=5, issued_at=1_000_000)
    assert reason(verifier, payload, old.id) == "expired"
    future, payload = signer.sign("KSK-1", "restart_app", issued_at=cmd.issued_at + 3_600_000)
    assert reason(verifier, payload, future.id) == "not_yet_valid"
    fresh, payload = signer.sign("KSK-1", "restart_app")
    assert verifier.verify(payload, fresh.id, seen=set()).id == fresh.id
    assert reason(verifier, payload, fresh.id, seen={fresh.id}) == "replayed"


def test_key_rotation_accepts_either_key(keys: tuple[Path, Path], other_keys: tuple[Path, Path]) -> None:
    verifier = CommandVerifier("KSK-1", [keys[1], other_keys[1].read_bytes()])
    for key in (keys[0], other_keys[0]):
        cmd, payload = CommandSigner(key).sign("KSK-1", "self_test")
        assert verifier.verify(payload, cmd.id).name == "self_test"
