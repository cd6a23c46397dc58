"""What every device driver has in common: a status model and a lifecycle.

The status model follows CEN/XFS 3.x / XFS4IoT (see shared/protocols.md §6): a common ``device`` state plus
kind-specific blocks (``media`` for card readers, ``paper`` for printers). Drivers are context managers; ``close()``
is safe to call twice (as python-can's ``BusABC.shutdown``).
"""
from __future__ import annotations

import abc
import enum
import functools
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from drivers.errors import DeviceError, NoCard

F = TypeVar("F", bound=Callable[..., Any])


class DeviceState(str, enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    POWER_OFF = "power_off"
    NO_DEVICE = "no_device"
    HARDWARE_ERROR = "hardware_error"
    USER_ERROR = "user_error"
    BUSY = "busy"
    FRAUD_ATTEMPT = "fraud_attempt"
    STARTING = "starting"


class MediaState(str, enum.Enum):
    PRESENT = "present"
    NOT_PRESENT = "not_present"
    JAMMED = "jammed"
    UNKNOWN = "unknown"


class PaperState(str, enum.Enum):
    FULL = "full"
    LOW = "low"
    OUT = "out"
    JAMMED = "jammed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class DeviceStatus:
    """A snapshot of one device's health. Contains no personal data, so it may go to logs and telemetry."""

    kind: str
    device: DeviceState
    media: MediaState | None = None
    paper: PaperState | None = None
    error_code: str | None = None
    detail: str = ""
    counters: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether the device can serve a citizen now."""
        if self.device is not DeviceState.ONLINE:
            return False
        return self.paper not in (PaperState.OUT, PaperState.JAMMED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device": self.device.value,
            "media": self.media.value if self.media else None,
            "paper": self.paper.value if self.paper else None,
            "error_code": self.error_code,
            "detail": self.detail,
            "counters": dict(self.counters),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def device_call(method: F) -> F:
    """Decorate a driver method: one call at a time under the device lock, its DeviceErrors counted."""

    @functools.wraps(method)
    def wrapper(self: "Device", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            except DeviceError as exc:
                self._count_error(exc)
                raise

    return wrapper  # type: ignore[return-value]


class InvalidSettings(ValueError):
    """A driver's settings do not match its ``SETTINGS_SCHEMA``; ``problems`` name each field by its path."""

    code = "invalid_settings"

    def __init__(self, driver: str, problems: list[str]) -> None:
        self.driver = driver
        self.problems = problems
        super().__init__(f"{driver} settings: " + "; ".join(problems))


def settings_problems(schema: Mapping[str, Any], settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every way ``settings`` breaks ``schema``, each as ``path.to.field: message``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path)):
        path = ".".join([prefix] * bool(prefix) + [str(p) for p in error.absolute_path]) or prefix or "(settings)"
        problems.append(f"{path}: {error.message}")
    return problems


def validate_settings(cls: type["Device"], settings: Mapping[str, Any]) -> None:
    problems = settings_problems(cls.SETTINGS_SCHEMA, settings)
    if problems:
        raise InvalidSettings(cls.__name__, problems)


class Device(abc.ABC):
    """Base of every driver. Subclasses implement ``_open``/``_close``/``status``.

    ``settings`` comes from the device profile (already validated against the driver's ``SETTINGS_SCHEMA``).
    """

    #: the device kind this driver serves, e.g. "idcard", "receipt_printer"
    KIND: str = ""
    #: JSON Schema of this driver's ``settings`` block in a device profile
    SETTINGS_SCHEMA: Mapping[str, Any] = {"type": "object"}

    def __init__(self, **settings: Any) -> None:
        validate_settings(type(self), settings)
        self.settings = settings
        self._lock = threading.RLock()
        self._opened = False

    def _count_error(self, exc: DeviceError) -> None:
        """Count a failure by its code in the driver's ``counters`` dict (drivers that keep one as a plain dict);
        "no card" is a normal answer, not an error of the device."""
        counters = getattr(self, "counters", None)
        if not isinstance(counters, dict):
            return
        key = f"errors.{exc.code}"
        counters[key] = counters.get(key, 0) + 1
        if not isinstance(exc, NoCard):
            counters["errors"] = counters.get("errors", 0) + 1

    # lifecycle ------------------------------------------------------------------------------------------------------
    def open(self) -> "Device":
        with self._lock:
            if not self._opened:
                self._open()
                self._opened = True
        return self

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self._opened = False
                self._close()

    @property
    def is_open(self) -> bool:
        return self._opened

    def __enter__(self) -> "Device":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    # health ---------------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def status(self) -> DeviceStatus:
        """Ask the device for its state now. Never raises for a device fault: a fault is a state."""

    def self_test(self) -> DeviceStatus:
        """A technician's self-test; by default a status query."""
        return self.status()


def mask_pan(pan: str) -> str:
    """A bank card number as it may be shown or stored: first 6 and last 4 digits, stars between (PCI DSS 3.4),
    ``6228480402564890018`` → ``622848*********0018``; too short to leave anything hidden: all stars."""
    digits = "".join(c for c in pan if c.isdigit())
    if len(digits) < 12:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


_MASK_CHARS = frozenset("*Xx#")
_PAN_SEPARATORS = frozenset(" -")


def mask_card_number(value: str) -> str:
    """Whatever a device reports as the card number, as it may leave the driver (PCI DSS 3.4: at most the first 6
    and the last 4 digits). A full PAN is masked (``6228480402564890018`` → ``622848*********0018``); a number the
    device masked already is kept when it shows no more than 6 + 4 digits (its mask characters become ``*``); anything
    else (more digits in clear, letters, a mask in the wrong place) becomes all stars, so no clear digit ever passes
    by accident. Empty stays empty."""
    text = "".join(c for c in str(value or "") if c not in _PAN_SEPARATORS)
    if not text:
        return ""
    if text.isascii() and text.isdigit():
        return mask_pan(text)
    if all(c.isascii() and (c.isdigit() or c in _MASK_CHARS) for c in text):
        head = len(text) - len(text.lstrip("0123456789"))
        tail = len(text) - len(text.rstrip("0123456789"))
        middle = text[head:len(text) - tail]
        if middle and all(c in _MASK_CHARS for c in middle) and head <= 6 and tail <= 4:
            return text[:head] + "*" * len(middle) + text[len(text) - tail:]
    return "*" * len(text)


#: a run of 13–19 digits (spaces or dashes allowed between them), not part of a longer run
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
#: what may follow a PAN in track data: track 2 ``=`` (ISO 7813) or ``D`` (EMV tag 57), track 1 ``^``
_TRACK_SEPARATORS = frozenset("=Dd^")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact_card_numbers(text: str) -> str:
    """``text`` with every card number in it masked to first 6 / last 4 (:func:`mask_pan`): a run of 13–19 digits
    that passes the Luhn check, or that is followed by a track-data separator (``=``, ``D``, ``^``). For free text a
    device hands over (a card's application label, a scanned code): nothing that looks like a PAN passes a driver in
    clear, wherever it stands in the text (an order number that happens to pass Luhn is masked too: the safe side).
    Other text is returned unchanged."""
    if not text:
        return text

    def replace(match: "re.Match[str]") -> str:
        digits = "".join(c for c in match.group(0) if c.isdigit())
        follows = text[match.end():match.end() + 1]
        if luhn_ok(digits) or (follows and follows in _TRACK_SEPARATORS):
            return mask_pan(digits)
        return match.group(0)

    return _DIGIT_RUN.sub(replace, str(text))
