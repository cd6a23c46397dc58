"""PIN entry for social-security cards: a large masked keypad. Digits go to the core, which hands them to the card
reader; the screen keeps only the count of digits typed after submitting."""
from __future__ import annotations

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import StringProperty

from screens.widgets import KButton, KModal

Builder.load_string("""
<PinPad>:
    size_hint: 0.6, 0.8
    KPanel:
        padding: app.fs(1)
        spacing: app.fs(0.5)
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
        KLabel:
            aid: 'pin_dots'
            text: '●' * len(root.digits) if root.digits else app.t('pin.hint', app.lang)
            font_size: app.fs(1.8)
            halign: 'center'
        GridLayout:
            id: keys
            cols: 3
            spacing: app.fs(0.3)
        BoxLayout:
            size_hint_y: None
            height: max(app.fs(2.6), 96)
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
    digits = StringProperty("")
    message = StringProperty("")

    def on_kv_post(self, base_widget) -> None:
        app = App.get_running_app()
        for key in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "DEL", "0", ""):
            btn = KButton(text=app.t("progress.backspace") if key == "DEL" else key, aid=f"pin_key_{key}",
                          disabled=not key)
            btn.bind(on_release=lambda b, k=key: self.press(k))
            self.ids.keys.add_widget(btn)

    def press(self, key: str) -> None:
        App.get_running_app().core.touch()
        if key == "DEL":
            self.digits = self.digits[:-1]
        elif key and len(self.digits) < 12:
            self.digits += key

    def submit(self) -> None:
        app = App.get_running_app()
        pin, self.digits = self.digits, ""
        try:
            app.core.submit_card_pin(pin)
        except ValueError:
            self.message = app.t("pin.malformed")
            return
        self.dismiss()

    def cancel(self) -> None:
        self.digits = ""
        self.dismiss()
