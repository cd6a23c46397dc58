"""The document camera's live preview, shared by every screen that photographs pages (the apply flow's capture
screen, the supplement screen's photograph step): :class:`DocumentPreview` shows the page camera's newest frame with
an A4 guide and, where the camera can detect pages (the document camera), the detected page outlined — detection off
the UI thread. :func:`start_preview` / :func:`stop_preview` wire it to the kiosk's page camera
(:func:`kiosk.page_capture.page_camera`: the document camera, else the face camera) and wake / idle that camera."""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
from kivy.clock import Clock
from kivy.graphics import Color, Line, Rectangle
from kivy.graphics.texture import Texture
from kivy.properties import NumericProperty, ObjectProperty
from kivy.uix.widget import Widget

from kiosk import page_capture

DeviceLookup = Callable[[str], Any]


class DocumentPreview(Widget):
    """The camera's newest frame (not mirrored: a page must read the right way round) with an A4 frame guide the
    citizen lines the page up with. Looks at ``frame_source`` ``fps`` times a second while started. With an
    ``outline_source`` (the document camera's page detection: image → corners or None) the detected page is
    outlined instead; detection runs off the UI thread, on the newest half-size frame."""

    frame_source = ObjectProperty(None, allownone=True)  # Callable[[], Frame | None]
    outline_source = ObjectProperty(None, allownone=True)  # Callable[[ndarray], ndarray(4×2) | None]
    fps = NumericProperty(10.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._event: Any = None
        self._texture: Texture | None = None
        self._seq: int | None = None
        self._outline: Any = None        # corners in half-size image pixels, or None
        self._detecting = False
        with self.canvas:
            Color(0.08, 0.09, 0.1, 1)
            self._bg = Rectangle(pos=self.pos, size=self.size)
            Color(1, 1, 1, 1)
            self._image = Rectangle(pos=self.pos, size=(0, 0))
        with self.canvas.after:
            Color(0.2, 0.8, 0.35, 0.95)
            self._guide = Line(rectangle=(0, 0, 1, 1), width=3)
            Color(1.0, 0.75, 0.1, 1)
            self._page = Line(points=[], width=4, close=True)
        self.bind(pos=self._layout, size=self._layout)

    def start(self) -> None:
        if self._event is None:
            self._event = Clock.schedule_interval(self._tick, 1.0 / self.fps)

    def stop(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self._texture = None
        self._seq = None
        self._outline = None
        self._image.texture = None
        self._layout()

    def _tick(self, _dt: float) -> None:
        frame = self.frame_source() if self.frame_source is not None else None
        if frame is None or frame.seq == self._seq:
            return
        self._seq = frame.seq
        image = np.ascontiguousarray(frame.image[::2, ::2])  # half size: plenty for aiming, cheap on software GL
        h, w = image.shape[:2]
        if self._texture is None or self._texture.size != (w, h):
            self._texture = Texture.create(size=(w, h), colorfmt="bgr")
            self._texture.flip_vertical()
            self._image.texture = self._texture
        self._texture.blit_buffer(memoryview(image).cast("B"), colorfmt="bgr", bufferfmt="ubyte")
        if self.outline_source is not None and not self._detecting:
            self._detecting = True
            threading.Thread(target=self._detect, args=(self.outline_source, image), daemon=True,
                             name="page-outline").start()
        self._layout()
        self.canvas.ask_update()

    def _detect(self, detect: Any, image: np.ndarray) -> None:
        try:
            corners = detect(image)
        except Exception:  # an outline is a help, never a reason to stop the preview
            corners = None
        Clock.schedule_once(lambda _dt: self._outlined(corners), 0)

    def _outlined(self, corners: Any) -> None:
        self._detecting = False
        if self._event is None:
            return   # stopped meanwhile: the outline of a page no longer shown is not drawn
        self._outline = corners
        self._layout()

    def _layout(self, *_: Any) -> None:
        self._bg.pos, self._bg.size = self.pos, self.size
        tw, th = self._texture.size if self._texture is not None else (4, 3)
        scale = min(self.width / tw, self.height / th)
        iw, ih = tw * scale, th * scale
        x, y = self.x + (self.width - iw) / 2, self.y + (self.height - ih) / 2
        self._image.pos, self._image.size = (x, y), ((iw, ih) if self._texture is not None else (0, 0))
        gh = ih * 0.9
        gw = min(iw * 0.9, gh * 297 / 210) if iw > ih else min(iw * 0.9, gh * 210 / 297)  # A4, either way round
        self._guide.rectangle = (x + (iw - gw) / 2, y + (ih - gh) / 2, gw, gh)
        if self._outline is not None and self._texture is not None:   # image rows run downwards, Kivy's y upwards
            self._page.points = [v for cx, cy in self._outline for v in (x + cx * scale, y + ih - cy * scale)]
        else:
            self._page.points = []


def start_preview(preview: DocumentPreview, devices: DeviceLookup) -> Any | None:
    """Show the page camera in ``preview`` (outlining pages when it can detect them); the camera is woken if it is
    idle (the face check pauses the face camera whenever it is not checking a face; pause/resume only set flags
    for the camera's grab thread). Returns the camera, or None when the kiosk has none (the preview stays dark)."""
    camera = page_capture.page_camera(devices)
    if camera is not None and hasattr(camera, "resume"):
        camera.resume()
    preview.frame_source = camera.latest_frame if camera is not None else None
    preview.outline_source = page_capture.page_outline if camera is not None and hasattr(
        camera, "detect_page") else None
    preview.start()
    return camera


def stop_preview(preview: DocumentPreview, devices: DeviceLookup) -> None:
    """Stop ``preview`` and idle the page camera again (its last frame dropped) until a screen needs it."""
    preview.stop()
    camera = page_capture.page_camera(devices)
    if camera is not None and hasattr(camera, "pause"):
        camera.pause()
