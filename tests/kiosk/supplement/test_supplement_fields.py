"""补正 of form fields at the kiosk through the core (no Kivy) against the real platform: the department asks for
fields of a filed form (``service-platform application request-supplement``, here its function on the server's
database); the one-time list shows them, the kiosk's form for just those fields is pre-filled where the apply flow
pre-fills (the citizen's e-certificates, the card), checked as the citizen types, and submitted with the materials —
straight away, or through the outbox (kind ``supplement``) when the platform is down."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from kiosk.platform_client import MaterialRef, PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.supplement import SupplementFieldsInvalid, SupplementIncomplete, supplement_sender
from service_platform.db import utcnow
from service_platform.supplement_fields import request_supplement
from tests.kiosk.supplement.test_supplement_flow import FORM, closed_port, status_of

pytestmark = pytest.mark.usefixtures("face_verified")

NOTE = "经营场所地址与产权证不一致；联系电话无法接通"
WRONG = {**FORM, "business_address": "蚌埠市龙子湖区某某路", "phone": "13905520003"}


@pytest.fixture(scope="module")
def platform_server(make_platform_server):
    return make_platform_server()


def ask_for_fields(platform_server, number: str, fields: list[str], materials: tuple[int, ...] = ()) -> None:
    """The department's request (what ``service-platform application request-supplement`` does)."""
    engine = create_engine(f"sqlite:///{platform_server.db_path}")
    try:
        with Session(engine) as db:
            request_supplement(db, number, fields=fields, materials=list(materials), note=NOTE, now=utcnow())
            db.commit()
    finally:
        engine.dispose()


def filed_then_asked(core, platform_server, materials: tuple[int, ...] = ()) -> str:
    """张明华's sole-proprietor registration, filed with his property certificate; then the department asks him to
    correct the business address and the phone number."""
    token = core.citizen_token()
    cert = next(c for c in core.platform.my_e_certificates(token) if c.type_code == "property_cert")
    filed = core.platform.file_application(token, "sole-proprietor-registration", WRONG,
                                           [MaterialRef(2, e_certificate_id=cert.id)])
    ask_for_fields(platform_server, filed.number, ["business_address", "phone"], materials)
    return filed.number


def test_fields_asked_for_are_shown_prefilled_checked_and_submitted(make_harness, platform_server, wait_for):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    number = filed_then_asked(core, platform_server)

    case = {c.number: c for c in flow.waiting_now()}[number]
    assert case.status == "supplement_required" and case.missing == [] and case.reason == NOTE
    assert [(f.name, f.title, f.note) for f in case.fields] == [
        ("business_address", "经营场所", NOTE), ("phone", case.fields[1].title, NOTE)]

    flow.open_now(number)
    form = flow.form
    assert form is not None and flow.slots == []
    assert [s.pointer for s in form.fields] == ["/business_address", "/phone"]
    assert form.sources["/business_address"].startswith("e_certificate:"), "pre-filled as the apply flow does"
    address = form.get("/business_address")
    assert address and address != WRONG["business_address"]
    assert form.get("/phone") == WRONG["phone"], "what was filed, for the citizen to correct"

    assert flow.set_field("/phone", "123"), "checked as it is typed"
    with pytest.raises(SupplementFieldsInvalid):
        flow.submit_now()
    assert [e.pointer for e in flow.state.field_errors] == ["/phone"]
    assert status_of(platform_server, number) == "supplement_required"
    assert flow.set_field("/phone", "13905529999") == [] and flow.state.field_errors == []

    outcome = flow.submit_now()
    assert outcome.status == "submitted" and outcome.result["status"] == "in_review"
    assert outcome.result["timeline"][-1]["note"].startswith("补正已完成（经营场所、")
    filed = core.platform.my_application(core.citizen_token(), number)
    assert filed.form["phone"] == "13905529999" and filed.form["business_address"] == address
    assert filed.outstanding_fields == [] and flow.waiting_now() == []
    assert core.outbox.get(flow.state.item_id).payload is None, "nothing personal kept once submitted"
    assert [m["form"] for m in flow.receipt_context()["materials"]] == ["在线填写", "在线填写"]

    core.end_session("finished")
    assert flow.form is None, "the values typed are gone with the session"


def test_nothing_filled_is_incomplete_and_a_partly_filled_form_is_a_partial_supplement(make_harness,
                                                                                       platform_server):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    number = filed_then_asked(core, platform_server)
    flow.open_now(number)
    flow.set_field("/business_address", None, typed=False)
    flow.set_field("/phone", None, typed=False)
    with pytest.raises(SupplementIncomplete):
        flow.submit_now()
    flow.set_field("/phone", "13905529999")
    outcome = flow.submit_now()
    assert outcome.status == "submitted" and outcome.result["status"] == "supplement_required"
    assert [f.name for f in core.platform.my_application(core.citizen_token(), number).outstanding_fields] == [
        "business_address"], "the field left empty is still asked for"


def test_fields_and_a_material_go_through_the_outbox_when_the_platform_is_down(make_harness, platform_server,
                                                                              wait_for):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    number = filed_then_asked(core, platform_server, materials=(2,))
    flow.open_now(number)
    [slot] = flow.slots
    flow.attach(slot.index)
    flow.set_field("/phone", "13905529999")

    signer = KioskRequestSigner.from_file(core.kiosk_id, os.environ["KIOSK_TEST_SIGNING_KEY"])
    down = PlatformClient(f"http://127.0.0.1:{closed_port()}", core.kiosk_id, signer, timeout_s=2, retries=0)
    core.outbox.register("supplement", supplement_sender(down))
    try:
        outcome = flow.submit_now()
        assert outcome.status == "queued"
        item = core.outbox.get(flow.state.item_id, decrypt=True)
        assert item.kind == "supplement" and item.payload["fields"] == {
            "business_address": flow.form.get("/business_address"), "phone": "13905529999"}
        assert status_of(platform_server, number) == "supplement_required"
    finally:
        down.close()
        core.outbox.register("supplement", supplement_sender(core.platform))

    wait_for(lambda: (core.outbox.drain(), core.outbox.get(item.id).state == "submitted")[1], timeout=20,
             what="the queued supplement sent")
    assert status_of(platform_server, number) == "in_review"
    filed = core.platform.my_application(core.citizen_token(), number)
    assert filed.form["phone"] == "13905529999" and filed.outstanding == [] and filed.outstanding_fields == []
