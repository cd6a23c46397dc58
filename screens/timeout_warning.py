"""The session-timeout warning (WCAG 2.2.1): a countdown and one big button to extend; any touch extends too."""
from __future__ import annotations

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import NumericProperty

from screens.widgets import KModal

Builder.load_string("""
<TimeoutWarning>:
    size_hint: 0.7, 0.5
    KPanel:
        padding: app.fs(1.5)
        spacing: app.fs(1)
        KLabel:
            aid: 'timeout_title'
            text: app.t('timeout.title', app.lang)
            font_size: app.fs(2)
            bold: True
            halign: 'center'
        KLabel:
            aid: 'timeout_body'
            text: app.t('timeout.body', app.lang, seconds=int(root.seconds_left))
            font_size: app.fs(1.3)
            halign: 'center'
        KButton:
            aid: 'timeout_extend'
            primary: True
            text: app.t('timeout.extend', app.lang)
            height: max(app.fs(3), 110)
            on_release: app.core.session.extend()
""")


class TimeoutWarning(KModal):
    seconds_left = NumericProperty(0)

    def on_pre_open(self) -> None:
        self._update(0)
        self._ev = Clock.schedule_interval(self._update, 0.25)

    def on_dismiss(self) -> None:
        self._ev.cancel()

    def _update(self, _dt: float) -> None:
        self.seconds_left = App.get_running_app().core.session.seconds_left()
