"""Common widgets of the shell: large touch targets (≥ 60 px, most ≥ 96 px), high contrast, an automation id.

``aid`` names a widget for the automation endpoint (tests, accessibility tooling); it has no effect on display.
"""
from __future__ import annotations

from typing import Any

from kivy.lang import Builder
from kivy.properties import BooleanProperty, ColorProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import Screen

MIN_TOUCH_PX = 60

Builder.load_string("""
#:set PRIMARY (0.09, 0.36, 0.75, 1)
#:set PRIMARY_DOWN (0.05, 0.25, 0.55, 1)
#:set DISABLED (0.78, 0.8, 0.83, 1)
#:set TEXT (0.1, 0.12, 0.16, 1)

<KLabel>:
    color: TEXT
    font_size: app.fs(1.0)
    text_size: self.width, None
    size_hint_y: None
    height: self.texture_size[1] + app.fs(0.4)
    halign: 'left'
    valign: 'middle'

<KButton>:
    font_size: app.fs(1.1)
    size_hint_y: None
    height: max(app.fs(2.6), 96)
    background_normal: ''
    background_down: ''
    background_disabled_normal: ''
    background_color: (DISABLED if self.disabled else (PRIMARY_DOWN if self.state == 'down' else (PRIMARY if self.primary else (0.93, 0.95, 0.98, 1))))
    color: (0.45, 0.47, 0.5, 1) if self.disabled else ((1, 1, 1, 1) if self.primary else TEXT)
    disabled_color: (0.45, 0.47, 0.5, 1)
    halign: 'center'
    valign: 'middle'
    text_size: self.width - 20, None

<Tile>:
    orientation: 'vertical'
    padding: app.fs(0.8)
    spacing: app.fs(0.3)
    canvas.before:
        Color:
            rgba: (DISABLED if self.disabled else (PRIMARY_DOWN if self.state == 'down' else self.tile_color))
        RoundedRectangle:
            pos: self.pos
            size: self.size
            radius: [18]
    Label:
        text: root.title
        font_size: app.fs(1.6)
        bold: True
        color: (0.4, 0.42, 0.45, 1) if root.disabled else (1, 1, 1, 1)
        text_size: self.width, None
        halign: 'center'
    Label:
        text: root.hint
        font_size: app.fs(0.9)
        color: (0.4, 0.42, 0.45, 1) if root.disabled else (0.9, 0.94, 1, 1)
        text_size: self.width, None
        halign: 'center'

<KModal>:
    auto_dismiss: False
    background_color: 0, 0, 0, 0.6

<KPanel>:
    orientation: 'vertical'
    canvas.before:
        Color:
            rgba: 1, 1, 1, 1
        RoundedRectangle:
            pos: self.pos
            size: self.size
            radius: [20]

<KScreen>:
    canvas.before:
        Color:
            rgba: 0.97, 0.98, 1, 1
        Rectangle:
            pos: self.pos
            size: self.size

<TitleBar@BoxLayout>:
    title: ''
    size_hint_y: None
    height: max(app.fs(3), 110)
    padding: app.fs(0.6), app.fs(0.3)
    spacing: app.fs(0.6)
    canvas.before:
        Color:
            rgba: 0.09, 0.36, 0.75, 1
        Rectangle:
            pos: self.pos
            size: self.size
    Label:
        text: root.title
        font_size: app.fs(1.5)
        bold: True
        text_size: self.size
        halign: 'left'
        valign: 'middle'
        shorten: True
        shorten_from: 'right'
    Label:
        text: app.clock_text
        font_size: app.fs(1.0)
        size_hint_x: None
        width: self.texture_size[0]
""")


class KLabel(Label):
    aid = StringProperty("")


class KButton(Button):
    aid = StringProperty("")
    primary = BooleanProperty(False)


class Tile(ButtonBehavior, BoxLayout):
    aid = StringProperty("")
    title = StringProperty("")
    hint = StringProperty("")
    tile_color = ColorProperty((0.09, 0.36, 0.75, 1))


class KModal(ModalView):
    """A dialog over the screen (timeout warning, PIN pad): dims what is behind, never closes by a stray tap."""


class KPanel(BoxLayout):
    """The white rounded card a dialog's content sits on."""


class KScreen(Screen):
    """Base of every screen: ``reset()`` forgets everything shown (called at session end, so the next citizen can
    never see the previous one's data, not even with Back)."""

    core = None  # set by the app
    font_scale = NumericProperty(1.0)

    def reset(self) -> None:
        pass

    def on_go(self, **kwargs: Any) -> None:
        """Called by ``app.go(name, **kwargs)`` before the screen shows: take what the caller hands over."""
