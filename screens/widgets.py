"""Common widgets of the shell: large touch targets (≥ 60 px, most ≥ 96 px), high contrast, an automation id.

``aid`` names a widget for the automation endpoint (tests, accessibility tooling); it has no effect on display.
"""
from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ColorProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import Screen

MIN_TOUCH_PX = 60

Builder.load_string("""
<KLabel,WordFitLabel>:
    color: app.palette['text']
    font_size: app.fs(1.0)
    text_size: self.width, None
    size_hint_y: None
    height: self.texture_size[1] + app.fs(0.4)
    halign: 'left'
    valign: 'middle'

<KButton>:
    font_size: app.fs(1.1)
    size_hint_y: None
    # the touch-target size (1.5× in elderly mode, with the fonts); KButton grows when its text needs more
    height: max(app.fs(2.6), app.touch_min)
    background_normal: ''
    background_down: ''
    background_disabled_normal: ''
    background_color: (app.palette['disabled'] if self.disabled else (app.palette['primary_down'] if self.state == 'down' else (app.palette['primary'] if self.primary else app.palette['secondary'])))
    color: app.palette['on_disabled'] if self.disabled else (app.palette['on_primary'] if self.primary else app.palette['on_secondary'])
    disabled_color: app.palette['on_disabled']
    halign: 'center'
    valign: 'middle'
    text_size: self.width - 20, None

<Tile>:
    orientation: 'vertical'
    tile_color: app.palette['primary']
    padding: app.font_base * 0.5
    spacing: app.font_base * 0.2
    canvas.before:
        Color:
            rgba: (app.palette['disabled'] if self.disabled else (app.palette['primary_down'] if self.state == 'down' else self.tile_color))
        RoundedRectangle:
            pos: self.pos
            size: self.size
            radius: [18]
    FitLabel:
        text: root.title
        max_font: app.fs(1.6)
        # a long English name on a small tile (1280×1024): smaller rather than over the hint
        min_ratio: 0.3
        bold: True
        color: app.palette['on_disabled'] if root.disabled else app.palette['on_primary']
        text_size: self.width, None
        halign: 'center'
        valign: 'middle'
    FitLabel:
        # elderly mode: the tile's name only, as large as the tile allows (simple, MIIT 适老化)
        text: '' if app.elderly else root.hint
        size_hint_y: 0.0001 if app.elderly else 1
        max_font: app.fs(0.9)
        color: app.palette['on_disabled'] if root.disabled else app.palette['on_primary_muted']
        text_size: self.width, None
        halign: 'center'
        valign: 'top'

<KeyButton>:
    max_font: app.fs(1.1)
    # its own size, or less when its keypad (:class:`Keypad`) has no more room per row
    height: min(self.cap, max(app.fs(1.8), 64 * (1.5 if app.elderly else 1))) if self.cap > 0 else max(app.fs(1.8), 64 * (1.5 if app.elderly else 1))

<KModal>:
    auto_dismiss: False
    background_color: 0, 0, 0, 0.6

<KPanel>:
    orientation: 'vertical'
    canvas.before:
        Color:
            rgba: app.palette['panel']
        RoundedRectangle:
            pos: self.pos
            size: self.size
            radius: [20]

<KScreen>:
    canvas.before:
        Color:
            rgba: app.palette['background']
        Rectangle:
            pos: self.pos
            size: self.size

<TitleBar@BoxLayout>:
    title: ''
    size_hint_y: None
    # a long title (English, elderly mode, a narrow portrait screen) wraps onto a second line: the bar grows
    height: max(app.fs(1.5) * 1.8, 110, title_label.texture_size[1] + 2 * app.fs(0.3) + 6)
    padding: app.fs(0.6), app.fs(0.3)
    spacing: app.fs(0.6)
    canvas.before:
        Color:
            rgba: app.palette['primary']
        Rectangle:
            pos: self.pos
            size: self.size
    Label:
        id: title_label
        text: root.title
        font_size: app.fs(1.5)
        bold: True
        text_size: self.width, None
        halign: 'left'
        valign: 'middle'
    Label:
        # the date too where there is room; the time only on narrow screens
        text: app.clock_text if root.width > app.font_base * 40 else app.clock_time
        font_size: app.fs(1.0)
        size_hint_x: None
        width: self.texture_size[0]
""")


class KLabel(Label):
    aid = StringProperty("")


class WordFit:
    """Shrinks a label's font (down to half of what its rules give) while a Latin word is wider than its text box,
    instead of letting Kivy break the word in the middle ("Standar / d mode")."""

    def _watch_words(self) -> None:
        self._fitting = False
        self._wanted_font = self.font_size   # the font size its rules or its creator gave it
        self._refit_words = Clock.create_trigger(self._fit_words, 0)
        self.fbind("font_size", self._on_font)
        self.fbind("text_size", self._refit_words)
        self.fbind("text", self._refit_words)
        self._refit_words()

    def _on_font(self, *_: Any) -> None:
        if not self._fitting:
            self._wanted_font = self.font_size
            self._refit_words()

    def _fit_words(self, *_: Any) -> None:
        from kivy.core.text import Label as CoreLabel

        size = self._wanted_font or self.font_size
        room = self.text_size[0] if self.text_size and self.text_size[0] else None
        words = {w for w in self.text.split() if w.isascii() and len(w) > 1} if not self.markup else set()
        if room and room > 0 and words:
            for _attempt in range(3):
                widest = 0.0
                for word in words:
                    core = CoreLabel(text=word, font_size=size, font_name=self.font_name, bold=self.bold)
                    core.refresh()
                    widest = max(widest, core.content_size[0])
                if widest <= room - 1:
                    break
                size = max(size * (room - 1) / widest * 0.98, (self._wanted_font or size) * 0.5)
        if abs(self.font_size - size) > 0.1:
            self._fitting = True
            try:
                self.font_size = size
            finally:
                self._fitting = False


class WordFitLabel(WordFit, Label):
    """A :class:`KLabel` (same rules) whose font gets smaller while a Latin word does not fit its width."""

    aid = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._watch_words()


class KButton(WordFit, Button):
    aid = StringProperty("")
    primary = BooleanProperty(False)

    #: shrink the font (down to half) when a Latin word is wider than the button ("Previous" on a narrow button)
    #: instead of letting Kivy break it in the middle
    fit_words = True

    def __init__(self, **kwargs: Any) -> None:
        self._base_height = 0.0    # the height its rules or its creator gave it
        self._growing = False
        super().__init__(**kwargs)
        self._base_height = self.height
        self.fbind("texture_size", self._grow)
        self.fbind("height", self._on_height)
        if self.fit_words:
            self._watch_words()


    def on_touch_down(self, touch: Any) -> bool:
        """A button hidden by its own or an ancestor's ``opacity: 0`` takes no tap (disabled, it would swallow it)."""
        w: Any = self
        while w is not None and w is not w.parent:
            if w.opacity == 0:
                return False
            w = w.parent
        return super().on_touch_down(touch)

    def _on_height(self, *_: Any) -> None:
        if not self._growing:
            self._base_height = self.height
            self._grow()

    def _grow(self, *_: Any) -> None:
        """Never shorter than its text (two lines of a long English label): taller, not cut — and back to its own
        height when the text needs less again (a wider box, another language)."""
        if self.size_hint_y is not None:
            return
        want = max(self._base_height, self.texture_size[1] + 12)
        if abs(self.height - want) > 0.5:
            self._growing = True
            try:
                self.height = want
            finally:
                self._growing = False


class KeyButton(KButton):
    """A keypad key: a little lower than other buttons (≥ 64 px, 1.5× and more in elderly mode) so that a keypad of
    four rows fits beside its fields, and its text never larger than the key allows."""

    fit_words = False   # :meth:`_fit_key` fits the text
    max_font = NumericProperty(0)
    #: the most height its keypad can give it (0: no limit)
    cap = NumericProperty(0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fbind("height", self._fit_key)
        self.fbind("width", self._fit_key)
        self.fbind("text", self._fit_key)
        self.fbind("max_font", self._fit_key)

    def _grow(self, *_: Any) -> None:
        """Keys never grow: their font follows their height (:meth:`_fit_key`), so the keypad keeps its rows."""

    def _fit_key(self, *_: Any) -> None:
        if self.max_font:
            size = max(8.0, min(self.max_font, self.height / 1.6))
            room = self.width - 24
            if self.text and room > 0:   # one line, never broken ("SP/FB" on a narrow key)
                from kivy.core.text import Label as CoreLabel

                core = CoreLabel(text=self.text, font_size=size, font_name=self.font_name, bold=self.bold)
                core.refresh()
                if core.content_size[0] > room:
                    size = max(8.0, size * room / core.content_size[0])
            self.font_size = size


class Keypad(GridLayout):
    """A grid of :class:`KeyButton` whose keys get lower (their text with them) when the grid has less height than
    they want: the keypad stays beside its fields in elderly mode, portrait and 1280×1024."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fbind("height", self._cap_keys)
        self.fbind("spacing", self._cap_keys)

    def add_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        super().add_widget(widget, *args, **kwargs)
        self._cap_keys()

    def _cap_keys(self, *_: Any) -> None:
        rows = max(1, -(-len(self.children) // max(1, self.cols or 1)))
        per_row = max(1.0, (self.height - self.padding[1] - self.padding[3] - self.spacing[1] * (rows - 1)) / rows)
        for key in self.children:
            if isinstance(key, KeyButton):
                key.cap = per_row


class FitRow(BoxLayout):
    """A row of buttons as tall as its tallest child (a button whose text wraps to two lines grows: the row follows
    it instead of letting it stick out) and never lower than ``min_height``."""

    min_height = NumericProperty(0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size_hint_y = None
        self.fbind("min_height", self._fit_height)
        self.fbind("padding", self._fit_height)
        self._fit_height()

    def add_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        super().add_widget(widget, *args, **kwargs)
        widget.fbind("height", self._fit_height)
        self._fit_height()

    def remove_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        widget.funbind("height", self._fit_height)
        super().remove_widget(widget, *args, **kwargs)
        self._fit_height()

    def _fit_height(self, *_: Any) -> None:
        tallest = max((c.height for c in self.children if c.size_hint_y is None), default=0.0)
        self.height = max(self.min_height, tallest + self.padding[1] + self.padding[3])


class FitLabel(Label):
    """A label whose font is ``max_font`` when its text fits its box, else the largest size (down to ``min_ratio`` ×
    ``max_font``) at which it does: tiles keep their size whatever the language and the text."""

    aid = StringProperty("")
    max_font = NumericProperty(20)
    min_ratio = NumericProperty(0.45)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refit = Clock.create_trigger(self._fit, 0)
        self.fbind("size", self._refit)
        self.fbind("text", self._refit)
        self.fbind("max_font", self._refit)

    def _fit(self, *_: Any) -> None:
        from kivy.core.text import Label as CoreLabel

        if self.width <= 1 or self.height <= 1 or not self.text:
            self.font_size = self.max_font
            return
        size, floor = self.max_font, self.max_font * self.min_ratio
        while size > floor:
            core = CoreLabel(text=self.text, font_size=size, font_name=self.font_name, bold=self.bold,
                             halign=self.halign, text_size=(self.width, None))
            core.refresh()
            w, h = core.content_size
            if w <= self.width + 1 and h <= self.height + 1 and self._words_fit(size):
                break
            size *= 0.92
        self.font_size = max(size, floor)

    def _words_fit(self, size: float) -> bool:
        """No Latin word wider than the box at ``size`` (Kivy would break it in the middle)."""
        from kivy.core.text import Label as CoreLabel

        for word in {w for w in self.text.split() if w.isascii() and len(w) > 1}:
            core = CoreLabel(text=word, font_size=size, font_name=self.font_name, bold=self.bold)
            core.refresh()
            if core.content_size[0] > self.width + 1:
                return False
        return True


class Tile(ButtonBehavior, BoxLayout):
    aid = StringProperty("")
    title = StringProperty("")
    hint = StringProperty("")
    tile_color = ColorProperty((0.09, 0.36, 0.75, 1))


class KModal(ModalView):
    """A dialog over the screen (timeout warning, PIN pad): dims what is behind, never closes by a stray tap."""


class HidingBox(BoxLayout):
    """A row shown only sometimes (``opacity`` 0 when hidden): while hidden it takes no touch at all, so a hidden
    (and disabled) button in it can never swallow a tap meant for what is drawn where it sits."""

    def on_touch_down(self, touch: Any) -> bool:
        return False if self.opacity == 0 else super().on_touch_down(touch)

    def on_touch_up(self, touch: Any) -> bool:
        return False if self.opacity == 0 else super().on_touch_up(touch)


class KPanel(BoxLayout):
    """The white rounded card a dialog's content sits on."""


class KScreen(Screen):
    """Base of every screen: ``reset()`` forgets everything shown (called at session end, so the next citizen can
    never see the previous one's data, not even with Back)."""

    core = None  # set by the app
    # (no per-screen font scale: text sizes come from ``app.fs``, which follows the window size and elderly mode)

    def reset(self) -> None:
        pass

    def on_go(self, **kwargs: Any) -> None:
        """Called by ``app.go(name, **kwargs)`` before the screen shows: take what the caller hands over."""


Builder.load_string("""
<ElderlyButton>:
    aid: 'elderly_mode'
    # one large button: on the attract and menu screens (kiosk/elderly.py); hidden where the profile says "off"
    text: app.t('elderly.button_off' if app.elderly else 'elderly.button_on', app.lang)
    font_size: app.fs(1.2)
    bold: True
    opacity: 1 if app.core.elderly.allowed else 0
    disabled: not app.core.elderly.allowed
    on_release: app.toggle_elderly()
""")


class ElderlyButton(KButton):
    """Switches elderly mode (适老化) for the session."""
