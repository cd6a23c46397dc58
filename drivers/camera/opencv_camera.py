"""The camera driver on OpenCV (``opencv-python-headless``): a device index, a device path, an RTSP/HTTP URL, a
video file or a folder of images. Profile examples::

    camera:                       # the kiosk's USB camera
      driver: opencv
      settings: {source: /dev/video0, width: 640, height: 480, fps: 30, fourcc: MJPG}

    camera:                       # simulated: a clip played in a loop (or `source: some/folder` of images)
      driver: opencv
      settings: {source: var/demo/face-live.avi, loop: true, fps: 25}

    camera:                       # an IP camera, or the `kiosk-sim camera` MJPEG server
      driver: opencv
      settings: {source: "http://127.0.0.1:8081/stream.mjpg"}

Sources are told apart by their form: an integer (or digits) is a device index, ``/dev/…`` a device path, anything
with ``://`` a URL (opened with FFMPEG and its open/read timeouts), an existing folder an image sequence (``*.jpg``,
``*.jpeg``, ``*.png``, ``*.bmp`` in name order), anything else a video file. Files and folders are played at
``fps`` (default: the file's own rate, else 25) and, with ``loop`` (default true), from the start again at their end;
without ``loop`` the end of a file is a stall (``hardware_error``), after which the driver reopens it.

Frames that do not have the configured ``width``×``height`` are resized to it (real cameras are asked for that size
first); without a size they are passed on as they come.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drivers.camera.base import FrameSource, GrabbingCamera
from drivers.errors import NoDevice

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_BACKENDS = {"any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "OpenCV camera",
    "type": "object",
    "properties": {
        "source": {
            "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}],
            "description": "device index (0), device path (/dev/video0), URL (rtsp://…, http://…), video file, "
                           "or folder of images",
        },
        "width": {"type": "integer", "minimum": 16, "maximum": 7680},
        "height": {"type": "integer", "minimum": 16, "maximum": 4320},
        "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 240,
                "description": "frame rate asked of a camera; playback rate of a file or folder"},
        "fourcc": {"type": "string", "minLength": 4, "maxLength": 4, "description": "pixel format asked of a camera"},
        "backend": {"enum": sorted(_BACKENDS), "default": "any"},
        "loop": {"type": "boolean", "default": True, "description": "files and folders: play again from the start"},
        "open_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 5.0},
        "read_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 3.0},
        **GrabbingCamera.COMMON_SETTINGS,
    },
    "required": ["source"],
    "dependentRequired": {"width": ["height"], "height": ["width"]},
    "additionalProperties": False,
}


def mask_url(url: str) -> str:
    """``rtsp://user:secret@10.0.0.5/stream`` → ``rtsp://***@10.0.0.5/stream`` (for status and logs)."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


def source_kind(source: int | str) -> str:
    """"index", "device", "url", "folder" or "file"."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "index"
    if "://" in source:
        return "url"
    if source.startswith("/dev/"):
        return "device"
    if os.path.isdir(source):
        return "folder"
    return "file"


class _CaptureSource(FrameSource):
    def __init__(self, cap: cv2.VideoCapture, live: bool, fps: float, loop: bool) -> None:
        self.cap, self.live, self.fps, self.loop = cap, live, fps, loop

    def read(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        if ok and image is not None:
            return image
        if self.loop and not self.live:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
            if ok and image is not None:
                return image
        return None

    def release(self) -> None:
        self.cap.release()


class _FolderSource(FrameSource):
    live = False

    def __init__(self, files: list[Path], fps: float, loop: bool) -> None:
        self.files, self.fps, self.loop = files, fps, loop
        self.index = 0

    def read(self) -> np.ndarray | None:
        if self.index >= len(self.files):
            if not self.loop:
                return None
            self.index = 0
        path = self.files[self.index]
        self.index += 1
        return cv2.imread(str(path), cv2.IMREAD_COLOR)

    def release(self) -> None:
        self.files = []


class OpenCvCamera(GrabbingCamera):
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        source = settings["source"]
        self.source: int | str = int(source) if isinstance(source, str) and source.isdigit() else source
        self.width: int | None = settings.get("width")
        self.height: int | None = settings.get("height")
        self.fps: float | None = settings.get("fps")
        self.fourcc: str | None = settings.get("fourcc")
        self.backend: str = settings.get("backend", "any")
        self.loop: bool = settings.get("loop", True)
        self.open_timeout_s = float(settings.get("open_timeout_s", 5.0))
        self.read_timeout_s = float(settings.get("read_timeout_s", 3.0))

    @property
    def kind_of_source(self) -> str:
        return source_kind(self.source)

    def _describe(self) -> dict[str, Any]:
        source = self.source if isinstance(self.source, int) else mask_url(str(self.source))
        return {"source": source, "source_kind": self.kind_of_source}

    def _postprocess(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if self.width and self.height and (image.shape[1], image.shape[0]) != (self.width, self.height):
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def _open_source(self) -> FrameSource:
        kind = self.kind_of_source
        shown = self._describe()["source"]
        if kind == "folder":
            files = sorted(p for p in Path(str(self.source)).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise NoDevice(f"camera folder {shown} has no images", source=str(shown))
            return _FolderSource(files, self.fps or 25.0, self.loop)
        if kind == "file" and not os.path.isfile(str(self.source)):
            raise NoDevice(f"camera video file {shown} not found", source=str(shown))
        api = _BACKENDS[self.backend]
        if kind in ("url", "file") and self.backend == "any":
            api = cv2.CAP_FFMPEG
        params: list[int] = []
        if kind == "url":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        try:
            cap = cv2.VideoCapture(self.source, api, params) if params else cv2.VideoCapture(self.source, api)
        except cv2.error as exc:
            raise NoDevice(f"camera {shown} cannot be opened: {exc}", source=str(shown)) from exc
        if not cap.isOpened():
            cap.release()
            raise NoDevice(f"camera {shown} cannot be opened", source=str(shown))
        live = kind in ("index", "device", "url")
        if kind in ("index", "device"):
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
            if self.width and self.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        fps = self.fps or (cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not fps or fps > 240 or fps != fps:
            fps = 25.0
        return _CaptureSource(cap, live=live, fps=float(fps), loop=self.loop)
