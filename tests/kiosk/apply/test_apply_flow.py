"""The application flow through the kiosk core (no Kivy): card → service → one-time notice → pre-filled form →
e-certificate with one tap → pre-review → submit → number → printed receipt → rating; against the real platform."""
from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from kiosk.errors import InvalidSessionState
from kiosk.usecases.apply import NotApplicableOnline, Step
from kiosk.request_signing import KioskRequestSigner

# these flows need the holder confirmed (card+face): the test profiles have no camera
pytestmark = pytest.mark.usefixtures("face_verified")

CHEN_ID = "520302199002144027"


def new_rows(platform_server, before: int, id_number: str) -> list[tuple]:
    return platform_server.query("SELECT number, service_code FROM applications WHERE id > ? AND "
                                 "applicant_id_number = ?", before, id_number)


def max_id(platform_server) -> int:
    return platform_server.query("SELECT coalesce(max(id), 0) FROM applications")[0][0]


def test_apply_pre_review_submit_print_and_rate(harness, call, platform_server, wait_for):
    core, flow = harness.core, harness.core.apply
    harness.identify("chen")
    flow.start()
    found = call(flow.search, "生育")
    assert [s.code for s in found][:1] == ["birth-registration"]
    by_event = call(flow.search, "", "birth")
    assert "birth-registration" in [s.code for s in by_event]
    assert all(core.apply._details[s.code].form_schema for s in by_event), "only services filable online"

    call(flow.choose, "birth-registration")
    assert flow.step is Step.NOTICE
    assert [m.name for m in flow.detail.materials][:1] == ["夫妻双方居民身份证"]
    flow.accept_notice()
    form = flow.form
    assert form.get("/spouse_name") == "罗建明" and form.sources["/spouse_name"].startswith("e_certificate:")

    # the platform's pre-review tells everything missing at once, mapped onto the fields
    review = call(flow.pre_review)
    assert not review.acceptable
    assert [e.pointer for e in flow.field_errors] == ["/child_order", "/phone"]

    assert flow.set_field("/phone", "1390552") != []  # too short: the schema's own message
    assert flow.set_field("/phone", "13905520003") == []
    flow.set_field("/child_order", "2")
    assert flow.finish_form() == [] and flow.step is Step.ATTACH

    marriage = next(s for s in flow.open_slots if s.material.e_cert_type)
    assert marriage.candidates and marriage.candidates[0].type_code == "marriage_cert"
    assert flow.attach_suggested() == 1 and marriage.e_certificate_id == marriage.candidates[0].id
    assert flow.next_after_attach() is Step.REVIEW  # no camera in this profile: no capture step

    assert call(flow.pre_review).acceptable
    before = max_id(platform_server)
    outcome = call(flow.submit)
    assert outcome.status == "submitted" and outcome.number and flow.step is Step.RESULT
    assert outcome.result["payment_orders"] == [], "a free service: nothing to pay"
    assert new_rows(platform_server, before, CHEN_ID) == [(outcome.number, "birth-registration")]
    assert core.outbox.get(flow.item.id).payload is None, "nothing personal kept once submitted"

    printer = core.devices.simulators["receipt_printer"]
    call(flow.print_receipt)
    receipt = wait_for(lambda: (printer.control("receipts")["receipts"] or [None])[-1], what="the receipt")
    assert "业务受理回执" in receipt["text"] and outcome.number in receipt["text"]
    assert receipt["qr"] == [core.public_urls.application(outcome.number)]   # the public verify page
    assert "陈*怡" in receipt["text"] and "陈静怡" not in receipt["text"]
    assert "电子证照" in receipt["text"]
    target = harness.next_event("rating_requested")["target"]
    assert (target.target_type, target.target_id) == ("application", outcome.number)

    before_rating = platform_server.query("SELECT coalesce(max(id), 0) FROM ratings")[0][0]
    saved = call(core.submit_rating, 5, ["办理快"])
    assert saved["queued"] is False
    assert platform_server.query("SELECT stars, target_id FROM ratings WHERE id > ?", before_rating) == \
        [(5, outcome.number)]


def test_a_service_without_online_form_is_refused_honestly(harness, call):
    harness.identify("zhang")
    harness.core.apply.start()
    with pytest.raises(NotApplicableOnline) as refused:
        call(harness.core.apply.choose, "hukou-move-out")
    assert harness.core.translator.error_text(refused.value) != refused.value.translation_key


def test_session_end_wipes_the_flow(harness, call):
    core, flow = harness.core, harness.core.apply
    harness.identify("chen")
    flow.start()
    call(flow.choose, "birth-registration")
    flow.accept_notice()
    flow.set_field("/phone", "13905520003")
    form = flow.form
    core.end_session("finished")
    assert flow.form is None and flow.detail is None and flow.step is Step.PICK and form.values == {}
    with pytest.raises(InvalidSessionState):
        flow.accept_notice()


def test_applying_needs_a_card(harness, call):
    harness.core.start_anonymous()
    harness.core.apply.start()
    with pytest.raises(InvalidSessionState):
        call(harness.core.apply.choose, "birth-registration")


def test_going_back_to_correct_the_form(harness, call):
    flow = harness.core.apply
    harness.identify("chen")
    flow.start()
    call(flow.choose, "birth-registration")
    with pytest.raises(InvalidSessionState):
        flow.set_field("/phone", "13905520003")  # the one-time notice comes first
    flow.accept_notice()
    flow.set_field("/phone", "13905520003")
    flow.set_field("/child_order", "1")
    assert flow.finish_form() == [] and flow.step is Step.ATTACH
    with pytest.raises(InvalidSessionState):
        flow.set_field("/phone", "13905520004")  # not while choosing materials…
    flow.edit_form()  # …but after going back to the form
    flow.set_field("/phone", "13905520004")
    assert flow.form.to_json()["phone"] == "13905520004"
    assert flow.finish_form() == []
    flow.to_review()
    assert flow.step is Step.REVIEW


def test_a_filed_fee_keeps_its_order_for_the_payment_screen(platform_server):
    """A driving-licence renewal (10 yuan) filed through the outbox sender: the result the kiosk keeps names the
    pending order (the result screen's "pay the fee" opens the payment screen with it); a free service names none."""
    from kiosk.platform_client import MaterialRef, PlatformClient
    from kiosk.usecases.apply import application_sender

    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        token = client.open_citizen_session("230202197511053015", "王建国", "resident_id", face_match=True).token
        certs = {c.type_code: c.id for c in client.my_e_certificates(token)}
        materials = [MaterialRef(1, e_certificate_id=certs["driving_licence"]),
                     MaterialRef(2, e_certificate_id=certs["health_exam"]), MaterialRef(3, defer=True)]
        result = application_sender(client)(
            {"token": token, "service_code": "driving-licence-renewal", "commitment": True,
             "form": {"licence_file_no": "230200123456", "pickup": "window", "phone": "13905520004"},
             "materials": [m.to_json() for m in materials]}, str(uuid.uuid4()), dt.datetime.now(dt.timezone.utc))
        (order,) = result["payment_orders"]
        assert order["amount_fen"] == 1000
        assert client.payment_order(order["order_no"]).application_number == result["number"]
    finally:
        client.close()
