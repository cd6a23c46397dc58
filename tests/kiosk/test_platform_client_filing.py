"""The kiosk's platform client against the real platform server: forms, pre-review (一次性告知), page uploads,
filing, 容缺 supplements."""
from __future__ import annotations

import os
import datetime as dt
import io
import re
import uuid
from collections.abc import Iterator

import pytest
from PIL import Image, ImageDraw

from kiosk.errors import CitizenSessionExpired, PlatformRejected
from kiosk.platform_client import MaterialRef, PlatformClient, PreReviewFailed
from kiosk.request_signing import KioskRequestSigner

CHEN = ("520302199002144027", "陈静怡")
HUANG = ("810000199205082049", "黄嘉欣")


@pytest.fixture
def client(platform_server) -> Iterator[PlatformClient]:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    c = PlatformClient(platform_server.url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        yield c
    finally:
        c.close()


def page_jpeg() -> bytes:
    img = Image.new("RGB", (1280, 960), "white")
    draw = ImageDraw.Draw(img)
    for y in range(80, 880, 40):
        draw.rectangle((80, y, 1100, y + 12), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def test_guide_carries_the_form_and_material_indexes(client: PlatformClient) -> None:
    detail = client.service_detail("residence-permit-apply")
    assert detail.form_schema is not None and detail.form_schema["type"] == "object"
    assert detail.supplement_days == 5
    assert [(m.index, m.satisfied_by, m.deferrable) for m in detail.materials] == [
        (0, "identity", False), (1, None, False), (2, None, False), (3, None, True)]
    assert client.service_detail("hukou-move-out").form_schema is None


def test_prefill_pre_review_and_a_refused_filing(client: PlatformClient) -> None:
    token = client.open_citizen_session(*CHEN, "resident_id", face_match=True).token
    prefill = client.form_prefill(token, "birth-registration")
    assert prefill.form == {"spouse_name": "罗建明", "spouse_id_number": "520302198806113010"}
    assert prefill.sources["/spouse_name"].startswith("e_certificate:")
    review = client.pre_review(token, "birth-registration", {**prefill.form, "child_order": 9})
    assert not review.acceptable
    assert [(p.code, p.field) for p in review.problems] == [("form_invalid", "/child_order"),
                                                            ("form_invalid", "/phone")]
    with pytest.raises(PreReviewFailed) as refused:
        client.file_application(token, "birth-registration", {**prefill.form, "child_order": 9})
    assert [p.field for p in refused.value.problems] == ["/child_order", "/phone"]
    assert refused.value.problems[1].message == "请填写“联系电话”"
    assert refused.value.platform_code == "pre_review_failed" and refused.value.status == 422


def test_file_with_a_page_and_a_deferral_then_supplement(client: PlatformClient) -> None:
    token = client.open_citizen_session(*CHEN, "resident_id", face_match=True).token
    page = client.upload_page(token, page_jpeg())
    assert page.id.startswith("up_") and (page.width, page.height) == (1280, 960)
    form = {"basis": "residence", "residence_address": "安徽省蚌埠市龙子湖区淮河路168号2栋301室",
            "registered_on": "2026-03-10", "phone": "13905520003"}
    materials = [MaterialRef(1, upload_ids=(page.id,)), MaterialRef(3, defer=True)]
    assert client.pre_review(token, "residence-permit-apply", form, materials, commitment=True).acceptable
    key = str(uuid.uuid4())
    filed = client.file_application(token, "residence-permit-apply", form, materials, commitment=True,
                                    idempotency_key=key)
    assert re.match(r"^SP\d{15}$", filed.number) and filed.progress.status == "accepted"
    assert filed.outstanding == [3] and filed.supplement_due and filed.form == form
    again = client.file_application(token, "residence-permit-apply", form, materials, commitment=True,
                                    idempotency_key=key)  # an outbox retry: the same application
    assert again.number == filed.number
    assert client.my_application(token, filed.number).outstanding == [3]
    photo = client.upload_page(token, page_jpeg())
    done = client.supplement_materials(token, filed.number, [MaterialRef(3, upload_ids=(photo.id,))])
    assert done.outstanding == [] and done.progress.status == "in_review"
    assert filed.number in [a.number for a in client.my_applications(token)]


def test_outbox_submission_after_the_session_ended(client: PlatformClient) -> None:
    session = client.open_citizen_session(*HUANG, "hmt_residence_permit", face_match=True)
    confirmed = dt.datetime.now(dt.timezone.utc)
    client.close_citizen_session(session.token)
    with pytest.raises(CitizenSessionExpired):
        client.file_application(session.token, "hukou-certificate", {"purpose": "employment", "copies": 1})
    filed = client.file_application(session.token, "hukou-certificate", {"purpose": "employment", "copies": 1},
                                    captured_at=confirmed)
    assert filed.progress.applicant_masked == "黄*欣"
    with pytest.raises(PlatformRejected) as refused:
        client.upload_page(session.token, b"nope", "image/png", captured_at=confirmed)
    assert refused.value.platform_code == "invalid_image"
