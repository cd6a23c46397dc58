"""No dead QR link: every QR the kiosk prints on its receipts — the one-time notice, a progress receipt, a queue
ticket, an application receipt — and the payment voucher's and the phone cashier's URLs are the platform's PUBLIC
pages, and each opens (HTTP 200) on the real platform. (Appointment slips open their verify page too, the number
its last segment for the hall's check-in scanner — tests/kiosk/booking; fault slips carry the print job for staff: a
code, not a link.)"""
from __future__ import annotations

import httpx
import pytest

from kiosk.platform_client import MaterialRef

pytestmark = pytest.mark.usefixtures("face_verified")

WANG = ("230202197511053015", "王建国")


def test_every_printed_qr_opens_a_public_page(make_harness, call, wait_for):
    harness = make_harness()
    core = harness.core
    harness.identify("zhang")
    detail = call(core.service_detail, "hukou-move-in")
    call(core.print_service_notice, detail)
    [application, *_] = call(core.my_applications)
    call(core.print_progress, application)
    booking = core.booking
    hall = booking.halls_now()[0]
    service = booking.services_at_now(hall)[0]
    ticketed = booking.take_ticket_now(hall, service)
    assert ticketed.print_error is None

    printed = wait_for(lambda: (lambda r: r if len(r) >= 3 else None)(harness.receipts()), what="three receipts")
    codes = [q for r in printed for q in r["qr"]]
    assert len(codes) == 3 and all(q.startswith(core.public_urls.public_base_url or "http") for q in codes), codes

    # the fee of an application: the voucher's verify page and the cashier page a phone pays on
    token = core.platform.open_citizen_session(*WANG, "resident_id", face_match=True).token
    certs = {c.type_code: c.id for c in core.platform.my_e_certificates(token)}
    filed = core.platform.file_application(
        token, "driving-licence-renewal", {"licence_file_no": "230200123456", "pickup": "window",
                                           "phone": "13905520004"},
        [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
         MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)], commitment=True)
    order = filed.payment_orders[0].order_no
    links = codes + [core.public_urls.payment(order), core.platform.order_qr_url(order),
                     core.public_urls.application(filed.number)]
    answers = {url: httpx.get(url, timeout=10).status_code for url in links}
    assert all(status == 200 for status in answers.values()), answers
    assert core.public_urls.from_platform, "built from the platform's own configuration"
