"""Elderly mode (适老化, after the MIIT rules for ageing-friendly apps: large text, simple flow, voice).

A citizen switches it on with one large button on the attract or menu screen; it lasts for the session and is wiped
at its end (back to the profile's ``kiosk.elderly_mode``: ``allowed`` — off, the button offered; ``on`` — every
session starts in it; ``off`` — no button). While on: body text and touch targets 1.5× (headings 1.6×), colours of
at least 7:1 contrast (WCAG AAA, :data:`ELDERLY_PALETTE`), at most :data:`TILES_PER_PAGE` tiles on a menu page with the
services most used on the platform first, slower speech, and every session timeout doubled (the warning is spoken).

No Kivy here: the shell reads :class:`ElderlyMode` and :class:`Palette`; the rules are testable on their own.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

log = logging.getLogger(__name__)

#: body text and touch targets in elderly mode (≥ 1.5× the normal size)
FONT_FACTOR = 1.5
#: headings (font scale ≥ :data:`HEADING_SCALE` of the base) grow a little more than body text
HEADING_FACTOR = 1.6
HEADING_SCALE = 1.4
TOUCH_FACTOR = 1.5
#: session idle timeout and warning time
TIMEOUT_FACTOR = 2.0
#: espeak-ng words per minute × this (140 → 112 wpm)
SPEECH_RATE_FACTOR = 0.8
#: menu tiles per page in elderly mode
TILES_PER_PAGE = 6
#: WCAG 2.x AAA for normal text
MIN_CONTRAST = 7.0
#: profile values of ``kiosk.elderly_mode``
PROFILE_VALUES = ("off", "allowed", "on")

RGBA = tuple[float, float, float, float]


def _channel(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(color: Sequence[float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour with channels in 0–1 (alpha ignored)."""
    r, g, b = (_channel(float(c)) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(fg: Sequence[float], bg: Sequence[float]) -> float:
    """WCAG contrast ratio (1–21) of two opaque colours."""
    a, b = sorted((relative_luminance(fg), relative_luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


@dataclass(frozen=True)
class Palette:
    """The colours of the shell's common widgets (screens/widgets.py reads them through ``app.palette``)."""
    background: RGBA      # screen background
    text: RGBA            # body text on the background
    muted: RGBA           # secondary text (hints, dates) on the background
    primary: RGBA         # primary buttons, title bars, tiles
    primary_down: RGBA    # pressed
    on_primary: RGBA      # text on primary
    on_primary_muted: RGBA  # a tile's hint on primary
    secondary: RGBA       # secondary buttons
    on_secondary: RGBA    # text on secondary buttons
    disabled: RGBA        # disabled buttons and tiles
    on_disabled: RGBA     # text on disabled
    locked: RGBA          # a tile this identity level cannot use (still tappable: it explains why)
    error: RGBA           # error text on the background
    notice: RGBA          # announcements on the background
    panel: RGBA           # dialogs

    def pairs(self) -> dict[str, tuple[RGBA, RGBA]]:
        """Every text-on-background pair the widgets draw: name → (foreground, background)."""
        return {
            "text/background": (self.text, self.background), "muted/background": (self.muted, self.background),
            "error/background": (self.error, self.background), "notice/background": (self.notice, self.background),
            "text/panel": (self.text, self.panel), "muted/panel": (self.muted, self.panel),
            "on_primary/primary": (self.on_primary, self.primary),
            "on_primary/primary_down": (self.on_primary, self.primary_down),
            "on_primary_muted/primary": (self.on_primary_muted, self.primary),
            "on_secondary/secondary": (self.on_secondary, self.secondary),
            "on_disabled/disabled": (self.on_disabled, self.disabled),
            "on_primary/locked": (self.on_primary, self.locked),
            "on_primary_muted/locked": (self.on_primary_muted, self.locked),
        }

    def as_dict(self) -> dict[str, RGBA]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


NORMAL_PALETTE = Palette(
    background=(0.97, 0.98, 1, 1), text=(0.1, 0.12, 0.16, 1), muted=(0.3, 0.33, 0.38, 1),
    primary=(0.09, 0.36, 0.75, 1), primary_down=(0.05, 0.25, 0.55, 1), on_primary=(1, 1, 1, 1),
    on_primary_muted=(0.9, 0.94, 1, 1), secondary=(0.93, 0.95, 0.98, 1), on_secondary=(0.1, 0.12, 0.16, 1),
    disabled=(0.78, 0.8, 0.83, 1), on_disabled=(0.4, 0.42, 0.45, 1), locked=(0.45, 0.48, 0.52, 1),
    error=(0.75, 0.1, 0.1, 1), notice=(0.6, 0.3, 0.0, 1), panel=(1, 1, 1, 1))

#: darker blue, black text, no light greys: every pair ≥ 7:1 (tests/kiosk/test_elderly.py computes them)
ELDERLY_PALETTE = Palette(
    background=(1, 1, 1, 1), text=(0, 0, 0, 1), muted=(0.2, 0.2, 0.22, 1),
    primary=(0.0, 0.2, 0.5, 1), primary_down=(0.0, 0.12, 0.32, 1), on_primary=(1, 1, 1, 1),
    on_primary_muted=(0.95, 0.97, 1, 1), secondary=(0.92, 0.94, 0.97, 1), on_secondary=(0, 0, 0, 1),
    disabled=(0.85, 0.86, 0.88, 1), on_disabled=(0.2, 0.2, 0.22, 1), locked=(0.2, 0.22, 0.25, 1),
    error=(0.55, 0.0, 0.0, 1), notice=(0.4, 0.18, 0.0, 1), panel=(1, 1, 1, 1))


def font_factor(scale: float, elderly: bool) -> float:
    """How much larger a text of ``scale`` × the base size is drawn: 1 normally; in elderly mode 1.5 for body text
    and 1.6 for headings (scale ≥ :data:`HEADING_SCALE`)."""
    if not elderly:
        return 1.0
    return HEADING_FACTOR if scale >= HEADING_SCALE else FONT_FACTOR


T = TypeVar("T")


def order_by_usage(items: Iterable[T], counts: Mapping[str, int], key: Callable[[T], str] = str) -> list[T]:
    """``items`` with the most used first (``counts``: name → count); ties and unknown ones keep their order."""
    listed = list(items)
    return sorted(listed, key=lambda item: (-int(counts.get(key(item), 0)), listed.index(item)))


def paginate(items: Sequence[T], per_page: int) -> list[list[T]]:
    """``items`` in pages of at most ``per_page`` (one empty page for no items)."""
    if per_page < 1:
        raise ValueError("per_page must be ≥ 1")
    return [list(items[i:i + per_page]) for i in range(0, len(items), per_page)] or [[]]


class ElderlyMode:
    """The session's elderly mode and what it changes in the core: the session's timeouts and the speech rate.

    ``session``: :class:`kiosk.session.Session` (its ``idle_timeout_s``/``warning_s`` are doubled while on; it is
    switched off again when the session ends); ``voice``: :class:`kiosk.voice.Voice` (``rate_factor``);
    ``usage``: a callable returning the platform's feature usage counts (fetched on :meth:`refresh_usage`)."""

    def __init__(self, setting: str, session: Any, voice: Any = None,
                 usage: Callable[[], Mapping[str, Any]] | None = None,
                 on_change: Callable[[bool], None] | None = None) -> None:
        if setting not in PROFILE_VALUES:
            raise ValueError(f"elderly_mode must be one of {PROFILE_VALUES}, not {setting!r}")
        self.setting = setting
        self._session = session
        self._voice = voice
        self._usage = usage
        self.on_change = on_change
        self._base = (session.idle_timeout_s, session.warning_s)
        self._lock = threading.Lock()
        self.active = False
        #: feature → how often citizens used it on the platform (aggregate counts; empty until fetched)
        self.usage_counts: dict[str, int] = {}
        session.subscribe(self._on_session_event)
        if setting == "on":
            self._apply(True)

    @property
    def allowed(self) -> bool:
        """The citizen may switch it (the attract and menu screens show the button)."""
        return self.setting != "off"

    def set(self, on: bool) -> bool:
        """Switch elderly mode for this session; returns whether it is on. Refused (stays off) when the profile says
        ``off``."""
        if on and not self.allowed:
            return False
        self._apply(bool(on))
        return self.active

    def toggle(self) -> bool:
        return self.set(not self.active)

    def _apply(self, on: bool) -> None:
        with self._lock:
            changed = on != self.active
            self.active = on
            factor = TIMEOUT_FACTOR if on else 1.0
            self._session.idle_timeout_s = self._base[0] * factor
            self._session.warning_s = self._base[1] * factor
            if self._voice is not None:
                self._voice.rate_factor = SPEECH_RATE_FACTOR if on else 1.0
        if changed and self.on_change is not None:
            self.on_change(on)

    def _on_session_event(self, name: str, _payload: Mapping[str, Any]) -> None:
        if name == "ended":   # the next citizen starts with the profile's default
            self._apply(self.setting == "on")

    def refresh_usage(self) -> dict[str, int]:
        """Fetch the platform's usage counts (blocking: call on a worker). A failure keeps the last counts."""
        if self._usage is None:
            return self.usage_counts
        try:
            answer = self._usage()
            counts = answer.get("features", answer) if isinstance(answer, Mapping) else {}
            self.usage_counts = {str(k): int(v) for k, v in counts.items() if isinstance(v, (int, float))}
        except Exception as exc:  # noqa: BLE001 - the menu keeps its own order without the counts
            log.warning("feature usage not fetched: %s", type(exc).__name__)
        return self.usage_counts

    def ordered(self, features: Sequence[str]) -> list[str]:
        """Menu features in the order this mode shows them: most used first when on, as given when off."""
        return order_by_usage(features, self.usage_counts) if self.active else list(features)
