from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.errors import ALL_DEVICE_ERRORS
from drivers.smartcard.errors import SMARTCARD_ERRORS
from kiosk import errors as kiosk_errors
from kiosk.i18n import LANGUAGES, Translator, table

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_in_both_languages():
    zh, en = table("zh_CN"), table("en")
    assert set(zh) == set(en), f"only zh: {set(zh) - set(en)}; only en: {set(en) - set(zh)}"


def test_placeholders_match():
    zh, en = table("zh_CN"), table("en")
    for key in zh:
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_error_has_text(language):
    classes = list(ALL_DEVICE_ERRORS) + list(SMARTCARD_ERRORS) + [c for c in vars(kiosk_errors).values()
                                         if isinstance(c, type) and issubclass(c, kiosk_errors.KioskError)]
    t = table(language)
    for cls in classes:
        assert cls.translation_key in t, f"{cls.__name__}: {cls.translation_key} missing in {language}"


def test_every_key_used_in_code_and_kv_exists():
    zh = table("zh_CN")
    used: set[str] = set()
    for path in list((ROOT / "kiosk").rglob("*.py")) + list((ROOT / "screens").rglob("*.py")) + \
            list((ROOT / "screens").rglob("*.kv")):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""", path.read_text("utf-8")))
    assert used, "no translated strings found: the pattern is wrong"
    assert not used - set(zh), f"keys used but missing: {sorted(used - set(zh))}"


def test_switch_language_and_fallback():
    tr = Translator()
    assert tr.t("attract.tap_card") == "请将身份证放在感应区"
    seen: list[str] = []
    tr.on_change(seen.append)
    tr.set_language("en")
    assert tr.t("attract.tap_card") == "Place your ID card on the reader"
    assert tr.t("common.seconds_left", seconds=12) == "12 s left"
    assert seen == ["en"]
    assert tr.t("no.such.key") == "no.such.key"
    with pytest.raises(ValueError):
        tr.set_language("fr")
