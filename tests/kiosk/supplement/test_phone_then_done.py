"""手机上传 then "上传完成" (the phone view's only way back) then submit: the photos that arrived stay usable — closing
the phone link on the platform must not delete photos the kiosk session has taken into a material."""
from __future__ import annotations

import httpx
import pytest

from kiosk.platform_client import MaterialRef
from tests.kiosk.supplement.test_phone_upload import photo_jpeg
from tests.kiosk.supplement.test_supplement_flow import FORM

pytestmark = pytest.mark.usefixtures("face_verified")


@pytest.fixture(scope="module")
def platform_server(make_platform_server):
    return make_platform_server()


def test_photos_from_the_phone_survive_the_citizen_closing_the_phone_view(make_harness, platform_server, wait_for):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    filed = core.platform.file_application(core.citizen_token(), "sole-proprietor-registration", FORM,
                                           [MaterialRef(2, defer=True)], commitment=True)
    flow.open_now(filed.number)
    arrived: list[int] = []
    watch = flow.phone_now(2, on_files=lambda slot: arrived.append(len(slot.upload_ids)))
    sent = httpx.post(watch.url, files=[("photos", ("lease.jpg", photo_jpeg(), "image/jpeg"))], timeout=10)
    assert sent.status_code == 200, sent.text[:300]
    wait_for(lambda: arrived, timeout=10, what="the phone's photo in the kiosk session")
    flow.phone_stop(watch)                    # what "上传完成" runs (on a worker)
    wait_for(lambda: watch.status == "stopped", timeout=10, what="the phone view closed")
    outcome = flow.submit_now()
    assert outcome.status == "submitted" and outcome.result["status"] == "in_review", outcome
