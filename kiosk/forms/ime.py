"""Pinyin input for the on-screen keyboard: letters typed → syllables → Chinese candidates to tap.

The dictionary is the ``Pinyin2Hanzi`` package's (PyPI ``pinyin2hanzi``, MIT; its word graph ships inside the
wheel): phrases for the whole syllable string first, then single characters for the first syllable, so a citizen can
always go character by character. Loading takes about a second: call :func:`warm_up` on a worker before the
keyboard is first shown. No Kivy here: the keyboard screen only shows what this returns.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

_lock = threading.Lock()
_params: Any = None


def _dag_params() -> Any:
    global _params
    with _lock:
        if _params is None:
            from Pinyin2Hanzi import DefaultDagParams

            _params = DefaultDagParams()
        return _params


def warm_up() -> None:
    """Load the dictionary now (blocking; about a second)."""
    _dag_params()


@lru_cache(maxsize=1)
def syllables() -> frozenset[str]:
    from Pinyin2Hanzi import all_pinyin

    return frozenset(all_pinyin())


def segment(letters: str) -> list[str]:
    """Split letters into pinyin syllables, fewest syllables first (``xian`` stays one; ``longzihu`` →
    ``long zi hu``). An apostrophe forces a split (``xi'an``). Letters that make no syllable end up alone."""
    out: list[str] = []
    for part in letters.lower().split("'"):
        out += _segment(part)
    return out


@lru_cache(maxsize=1024)
def _segment_cached(part: str) -> tuple[str, ...]:
    known = syllables()
    n = len(part)
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[0] = ()
    for i in range(n):
        if best[i] is None:
            continue
        for j in range(min(n, i + 6), i, -1):
            piece = part[i:j]
            if piece in known or j == i + 1:  # a stray letter is kept as it is
                cand = best[i] + (piece,)  # type: ignore[operator]
                penalty = lambda c: (sum(1 for p in c if p not in known), len(c))  # noqa: E731
                if best[j] is None or penalty(cand) < penalty(best[j]):  # type: ignore[arg-type]
                    best[j] = cand
    return best[n] or ()


def _segment(part: str) -> list[str]:
    return list(_segment_cached(part)) if part else []


def candidates(letters: str, limit: int = 8) -> list[str]:
    """Chinese candidates for the typed letters: phrases for all syllables, then characters for the first one
    (each only once). Empty when the letters make no pinyin."""
    parts = segment(letters)
    if not parts or any(p not in syllables() for p in parts):
        return []
    from Pinyin2Hanzi import dag

    params = _dag_params()
    out: list[str] = []
    for result in dag(params, parts, path_num=limit):
        text = "".join(result.path)
        if text not in out:
            out.append(text)
    if len(parts) > 1:
        for result in dag(params, parts[:1], path_num=limit):
            text = "".join(result.path)
            if text not in out:
                out.append(text)
    return out[: limit * 2]


@dataclass
class PinyinComposer:
    """The state of the Chinese keyboard: letters being composed and the candidates for them. Picking a
    candidate that covers only the first syllables leaves the rest composing (字 by 字)."""

    letters: str = ""
    options: list[str] = field(default_factory=list)

    def type(self, letter: str) -> list[str]:
        self.letters += letter.lower()
        self.options = candidates(self.letters)
        return self.options

    def backspace(self) -> list[str]:
        self.letters = self.letters[:-1]
        self.options = candidates(self.letters) if self.letters else []
        return self.options

    def pick(self, index: int) -> str:
        """The chosen text; the letters it covered are consumed."""
        text = self.options[index]
        parts = segment(self.letters)
        self.letters = "".join(parts[len(text):]) if len(text) < len(parts) else ""
        self.options = candidates(self.letters) if self.letters else []
        return text

    def clear(self) -> None:
        self.letters = ""
        self.options = []
