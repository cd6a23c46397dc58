"""Photographing a paper page for an application or a supplement: the one place that decides which camera takes
pages and how a frame becomes the JPEG the platform receives.

The document camera (高拍仪, device kind ``document_camera``) is preferred when the profile has one; until then (or on a
kiosk without one) the face camera (``camera``) takes pages as before. A driver that can flatten a page itself (a
``capture_page()`` method: page detection, perspective correction, deskew) is asked for that; otherwise the newest
frame is taken as it is. Blocking: call it on a worker. Frames stay in memory; nothing is written or logged.
"""
from __future__ import annotations

import io
from typing import Any, Callable

from kiosk.errors import DeviceUnavailable

#: device kinds that can photograph pages, in order of preference
PAGE_CAMERAS = ("document_camera", "camera")

DeviceLookup = Callable[[str], Any]


def page_camera(devices: DeviceLookup) -> Any | None:
    """The device that takes pages on this kiosk (None when there is none)."""
    for kind in PAGE_CAMERAS:
        device = devices(kind)
        if device is not None:
            return device
    return None


def frame_jpeg(image: Any, quality: int = 90) -> bytes:
    """A camera frame (BGR array) as JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[:, :, ::-1].copy()).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def capture_page(devices: DeviceLookup, timeout_s: float = 5.0) -> bytes:
    """One page as JPEG bytes from the page camera; :class:`DeviceUnavailable` when there is no camera or it gives
    no picture within ``timeout_s``."""
    camera = page_camera(devices)
    if camera is None:
        raise DeviceUnavailable("no camera for pages configured")
    # a camera paused between uses (the face camera is, outside face checks) is woken for the shot and paused again
    woken = bool(getattr(camera, "paused", False)) and hasattr(camera, "resume")
    if woken:
        camera.resume()
    try:
        return _shoot(camera, max(timeout_s, 10.0) if woken else timeout_s)   # (a woken stream reconnects)
    finally:
        if woken:
            camera.pause()


def _shoot(camera: Any, timeout_s: float) -> bytes:
    flatten = getattr(camera, "capture_page", None)
    if callable(flatten):
        page = flatten(timeout=timeout_s)
        if page is None:
            raise DeviceUnavailable("the document camera found no page")
        image = getattr(page, "image", page)
        return image if isinstance(image, (bytes, bytearray)) else frame_jpeg(image)
    latest = camera.latest_frame()
    frame = camera.wait_frame(after_seq=latest.seq if latest else 0, timeout=timeout_s) or latest
    if frame is None:
        raise DeviceUnavailable("the camera gave no picture")
    return frame_jpeg(frame.image)


def page_outline(image: Any) -> Any | None:
    """The corners (4×2, image pixels: top-left, top-right, bottom-right, bottom-left) of the page in a preview
    image, or None — for outlining it live while the citizen lays it down (the document camera's quick detection,
    drivers/document_camera/page.py). CPU work: call it off the UI thread."""
    from drivers.document_camera.page import find_page

    quad = find_page(image, refine=False)
    return None if quad is None else quad.corners
