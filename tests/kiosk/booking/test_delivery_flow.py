"""EMS delivery through the kiosk core: explicit consent, address checked, one order per application whatever the
retries, order number on the receipt, tracking; the address never reaches logs or the audit journal."""
from __future__ import annotations

import logging

import pytest

from kiosk.usecases.delivery import (
    NOT_MAILABLE, ConsentRequired, InvalidAddress, default_region, make_address)

# these flows need the holder confirmed (card+face): the test profiles have no camera
pytestmark = pytest.mark.usefixtures("face_verified")

CHEN_ID, CHEN_NAME = "520302199002144027", "陈静怡"
STREET, PHONE = "东海大道88号幸福小区3栋1201室", "13905520077"


def test_order_a_delivery_with_consent_and_track_it(kiosk, call, platform_server, wait_for, caplog):
    caplog.set_level(logging.DEBUG)
    flow = kiosk.core.delivery
    kiosk.identify("chen")
    overview = call(flow.overview)
    numbers = {a.number for a in overview.mailable}
    assert numbers and all(a.status not in NOT_MAILABLE for a in overview.mailable)
    application = next(a for a in overview.mailable if a.number == "SP20261015000402")  # decided: can be mailed
    consent = call(flow.consent)
    assert "EMS" in consent.text and consent.version

    with pytest.raises(ConsentRequired):
        call(flow.order, application, PHONE, "安徽省", "蚌埠市", "龙子湖区", STREET, consent, False)
    with pytest.raises(InvalidAddress) as bad:
        call(flow.order, application, "12345", "安徽省", "蚌埠市", "龙子湖区", STREET, consent, True)
    assert bad.value.field == "phone" and "手机号码" in flow.error_text(bad.value)
    assert platform_server.query("SELECT count(*) FROM deliveries d JOIN applications a ON a.id = d.application_id "
                                 "WHERE a.number = ?", application.number) == [(0,)]

    ordered = call(flow.order, application, PHONE, "安徽省", "蚌埠市", "龙子湖区", STREET, consent, True)
    delivery = ordered.delivery
    assert delivery.application_number == application.number and delivery.waybill_no
    assert STREET not in delivery.address_masked and PHONE not in delivery.phone_masked
    rows = platform_server.query("SELECT d.delivery_no, d.detail, d.phone, d.recipient_name, d.consent_version FROM "
                                 "deliveries d JOIN applications a ON a.id = d.application_id WHERE a.number = ?",
                                 application.number)
    assert rows == [(delivery.delivery_no, STREET, PHONE, CHEN_NAME, consent.version)]

    # a retry (the answer was lost) returns the same order, never a second one
    again = call(flow.order, application, PHONE, "安徽省", "蚌埠市", "龙子湖区", STREET, consent, True)
    assert again.delivery.delivery_no == delivery.delivery_no

    receipt = wait_for(lambda: next((r for r in reversed(kiosk.receipts()) if "证照寄送回执" in r["text"]), None),
                       what="the delivery receipt")
    lines = receipt["text"].split("\n")
    assert delivery.delivery_no in lines and f"EMS运单号：{delivery.waybill_no}" in lines
    for secret in (STREET, PHONE, CHEN_ID, CHEN_NAME):
        assert secret not in receipt["text"]

    tracked = call(flow.track, delivery.delivery_no)
    assert tracked.tracking and tracked.tracking[0].status == "awaiting_item"
    after = call(flow.overview)
    assert application.number not in {a.number for a in after.mailable}
    assert delivery.delivery_no in {d.delivery_no for d in after.deliveries}

    kiosk.core.flush_audit()
    audit = kiosk.core.audit.path.read_text("utf-8")
    assert "delivery_requested" in audit
    for secret in (STREET, PHONE, CHEN_ID, CHEN_NAME):
        assert secret not in audit and secret not in caplog.text


def test_address_checks_and_default_region():
    assert default_region("龙子湖区") == ("安徽省", "蚌埠市", "龙子湖区")
    assert default_region("某个不在表里的区")[0] == "安徽省"
    address = make_address("陈静怡", "139 0552 0077", "安徽省", "蚌埠市", "蚌山区", "  涂山路  1号 ")
    assert (address.phone, address.detail) == ("13905520077", "涂山路 1号")
    assert "陈静怡" not in repr(address)
    for args, field in ((("0552-3012345", "安徽省", "合肥市", "龙子湖区", "涂山路1号"), "region"),
                        (("0552-3012345", "安徽省", "蚌埠市", "龙子湖区", "1号"), "detail"),
                        (("2345", "安徽省", "蚌埠市", "龙子湖区", "涂山路1号"), "phone")):
        with pytest.raises(InvalidAddress) as bad:
            make_address("陈静怡", *args)
        assert bad.value.field == field


def test_delivery_needs_the_card(kiosk, call):
    kiosk.core.start_anonymous()
    with pytest.raises(Exception) as refused:
        call(kiosk.core.delivery.overview)
    assert getattr(refused.value, "code", "") == "not_identified"
