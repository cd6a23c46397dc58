"""Pinyin input with the Pinyin2Hanzi dictionary: segmentation, candidates, picking character by character."""
from __future__ import annotations

from kiosk.forms.ime import PinyinComposer, candidates, segment


def test_segmentation() -> None:
    assert segment("longzihu") == ["long", "zi", "hu"]
    assert segment("huaihelu") == ["huai", "he", "lu"]
    assert segment("xian") == ["xian"] and segment("xi'an") == ["xi", "an"]


def test_candidates_for_phrases_and_first_characters() -> None:
    found = candidates("huaihelu")
    assert found[0] == "淮河路"
    assert "淮" in found or "怀" in found  # single characters of the first syllable follow the phrases
    assert "张" in candidates("zhang")
    assert candidates("qqq") == []


def test_composer_picks_character_by_character() -> None:
    ime = PinyinComposer()
    for letter in "longzihu":
        ime.type(letter)
    first = next(i for i, o in enumerate(ime.options) if o == "龙")
    assert ime.pick(first) == "龙" and ime.letters == "zihu"
    assert ime.options and ime.pick(0) and ime.letters == ""
    ime.type("b")
    ime.backspace()
    assert ime.letters == "" and ime.options == []
