"""The document camera on OpenCV: the same sources as the face camera's driver (a V4L2 device, an MJPEG URL, a file
or folder), asked for a high resolution, with page capture on top. Profile example::

    document_camera:                  # a 5 MP UVC document camera (高拍仪)
      driver: opencv
      settings: {source: /dev/kiosk-doccam, width: 2592, height: 1944, fourcc: MJPG, paper: A4}

    document_camera:                  # simulated (kiosk-sim document-camera: photographed pages over MJPEG)
      driver: opencv
      simulate: true

Capture (:meth:`OpenCvDocumentCamera.capture_page`): frames are searched for the page (``drivers/document_camera/
page.py``) until its corners have moved less than ``still_px`` over ``stable_frames`` frames in a row; that frame is
flattened to ``output_long_side`` px (A-series aspect when it is near 1:√2, or always with ``paper: A4``), turned a
quarter when its text runs vertically, de-skewed (text lines made horizontal, up to ±4°), and its shadows evened out.
The camera stops grabbing once it has shown it works (``pause_when_idle``); the capture screen's preview resumes it,
and a capture resumes it for itself and leaves it as it found it.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import cv2
import numpy as np

from drivers.camera.base import Frame
from drivers.camera.opencv_camera import SETTINGS_SCHEMA as CAMERA_SETTINGS
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.document_camera import page as pg
from drivers.document_camera.base import CapturedPage, DocumentCamera, NoPageFound

SETTINGS_SCHEMA: dict[str, Any] = {
    **CAMERA_SETTINGS,
    "title": "OpenCV document camera",
    "properties": {
        **CAMERA_SETTINGS["properties"],
        "paper": {"enum": ["auto", "A4"], "default": "auto",
                  "description": "aspect of the flattened page: measured (snapped to 1:√2 when close) or always A4"},
        "output_long_side": {"type": "integer", "minimum": 600, "maximum": 6000, "default": 2000,
                             "description": "long side of the captured page in pixels (2000 ≈ 170 dpi on A4)"},
        "min_page_area": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.95, "default": 0.12,
                          "description": "smallest share of the frame a page must cover"},
        "stable_frames": {"type": "integer", "minimum": 1, "maximum": 30, "default": 3,
                          "description": "frames in a row the page must lie still before it is captured"},
        "still_px": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 6.0,
                     "description": "largest corner movement (frame pixels) between frames counted as still"},
        "capture_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10.0},
        "deskew": {"type": "boolean", "default": True, "description": "make text lines horizontal (±4°)"},
        "even_out": {"type": "boolean", "default": True, "description": "take shadows and uneven light out"},
        "pause_when_idle": {"type": "boolean", "default": True,
                            "description": "after the first frame (the camera is proven online) stop grabbing until "
                                           "a screen resumes it or a page is captured: a 5 MP stream decoded all "
                                           "day long costs a core"},
    },
}


class OpenCvDocumentCamera(OpenCvCamera, DocumentCamera):
    KIND = "document_camera"
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.paper: str = settings.get("paper", "auto")
        self.output_long_side = int(settings.get("output_long_side", 2000))
        self.min_page_area = float(settings.get("min_page_area", 0.12))
        self.stable_frames = int(settings.get("stable_frames", 3))
        self.still_px = float(settings.get("still_px", 6.0))
        self.capture_timeout_s = float(settings.get("capture_timeout_s", 10.0))
        self.deskew = bool(settings.get("deskew", True))
        self.even_out = bool(settings.get("even_out", True))
        self.pause_when_idle = bool(settings.get("pause_when_idle", True))
        self._pause_after_first = False
        self._idle_lock = threading.Lock()   # the first-frame pause vs. a capture or a screen resuming it
        self.counters.update({"pages_captured": 0, "capture_timeouts": 0})

    def _open(self) -> None:
        self._pause_after_first = self.pause_when_idle
        super()._open()

    def _publish(self, image: np.ndarray) -> None:
        super()._publish(image)
        with self._idle_lock:
            if self._pause_after_first:
                self._pause_after_first = False
                self.pause()   # online (a frame came); idle until a screen or a capture resumes it

    def resume(self) -> None:
        with self._idle_lock:
            self._pause_after_first = False
            super().resume()

    def detect_page(self, frame: Frame | None = None) -> pg.PageQuad | None:
        frame = frame or self.latest_frame()
        if frame is None:
            return None
        return pg.find_page(frame.image, self.min_page_area, refine=False)

    def capture_page(self, timeout: float | None = None) -> CapturedPage:
        with self._idle_lock:
            was_paused = self.paused or self._pause_after_first   # idle, or about to be after its first frame
            self._pause_after_first = False
            if self.paused:
                super().resume()   # (not self.resume: this lock is held)
        try:
            return self._capture(timeout)
        finally:
            if was_paused:
                self.pause()

    def _capture(self, timeout: float | None) -> CapturedPage:
        deadline = time.monotonic() + (self.capture_timeout_s if timeout is None else timeout)
        latest = self.latest_frame()   # only what lies under the camera from now on counts
        seq, still, last = (latest.seq if latest else 0), 0, None
        while (remaining := deadline - time.monotonic()) > 0:
            frame = self.wait_frame(after_seq=seq, timeout=min(remaining, 1.0))
            if frame is None:
                continue
            seq = frame.seq
            quad = pg.find_page(frame.image, self.min_page_area, refine=False)
            if quad is None:
                still, last = 0, None
                continue
            still = still + 1 if last is not None and quad.moved(last) <= self.still_px else 1
            last = quad
            if still >= self.stable_frames:
                page = self.process(frame.image)
                if page is not None:
                    self.counters["pages_captured"] += 1
                    return page
        self.counters["capture_timeouts"] += 1
        raise NoPageFound("no page lay still under the document camera")

    def process(self, image: np.ndarray) -> CapturedPage | None:
        """One frame → the captured page (None when no page is in it)."""
        quad = pg.find_page(image, self.min_page_area, refine=True)
        if quad is None:
            return None
        size = pg.page_size(quad.corners, self.output_long_side, self.paper)
        flat = pg.flatten(image, quad.corners, size)
        turned = False
        if pg.quarter_turns(flat):
            flat = cv2.rotate(flat, cv2.ROTATE_90_COUNTERCLOCKWISE)
            turned = True
        skew = pg.skew_angle(flat) if self.deskew else 0.0
        if skew:
            flat = pg.rotate(flat, skew)
        if self.even_out:
            flat = pg.even_out(flat)
        return CapturedPage(image=np.ascontiguousarray(flat), quad=quad, frame_size=(image.shape[1], image.shape[0]),
                            skew_deg=skew, turned=turned)
