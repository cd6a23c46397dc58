from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from device_profiles.loader import ProfileError, load_profile, parse_profile

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = ROOT / "device_profiles" / "simulated.yaml"


def base() -> dict:
    return yaml.safe_load(SIMULATED.read_text("utf-8"))


def test_shipped_profiles_are_valid():
    for path in (ROOT / "device_profiles").glob("*.yaml"):
        profile = load_profile(path, environ={})
        assert profile.kiosk.id
    profile = load_profile(SIMULATED, environ={})
    assert {"idcard", "receipt_printer", "licence_printer", "payment_pad", "qr_scanner"} <= set(profile.devices)
    assert all(device.simulate for device in profile.devices.values())   # the demo needs no hardware
    assert profile.session.idle_timeout_s == 90 and profile.session.warning_s == 20


def test_bad_field_is_named():
    data = base()
    data["devices"]["receipt_printer"]["simulate"] = False
    data["devices"]["receipt_printer"]["settings"]["port"] = "ninety-one-hundred"
    data["devices"]["idcard"]["settings"]["baud"] = "fast"
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "p.yaml", environ={})
    assert any(p.startswith("devices.receipt_printer.settings.port:") for p in info.value.problems)
    assert any(p.startswith("devices.idcard.settings.baud:") for p in info.value.problems)


def test_simulated_device_needs_no_port():
    data = base()
    assert "port" not in data["devices"]["idcard"]["settings"]
    assert parse_profile(data, environ={}).devices["idcard"].simulate


def test_unknown_driver_lists_choices():
    data = base()
    data["devices"]["idcard"]["driver"] = "magic"
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "p.yaml", environ={})
    assert "devices.idcard.driver" in str(info.value) and "ga467_serial" in str(info.value)


def test_all_problems_reported_at_once():
    data = base()
    del data["kiosk"]["name"]
    data["platform"]["url"] = "ftp://x"
    data["session"]["idle_timeout_s"] = 1
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "p.yaml", environ={})
    text = " ".join(info.value.problems)
    assert "kiosk" in text and "platform.url" in text and "session.idle_timeout_s" in text


def test_no_shared_secret_in_profiles():
    data = base()
    assert "kiosk_key" not in data["platform"] and "kiosk_key_env" not in data["platform"]
    data["platform"]["kiosk_key"] = "demo-kiosk-key"
    with pytest.raises(ProfileError, match="kiosk_key"):
        parse_profile(data, "p.yaml", environ={})


def test_key_file_is_loaded_and_must_be_private(tmp_path, monkeypatch):
    from kiosk.request_signing import write_private_key

    key = tmp_path / "k.pem"
    write_private_key(key)
    data = base()
    data["platform"]["key_file"] = str(key)
    assert parse_profile(data, environ={}).platform.key_file == str(key)
    monkeypatch.chdir(tmp_path)  # relative paths: from the working directory, like kiosk.data_dir
    data["platform"]["key_file"] = "k.pem"
    assert parse_profile(data, environ={}).platform.key_file == "k.pem"
    key.chmod(0o640)
    with pytest.raises(ProfileError, match=r"platform\.key_file: .*group/others .*0640.*chmod 600"):
        parse_profile(data, "p.yaml", environ={})
    key.chmod(0o600)
    key.write_text("not a key")
    with pytest.raises(ProfileError, match=r"platform\.key_file: .*not an unencrypted PEM private key"):
        parse_profile(data, "p.yaml", environ={})
    data["platform"]["key_file"] = str(tmp_path / "missing.pem")
    with pytest.raises(ProfileError, match=r"platform\.key_file: cannot read"):
        parse_profile(data, "p.yaml", environ={})


@pytest.mark.parametrize("url, ok", [
    ("https://platform.example.gov.cn", True), ("http://127.0.0.1:8700", True), ("http://127.8.9.10", True),
    ("http://localhost:8700/", True), ("http://[::1]:8700", True), ("https://10.0.0.5:8443", True),
    ("http://platform.example.gov.cn", False), ("http://10.0.0.5:8700", False), ("http://[::2]:80", False),
    ("http://localhost.example.com", False), ("http://128.0.0.1", False),
])
def test_plain_http_only_to_loopback(url, ok):
    data = base()
    data["platform"]["url"] = url
    if ok:
        assert parse_profile(data, environ={}).platform.url == url.rstrip("/")
    else:
        with pytest.raises(ProfileError, match=r"platform\.url: .*must use https://"):
            parse_profile(data, "p.yaml", environ={})


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kiosk: [unclosed", "utf-8")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
