"""EMS delivery (证照寄送): pick the application → read and agree to the consent → address (province/city/district
picker + street) and phone → confirm → order number on screen and on a receipt; tracking of the citizen's deliveries.
The flow is :class:`kiosk.usecases.delivery.DeliveryFlow` (``core.delivery``)."""
from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.app import App
from kivy.uix.spinner import Spinner, SpinnerOption

from kiosk.usecases.delivery import REGIONS, default_region
from screens.appointment import FlowScreen
from screens.keyboard import OnScreenKeyboard
from screens.widgets import KButton


class RegionOption(SpinnerOption):
    """A choice in the region pickers' lists: as large as every other touch target (≥ 60 px)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        app = App.get_running_app()
        self.height = max(app.fs(2.2), 80)
        self.font_size = app.fs(1.1)
        self.aid = f"region_{self.text}"


class DeliveryScreen(FlowScreen):
    """Steps: home · consent · address · confirm · ordered · deliveries · tracking."""

    prefix = "delivery"
    flow_name = "delivery"
    phone = StringProperty("")
    street = StringProperty("")

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        self.title_key = "delivery.title"
        self.forget()

    def forget(self) -> None:
        """Drop everything the citizen gave or was shown (personal data)."""
        self.application = self.consent = self.ordered = self.delivery = None
        self.agreed = False
        self.phone = self.street = ""
        profile = getattr(self.app, "profile", None)
        self.region = default_region(profile.kiosk.district if profile is not None else "")
        self.overview = None


    # --- steps --------------------------------------------------------------------------------------------------
    def show_home(self) -> None:
        self.heading = self.t("delivery.pick_application")
        if not self.app.core.session.citizen:
            self.failed, self.status = True, self.t("booking.error.not_identified")
            return
        self.working()
        self.flow.overview(on_result=self._overview, on_error=self.fail)

    def _overview(self, overview: Any) -> None:
        self.overview = overview
        self.ok("" if overview.mailable else self.t("delivery.none_mailable"))
        if self.step != "home":
            return
        for i, a in enumerate(overview.mailable):
            self.add_button(self.t("delivery.application_line", service=a.service_name, number=a.number,
                                   status=self.t(f"application.status.{a.status}")),
                            f"mail_{i}", lambda a=a: self._pick(a), lines=2)
        if overview.deliveries:
            self.add_button(self.t("delivery.track"), "delivery_track", lambda: self.go_step("deliveries"))

    def _pick(self, application: Any) -> None:
        self.application = application
        self.go_step("consent")

    def show_consent(self) -> None:
        self.heading = self.t("delivery.consent_title")
        self.working()
        self.flow.consent(on_result=self._consent, on_error=self.fail)

    def _consent(self, consent: Any) -> None:
        self.consent = consent
        self.ok()
        if self.step != "consent":
            return
        self.add_label(self.app.pick({"zh_CN": consent.text, "en": consent.text_en or consent.text}),
                       aid="consent_text", font_size=self.app.fs(1.1))
        self.add_button(self.t("delivery.disagree"), "delivery_disagree", self._disagree)
        self.set_action(self.t("delivery.agree"), "delivery_agree", self._agree)

    def _disagree(self) -> None:
        self.agreed = False
        self.failed, self.status = True, self.t("delivery.consent_needed")

    def _agree(self) -> None:
        self.agreed = True
        self.go_step("address")

    def show_address(self) -> None:
        app = self.app
        self.heading = self.t("delivery.address_title")
        name = self.app.core.session.citizen.name_masked if self.app.core.session.citizen else ""
        self.add_label(self.t("delivery.recipient", name=name))
        row = BoxLayout(size_hint_y=None, height=max(app.fs(2.4), 90), spacing=app.fs(0.4))
        province, city, district = self.region
        big = {"font_size": app.fs(1.1), "option_cls": RegionOption, "background_normal": "",
               "background_color": (0.86, 0.9, 0.97, 1), "color": (0.1, 0.12, 0.16, 1)}
        self._province = Spinner(text=province, values=list(REGIONS), **big)
        self._city = Spinner(text=city, values=list(REGIONS[province]), **big)
        self._district = Spinner(text=district, values=REGIONS[province][city], **big)
        for aid, spinner in (("delivery_province", self._province), ("delivery_city", self._city),
                             ("delivery_district", self._district)):
            spinner.aid = aid
            row.add_widget(spinner)
        self._province.bind(text=lambda _s, value: self._region_changed(province=value))
        self._city.bind(text=lambda _s, value: self._region_changed(city=value))
        self._district.bind(text=lambda _s, value: self._region_changed(district=value))
        self.ids.choices.add_widget(row)
        self._street = self._field("street", "delivery.street_hint", "delivery_street", "text", 120)
        self._phone = self._field("phone", "delivery.phone_hint", "delivery_phone", "digits", 12)
        self.set_action(self.t("delivery.next"), "delivery_next", self._check_address)

    def _field(self, name: str, hint_key: str, aid: str, layout: str, max_length: int) -> KButton:
        """A field typed on the on-screen keyboard (pinyin for the street, digits for the phone): a large button
        showing what was typed, or the hint."""
        button = KButton(aid=aid, halign="left")
        button.text = getattr(self, name) or self.t(hint_key)

        def typed(text: str) -> None:
            setattr(self, name, text.strip())
            button.text = getattr(self, name) or self.t(hint_key)

        button.bind(on_release=lambda *_: self._pressed(lambda: OnScreenKeyboard(
            self.t(hint_key), getattr(self, name), layout, on_done=typed, max_length=max_length).open()))
        self.ids.choices.add_widget(button)
        return button

    def _region_changed(self, province: str | None = None, city: str | None = None,
                        district: str | None = None) -> None:
        self.app.core.touch()
        p, c, d = self.region
        if province and province != p:
            p = province
            c = next(iter(REGIONS[p]))
            d = REGIONS[p][c][0]
            self._city.values, self._city.text = list(REGIONS[p]), c
            self._district.values, self._district.text = REGIONS[p][c], d
        elif city and city != c:
            c = city
            d = REGIONS[p][c][0]
            self._district.values, self._district.text = REGIONS[p][c], d
        elif district:
            d = district
        self.region = (p, c, d)

    def _check_address(self) -> None:
        from kiosk.usecases.delivery import InvalidAddress, make_address

        try:
            make_address("-", self.phone, *self.region, self.street)
        except InvalidAddress as exc:
            self.failed, self.status = True, self.error_text(exc)
            return
        self.go_step("confirm")

    def show_confirm(self) -> None:
        a = self.application
        self.heading = self.t("delivery.confirm_title")
        masked_phone = self.phone[:3] + "****" + self.phone[-4:] if len(self.phone) >= 7 else self.phone
        self.add_label(self.t("delivery.confirm_line", service=a.service_name, number=a.number,
                              province=self.region[0], city=self.region[1], district=self.region[2],
                              phone=masked_phone), aid="delivery_summary", font_size=self.app.fs(1.2))
        self.set_action(self.t("delivery.order"), "delivery_order", self._order)

    def _order(self) -> None:
        self.working()
        self.flow.order(self.application, self.phone, *self.region, self.street, self.consent, self.agreed,
                        on_result=self._ordered, on_error=self.fail)

    def _ordered(self, ordered: Any) -> None:
        self.ordered = ordered
        self.phone = self.street = ""   # given to the platform; nothing of it is kept on this screen
        self.busy = False
        self._history = ["home"]
        self.go_step("ordered", remember=False)

    def show_ordered(self) -> None:
        ordered, d = self.ordered, self.ordered.delivery
        self.heading = self.t("delivery.ordered") if ordered.print_error is None else \
            self.t("delivery.ordered_not_printed", reason=self.error_text(ordered.print_error))
        self.failed = ordered.print_error is not None
        self.add_label(self.t("delivery.delivery_no", number=d.delivery_no), aid="delivery_no",
                       font_size=self.app.fs(1.6), bold=True)
        self.add_label(self.t("delivery.waybill", number=d.waybill_no), aid="delivery_waybill")
        self.add_label(self.t("delivery.address_masked", address=d.address_masked))
        self.add_label(self.t("delivery.status_line", status=self.t(f"delivery.status.{d.status}")))
        self.done_text = self.t("delivery.done")

    def show_deliveries(self) -> None:
        deliveries = self.overview.deliveries if self.overview else []
        self.heading = self.t("delivery.deliveries_title", count=len(deliveries)) if deliveries else \
            self.t("delivery.deliveries_none")
        for i, d in enumerate(deliveries):
            self.add_button(self.t("delivery.delivery_line", number=d.delivery_no, application=d.application_number,
                                   status=self.t(f"delivery.status.{d.status}")),
                            f"delivery_{i}", lambda d=d: self._track(d), lines=2)

    def _track(self, delivery: Any) -> None:
        self.working()
        self.flow.track(delivery.delivery_no, on_result=self._tracked, on_error=self.fail)

    def _tracked(self, delivery: Any) -> None:
        self.delivery = delivery
        self.busy = False
        self.go_step("tracking")

    def show_tracking(self) -> None:
        d = self.delivery
        self.heading = self.t("delivery.tracking_title")
        self.add_label(self.t("delivery.delivery_no", number=d.delivery_no), aid="delivery_no", bold=True)
        self.add_label(self.t("delivery.waybill", number=d.waybill_no))
        for event in d.tracking:
            line = f"●  {event.at[:16].replace('T', ' ')}  {self.t(f'delivery.status.{event.status}')}"
            self.add_label(line + (f"\n     {event.note}" if event.note else ""))
        self.done_text = self.t("delivery.done")

    def done(self) -> None:
        if self.step == "ordered" and self.ordered is not None:
            self.flow.done(self.ordered.delivery.application_number)
        elif self.step == "tracking" and self.delivery is not None:
            self.flow.done(self.delivery.application_number)
        else:
            self.app.go("menu")

    def reset(self) -> None:
        OnScreenKeyboard.close_all()  # a keyboard left open holds what the citizen typed
        super().reset()
        self.forget()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"delivery": DeliveryScreen}
