"""The document camera's contract over its simulator (photographed pages of a rendered PDF, served as MJPEG),
through the real OpenCV driver: a captured page comes out flat and upright — its detected corners within a few
pixels of where the simulator laid the page, its registration squares where the PDF put them, and its content
matching the rendered page — an empty desk is a typed NoPageFound, and the live preview outlines the page."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from drivers import registry
from drivers.base import DeviceState
from drivers.document_camera import scenes
from drivers.document_camera.base import NoPageFound
from drivers.document_camera.opencv_document_camera import OpenCvDocumentCamera
from drivers.sim.process import SimulatorProcess
from kiosk.i18n import table


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess("document-camera", "--tcp", "127.0.0.1:0", start_timeout=60)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def camera(simulator: SimulatorProcess) -> Iterator[OpenCvDocumentCamera]:
    simulator.control("show", page=1)
    cls = registry.resolve("document_camera", "opencv")
    cam = cls(source=simulator.endpoints["url"], stable_frames=2, capture_timeout_s=20.0)
    assert isinstance(cam, OpenCvDocumentCamera)
    with cam:
        yield cam


def _truth(simulator: SimulatorProcess) -> dict:
    return json.loads(Path(simulator.endpoints["truth"]).read_text("utf-8"))


def _marks(page: np.ndarray) -> list[tuple[float, float, float]]:
    """(x, y, area) of the dark filled squares on a captured page, largest first."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    _, ink = cv2.threshold(gray, 100, 255, cv2.THRESH_BINARY_INV)
    contours, _ = cv2.findContours(ink, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    expected = (8.0 / scenes.A4_MM[0] * page.shape[1]) ** 2
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        area = cv2.contourArea(c)
        if 0.5 * expected < area < 3.5 * expected and 0.8 < w / h < 1.25 and area > 0.85 * w * h:
            m = cv2.moments(c)
            out.append((m["m10"] / m["m00"], m["m01"] / m["m00"], area))
    return sorted(out, key=lambda t: -t[2])


def test_a_captured_page_comes_out_flat_and_upright(camera: OpenCvDocumentCamera,
                                                     simulator: SimulatorProcess) -> None:
    truth = _truth(simulator)["pages"][0]
    page = camera.capture_page()
    # where the page lay in the frame: each corner within a few pixels (2048×1536 frame)
    errors = np.linalg.norm(page.quad.corners - np.array(truth["corners"], np.float32), axis=1)
    assert float(errors.max()) < 3.0, errors
    w, h = page.size
    assert h == 2000 and abs(h / w - 2 ** 0.5) < 0.01        # A-series portrait at the configured size
    # flat and upright: the four registration squares where the PDF put them, the large one top-left
    marks = _marks(page.image)
    assert len(marks) == 4, marks
    expected = scenes.mark_centres((w, h))
    for x, y, _ in marks:
        assert float(np.min(np.linalg.norm(expected - np.array([x, y]), axis=1))) < 6.0, (x, y, expected)
    big_x, big_y, _ = marks[0]
    assert np.linalg.norm(expected[0] - np.array([big_x, big_y])) < 6.0
    # readable: the content matches the rendered page (and not the same page turned upside down)
    ref = cv2.cvtColor(cv2.imread(truth["reference"]), cv2.COLOR_BGR2GRAY)
    got = cv2.resize(cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY), (ref.shape[1], ref.shape[0]),
                     interpolation=cv2.INTER_AREA)
    same = cv2.matchTemplate(cv2.GaussianBlur(got, (5, 5), 0), cv2.GaussianBlur(ref, (5, 5), 0),
                             cv2.TM_CCOEFF_NORMED)[0][0]
    flipped = cv2.matchTemplate(cv2.GaussianBlur(cv2.rotate(got, cv2.ROTATE_180), (5, 5), 0),
                                cv2.GaussianBlur(ref, (5, 5), 0), cv2.TM_CCOEFF_NORMED)[0][0]
    assert same > 0.8 and same > flipped + 0.3, (same, flipped)
    # shadows evened out: the paper is white all over (the simulator darkened part of it)
    paper = page.image[int(0.5 * h):int(0.55 * h), int(0.05 * w):int(0.95 * w)]
    assert np.percentile(paper, 60) > 225
    assert camera.status().counters["pages_captured"] == 1


def test_idle_after_the_first_frame_and_a_capture_leaves_it_so(camera: OpenCvDocumentCamera) -> None:
    deadline = time.monotonic() + 15.0
    while not camera.paused:             # online once, then it stops grabbing until something needs it
        assert time.monotonic() < deadline, camera.status()
        time.sleep(0.05)
    status = camera.status()
    assert status.device is DeviceState.ONLINE and status.extra.get("paused") and camera.latest_frame() is None
    assert camera.capture_page().size == (1414, 2000)
    assert camera.paused


def test_the_preview_outlines_the_page_and_an_empty_desk_is_no_page(camera: OpenCvDocumentCamera,
                                                                    simulator: SimulatorProcess) -> None:
    camera.resume()                      # the capture screen's preview does this on entering
    frame = camera.wait_frame(timeout=10.0)
    assert frame is not None and frame.size == tuple(_truth(simulator)["size"])
    quad = camera.detect_page(frame)
    assert quad is not None and quad.area_fraction > 0.2
    simulator.control("show", page=0)
    deadline = time.monotonic() + 10.0
    while camera.detect_page(camera.wait_frame(camera.latest_frame().seq, timeout=2.0)) is not None:
        assert time.monotonic() < deadline, "the page never left the camera's view"
    with pytest.raises(NoPageFound) as caught:
        camera.capture_page(timeout=1.5)
    assert caught.value.code == "no_page_detected"
    for language in ("zh_CN", "en"):
        assert caught.value.translation_key in table(language)
    status = camera.status()
    assert status.kind == "document_camera" and status.device is DeviceState.ONLINE
    assert status.counters["capture_timeouts"] == 1
