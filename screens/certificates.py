"""E-certificate printing (电子证照打印): the identified citizen's certificates (type, number masked, trust level,
validity) → print one on the licence printer; a second copy in the session is shown as a counted reprint. The flow is
:class:`kiosk.usecases.certificates.CertificatesFlow` (``core.certificates``)."""
from __future__ import annotations

from typing import Any

from screens.flow_screen import UseCaseScreen


class CertificatesScreen(UseCaseScreen):
    """Steps: home (the list) · detail · printed."""

    prefix = "certificates"
    flow_name = "certificates"

    def forget(self) -> None:
        self.certs: list[Any] = []
        self.cert = self.printed = None

    @property
    def finished(self) -> bool:
        return self.printed is not None

    def validity(self, cert: Any) -> str:
        if cert.status != "valid":
            return self.t(f"certificates.status.{cert.status}")
        return self.t("certificates.valid_until", date=cert.valid_until) if cert.valid_until else \
            self.t("certificates.valid_long")

    def show_home(self) -> None:
        self.heading = self.t("certificates.title")
        reason = self.flow.unavailable_reason()
        if reason is not None:
            self.failed, self.status = True, self.t(reason)
        if not self.app.core.session.citizen:
            self.failed, self.status = True, self.t("booking.error.not_identified")
            return
        self.working()
        self.flow.certificates(on_result=self._listed, on_error=self.fail)

    def _listed(self, certs: list[Any]) -> None:
        self.certs = certs
        reason = self.flow.unavailable_reason()
        self.busy = False
        self.failed = reason is not None
        self.status = self.t(reason) if reason else ""
        self.heading = self.t("certificates.list_title", count=len(certs)) if certs else self.t("certificates.none")
        if self.step != "home":
            return
        for i, cert in enumerate(certs):
            self.add_button(self.t("certificates.line", type=cert.type_name, number=cert.number_masked,
                                   level=cert.trust_level, validity=self.validity(cert)),
                            f"cert_{i}", lambda c=cert: self._pick(c), lines=2)

    def _pick(self, cert: Any) -> None:
        self.cert = cert
        self.go_step("detail")

    def show_detail(self) -> None:
        c = self.cert
        self.heading = c.type_name
        self.add_label(self.t("certificates.detail_number", number=c.number_masked), aid="cert_number",
                       font_size=self.app.fs(1.3))
        self.add_label(self.t("certificates.detail_level", level=c.trust_level), aid="cert_level")
        self.add_label(self.t("certificates.level_hint"), color=(0.35, 0.38, 0.42, 1))
        self.add_label(self.t("certificates.detail_validity", validity=self.validity(c)))
        if c.status == "expired":
            self.add_label(self.t("certificates.expired_note"), color=(0.75, 0.1, 0.1, 1))
        reason = self.flow.unavailable_reason()
        if reason is not None:
            self.failed, self.status = True, self.t(reason)
        elif c.printable:
            self.set_action(self.t("certificates.print"), "cert_print", self._print)

    def _print(self) -> None:
        self.working()
        self.status = self.t("certificates.printing")
        self.flow.print_certificate(self.cert.id, on_result=self._printed, on_error=self.fail)

    def _printed(self, printed: Any) -> None:
        self.printed = printed
        self.busy = False
        self.go_step("printed")

    def show_printed(self) -> None:
        p = self.printed
        self.heading = self.cert.type_name
        text = self.t("certificates.reprinted", count=p.reprint_count) if p.is_reprint else \
            self.t("certificates.printed", pages=p.pages or 1)
        self.add_label(text, aid="cert_printed", font_size=self.app.fs(1.4), bold=True, color=(0.1, 0.45, 0.2, 1))
        self.set_action(self.t("certificates.print"), "cert_print", self._print)
        self.done_text = self.t("certificates.done")


#: the screens this module adds to the shell (name → class); the app collects every module's SCREENS
SCREENS = {"certificates": CertificatesScreen}
