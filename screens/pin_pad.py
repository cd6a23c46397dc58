"""PIN entry: :class:`PinKeys`, the masked 3×4 keypad every PIN screen uses (the staff and maintenance screens, the
card PIN), and :class:`PinPad`, the card PIN as a modal for social-security cards. Digits of the card PIN go to the
core, which hands them to the card reader; the screen keeps only the count of digits typed after submitting."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from screens.widgets import KButton, KModal

#: the keys in reading order; "" is the free cell (disabled, or a widget the screen puts there)
KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "DEL", "0", "")
#: the most digits a PIN may have
MAX_DIGITS = 12


class PinKeys(GridLayout):
    """Digit keys and backspace as large buttons named ``<aid_prefix>_key_<key>``; what is typed is ``digits``.

    ``free`` takes the pad's free cell (else a disabled key). With ``size_hint_y=None`` the pad is as tall as its keys
    (for a scrolling column); otherwise it fills its room."""

    digits = StringProperty("")

    def __init__(self, aid_prefix: str, free: Widget | None = None, **kwargs: Any) -> None:
        app = App.get_running_app()
        kwargs.setdefault("spacing", app.fs(0.3))
        super().__init__(cols=3, **kwargs)
        if self.size_hint_y is None:
            self.bind(minimum_height=self.setter("height"))
        for key in KEYS:
            if not key and free is not None:
                self.add_widget(free)
                continue
            btn = KButton(text=app.t("progress.backspace") if key == "DEL" else key, aid=f"{aid_prefix}_key_{key}",
                          disabled=not key)
            btn.bind(on_release=lambda _b, k=key: self.press(k))
            self.add_widget(btn)

    def press(self, key: str) -> None:
        App.get_running_app().core.touch()
        if key == "DEL":
            self.digits = self.digits[:-1]
        elif key and len(self.digits) < MAX_DIGITS:
            self.digits += key

    def take(self) -> str:
        """The PIN typed, and the pad empty again."""
        pin, self.digits = self.digits, ""
        return pin

    def mirror(self, label: Any, hint: str) -> None:
        """Show on ``label`` a dot per digit typed, or ``hint`` while nothing is."""
        def show(*_: Any) -> None:
            label.text = "●" * len(self.digits) if self.digits else hint

        self.bind(digits=show)
        show()


Builder.load_string("""
#:import Window kivy.core.window.Window
<PinColumn@BoxLayout>:
    # one column of the pad: as tall as what it holds, centred beside the other in landscape
    orientation: 'vertical'
    size_hint_y: None
    height: self.minimum_height
    pos_hint: {'center_y': 0.5}
    spacing: app.fs(0.5)
<PinPad>:
    # As tall as what it shows (the keys keep their touch size; ModalView re-centres it), never taller than the
    # window. Landscape: what to read on the left, keys and buttons on the right (in elderly mode one column of large
    # keys and text does not fit 1080 px); portrait: one column. Heights stay put while typing (the keys never move
    # under a finger).
    size_hint: (0.8 if Window.width > Window.height else 0.9), None
    height: min(panel.minimum_height, Window.height)
    KPanel:
        id: panel
        orientation: 'horizontal' if Window.width > Window.height else 'vertical'
        padding: app.fs(1)
        spacing: app.fs(1)
        PinColumn:
            KLabel:
                aid: 'pin_title'
                text: app.t('pin.title', app.lang)
                font_size: app.fs(1.5)
                bold: True
                halign: 'center'
            KLabel:
                aid: 'pin_message'
                text: root.message
                halign: 'center'
                color: 0.75, 0.1, 0.1, 1
                height: max(self.texture_size[1], app.fs(1.0) * 1.5) + app.fs(0.4)
            KLabel:
                aid: 'pin_dots'
                text: '●' * len(root.digits) if root.digits else app.t('pin.hint', app.lang)
                font_size: app.fs(1.8) if root.digits else app.fs(1.0)
                halign: 'center'
                height: max(self.texture_size[1], app.fs(1.8) * 1.5) + app.fs(0.4)
        PinColumn:
            # the PinKeys go here (an id other than "keys": ``ids.keys`` would be the dict's own method)
            BoxLayout:
                id: keypad
                size_hint_y: None
            BoxLayout:
                # the buttons' own height (larger in elderly mode)
                size_hint_y: None
                height: max(app.fs(2.6), app.touch_min)
                spacing: app.fs(0.5)
                KButton:
                    aid: 'pin_cancel'
                    text: app.t('common.cancel', app.lang)
                    on_release: root.cancel()
                KButton:
                    aid: 'pin_ok'
                    primary: True
                    text: app.t('common.confirm', app.lang)
                    disabled: len(root.digits) < 4
                    on_release: root.submit()
""")


class PinPad(KModal):
    """The card PIN (a social-security card asks for it): the keypad, confirm and cancel, in a modal."""

    digits = StringProperty("")
    message = StringProperty("")

    def on_kv_post(self, base_widget: Any) -> None:
        self.keys = PinKeys("pin", size_hint_y=None)   # its keys' height: the pad never draws over the buttons
        self.keys.bind(digits=self.setter("digits"), height=self.ids.keypad.setter("height"))
        self.ids.keypad.add_widget(self.keys)
        self.ids.keypad.height = self.keys.height

    def submit(self) -> None:
        app = App.get_running_app()
        pin = self.keys.take()
        try:
            app.core.submit_card_pin(pin)
        except ValueError:
            self.message = app.t("pin.malformed")
            return
        # closed at once, not faded out: a "wrong PIN" arriving during the fade must open a new pad (the shell opens
        # one when this one has no parent), not land on this one as it goes
        self.dismiss(animation=False)

    def cancel(self) -> None:
        """The citizen tapped cancel: the pad closes and the shell says to take the card (insert it again to retry),
        as a cash machine does."""
        self.close()
        App.get_running_app().pin_cancelled()

    def close(self) -> None:
        """Close without a word: the card left, or the session ended."""
        self.keys.digits = ""
        self.dismiss(animation=False)
