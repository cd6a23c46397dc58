"""Pay a fee (缴费): find the order (by number on the keypad, or the citizen's unpaid orders after the card), check
amount, purpose and payee (shown and spoken), pay with the bank-card pad, a payment code or the phone, and leave with
a printed voucher or a clear "not charged" and a reference. The flow is ``core.payments`` (kiosk/payments/flow.py);
this screen shows its state and forwards taps.

Steps (``step``): ``find`` → ``confirm`` → ``paying`` → ``result``.
"""
from __future__ import annotations

import io
from typing import Any

from kivy.app import App
from kivy.core.image import Image as CoreImage
from kivy.properties import ObjectProperty, StringProperty

from kiosk.session import RatingTarget
from screens.widgets import KButton, KeyButton, KScreen

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "PO", "0", "DEL")


def qr_texture(text: str) -> Any:
    """A QR code as a Kivy texture (qrcode → PNG in memory; small, fast enough for the UI thread)."""
    import qrcode  # a dependency of python-escpos (as in drivers/receipt_printer/paper.py)

    image = qrcode.make(text, box_size=10, border=2)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    buf.seek(0)
    return CoreImage(buf, ext="png").texture


class PaymentScreen(KScreen):
    step = StringProperty("find")
    number = StringProperty("")
    status = StringProperty("")
    order = ObjectProperty(None, allownone=True)
    order_no_text = StringProperty("")
    purpose_text = StringProperty("")
    amount_text = StringProperty("")
    payee_text = StringProperty("")
    speak_text = StringProperty("")
    prompt = StringProperty("")
    qr = ObjectProperty(None, allownone=True)
    result_title = StringProperty("")
    result_lines = StringProperty("")
    result_kind = StringProperty("")     # paid | not_charged | in_doubt
    channels = ObjectProperty([])

    def on_kv_post(self, base_widget: Any) -> None:
        app = App.get_running_app()
        for key in KEYS:
            btn = KeyButton(text=app.t("progress.backspace") if key == "DEL" else key, aid=f"pay_key_{key}")
            btn.bind(on_release=lambda b, k=key: self.press(k))
            self.ids.keypad.add_widget(btn)
        app.core.subscribe(self._on_core_event)

    # navigation ---------------------------------------------------------------------------------------------------
    def on_go(self, order_no: str = "", **_: Any) -> None:
        self.reset()
        app = App.get_running_app()
        self.channels = app.core.payments.channels()
        if order_no:
            self.number = order_no
            self.find()
        elif app.core.session.citizen is not None:
            self.load_mine()

    def press(self, key: str) -> None:
        App.get_running_app().core.touch()
        if key == "DEL":
            self.number = self.number[:-1]
        elif len(self.number) < 24:
            self.number += key

    # find ---------------------------------------------------------------------------------------------------------
    def find(self) -> None:
        app = App.get_running_app()
        if not self.number:
            return
        self.status = app.t("common.loading")
        app.core.payments.find(self.number, on_result=self.confirm, on_error=self._failed)

    def load_mine(self) -> None:
        app = App.get_running_app()
        self.status = app.t("common.loading")
        app.core.payments.my_unpaid(on_result=self._show_mine, on_error=self._failed)

    def _show_mine(self, orders: list[Any]) -> None:
        app = App.get_running_app()
        box = self.ids.orders
        box.clear_widgets()
        self.status = app.t("payment.my_orders") if orders else app.t("payment.no_unpaid")
        for i, o in enumerate(orders):
            btn = KButton(text=f"{o.purpose}\n{o.order_no}  ·  ￥{o.amount_fen // 100}.{o.amount_fen % 100:02d}",
                          aid=f"order_{i}", size_hint_y=None, height=max(app.fs(3.4), 120))
            btn.bind(on_release=lambda b, o=o: self.confirm(o))
            box.add_widget(btn)

    # confirm ------------------------------------------------------------------------------------------------------
    def confirm(self, order: Any) -> None:
        app = App.get_running_app()
        if order.status == "paid":
            self.status = app.t("payment.already_paid")
            return
        if order.status != "pending":
            self.status = app.t("payment.order_not_payable", status=order.status)
            return
        texts = app.core.payments.texts(order)
        self.order = order
        self.order_no_text, self.purpose_text = texts["order_no"], texts["purpose"]
        self.amount_text, self.payee_text = texts["amount"], texts["payee"]
        self.speak_text = app.core.payments.announce(order)   # said aloud and shown
        self.status = ""
        self.step = "confirm"

    # paying -------------------------------------------------------------------------------------------------------
    def pay(self, channel: str) -> None:
        app = App.get_running_app()
        if self.order is None:
            return
        self.qr = None
        self.prompt = app.t("payment.prompt.checking")
        self.step = "paying"
        app.core.payments.pay(self.order, channel, on_result=self._done, on_error=self._pay_failed)

    def cancel(self) -> None:
        App.get_running_app().core.payments.cancel()

    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        if self.step != "paying":
            return
        app = App.get_running_app()
        if name == "payment_prompt":
            self.prompt = app.t(payload["key"])
        elif name == "payment_qr":
            self.qr = qr_texture(payload["url"])

    def _done(self, done: Any) -> None:
        app = App.get_running_app()
        t = app.t
        outcome = done.outcome
        record = outcome.record
        self.qr = None
        self.result_kind = outcome.status
        lines = [t("payment.reference", ref=outcome.reference), self.amount_text, self.purpose_text]
        if outcome.status == "paid":
            self.result_title = t("payment.paid_title")
            lines.insert(0, t("payment.voucher_printed") if done.print_error is None else t("payment.voucher_failed"))
            lines.append(t("payment.txn_ref", ref=record.txn_ref))
            if record.card_masked:
                lines.append(t("payment.card", card=record.card_masked))
            app.core.speak("payment.speak.paid")
        elif outcome.status == "not_charged":
            self.result_title = t("payment.not_charged_title")
            reason = app.core.translator.error_text(outcome.error) if outcome.error is not None else ""
            lines.insert(0, t("payment.not_charged"))
            if reason:
                lines.insert(0, reason)
            app.core.speak("payment.speak.not_charged")
        else:
            self.result_title = t("payment.in_doubt_title")
            lines.insert(0, t("payment.in_doubt"))
        self.result_lines = "\n".join(lines)
        self.step = "result"

    def _pay_failed(self, exc: BaseException) -> None:
        """Refused before any money could move (order paid meanwhile, payments not ready, no terminal)."""
        app = App.get_running_app()
        self.qr = None
        self.result_kind = "not_charged"
        self.result_title = app.t("payment.not_charged_title")
        self.result_lines = "\n".join([app.core.translator.error_text(exc), app.t("payment.not_charged")])
        self.step = "result"

    def _failed(self, exc: BaseException) -> None:
        self.status = App.get_running_app().core.translator.error_text(exc)

    def finish(self) -> None:
        app = App.get_running_app()
        if self.result_kind == "paid" and self.order is not None:
            app.core.complete_action(RatingTarget("application", self.order.application_number, "pay_fee"))
        else:
            app.go("menu")

    def retry(self) -> None:
        if self.order is not None:
            self.step = "confirm"

    def reset(self) -> None:
        self.step = "find"
        self.number = self.status = self.prompt = ""
        self.order = None
        self.order_no_text = self.purpose_text = self.amount_text = self.payee_text = self.speak_text = ""
        self.qr = None
        self.result_title = self.result_lines = self.result_kind = ""
        if "orders" in self.ids:
            self.ids.orders.clear_widgets()


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"payment": PaymentScreen}
