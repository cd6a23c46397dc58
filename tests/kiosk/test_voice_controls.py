"""The citizen's voice controls (kiosk/voice.py, the control bar on every screen): repeat, louder / quieter, mute —
through the real espeak-ng into WAV files; they last for the session only."""
from __future__ import annotations

import array
import shutil
import threading
import wave
from pathlib import Path
from typing import Any, Callable

import pytest

from device_profiles.loader import VoiceConfig
from kiosk.voice import VOLUME_STEPS, Voice

PROMPT = "请选择您要办理的业务。"


@pytest.fixture(autouse=True)
def _espeak_ng_installed() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng (scripts/setup.sh installs it)",
                    pytrace=False)


class Spoken:
    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.lock = threading.Lock()

    def __call__(self, _language: str, path: Path | None) -> None:
        with self.lock:
            self.paths.append(path)


def loudness(path: Path) -> float:
    """RMS of the utterance's samples (the peak saturates at the louder steps)."""
    with wave.open(str(path)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    return (sum(s * s for s in samples) / len(samples)) ** 0.5


@pytest.fixture
def voice(tmp_path: Path) -> Any:
    spoken = Spoken()
    v = Voice(VoiceConfig(out_dir=str(tmp_path), volume=120), on_spoken=spoken)
    v.spoken_paths = spoken.paths
    yield v
    v.close()


def test_louder_and_quieter_step_through_the_volumes_and_are_heard(voice: Voice,
                                                                   wait_for: Callable[..., Any]) -> None:
    assert voice.volume == 120 and voice.level == VOLUME_STEPS.index(120) + 1
    voice.say(PROMPT)
    wait_for(lambda: len(voice.spoken_paths) == 1, what="the prompt at the profile's volume")
    for _ in range(len(VOLUME_STEPS)):
        voice.louder()
    assert voice.volume == VOLUME_STEPS[-1] and voice.level == len(VOLUME_STEPS), "stops at the top"
    assert voice.repeat()
    wait_for(lambda: len(voice.spoken_paths) == 2, what="the prompt repeated, louder")
    for _ in range(len(VOLUME_STEPS) + 2):
        voice.quieter()
    assert voice.volume == VOLUME_STEPS[0] and voice.level == 1, "stops at the bottom"
    assert voice.repeat()
    wait_for(lambda: len(voice.spoken_paths) == 3, what="the prompt repeated, quieter")
    normal, loud, quiet = (loudness(p) for p in voice.spoken_paths)
    assert quiet < normal < loud, (quiet, normal, loud)


def test_mute_keeps_the_prompt_for_repeat_and_repeat_unmutes(voice: Voice, wait_for: Callable[..., Any]) -> None:
    voice.set_muted(True)
    assert voice.level == 0
    voice.say(PROMPT)
    voice.say("请确认打印内容。", remember=False)   # a sound check is not a prompt
    assert voice.spoken == 0 and voice.spoken_paths == [], "nothing said while muted"
    assert voice.repeat() and not voice.muted
    wait_for(lambda: len(voice.spoken_paths) == 1, what="the last prompt said")


def test_the_controls_last_for_the_session_only(voice: Voice) -> None:
    voice.louder()
    voice.set_muted(True)
    voice.say(PROMPT)
    voice.reset_session()
    assert (voice.volume, voice.muted) == (120, False)
    assert voice.repeat() is False, "nothing of the previous citizen to repeat"
