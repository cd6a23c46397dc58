"""Service guide: search (name or pinyin initials) and hot keywords → list → detail with the one-time notice of
every material (一次性告知) and a print button."""
from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from kiosk.guide_sections import guide_sections
from screens.widgets import KButton, KLabel, KScreen

# (what is searched, its label key): the platform's catalogue is Chinese, the label follows the language
HOT_KEYWORDS = (("公积金", "housing_fund"), ("社保", "social_insurance"), ("户口", "household"),
                ("居住证", "residence_permit"), ("营业执照", "business_licence"), ("老年", "elderly"),
                ("不动产", "real_estate"), ("驾驶证", "driving_licence"))


def offline_notice(app: Any) -> str:
    """"Offline copy of <date>" when the last guide answer came from the kiosk's copy, else nothing."""
    as_of = app.core.guide_offline_as_of
    return app.t("guide_offline.notice", date=f"{as_of:%Y-%m-%d}") + "\n" if as_of else ""


class GuideListScreen(KScreen):
    status = StringProperty("")
    busy = BooleanProperty(False)

    def on_kv_post(self, base_widget: Any) -> None:
        app = App.get_running_app()
        self._hot_buttons: list[tuple[KButton, str]] = []
        for word, key in HOT_KEYWORDS:
            btn = KButton(aid=f"hot_{word}", font_size=app.fs(1.0))
            btn.bind(on_release=lambda b, w=word: self.search(w))
            self.ids.hot.add_widget(btn)
            self._hot_buttons.append((btn, key))
        app.bind(lang=lambda *_: self._label_hot())
        self._label_hot()

    def _label_hot(self) -> None:
        app = App.get_running_app()
        for btn, key in self._hot_buttons:
            btn.text = app.t(f"guide.hot_words.{key}")

    def on_pre_enter(self, *args) -> None:
        if not self.ids.results.children:
            self.search("")

    def search(self, query: str) -> None:
        app = App.get_running_app()
        self.ids.query.text = query
        self.busy = True
        self.status = app.t("common.loading")
        app.core.search_services(query, on_result=self._show, on_error=self._failed)

    def _show(self, services: list[Any]) -> None:
        app = App.get_running_app()
        self.busy = False
        results = self.ids.results
        results.clear_widgets()
        self.status = app.t("guide.results", count=len(services)) if services else app.t("guide.no_results")
        self.status = offline_notice(app) + self.status
        for i, service in enumerate(services):
            name = service.name if app.lang == "zh_CN" else service.name_en
            btn = KButton(text=f"{name}\n[size={int(app.fs(0.8))}]{service.department}[/size]", markup=True,
                          aid=f"service_{i}", height=max(app.fs(3.4), 120))
            btn.bind(on_release=lambda b, code=service.code: app.go("guide_detail", code=code))
            results.add_widget(btn)
        if self.ids.query.text and results.children:   # a search: its first results into view (below the popular
            first = results.children[-1]                   # services, which scroll with them)
            Clock.schedule_once(lambda _dt: self.ids.scroll.scroll_to(first, padding=self.ids.status_label.height,
                                                                      animate=False), 0.2)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status = App.get_running_app().core.translator.error_text(exc)

    def reset(self) -> None:
        self.ids.results.clear_widgets()
        self.ids.query.text = ""
        self.status = ""
        self.ids.scroll.scroll_y = 1   # the next citizen starts at the top (the popular services)


class GuideDetailScreen(KScreen):
    detail = ObjectProperty(None, allownone=True)
    status = StringProperty("")

    def on_go(self, code: str, **_: Any) -> None:
        self.load(code)

    def load(self, code: str) -> None:
        app = App.get_running_app()
        self.detail = None
        self.ids.body.clear_widgets()
        self.status = app.t("common.loading")
        app.core.service_detail(code, on_result=self._show, on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.status = App.get_running_app().core.translator.error_text(exc)

    def _show(self, detail: Any) -> None:
        app = App.get_running_app()
        t = app.t
        self.detail = detail
        self.status = offline_notice(app).strip()
        body = self.ids.body
        body.clear_widgets()
        s = detail.summary

        def add(text: str, **kw: Any) -> None:
            body.add_widget(KLabel(text=text, **kw))

        add(s.name if app.lang == "zh_CN" else s.name_en, font_size=app.fs(1.6), bold=True, aid="service_name")
        # the complete guide in sections (kiosk/guide_sections.py): everything the platform returns
        for section in guide_sections(detail, t, app.lang):
            materials = section.key == "materials"   # keeps the aids tests already use
            add(section.title, bold=True, font_size=app.fs(1.2),
                aid="materials_title" if materials else f"section_{section.key}")
            for i, line in enumerate(section.lines, 1):
                add(line, aid=f"material_{i}" if materials else f"{section.key}_{i}")

    def reset(self) -> None:
        self.detail = None
        self.ids.body.clear_widgets()
        self.status = ""


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"guide": GuideListScreen, "guide_detail": GuideDetailScreen}
