"""Elderly mode (适老化, kiosk/elderly.py): the 7:1 palette, larger text, ≤ 6 tiles a page in order of use, the
session's timeouts doubled (the warning still comes, and is spoken by the shell), slower speech through the real
espeak-ng, wiped at session end; the profile's ``kiosk.elderly_mode``; the platform's usage counts through the real
server."""
from __future__ import annotations

import shutil
import threading
import wave
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from device_profiles.loader import ProfileError, VoiceConfig, load_profile, parse_profile
from kiosk import elderly
from kiosk.elderly import (ELDERLY_PALETTE, MIN_CONTRAST, NORMAL_PALETTE, TILES_PER_PAGE, ElderlyMode,
                           contrast_ratio, font_factor, order_by_usage, paginate)
from kiosk.session import Session
from kiosk.voice import Voice

ROOT = Path(__file__).resolve().parents[2]


# --- contrast: WCAG 2.x relative luminance ------------------------------------------------------------------------
def test_contrast_ratio_known_answers() -> None:
    assert contrast_ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert contrast_ratio((1, 1, 1), (0, 0, 0)) == pytest.approx(21.0)          # order does not matter
    assert contrast_ratio((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) == pytest.approx(1.0)
    # #767676 on white is the classic 4.54:1 (the lightest grey that passes AA)
    grey = 0x76 / 255
    assert contrast_ratio((grey, grey, grey), (1, 1, 1)) == pytest.approx(4.54, abs=0.01)


def test_every_colour_pair_of_elderly_mode_is_at_least_7_to_1() -> None:
    ratios = {name: contrast_ratio(fg, bg) for name, (fg, bg) in ELDERLY_PALETTE.pairs().items()}
    weak = {name: round(r, 2) for name, r in ratios.items() if r < MIN_CONTRAST}
    assert not weak, f"below 7:1 in elderly mode: {weak}"
    assert len(ratios) >= 10   # every text-on-background pair the common widgets draw


def test_normal_palette_is_not_already_aaa() -> None:
    """The reason elderly mode has its own colours: the normal blue buttons are below 7:1."""
    normal = {name: contrast_ratio(fg, bg) for name, (fg, bg) in NORMAL_PALETTE.pairs().items()}
    assert normal["on_primary/primary"] < MIN_CONTRAST <= contrast_ratio(*ELDERLY_PALETTE.pairs()["on_primary/primary"])


def test_body_text_is_1_5x_and_headings_larger() -> None:
    assert font_factor(1.0, False) == font_factor(2.0, False) == 1.0
    assert font_factor(1.0, True) >= 1.5 and font_factor(0.85, True) >= 1.5
    assert font_factor(1.6, True) > font_factor(1.0, True)    # headings grow more than body text
    assert elderly.TOUCH_FACTOR >= 1.5 and elderly.TIMEOUT_FACTOR == 2.0


# --- menu: most used first, six a page ------------------------------------------------------------------------------
def test_menu_order_by_usage_and_pages() -> None:
    features = ["guide", "progress", "my_applications", "apply", "pay", "certificates", "appointment", "delivery"]
    counts = {"pay": 40, "progress": 90, "appointment": 40, "guide": 5}
    ordered = order_by_usage(features, counts)
    assert ordered[:4] == ["progress", "pay", "appointment", "guide"]   # ties keep the menu's own order
    assert ordered[4:] == ["my_applications", "apply", "certificates", "delivery"]
    pages = paginate(ordered, TILES_PER_PAGE)
    assert TILES_PER_PAGE <= 6 and [len(p) for p in pages] == [6, 2]
    assert paginate([], 6) == [[]]
    with pytest.raises(ValueError):
        paginate(features, 0)


# --- the session: timeouts ×2, wiped at session end ---------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_timeouts_double_and_the_warning_still_comes_then_the_mode_ends_with_the_session() -> None:
    clock = Clock()
    session = Session(idle_timeout_s=90, warning_s=20, clock=clock)
    events: list[str] = []
    session.subscribe(lambda name, _payload: events.append(name))
    changes: list[bool] = []
    mode = ElderlyMode("allowed", session, on_change=changes.append)
    assert not mode.active and mode.allowed
    session.start_anonymous()
    assert mode.toggle() is True
    assert (session.idle_timeout_s, session.warning_s) == (180, 40)
    clock.now += 100            # normal mode would have ended the session at 90 s
    session.tick()
    assert session.active and "warning" not in events
    clock.now += 45             # 145 s idle: 35 s left, within the doubled 40 s warning
    session.tick()
    assert events.count("warning") == 1 and session.active
    clock.now += 40
    session.tick()
    assert "ended" in events and not session.active
    assert not mode.active and (session.idle_timeout_s, session.warning_s) == (90, 20)   # the next citizen: normal
    assert changes == [True, False]


def test_profile_setting_on_starts_every_session_in_it_and_off_refuses() -> None:
    session = Session(idle_timeout_s=60, warning_s=10, clock=Clock())
    always = ElderlyMode("on", session)
    assert always.active and session.idle_timeout_s == 120
    session.start_anonymous()
    always.set(False)
    session.end("finished")
    assert always.active and session.idle_timeout_s == 120   # back to the profile's: on
    other = Session(clock=Clock())
    never = ElderlyMode("off", other)
    assert not never.allowed and never.set(True) is False and other.idle_timeout_s == 90
    with pytest.raises(ValueError):
        ElderlyMode("sometimes", other)


def test_usage_counts_order_the_menu_only_in_elderly_mode_and_a_failure_keeps_the_last() -> None:
    answers: list[Any] = [{"window_days": 90, "features": {"pay": 3, "guide": 9}}, RuntimeError("platform down")]

    def usage() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    mode = ElderlyMode("allowed", Session(clock=Clock()), usage=usage)
    assert mode.refresh_usage() == {"pay": 3, "guide": 9}
    assert mode.ordered(["apply", "pay", "guide"]) == ["apply", "pay", "guide"]   # normal mode: the menu's order
    mode.set(True)
    assert mode.ordered(["apply", "pay", "guide"]) == ["guide", "pay", "apply"]
    assert mode.refresh_usage() == {"pay": 3, "guide": 9}


# --- slower speech through the real espeak-ng -----------------------------------------------------------------------
def _seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_speech_is_slower_in_elderly_mode(tmp_path: Path, wait_for: Callable[..., Any]) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (scripts/setup.sh installs it)", pytrace=False)
    said: list[Path] = []
    done = threading.Event()

    def spoken(_language: str, path: Path | None) -> None:
        assert path is not None
        said.append(path)
        done.set()

    voice = Voice(VoiceConfig(out_dir=str(tmp_path), rate_wpm=140), on_spoken=spoken)
    session = Session(clock=Clock())
    mode = ElderlyMode("allowed", session, voice)
    text = "请将身份证放在下方感应区，或点击屏幕查询办事指南。"
    try:
        assert voice.rate_wpm == 140
        voice.say(text, "zh_CN")
        wait_for(lambda: len(said) == 1, timeout=30, what="the normal prompt")
        mode.set(True)
        assert voice.rate_wpm == round(140 * elderly.SPEECH_RATE_FACTOR) < 140
        voice.say(text, "zh_CN")
        wait_for(lambda: len(said) == 2, timeout=30, what="the elderly-mode prompt")
        session.start_anonymous()
        session.end("finished")
        assert voice.rate_wpm == 140     # wiped with the session
    finally:
        voice.close()
    normal, slow = (_seconds(p) for p in said)
    assert slow > normal * 1.1, (normal, slow)


# --- the profile ----------------------------------------------------------------------------------------------------
def test_profile_elderly_mode_default_allowed_and_validated() -> None:
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["kiosk"].pop("elderly_mode", None)
    assert parse_profile(data, environ={}).kiosk.elderly_mode == "allowed"
    data["kiosk"]["elderly_mode"] = "on"
    assert parse_profile(data, environ={}).kiosk.elderly_mode == "on"
    data["kiosk"]["elderly_mode"] = "maybe"
    with pytest.raises(ProfileError) as err:
        parse_profile(data, environ={})
    assert "elderly_mode" in str(err.value)


# --- the platform's counts, through the real server -----------------------------------------------------------------
def test_core_fetches_the_platforms_usage_counts(make_profile: Callable[..., Path]) -> None:
    from kiosk.core import KioskCore

    core = KioskCore(load_profile(make_profile(), environ={}))
    try:
        counts = core.elderly.refresh_usage()
        assert {"apply", "pay", "appointment", "delivery", "progress", "guide", "certificates"} <= set(counts)
        assert all(isinstance(v, int) and v >= 0 for v in counts.values())
        assert counts["apply"] > 0       # the seeded platform has applications
    finally:
        core.stop()
