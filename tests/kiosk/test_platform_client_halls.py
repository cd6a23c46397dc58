"""The kiosk's platform client against the real platform server: halls, appointments, queue tickets, EMS delivery."""
from __future__ import annotations

import os
import datetime as dt
from collections.abc import Iterator

import pytest

from kiosk.errors import NotFound, PlatformRejected
from kiosk.platform_client import Address, PlatformClient
from kiosk.request_signing import KioskRequestSigner

LI = ("35010219490822102X", "李秀英")
HUANG = ("810000199205082049", "黄嘉欣")


@pytest.fixture
def client(platform_server) -> Iterator[PlatformClient]:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    c = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        yield c
    finally:
        c.close()


def test_book_and_cancel_an_appointment(client: PlatformClient) -> None:
    halls = {h.code: h for h in client.halls()}
    assert halls["dongfeng-street"].queues[0].name == "便民服务"
    slots = [s for s in client.hall_slots("dongfeng-street", service_code="senior-card") if s.available]
    slot = slots[-1]
    token = client.open_citizen_session(*LI, "resident_id", face_match=True).token
    booked = client.book_appointment(token, "dongfeng-street", "senior-card", dt.date.fromisoformat(slot.date),
                                     slot.start)
    assert (booked.date, booked.start, booked.status) == (slot.date, slot.start, "booked")
    after = [s for s in client.hall_slots("dongfeng-street", dt.date.fromisoformat(slot.date))
             if s.start == slot.start][0]
    assert after.available == slot.available - 1
    assert booked.appointment_no in [a.appointment_no for a in client.my_appointments(token)]
    with pytest.raises(PlatformRejected) as twice:
        client.book_appointment(token, "dongfeng-street", "senior-card", dt.date.fromisoformat(slot.date), slot.start)
    assert twice.value.platform_code == "appointment_exists"
    assert client.cancel_appointment(token, booked.appointment_no).status == "cancelled"


def test_take_a_queue_ticket(client: PlatformClient) -> None:
    first = client.take_queue_ticket("hpf-hall", "hpf-withdrawal")
    token = client.open_citizen_session(*LI, "resident_id", face_match=True).token
    second = client.take_queue_ticket("hpf-hall", "hpf-withdrawal", token)
    assert first.ticket_no.startswith("A") and first.queue_name == "公积金提取"
    if first.service_date == second.service_date:
        assert int(second.ticket_no[1:]) == int(first.ticket_no[1:]) + 1
    assert client.queue_ticket(second.id).ticket_no == second.ticket_no
    with pytest.raises(NotFound):
        client.queue_ticket("qt_unknown")


def test_ems_delivery_with_consent(client: PlatformClient) -> None:
    consent = client.delivery_consent()
    assert "EMS" in consent.text and consent.version
    token = client.open_citizen_session(*HUANG, "hmt_residence_permit", face_match=True).token
    address = Address("黄嘉欣", "13905520066", "安徽省", "蚌埠市", "龙子湖区", "南湖路3号1栋1201室", "233000")
    assert "黄嘉欣" not in repr(address)
    with pytest.raises(PlatformRejected) as refused:
        client.request_delivery(token, "SP20261021000601", address, consent.version, agreed=False)
    assert refused.value.platform_code == "consent_required"
    delivery = client.request_delivery(token, "SP20261021000601", address, consent.version, agreed=True)
    assert delivery.waybill_no.endswith("CN") and delivery.phone_masked == "139****0066"
    assert delivery.status == "awaiting_item" and delivery.tracking[0].status == "awaiting_item"
    assert client.delivery(token, delivery.delivery_no) == delivery
    assert [d.delivery_no for d in client.my_deliveries(token)] == [delivery.delivery_no]
