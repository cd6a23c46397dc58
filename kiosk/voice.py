"""Spoken prompts for citizens (many are elderly or read poorly): each screen and each important moment is also said.

One utterance at a time and the newest wins: a prompt for a screen the citizen has already left is cut off, and
:meth:`Voice.stop` at session end silences anything still being said about the previous citizen. Speech is made by
``espeak-ng`` (Debian's package; Mandarin voice ``cmn``, English ``en``) at a slower rate than its default, and played
with ``aplay``; a kiosk without a sound card (or a test) names ``out_dir`` and gets each utterance as a WAV file there.

The text is handed to espeak-ng on stdin, never on its command line (which any process can read in /proc), and is
never logged: prompts are generic, but a greeting may carry the citizen's masked name.

The citizen's own controls (the control bar on every screen): repeat the last prompt, louder / quieter in
:data:`VOLUME_STEPS`, mute. They last for the session: :meth:`Voice.reset_session` (session end) brings the profile's
volume back, unmutes and forgets the last prompt.
"""
from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable

from device_profiles.loader import VoiceConfig

log = logging.getLogger(__name__)

#: espeak-ng voice per kiosk language
VOICES = {"zh_CN": "cmn", "en": "en"}
#: espeak-ng amplitudes the citizen steps through with louder / quieter (the profile's volume is the start)
VOLUME_STEPS = (50, 85, 120, 160, 200)


class Voice:
    """Says texts on a worker thread; ``say`` never blocks the caller (the UI thread)."""

    def __init__(self, config: VoiceConfig = VoiceConfig(), espeak: str | None = None, player: str | None = None,
                 on_spoken: Callable[[str, Path | None], None] | None = None) -> None:
        self.config = config
        self._espeak = espeak or shutil.which("espeak-ng")
        self._player = player or shutil.which("aplay")
        self._on_spoken = on_spoken
        self._lock = threading.Condition()
        self._pending: tuple[str, str] | None = None
        self._current: list[subprocess.Popen[bytes]] = []
        self._closed = False
        self._numbers = itertools.count(1)
        self.spoken = 0
        self.failed = 0
        self._warned = False
        self._cut = False      # the current utterance was killed on purpose
        self._broken = False   # playing failed (no sound card): stop trying until the app restarts
        #: × config.rate_wpm (elderly mode slows speech down: kiosk/elderly.py)
        self.rate_factor = 1.0
        self._thread: threading.Thread | None = None
        #: the session's settings (the citizen's controls); back to the profile's at session end
        self.volume = config.volume
        self.muted = False
        self._last: tuple[str, str] | None = None   # the last prompt (text, language), for "repeat"
        if not config.enabled:
            return
        if self._espeak is None:
            log.warning("voice prompts off: espeak-ng is not installed (apt-get install espeak-ng)")
            return
        if not config.out_dir and self._player is None:
            log.warning("voice prompts off: aplay is not installed (apt-get install alsa-utils)")
            return
        self._thread = threading.Thread(target=self._run, name="kiosk-voice", daemon=True)
        self._thread.start()

    @property
    def rate_wpm(self) -> int:
        """The speech rate in use: the profile's, slower in elderly mode (espeak-ng accepts 80–450)."""
        return max(80, round(self.config.rate_wpm * self.rate_factor))

    @property
    def available(self) -> bool:
        """Prompts can be said: enabled, espeak-ng (and a player) installed, and playing has not failed."""
        return self._thread is not None and not self._broken

    def say(self, text: str, language: str = "zh_CN", remember: bool = True) -> None:
        """Say ``text`` now: whatever is being said is cut off, whatever was waiting is dropped. Muted: nothing is
        said, but the prompt is kept for :meth:`repeat` (``remember=False``: a sound check, not a prompt)."""
        if not text.strip():
            return
        if remember:
            self._last = (text, language)
        if not self.available or self.muted:
            return
        with self._lock:
            self._pending = (text, language)
            self._kill_current()
            self._lock.notify()

    # the citizen's controls --------------------------------------------------------------------------------------------
    def repeat(self) -> bool:
        """Say the last prompt again (unmuting: whoever asks to hear it again wants sound). False: nothing to repeat."""
        last = self._last
        if last is None:
            return False
        self.muted = False
        self.say(*last)
        return True

    def louder(self) -> int:
        """One step up in :data:`VOLUME_STEPS` (unmutes); the new volume."""
        self.muted = False
        self.volume = next((v for v in VOLUME_STEPS if v > self.volume), VOLUME_STEPS[-1])
        return self.volume

    def quieter(self) -> int:
        """One step down in :data:`VOLUME_STEPS`; the new volume."""
        self.volume = next((v for v in reversed(VOLUME_STEPS) if v < self.volume), VOLUME_STEPS[0])
        return self.volume

    def set_muted(self, muted: bool) -> None:
        """Mute (what is being said stops at once) or unmute."""
        self.muted = muted
        if muted:
            with self._lock:
                self._pending = None
                self._kill_current()

    @property
    def level(self) -> int:
        """The volume as a step number 1..len(VOLUME_STEPS) (0 when muted), for the screen."""
        if self.muted:
            return 0
        return 1 + max((i for i, v in enumerate(VOLUME_STEPS) if v <= self.volume), default=0)

    def reset_session(self) -> None:
        """Session end: the profile's volume, sound on, no prompt to repeat (it may have carried a masked name)."""
        self.volume = self.config.volume
        self.muted = False
        self._last = None

    def stop(self) -> None:
        """Silence: cut off the current utterance and drop the waiting one (session end)."""
        with self._lock:
            self._pending = None
            self._kill_current()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending = None
            self._kill_current()
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _kill_current(self) -> None:
        for proc in self._current:
            if proc.poll() is None:
                proc.kill()
                self._cut = True

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                text, language = self._pending
                self._pending = None
            try:
                out = self._speak(text, language)
            except OSError as exc:
                self._fail(f"voice prompt failed: {exc!r}")
                continue
            if out is not False and self._on_spoken is not None:
                self._on_spoken(language, out)

    def _speak(self, text: str, language: str) -> Path | None | bool:
        """Make (and play) one utterance; False when it was cut off or failed."""
        args = [str(self._espeak), "-v", VOICES.get(language, "cmn"), "-s", str(self.rate_wpm),
                "-a", str(self.volume)]
        target: Path | None = None
        if self.config.out_dir:
            folder = Path(self.config.out_dir)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{next(self._numbers):04d}-{language}.wav"
            args += ["-w", str(target)]
        else:
            args.append("--stdout")
        with self._lock:
            if self._pending is not None or self._closed:
                return False   # a newer prompt came while we were getting ready
            speaker = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE if not target else
                                       subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs = [speaker]
            if target is None:
                assert self._player is not None
                procs.append(subprocess.Popen([self._player, "-q", "-"], stdin=speaker.stdout,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                assert speaker.stdout is not None
                speaker.stdout.close()   # the player owns the pipe now
            self._current = procs
            self._cut = False
        try:
            assert speaker.stdin is not None
            speaker.stdin.write(text.encode("utf-8"))
            speaker.stdin.close()
        except BrokenPipeError:
            pass
        codes = [proc.wait() for proc in procs]
        with self._lock:
            self._current = []
            cut = self._cut
        if cut:
            return False   # cut off by a newer prompt or stop()
        if any(codes):
            self._broken = True
            self._fail(f"voice prompts off: playing failed (exit codes {codes}; no sound card?)")
            return False
        self.spoken += 1
        return target

    def _fail(self, message: str) -> None:
        self.failed += 1
        if not self._warned:   # once: a kiosk without a sound card would otherwise log on every screen
            self._warned = True
            log.warning(message)
