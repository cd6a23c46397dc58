"""Which camera photographs pages (kiosk/page_capture.py), with real drivers on the document camera simulator: with
a document camera in the profile (simulated, through the device manager) the page comes out flattened (A-series,
upright); without one the face camera's frame is taken as it is; with neither, DeviceUnavailable."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from PIL import Image

from device_profiles.loader import parse_profile
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.document_camera.opencv_document_camera import OpenCvDocumentCamera
from kiosk import page_capture
from kiosk.devices import DeviceManager
from kiosk.errors import DeviceUnavailable

ROOT = Path(__file__).resolve().parents[2]


def _size(jpeg: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(jpeg)).size


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceManager]:
    """The device manager of a profile with a simulated document camera (kiosk-sim document-camera, started and
    wired to the real driver as for any ``simulate: true`` device)."""
    data = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    data["kiosk"]["data_dir"] = str(tmp_path_factory.mktemp("data"))
    data["devices"] = {"document_camera": {"driver": "opencv", "simulate": True,
                                           "settings": {"stable_frames": 2, "output_long_side": 1600}}}
    manager = DeviceManager(parse_profile(data))
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()


def test_pages_come_from_the_document_camera_flattened_else_from_the_face_camera(devices: DeviceManager) -> None:
    doc = devices.get("document_camera")
    assert isinstance(doc, OpenCvDocumentCamera)
    assert page_capture.page_camera(devices.get) is doc
    assert _size(page_capture.capture_page(devices.get, timeout_s=15.0)) == (1131, 1600)
    # a kiosk without a document camera: the face camera's frame as it comes (here looking at the same desk)
    with OpenCvCamera(source=devices.sim_endpoints["document_camera"]["url"]) as face:
        only_face = {"camera": face}
        assert page_capture.page_camera(only_face.get) is face
        assert _size(page_capture.capture_page(only_face.get, timeout_s=15.0)) == \
            tuple(devices.sim_endpoints["document_camera"]["size"])
    with pytest.raises(DeviceUnavailable):
        page_capture.capture_page({}.get)


def test_the_preview_outline_follows_the_page_on_the_half_size_preview_image() -> None:
    import cv2
    import numpy as np

    from drivers.document_camera import scenes
    from drivers.document_camera.simulator import cached_scenes

    folder, truth = cached_scenes()
    frame = cv2.imread(str(folder / "page-001" / "frame.png"))
    half = np.ascontiguousarray(frame[::2, ::2])             # what the preview shows (screens/apply.py)
    corners = page_capture.page_outline(half)
    assert corners is not None
    expected = np.array(truth["pages"][0]["corners"], np.float32) / 2
    assert float(np.linalg.norm(corners - expected, axis=1).max()) < 4.0
    assert page_capture.page_outline(scenes.desk((1024, 768))) is None
