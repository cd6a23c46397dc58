"""EMS delivery of a result (证照寄送): for one of the citizen's applications whose result can be mailed, the citizen
agrees explicitly to the address being passed to EMS, gives the address and a phone number, and gets an order number on
screen and on a receipt; tracking of their deliveries.

:class:`DeliveryFlow` is ``core.delivery``. The address is personal data: it is validated here, sent to the platform
once (with an idempotency key kept per application in the session, so a retry never orders twice) and never logged,
audited or kept — the answer and the receipt show it masked, as the platform returns it.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiosk.errors import KioskError
from kiosk.i18n import table
from kiosk.platform_client import Address, Application, Delivery, DeliveryConsent
from kiosk.session import RatingTarget
from kiosk.usecases.booking import Callback, CoreFlow, rejection_text

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)

#: application statuses whose result cannot (or need not) be mailed any more
NOT_MAILABLE = ("rejected", "delivered")
#: mainland mobile numbers; landlines with area code (0552-1234567 / 05521234567)
PHONE_RE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")

#: province → city → districts offered by the picker (the kiosk's own region first; other regions can be typed by staff
#: later — a fuller table comes with the address component of the on-screen keyboard)
REGIONS: dict[str, dict[str, list[str]]] = {
    "安徽省": {
        "蚌埠市": ["龙子湖区", "蚌山区", "禹会区", "淮上区", "怀远县", "五河县", "固镇县"],
        "合肥市": ["瑶海区", "庐阳区", "蜀山区", "包河区", "长丰县", "肥东县", "肥西县", "庐江县", "巢湖市"],
        "淮南市": ["大通区", "田家庵区", "谢家集区", "八公山区", "潘集区", "凤台县", "寿县"],
    },
    "福建省": {"福州市": ["鼓楼区", "台江区", "仓山区", "马尾区", "晋安区", "长乐区"]},
    "黑龙江省": {"齐齐哈尔市": ["龙沙区", "建华区", "铁锋区", "昂昂溪区", "富拉尔基区"]},
    "贵州省": {"遵义市": ["红花岗区", "汇川区", "播州区"]},
    "云南省": {"昆明市": ["五华区", "盘龙区", "官渡区", "西山区", "呈贡区"]},
}


class InvalidAddress(KioskError):
    """The address or phone the citizen gave cannot be used (``field`` names which: region, detail, phone)."""

    code = "invalid_address"
    translation_key = "delivery.error.invalid_address"

    def __init__(self, message: str = "", field: str = "") -> None:
        super().__init__(message, field=field)
        self.field = field


class ConsentRequired(KioskError):
    code = "consent_required"
    translation_key = "delivery.error.consent_required"


@dataclass(frozen=True)
class Overview:
    """The citizen's applications a delivery can be ordered for, and the deliveries they already have."""

    mailable: list[Application]
    deliveries: list[Delivery]


@dataclass(frozen=True)
class Ordered:
    delivery: Delivery
    print_result: Any = None
    print_error: BaseException | None = None


def default_region(district: str) -> tuple[str, str, str]:
    """(province, city, district) of the kiosk's district when the table knows it, else the first entry."""
    for province, cities in REGIONS.items():
        for city, districts in cities.items():
            if district in districts:
                return province, city, district
    province = next(iter(REGIONS))
    city = next(iter(REGIONS[province]))
    return province, city, REGIONS[province][city][0]


def make_address(recipient_name: str, phone: str, province: str, city: str, district: str, detail: str) -> Address:
    """Check and build the address (typed errors, never echoing the data)."""
    phone = re.sub(r"[\s]", "", phone or "")
    if not PHONE_RE.match(phone):
        raise InvalidAddress("phone number", field="phone")
    if province not in REGIONS or city not in REGIONS[province] or district not in REGIONS[province][city]:
        raise InvalidAddress("region", field="region")
    detail = " ".join((detail or "").split())
    if not 4 <= len(detail) <= 120:
        raise InvalidAddress("street address", field="detail")
    if not recipient_name.strip():
        raise InvalidAddress("recipient", field="recipient")
    return Address(recipient_name.strip(), phone, province, city, district, detail)


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """What the receipt shows (masked, as the platform returns it; status in Chinese)."""
    zh = table("zh_CN")
    return {"number": delivery.delivery_no, "waybill_no": delivery.waybill_no,
            "application_number": delivery.application_number, "recipient_masked": delivery.recipient_masked,
            "phone_masked": delivery.phone_masked, "address_masked": delivery.address_masked,
            "status_text": zh.get(f"delivery.status.{delivery.status}", delivery.status),
            "created_at": delivery.created_at[:16].replace("T", " ")}


class DeliveryFlow(CoreFlow):
    name = "delivery"

    def __init__(self, ctx: "UseCaseContext") -> None:
        super().__init__(ctx)
        self._consent: DeliveryConsent | None = None
        self._lock = threading.Lock()

    # --- blocking steps -----------------------------------------------------------------------------------------
    def overview_now(self) -> Overview:
        def fetch(token: str) -> Overview:
            applications = self.ctx.platform.my_applications(token)
            deliveries = self.ctx.platform.my_deliveries(token)
            taken = {d.application_number for d in deliveries}
            return Overview([a for a in applications if a.status not in NOT_MAILABLE and a.number not in taken],
                            deliveries)
        return self.with_token(fetch)

    def consent_now(self) -> DeliveryConsent:
        with self._lock:
            if self._consent is None:
                self._consent = self.ctx.platform.delivery_consent()
            return self._consent

    def recipient_name(self) -> str:
        """The identified citizen's own name (the recipient by default); personal: never shown unmasked."""
        citizen = self.ctx.session.citizen
        document = getattr(citizen, "document", None)
        return getattr(document, "name", "") or ""

    def order_now(self, application: Application, phone: str, province: str, city: str, district: str,
                  detail: str, consent: DeliveryConsent, agreed: bool) -> Ordered:
        """Order the delivery (after explicit consent) and print its receipt."""
        if not agreed:
            raise ConsentRequired("the citizen did not agree to pass the address to EMS")
        self.ctx.require_storage("delivery")   # its receipt is journaled: not ordered while the disk is full
        address = make_address(self.recipient_name(), phone, province, city, district, detail)
        key = self.key("order", application.number)
        delivery = self.with_token(lambda token: self.ctx.platform.request_delivery(
            token, application.number, address, consent.version, True, idempotency_key=key))
        self.audit("delivery_requested", application=application.number, delivery=delivery.delivery_no,
                   consent=consent.version)
        try:
            result = self.ctx.print_service.print_receipt(
                "delivery_receipt", summary=f"证照寄送回执 {delivery.delivery_no}", delivery=delivery_view(delivery))
        except Exception as exc:  # ordered all the same: the number is on screen
            log.warning("delivery receipt not printed: %s", getattr(exc, "code", type(exc).__name__))
            self.ctx.check_health()
            return Ordered(delivery, None, exc)
        self.printed("print_delivery", result)
        return Ordered(delivery, result, None)

    def track_now(self, delivery_no: str) -> Delivery:
        return self.with_token(lambda token: self.ctx.platform.delivery(token, delivery_no))

    # --- for screens --------------------------------------------------------------------------------------------
    def overview(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("delivery_overview", self.overview_now, on_result=on_result, on_error=on_error)

    def consent(self, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run("delivery_consent", self.consent_now, on_result=on_result, on_error=on_error)

    def order(self, application: Application, phone: str, province: str, city: str, district: str, detail: str,
              consent: DeliveryConsent, agreed: bool, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("delivery_order", self.order_now, application, phone, province, city, district, detail,
                            consent, agreed, on_result=on_result, on_error=on_error)

    def track(self, delivery_no: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.run_identified("delivery_track", self.track_now, delivery_no, on_result=on_result, on_error=on_error)

    def error_text(self, exc: BaseException) -> str:
        if isinstance(exc, InvalidAddress):
            return self.ctx.translator.t(f"delivery.error.invalid_{exc.field}")
        return rejection_text(self.ctx, exc, "delivery")

    def done(self, application_number: str) -> None:
        self.finish(RatingTarget("application", application_number, "delivery"))
