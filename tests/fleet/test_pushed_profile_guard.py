"""A pushed profile cannot turn a kiosk into a demo or point it elsewhere: turning on a simulator or the demo bar,
changing the platform URL/credentials or the fleet link needs the profile's own signature, for this kiosk, by the
profile-signing key the kiosk's local profile trusts. Through a real broker, controller and kiosk core."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_profiles.loader import load_profile
from fleet.profile_signing import (ProfileSignatureError, push_profile_args, protected_changes, sign_profile,
                                   verify_profile)
from fleet.protocol import now_ms
from fleet.signing import generate_keypair
from kiosk.core import KioskCore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def profile_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("profile-keys"), "profile-signing")


@pytest.fixture
def kiosk(make_profile: Any, broker: Any, keys: tuple[Path, Path], profile_keys: tuple[Path, Path]) -> Any:
    path = make_profile(fleet={"broker_url": broker.url, "verify_key": str(keys[1]), "heartbeat_s": 5,
                               "profile_signing_key": str(profile_keys[1])})
    data = yaml.safe_load(path.read_text("utf-8"))
    for kind in ("qr_scanner", "licence_printer"):  # devices this kiosk does not have (so not simulated either)
        data["devices"].pop(kind, None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    core = KioskCore(load_profile(path, environ={}))
    core.start()
    try:
        yield core
    finally:
        core.stop()


def push(controller: Any, kiosk_id: str, wait_for: Any, args: dict[str, Any]) -> dict[str, Any]:
    response = controller.post(f"/api/v1/kiosks/{kiosk_id}/commands", {"name": "push_profile", "args": args})
    assert response.status_code == 202, response.text
    command_id = response.json()["id"]
    return wait_for(lambda: (lambda c: c if c["status"] in ("succeeded", "failed", "rejected") else None)(
        controller.get(f"/api/v1/commands/{command_id}")), timeout=20, what="push_profile answered")


def variant(source: Path, change: Any) -> str:
    data = yaml.safe_load(source.read_text("utf-8"))
    change(data)
    return yaml.safe_dump(data, allow_unicode=True)


def test_dangerous_pushes_need_a_profile_signature_for_this_kiosk(kiosk: Any, start_controller: Any, wait_for: Any,
                                                                  profile_keys: tuple[Path, Path]) -> None:
    controller = start_controller()
    kiosk_id = kiosk.kiosk_id
    wait_for(lambda: controller.kiosk(kiosk_id), timeout=20, what="the kiosk's birth")
    source = Path(kiosk.profile.source)
    original = source.read_text("utf-8")

    def add_simulated_scanner(d: dict[str, Any]) -> None:
        d["devices"]["qr_scanner"] = {"driver": "serial", "required": False, "simulate": True,
                                      "settings": {"baud": 9600}}

    def demo_bar(d: dict[str, Any]) -> None:
        d["kiosk"]["demo_controls"] = True

    def other_platform(d: dict[str, Any]) -> None:
        d["platform"]["url"] = "http://127.0.0.2:8700"

    def other_broker(d: dict[str, Any]) -> None:
        d["fleet"]["broker_url"] = "mqtt://127.0.0.3:1883"

    for change, field in ((add_simulated_scanner, "devices.qr_scanner.simulate"), (demo_bar, "kiosk.demo_controls"),
                          (other_platform, "platform.url"), (other_broker, "fleet.broker_url")):
        result = push(controller, kiosk_id, wait_for, {"profile": variant(source, change)})
        assert result["status"] == "failed", result
        assert result["data"]["code"] == "profile_not_signed" and field in result["data"]["changes"], result
        assert source.read_text("utf-8") == original, "nothing applied"

    # a harmless change goes through as before
    harmless = variant(source, lambda d: d["session"].update(idle_timeout_s=120))
    result = push(controller, kiosk_id, wait_for, {"profile": harmless})
    assert result["status"] == "succeeded", result
    assert source.read_text("utf-8") == harmless

    # the dangerous profile, signed for this kiosk with the trusted key: applied
    def everything(d: dict[str, Any]) -> None:
        add_simulated_scanner(d)
        demo_bar(d)
        other_platform(d)

    dangerous = variant(source, everything)
    expires = now_ms() + 3_600_000
    signed = push_profile_args(profile_keys[0], dangerous, kiosk_id, expires)
    # signed for another kiosk: refused (the signature is valid, the target is not this kiosk)
    other = yaml.safe_load(dangerous)
    forged = {"profile": dangerous,
              "profile_signature": sign_profile(profile_keys[0], other, "KSK-OTHER-0001", expires)}
    result = push(controller, kiosk_id, wait_for, forged)
    assert result["status"] == "failed" and result["data"]["code"] == "profile_signature_wrong_kiosk", result
    # the signature does not cover a profile changed after signing
    tampered = {**signed, "profile": variant(Path(source), lambda d: (everything(d), other_broker(d)))}
    result = push(controller, kiosk_id, wait_for, tampered)
    assert result["status"] == "failed" and result["data"]["code"] == "profile_signature_invalid", result
    assert source.read_text("utf-8") == harmless
    result = push(controller, kiosk_id, wait_for, signed)
    assert result["status"] == "succeeded", result
    assert source.read_text("utf-8") == dangerous


def test_protected_changes_and_signature_rules(tmp_path: Path, profile_keys: tuple[Path, Path]) -> None:
    current = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    current["devices"]["idcard"]["simulate"] = False
    current["kiosk"]["demo_controls"] = False
    assert protected_changes(current, current) == []
    new = json.loads(json.dumps(current))
    new["session"]["idle_timeout_s"] = 60
    new["platform"]["timeout_s"] = 9
    assert protected_changes(current, new) == []
    new["devices"]["idcard"]["simulate"] = True
    new["kiosk"]["demo_controls"] = True
    new["kiosk"]["maintenance_pin_hash"] = "pbkdf2_sha256$1$00$00"
    new["platform"]["key_file"] = "/tmp/another.key"
    new["fleet"] = {"broker_url": "mqtt://x", "verify_key": "/tmp/k.pub"}
    assert protected_changes(current, new) == ["devices.idcard.simulate", "kiosk.demo_controls",
                                               "kiosk.maintenance_pin_hash", "platform.key_file",
                                               "fleet.broker_url", "fleet.verify_key"]
    # a device already simulated in the kiosk's own profile (a demo kiosk) may stay so
    assert "devices.receipt_printer.simulate" not in protected_changes(current, new)

    kiosk_id = current["kiosk"]["id"]
    now = now_ms()
    sig = sign_profile(profile_keys[0], new, kiosk_id, now + 60_000)
    verify_profile(profile_keys[1], new, kiosk_id, sig, now)
    for bad_now, data, target, code in (
            (now + 10 * 60_000, new, kiosk_id, "profile_signature_expired"),
            (now, current, kiosk_id, "profile_signature_invalid"),
            (now, new, "KSK-OTHER", "profile_signature_wrong_kiosk")):
        with pytest.raises(ProfileSignatureError) as err:
            verify_profile(profile_keys[1], data, target, sig, bad_now)
        assert err.value.code == code
    other_key, other_pub = generate_keypair(tmp_path / "other", "x")
    with pytest.raises(ProfileSignatureError) as err:
        verify_profile(profile_keys[1], new, kiosk_id, sign_profile(other_key, new, kiosk_id, now + 60_000), now)
    assert err.value.code == "profile_signature_unknown_key"
    with pytest.raises(ProfileSignatureError) as err:
        verify_profile("", new, kiosk_id, sig, now)
    assert err.value.code == "no_profile_signing_key"
    with pytest.raises(ProfileSignatureError) as err:
        verify_profile(profile_keys[1], new, kiosk_id, {**sig, "expires_at": "soon"}, now)
    assert err.value.code == "profile_signature_malformed"


def test_fleet_controller_sign_profile_prints_the_push_arguments(tmp_path: Path,
                                                                 profile_keys: tuple[Path, Path]) -> None:
    profile = ROOT / "device_profiles" / "simulated.yaml"
    kiosk_id = yaml.safe_load(profile.read_text("utf-8"))["kiosk"]["id"]
    out = subprocess.run([sys.executable, "-m", "fleet.controller.cli", "sign-profile", "--key", str(profile_keys[0]),
                          "--kiosk", kiosk_id, "--expires", "2h", str(profile)], capture_output=True, text=True,
                         cwd=str(ROOT), check=True)
    args = json.loads(out.stdout)
    assert args["profile"] == profile.read_text("utf-8")
    assert 0 < args["profile_signature"]["expires_at"] - now_ms() <= 2 * 3_600_000
    verify_profile(profile_keys[1], yaml.safe_load(args["profile"]), kiosk_id, args["profile_signature"])
    wrong = subprocess.run([sys.executable, "-m", "fleet.controller.cli", "sign-profile", "--key",
                            str(profile_keys[0]), "--kiosk", "KSK-OTHER", str(profile)], capture_output=True,
                           text=True, cwd=str(ROOT))
    assert wrong.returncode == 2 and "kiosk.id" in wrong.stderr
