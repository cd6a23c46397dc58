"""On-screen keyboard for text the kiosk cannot pre-fill: digits (phone, card and file numbers, ID numbers with X,
dates), Latin letters, and Chinese by pinyin with candidates to tap (:mod:`kiosk.forms.ime`). Large keys (≥ 60 px);
the typed text stays in this dialog until confirmed and is forgotten when it closes."""
from __future__ import annotations

import weakref
from typing import Any, Callable, ClassVar

from kivy.app import App
from kivy.properties import NumericProperty, StringProperty

from kiosk.forms import ime
from screens.widgets import KButton, KModal

DIGITS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
LETTERS = "qwertyuiopasdfghjklzxcvbnm"
#: layout → extra keys after the digits
EXTRA = {"digits": (), "id_number": ("X",), "date": ("-",)}


class OnScreenKeyboard(KModal):
    """``OnScreenKeyboard(title, text, layout, on_done).open()``; ``layout``: digits | id_number | date | text.
    ``on_done(text)`` gets the confirmed text; cancel leaves the field as it was."""

    title = StringProperty("")
    text = StringProperty("")
    letters = StringProperty("")   # pinyin being composed
    message = StringProperty("")
    layout = StringProperty("text")
    mode = StringProperty("pinyin")  # text layout: pinyin | latin | digits
    mode_label = StringProperty("")
    cols = NumericProperty(10)
    _open: ClassVar["weakref.WeakSet[OnScreenKeyboard]"] = weakref.WeakSet()

    @classmethod
    def close_all(cls) -> None:
        """Close every open keyboard, forgetting what was typed (session end: nothing left for the next citizen)."""
        for keyboard in list(cls._open):
            keyboard.cancel()

    def open(self, *args: Any, **kwargs: Any) -> None:
        OnScreenKeyboard._open.add(self)
        super().open(*args, **kwargs)

    def __init__(self, title: str = "", text: str = "", layout: str = "text",
                 on_done: Callable[[str], None] | None = None, max_length: int | None = None, **kw: Any) -> None:
        self._on_done = on_done
        self._max = max_length
        self._composer = ime.PinyinComposer()
        super().__init__(**kw)
        self.title, self.text, self.layout = title, text, layout
        self.mode = "pinyin" if layout == "text" else "digits"
        self._build_keys()

    # keys ------------------------------------------------------------------------------------------------------------
    def _build_keys(self) -> None:
        app = App.get_running_app()
        box = self.ids.keypad
        box.clear_widgets()
        if self.layout != "text" or self.mode == "digits":
            keys: tuple[str, ...] = DIGITS + EXTRA.get(self.layout, ())
            self.cols = 5 if self.layout != "text" else 10
        else:
            keys = tuple(LETTERS.upper() if self.mode == "latin" else LETTERS)
            self.cols = 10
        for key in keys:
            btn = KButton(text=key, aid=f"kb_key_{key.lower()}", font_size=app.fs(1.3))
            btn.bind(on_release=lambda b, k=key: self.press(k))
            box.add_widget(btn)
        labels = {"pinyin": "keyboard.mode_pinyin", "latin": "keyboard.mode_latin", "digits": "keyboard.mode_digits"}
        self.mode_label = app.t(labels[self.mode])
        self._show_candidates()

    def next_mode(self) -> None:
        App.get_running_app().core.touch()
        self._commit_letters()
        self.mode = {"pinyin": "latin", "latin": "digits", "digits": "pinyin"}[self.mode]
        self._build_keys()

    # typing ----------------------------------------------------------------------------------------------------------
    def _room(self) -> bool:
        if self._max is not None and len(self.text) >= self._max:
            self.message = App.get_running_app().t("keyboard.too_long", limit=self._max)
            return False
        return True

    def press(self, key: str) -> None:
        App.get_running_app().core.touch()
        self.message = ""
        if self.layout == "text" and self.mode == "pinyin" and key.isalpha():
            self._composer.type(key)
            self.letters = self._composer.letters
            self._show_candidates()
            return
        self._commit_letters()
        if self._room():
            self.text += key

    def backspace(self) -> None:
        App.get_running_app().core.touch()
        if self._composer.letters:
            self._composer.backspace()
            self.letters = self._composer.letters
            self._show_candidates()
        else:
            self.text = self.text[:-1]

    def pick(self, index: int) -> None:
        App.get_running_app().core.touch()
        chosen = self._composer.pick(index)
        if self._room():
            self.text += chosen
        self.letters = self._composer.letters
        self._show_candidates()

    def _commit_letters(self) -> None:
        """Letters left uncomposed go in as they are (e.g. a Latin name typed in pinyin mode)."""
        if self._composer.letters:
            self.text += self._composer.letters
            self._composer.clear()
            self.letters = ""
            self._show_candidates()

    def _show_candidates(self) -> None:
        box = self.ids.cand_bar
        box.clear_widgets()
        for i, option in enumerate(self._composer.options[:8]):
            btn = KButton(text=option, aid=f"kb_cand_{i}", height=max(App.get_running_app().fs(2.2), 80))
            btn.bind(on_release=lambda b, i=i: self.pick(i))
            box.add_widget(btn)

    # closing ---------------------------------------------------------------------------------------------------------
    def done(self) -> None:
        self._commit_letters()
        text, callback = self.text, self._on_done
        self._forget()
        self.dismiss(animation=False)  # the next tap must reach the screen, not a closing dialog
        if callback:
            callback(text)

    def cancel(self) -> None:
        self._forget()
        self.dismiss(animation=False)  # the next tap must reach the screen, not a closing dialog

    def _forget(self) -> None:
        OnScreenKeyboard._open.discard(self)
        self.text = self.letters = self.message = ""
        self._composer.clear()
        self._on_done = None
