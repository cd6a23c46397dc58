"""Spoken prompts through the real espeak-ng: WAV files in out_dir, newest wins, silence at session end, text never on
a command line, a kiosk without a sound card keeps working."""
from __future__ import annotations

import shutil
import threading
import wave
from pathlib import Path
from typing import Any, Callable

import pytest

from device_profiles.loader import VoiceConfig
from kiosk.voice import Voice


@pytest.fixture(autouse=True)
def _espeak_ng_installed() -> None:
    """Loud, never a skip: setup installs espeak-ng, so its absence is a broken machine, not a reason to pass."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng alsa-utils (scripts/setup.sh installs it)",
                    pytrace=False)


LONG = "请将身份证放在下方感应区。" * 40


class Spoken:
    """Collects what the voice reports as said (language, WAV path)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Path | None]] = []
        self.event = threading.Event()

    def __call__(self, language: str, path: Path | None) -> None:
        self.items.append((language, path))
        self.event.set()


def seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def running_speaker(voice: Voice, wait_for: Callable[..., Any]) -> int:
    wait_for(lambda: voice._current and voice._current[0].poll() is None, what="espeak-ng running")
    return voice._current[0].pid


def test_each_language_is_said_into_a_wav(tmp_path: Path, wait_for: Callable[..., Any]) -> None:
    spoken = Spoken()
    voice = Voice(VoiceConfig(out_dir=str(tmp_path)), on_spoken=spoken)
    try:
        voice.say("请选择您要办理的业务。", "zh_CN")
        wait_for(lambda: len(spoken.items) == 1, what="Chinese prompt said")
        voice.say("Please choose a service.", "en")
        wait_for(lambda: len(spoken.items) == 2, what="English prompt said")
    finally:
        voice.close()
    (zh, zh_path), (en, en_path) = spoken.items
    assert (zh, en) == ("zh_CN", "en")
    assert zh_path is not None and zh_path.name.endswith("-zh_CN.wav") and seconds(zh_path) > 1.0
    assert en_path is not None and en_path.name.endswith("-en.wav") and seconds(en_path) > 0.5
    assert voice.spoken == 2 and voice.failed == 0


def test_a_new_prompt_cuts_the_old_one(tmp_path: Path, wait_for: Callable[..., Any]) -> None:
    spoken = Spoken()
    voice = Voice(VoiceConfig(out_dir=str(tmp_path)), on_spoken=spoken)
    try:
        voice.say(LONG, "zh_CN")
        first = running_speaker(voice, wait_for)
        voice.say("请选择您要办理的业务。", "zh_CN")
        wait_for(lambda: spoken.items, what="the newer prompt said")
    finally:
        voice.close()
    assert len(spoken.items) == 1 and first not in [p.pid for p in voice._current]
    assert seconds(spoken.items[0][1]) < 10     # the short prompt, not the minute-long one


def test_stop_silences_and_the_text_is_never_on_a_command_line(tmp_path: Path,
                                                                 wait_for: Callable[..., Any]) -> None:
    spoken = Spoken()
    voice = Voice(VoiceConfig(out_dir=str(tmp_path)), on_spoken=spoken)
    try:
        voice.say(LONG, "zh_CN")
        pid = running_speaker(voice, wait_for)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
        assert "espeak" in cmdline and "身份证" not in cmdline
        voice.stop()
        wait_for(lambda: not voice._current, what="speaker gone")
    finally:
        voice.close()
    assert spoken.items == [] and voice.spoken == 0


def test_a_kiosk_without_a_sound_card_gives_up_once(tmp_path: Path, wait_for: Callable[..., Any],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    voice = Voice(VoiceConfig(), player=shutil.which("false"))    # a player that fails, as aplay does with no card
    try:
        assert voice.available
        voice.say("请选择您要办理的业务。", "zh_CN")
        wait_for(lambda: voice.failed == 1, what="playing failed")
        assert not voice.available
        voice.say("再说一次", "zh_CN")                              # no further attempts, no exception
    finally:
        voice.close()
    assert voice.failed == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "kiosk.voice"]
    assert len(warnings) == 1 and "no sound card" in warnings[0] and "请" not in warnings[0]


def test_disabled_voice_says_nothing(tmp_path: Path) -> None:
    voice = Voice(VoiceConfig(enabled=False, out_dir=str(tmp_path)))
    voice.say("请选择您要办理的业务。")
    voice.close()
    assert not voice.available and list(tmp_path.iterdir()) == []


def test_the_core_says_screen_prompts_in_the_citizens_language(make_profile: Callable[..., Any], tmp_path: Path,
                                                                wait_for: Callable[..., Any]) -> None:
    from device_profiles.loader import load_profile
    from kiosk.core import KioskCore

    out = tmp_path / "voice"
    core = KioskCore(load_profile(make_profile(voice={"out_dir": str(out)}), environ={}))
    try:
        core.speak("voice.menu")
        wait_for(lambda: core.voice.spoken == 1, what="menu prompt said")
        core.translator.set_language("en")
        core.speak("voice.menu")
        core.speak("voice.no_such_screen")          # a screen without a prompt says nothing
        wait_for(lambda: core.voice.spoken == 2, what="English menu prompt said")
    finally:
        core.voice.close()
        core.workers.shutdown()
        core.print_journal.close()
    assert sorted(p.name[5:] for p in out.iterdir()) == ["en.wav", "zh_CN.wav"]
