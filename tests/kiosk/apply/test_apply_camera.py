"""Paper pages photographed with the kiosk camera (the real OpenCV driver reading a folder of page images, as the
simulated camera does) and uploaded with an Idempotency-Key per page; the capture step is offered only when the
profile has a camera."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from kiosk.usecases.apply import Step

import pytest  # noqa: E402

# this flow needs the holder confirmed (card+face): the test profile's camera captures pages, not faces
pytestmark = pytest.mark.usefixtures("face_verified")


def page_folder(folder: Path) -> Path:
    """Two A4-like pages with lines of 'text' (the platform refuses small or blank pages)."""
    folder.mkdir()
    for i in range(2):
        img = Image.new("RGB", (1280, 960), "white")
        draw = ImageDraw.Draw(img)
        for y in range(80 + i * 10, 880, 40):
            draw.rectangle((80, y, 1100, y + 12), fill="black")
        img.save(folder / f"page{i}.png")
    return folder


def test_capture_pages_with_the_camera_then_file(make_harness, call, tmp_path, platform_server):
    camera = {"driver": "opencv", "required": False, "simulate": False,
              "settings": {"source": str(page_folder(tmp_path / "pages")), "fps": 10, "loop": True}}
    harness = make_harness(devices__camera=camera, face__enabled=False)
    flow = harness.core.apply
    harness.identify("chen")
    assert flow.camera_available
    flow.start()
    call(flow.choose, "residence-permit-apply")
    flow.accept_notice()
    flow.set_field("/basis", "residence", typed=False)
    flow.set_field("/residence_address", "安徽省蚌埠市龙子湖区淮河路168号2栋301室")
    flow.set_field("/registered_on", "2026-03-10")
    flow.set_field("/phone", "13905520003")
    assert flow.finish_form() == []
    flow.attach_suggested()
    assert flow.next_after_attach() is Step.CAPTURE
    wanting = [s for s in flow.open_slots if not s.provided]
    for slot in wanting:
        if slot.material.deferrable:
            flow.defer(slot.index)
        else:
            call(flow.capture_page, slot.index)
            assert len(slot.upload_ids) == 1 and slot.upload_ids[0].startswith("up_")
    review = call(flow.pre_review)
    assert review.acceptable, review.problems
    outcome = call(flow.submit)
    assert outcome.status == "submitted"
    sources = {m["source"] for m in outcome.result["materials"] if m["status"] == "provided"}
    assert "upload" in sources
