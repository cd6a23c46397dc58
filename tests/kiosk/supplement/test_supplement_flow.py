"""补正 at the kiosk through the core (no Kivy) against the real platform: the one-time list of what is missing, a page
photographed with the kiosk camera or an e-certificate attached, the supplement submitted (the platform moves the
application on), the 补正回执 printed with a QR of the public verify page; and the outbox keeping a supplement while the
platform is unreachable, sending it once when it is back."""
from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kiosk.errors import PlatformUnavailable
from kiosk.platform_client import MaterialRef, PlatformClient
from kiosk.request_signing import KioskRequestSigner
from kiosk.usecases.supplement import SupplementIncomplete, supplement_sender

# filing and supplementing need the holder confirmed (card+face); the test profiles have no face camera
pytestmark = pytest.mark.usefixtures("face_verified")

SEEDED = "SP20261026000501"   # 杨志强's sole-proprietor registration: lease agreement to be supplemented (seed)
FORM = {"business_name": "杨记早餐店", "business_address": "蚌埠市龙子湖区东海大道1号3栋2单元501室",
        "business_scope": "早餐、小吃", "capital_fen": 5_000_000, "phone": "13905520003"}


@pytest.fixture(scope="module")
def platform_server(make_platform_server):
    """A platform of this module's own: the seeded application is supplemented here, other modules see it untouched."""
    return make_platform_server()


def page_folder(folder: Path) -> Path:
    """A photographed page with lines of 'text' (the platform refuses small or blank pages)."""
    folder.mkdir()
    img = Image.new("RGB", (1280, 960), "white")
    draw = ImageDraw.Draw(img)
    for y in range(80, 880, 40):
        draw.rectangle((80, y, 1100, y + 12), fill="black")
    img.save(folder / "page0.png")
    return folder


def status_of(platform_server, number: str) -> str:
    return platform_server.query("SELECT status FROM applications WHERE number = ?", number)[0][0]


def file_with_deferred_lease(core) -> str:
    """张明华 files a sole-proprietor registration deferring the business-premises proof (容缺受理)."""
    filed = core.platform.file_application(core.citizen_token(), "sole-proprietor-registration", FORM,
                                           [MaterialRef(2, defer=True)], commitment=True)
    assert filed.outstanding == [2] and filed.progress.status == "accepted"
    return filed.number


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_seeded_supplement_with_a_photographed_page(make_harness, platform_server, tmp_path, wait_for):
    camera = {"driver": "opencv", "required": False, "simulate": False,
              "settings": {"source": str(page_folder(tmp_path / "pages")), "fps": 10, "loop": True}}
    harness = make_harness(devices__camera=camera, face__enabled=False)
    core, flow = harness.core, harness.core.supplement
    harness.identify("yang")

    [case] = flow.waiting_now()
    assert (case.number, case.status, case.missing) == (SEEDED, "supplement_required", [(2, "经营场所使用证明")])
    assert "产权人签字" in case.reason, "the department's note is part of the one-time list"

    flow.open_now(SEEDED)
    [slot] = flow.slots
    assert slot.candidates == [], "his property certificate is self-uploaded (trust D): not accepted as a material"
    with pytest.raises(SupplementIncomplete):
        flow.submit_now()
    assert flow.can_capture
    flow.capture_now(2)
    assert len(slot.upload_ids) == 1 and slot.upload_ids[0].startswith("up_")

    outcome = flow.submit_now()
    assert outcome.status == "submitted" and outcome.number == SEEDED
    assert outcome.result["status"] == "in_review" and outcome.result["outstanding"] == []
    last = outcome.result["timeline"][-1]
    assert last["status"] == "in_review" and "材料已补齐" in last["note"], "the timeline shows the supplement"
    assert status_of(platform_server, SEEDED) == "in_review", "the platform moved the application on"
    assert flow.waiting_now() == []
    assert core.outbox.get(flow.state.item_id).payload is None, "nothing personal kept once submitted"

    flow.print_receipt_now()
    receipt = wait_for(lambda: (harness.receipts() or [None])[-1], what="the supplement receipt")
    lines = receipt["text"].split("\n")
    assert "补正材料回执" in lines and f"办件编号：{SEEDED}" in lines and "1. 经营场所使用证明（拍照上传）" in lines
    assert "杨*强" in receipt["text"] and "杨志强" not in receipt["text"]
    assert receipt["qr"] == [core.public_urls.application(SEEDED)]
    assert receipt["qr"][0].endswith(f"/verify/a/{SEEDED}")


def test_supplement_with_an_e_certificate_and_the_state_goes_with_the_session(make_harness, platform_server):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    number = file_with_deferred_lease(core)

    waiting = {c.number: c for c in flow.waiting_now()}
    assert number in waiting and waiting[number].status == "accepted" and waiting[number].due
    flow.open_now(number)
    [slot] = flow.slots
    assert [c.type_code for c in slot.candidates] == ["property_cert"]
    flow.attach(2)
    outcome = flow.submit_now()
    assert outcome.status == "submitted" and outcome.result["status"] == "in_review"
    assert status_of(platform_server, number) == "in_review"
    assert flow.receipt_context()["materials"] == [{"name": "经营场所使用证明", "form": "电子证照"}]

    core.end_session("finished")
    assert flow.state.case is None and flow.slots == [], "nothing of the citizen is left after the session"


def test_platform_down_at_submit_keeps_it_in_the_outbox_then_sends_it_once(make_harness, platform_server, wait_for):
    harness = make_harness()
    core, flow = harness.core, harness.core.supplement
    harness.identify("zhang")
    number = file_with_deferred_lease(core)
    flow.open_now(number)
    flow.attach(2)

    signer = KioskRequestSigner.from_file(core.kiosk_id, os.environ["KIOSK_TEST_SIGNING_KEY"])
    down = PlatformClient(f"http://127.0.0.1:{closed_port()}", core.kiosk_id, signer, timeout_s=2, retries=0)
    core.outbox.register("supplement", supplement_sender(down))    # the platform is unreachable now
    try:
        outcome = flow.submit_now()
        assert outcome.status == "queued" and outcome.reference.startswith("KQ")
        item = core.outbox.get(flow.state.item_id)
        assert item.state == "pending" and item.kind == "supplement"
        assert status_of(platform_server, number) == "accepted", "nothing reached the platform"
        flow.print_receipt_now()
        receipt = wait_for(lambda: (harness.receipts() or [None])[-1], what="the queued supplement receipt")
        assert f"受理参考号：{outcome.reference}" in receipt["text"].split("\n")
        with pytest.raises(PlatformUnavailable):
            core.outbox.attempt(item.id)
    finally:
        down.close()
        core.outbox.register("supplement", supplement_sender(core.platform))   # the platform is back

    # (the background drainer may be the one that sends it: either way it is sent once)
    wait_for(lambda: (core.outbox.drain(), core.outbox.get(item.id).state == "submitted")[1], timeout=20,
             what="the queued supplement sent")
    assert core.outbox.pending_count() == 0
    assert status_of(platform_server, number) == "in_review"
    events = platform_server.query("SELECT count(*) FROM application_events e JOIN applications a "
                                   "ON a.id = e.application_id WHERE a.number = ? AND e.status = 'in_review'", number)
    assert events == [(1,)], "sent once: the replay with the same Idempotency-Key did nothing twice"
    assert core.outbox.drain().submitted == []
    assert dt.datetime.fromisoformat(core.outbox.get(item.id).captured_at).tzinfo is not None
