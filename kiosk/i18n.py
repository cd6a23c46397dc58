"""Translation tables (zh_CN first, en) and the current language.

Every string a citizen sees goes through :meth:`Translator.t` with a dotted key and named placeholders; tables live
in ``kiosk/locales/<lang>.yaml`` as nested mappings, plus one file per capability in ``kiosk/locales/<lang>/*.yaml``
(merged in name order; a key defined twice is an error). A key missing in English falls back to Chinese, and a key missing
everywhere shows itself (and a test checks that none is missing).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Mapping

import yaml

LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = str(value)
    return flat


@lru_cache(maxsize=None)
def table(language: str) -> dict[str, str]:
    root = resources.files("kiosk.locales")
    merged = _flatten(yaml.safe_load(root.joinpath(f"{language}.yaml").read_text("utf-8")) or {})
    folder = root.joinpath(language)
    if folder.is_dir():
        for part in sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name):
            flat = _flatten(yaml.safe_load(part.read_text("utf-8")) or {})
            twice = sorted(set(flat) & set(merged))
            if twice:
                raise ValueError(f"translation keys defined twice ({language}/{part.name}): {twice[:5]}")
            merged.update(flat)
    return merged


class Translator:
    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        self._listeners: list[Callable[[str], None]] = []
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def set_language(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}; choose one of {LANGUAGES}")
        if language != self.language:
            self.language = language
            for listener in list(self._listeners):
                listener(language)

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def t(self, key: str, **placeholders: Any) -> str:
        text = table(self.language).get(key)
        if text is None:
            text = table(DEFAULT_LANGUAGE).get(key, key)
        if placeholders:
            try:
                return text.format(**placeholders)
            except (KeyError, IndexError, ValueError):
                return text
        return text

    def has(self, key: str) -> bool:
        """Whether ``key`` has a text (in this language or in Chinese)."""
        return key in table(self.language) or key in table(DEFAULT_LANGUAGE)

    def pick(self, texts: Mapping[str, str]) -> str:
        """Choose from a ``{"zh_CN": ..., "en": ...}`` mapping (profile texts, platform data with two names)."""
        return texts.get(self.language) or texts.get(DEFAULT_LANGUAGE) or next(iter(texts.values()), "")

    def error_text(self, exc: BaseException) -> str:
        """Citizen text for a typed error, with its stable code for staff: ``打印机缺纸（paper_out）``."""
        key = getattr(exc, "translation_key", "error.generic")
        placeholders = getattr(exc, "placeholders", {}) or {}
        return self.t(key, **placeholders)
