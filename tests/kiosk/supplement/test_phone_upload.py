"""手机上传, kiosk half, against the real platform: the kiosk shows a one-time QR for this session; an HTTP client
playing the citizen's phone opens it and sends a photo; the photo appears in the kiosk session within seconds (the
poller), provides the missing material and the supplement is accepted; at session end the poller stops, the kiosk
forgets it and the link is dead for the phone."""
from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image, ImageDraw

from kiosk.platform_client import MaterialRef
from tests.kiosk.supplement.test_supplement_flow import FORM

pytestmark = pytest.mark.usefixtures("face_verified")


@pytest.fixture(scope="module")
def platform_server(make_platform_server):
    return make_platform_server()


def photo_jpeg() -> bytes:
    img = Image.new("RGB", (1600, 1200), "white")
    draw = ImageDraw.Draw(img)
    for y in range(100, 1100, 45):
        draw.rectangle((100, y, 1450, y + 14), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def test_a_photo_from_the_phone_appears_in_the_session_and_goes_with_it(make_harness, platform_server, wait_for):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    filed = core.platform.file_application(core.citizen_token(), "sole-proprietor-registration", FORM,
                                           [MaterialRef(2, defer=True)], commitment=True)
    flow.open_now(filed.number)
    arrived: list[int] = []
    watch = flow.phone_now(2, on_files=lambda slot: arrived.append(len(slot.upload_ids)))
    assert watch.url.startswith(platform_server.url) and "/upload/" in watch.url, "the platform's public address"

    phone = httpx.Client(timeout=10)      # the citizen's phone: no kiosk key, no citizen token, only the QR
    try:
        page = phone.get(watch.url)
        assert page.status_code == 200 and "<form" in page.text
        sent_at = time.monotonic()
        answer = phone.post(watch.url, files=[("photos", ("lease.jpg", photo_jpeg(), "image/jpeg"))])
        assert answer.status_code == 200, answer.text[:300]
        wait_for(lambda: arrived, timeout=10, what="the phone's photo in the kiosk session")
        assert time.monotonic() - sent_at < 5, "within seconds"
        [slot] = flow.slots
        assert len(slot.upload_ids) == 1 and slot.upload_ids[0] == watch.received[0].upload_id

        outcome = flow.submit_now()
        assert outcome.status == "submitted" and outcome.result["status"] == "in_review"
        assert {m["source"] for m in outcome.result["materials"] if m["index"] == 2} == {"upload"}

        core.end_session("finished")
        assert watch.stop_event.is_set() and watch.received == [] and core.phone_uploads.active == []
        assert flow.slots == [], "nothing of the citizen stays in the kiosk"
        dead = wait_for(lambda: (lambda r: r if r.status_code >= 400 else None)(phone.get(watch.url)), timeout=10,
                        what="the link dead once the session ended")
        assert dead.status_code in (404, 410)
    finally:
        phone.close()
