"""Load and validate a device profile (YAML) into typed settings.

Validation has two layers: the profile schema (``schema.json``), then each device's ``settings`` against the
``SETTINGS_SCHEMA`` of the driver class the registry picks. Every problem is reported at once, each naming the field
by its path (``devices.receipt_printer.settings.port: 'x' is not of type 'integer'``).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from drivers import registry
from drivers.base import settings_problems
from drivers.sim.wiring import SIMULATED_KINDS, placeholder_settings


class ProfileError(ValueError):
    """The profile is not usable; ``problems`` lists each bad field with its path."""

    code = "profile_invalid"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def describe(self) -> str:
        """For technicians: the file, then one line per bad field."""
        return "\n".join([f"{self.source}: invalid profile"] + [f"  - {p}" for p in self.problems])


@dataclass(frozen=True)
class DeviceConfig:
    kind: str
    driver: str
    settings: Mapping[str, Any]
    required: bool = False
    simulate: bool = False
    #: the USB device behind it (vendor, product, [serial], [usb_path], [name]) for its udev rule (device_profiles/udev.py)
    usb: Mapping[str, str] | None = None


@dataclass(frozen=True)
class KioskInfo:
    id: str
    name: Mapping[str, str]
    location: Mapping[str, str]
    district: str = ""
    language: str = "zh_CN"
    orientation: str = "landscape"
    size: tuple[int, int] = (1920, 1080)
    data_dir: str = "var/kiosk"
    demo_controls: bool = False
    maintenance_pin_hash: str = ""
    #: free space (MB) data_dir must keep; below it new transactions are refused (kiosk/storage.py)
    min_free_mb: float = 200.0
    #: local time "HH:MM" of the nightly self-test and restart (kiosk/nightly.py); "" = off
    nightly_restart_at: str = ""
    #: elderly mode (适老化, kiosk/elderly.py): "allowed" (off, one button switches it on for the session), "on" (every
    #: session starts in it), "off" (not offered)
    elderly_mode: str = "allowed"
    #: the platform's place code of the service hall whose staff answer this kiosk's help requests (kiosk/assistance.py:
    #: its opening hours and phone); "" = none (the help screen gives 12345)
    hall: str = ""


@dataclass(frozen=True)
class PlatformConfig:
    url: str
    #: the kiosk's Ed25519 private key file (PEM, 0600) for signed requests; "" when the profile names none
    key_file: str = ""
    timeout_s: float = 5.0
    retries: int = 2


@dataclass(frozen=True)
class SessionConfig:
    idle_timeout_s: float = 90.0
    warning_s: float = 20.0
    rating_timeout_s: float = 30.0
    #: what happens when the card that identified the citizen leaves a reader that can see it leave (PC/SC)
    on_card_removed: str = "continue"


@dataclass(frozen=True)
class VoiceConfig:
    """Spoken prompts (kiosk/voice.py)."""
    enabled: bool = True
    #: words per minute (espeak-ng's default is 175; slower is easier for older citizens)
    rate_wpm: int = 140
    #: espeak-ng amplitude 0–200
    volume: int = 120
    #: write each utterance as NNNN-<lang>.wav here instead of playing it (no sound card, tests)
    out_dir: str = ""


@dataclass(frozen=True)
class FleetConfig:
    broker_url: str
    verify_key: str
    heartbeat_s: float = 30.0
    #: public key (PEM) of the city's profile-signing key: a pushed profile that changes protected settings
    #: (fleet/profile_signing.py) is applied only when signed with it for this kiosk; "" → such pushes are refused
    profile_signing_key: str = ""


@dataclass(frozen=True)
class RetentionConfig:
    """How long closed records stay on the kiosk (README "Retention"); open ones are kept whatever their age."""
    #: print jobs done or closed by staff
    print_journal_days: float = 30.0
    #: payments resolved (confirmed, declined, cancelled, reversed)
    payment_journal_days: float = 90.0
    #: outbox rows settled (submitted or rejected; their payloads are erased at once)
    outbox_days: float = 30.0
    #: rotated audit files
    audit_days: float = 365.0


@dataclass(frozen=True)
class Profile:
    source: str
    kiosk: KioskInfo
    platform: PlatformConfig
    session: SessionConfig
    devices: Mapping[str, DeviceConfig]
    digest: str = ""
    fleet: FleetConfig | None = None
    voice: VoiceConfig = VoiceConfig()
    retention: RetentionConfig = RetentionConfig()


def _schema() -> dict[str, Any]:
    return json.loads(resources.files("device_profiles").joinpath("schema.json").read_text("utf-8"))


_schema_problems = settings_problems


def parse_profile(data: Any, source: str = "<profile>", environ: Mapping[str, str] | None = None) -> Profile:
    """Validate an already-parsed profile mapping and return the typed :class:`Profile`."""
    environ = os.environ if environ is None else environ
    problems = _schema_problems(_schema(), data)
    devices: dict[str, DeviceConfig] = {}
    raw_devices = data.get("devices") if isinstance(data, dict) else None
    for kind, dev in (raw_devices if isinstance(raw_devices, dict) else {}).items():
        if not isinstance(dev, dict) or not isinstance(dev.get("driver"), str) or \
                not isinstance(dev.get("settings", {}), dict):
            continue  # already reported by the schema
        try:
            cls = registry.resolve(kind, dev["driver"])
        except (registry.UnknownDriver, ImportError) as exc:
            problems.append(f"devices.{kind}.driver: {exc}")
            continue
        settings = dict(dev.get("settings", {}))
        simulate = bool(dev.get("simulate", False))
        if simulate and kind not in SIMULATED_KINDS:
            problems.append(f"devices.{kind}.simulate: no simulator exists for {kind!r}")
        # settings the simulator supplies at start-up need not be in the file
        check = {**settings, **placeholder_settings(kind, dev["driver"])} if simulate and kind in SIMULATED_KINDS else settings
        problems += _schema_problems(cls.SETTINGS_SCHEMA, check, f"devices.{kind}.settings")
        devices[kind] = DeviceConfig(kind=kind, driver=dev["driver"], settings=settings,
                                     required=bool(dev.get("required", False)), simulate=simulate,
                                     usb=dev.get("usb"))
    if problems:
        raise ProfileError(source, problems)

    k = data["kiosk"]
    p = data["platform"]
    problems += _platform_problems(p)
    if problems:
        raise ProfileError(source, problems)
    s = data.get("session", {})
    session = SessionConfig(**{name: float(s[name]) for name in ("idle_timeout_s", "warning_s", "rating_timeout_s")
                               if name in s}, on_card_removed=s.get("on_card_removed", "continue"))
    if session.warning_s >= session.idle_timeout_s:
        raise ProfileError(source, ["session.warning_s: must be shorter than session.idle_timeout_s"])
    return Profile(
        source=source,
        kiosk=KioskInfo(
            id=k["id"], name=k["name"], location=k["location"], district=k.get("district", ""),
            language=k.get("language", "zh_CN"), orientation=k.get("orientation", "landscape"),
            size=tuple(k.get("size", (1920, 1080))), data_dir=k.get("data_dir", "var/kiosk"),
            demo_controls=bool(k.get("demo_controls", False)),
            maintenance_pin_hash=k.get("maintenance_pin_hash", ""),
            min_free_mb=float(k.get("min_free_mb", 200.0)),
            nightly_restart_at=str(k.get("nightly_restart_at") or ""),
            elderly_mode=str(k.get("elderly_mode", "allowed")),
            hall=str(k.get("hall") or ""),
        ),
        platform=PlatformConfig(url=p["url"].rstrip("/"), key_file=p.get("key_file", ""),
                                timeout_s=float(p.get("timeout_s", 5.0)), retries=int(p.get("retries", 2))),
        session=session,
        devices=devices,
        fleet=FleetConfig(broker_url=data["fleet"]["broker_url"], verify_key=data["fleet"]["verify_key"],
                          heartbeat_s=float(data["fleet"].get("heartbeat_s", 30.0)),
                          profile_signing_key=data["fleet"].get("profile_signing_key", "")) if data.get("fleet") else None,
        digest=hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16],
        voice=VoiceConfig(**data.get("voice", {})),
        retention=RetentionConfig(**{k: float(v) for k, v in data.get("retention", {}).items()}),
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def _platform_problems(p: Mapping[str, Any]) -> list[str]:
    """platform.url is https:// unless loopback; platform.key_file (if given) is a private Ed25519 key that only its
    owner may read."""
    problems = []
    url = urlsplit(p["url"])
    try:
        host = url.hostname or ""
    except ValueError:
        host = ""
    if not host:
        problems.append(f"platform.url: {p['url']!r} has no host")
    elif url.scheme != "https" and not _is_loopback(host):
        problems.append(f"platform.url: {p['url']!r} must use https:// (plain http:// only to a loopback host: "
                        "127.0.0.0/8, ::1, localhost)")
    key_file = p.get("key_file")
    if key_file:
        from device_profiles.signing_key import SigningKeyError, load_private_key

        try:
            load_private_key(key_file)
        except SigningKeyError as exc:
            problems.append(f"platform.key_file: {exc}")
    return problems


def load_profile(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Profile:
    """Read a YAML profile file and validate it (see :func:`parse_profile`)."""
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ProfileError(source, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(source, [f"not valid YAML: {exc}"]) from exc
    return parse_profile(data, source, environ)
