"""The camera preview: frames from a callable shown as a mirror image with a face-position guide.

    preview = CameraPreview(frame_source=camera.latest_frame)     # any callable returning a Frame-like or None
    preview.start()   # in on_enter of the face screen
    preview.stop()    # in on_leave / reset(): also drops the texture (no last frame left on screen)

Every Kivy frame the preview looks at the newest frame — ``latest_frame()`` only returns a reference, never blocks —
and uploads it to the GPU only when its ``seq`` changed: a frame is shown on the first UI frame after it arrived (a
30 Hz timer beating against a 30 fps camera would drop every few frames), and nothing is redrawn while no new frame
comes. Frames wider than ``texture_width`` (default 480 px) are scaled down first, into one buffer reused for every
frame (no per-frame allocation); the GPU scales the texture up to the widget, so software GL (llvmpipe under Xvfb)
uploads and converts half the pixels of a 640×480 frame. The camera's grab thread and the face worker process do all
the heavy work. The image is shown mirrored (people expect a mirror; the texture is flipped, no pixel is moved),
fitted into the widget, with an oval guide where the face should be: ``guide_state`` colours it ("idle" white, "ok"
green, "warn" amber).

``measured_fps`` is the rate at which new frames reached the screen over the last second (for tests and benches).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import numpy as np
from kivy.clock import Clock
from kivy.graphics import Color, Line, Rectangle
from kivy.graphics.texture import Texture
from kivy.properties import NumericProperty, ObjectProperty, OptionProperty
from kivy.uix.widget import Widget

GUIDE_COLOURS = {"idle": (1, 1, 1, 0.85), "ok": (0.2, 0.8, 0.35, 0.95), "warn": (1.0, 0.7, 0.1, 0.95)}


class CameraPreview(Widget):
    frame_source = ObjectProperty(None, allownone=True)   # Callable[[], Frame | None]
    fps = NumericProperty(0.0)                            # 0: look every UI frame (uploads only new frames)
    texture_width = NumericProperty(480)                  # frames wider than this are scaled down before upload
    guide_state = OptionProperty("idle", options=list(GUIDE_COLOURS))
    guide_width = NumericProperty(0.42)                   # oval width as a fraction of the shown image width
    measured_fps = NumericProperty(0.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._event = None
        self._texture: Texture | None = None
        self._last_seq: int | None = None
        self._buffer: np.ndarray | None = None   # the scaled-down frame, reused
        self._shown: deque[float] = deque(maxlen=60)
        with self.canvas:
            Color(0.08, 0.09, 0.1, 1)
            # the dark background: the whole widget without a picture, only the two letterbox bars beside one
            # (software GL fills every pixel it is asked to: no fill hidden under the picture, every frame)
            self._bg = Rectangle(pos=self.pos, size=self.size)
            self._bg2 = Rectangle(pos=self.pos, size=(0, 0))
            Color(1, 1, 1, 1)
            self._image = Rectangle(pos=self.pos, size=(0, 0))
        with self.canvas.after:
            self._guide_colour = Color(*GUIDE_COLOURS["idle"])
            self._guide = Line(ellipse=(0, 0, 1, 1), width=3)
        self.bind(pos=self._layout, size=self._layout, guide_state=self._recolour, guide_width=self._layout)

    # lifecycle --------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._event is None:
            self._event = Clock.schedule_interval(self._tick, 1.0 / float(self.fps) if self.fps > 0 else 0)

    def stop(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self.reset()

    def reset(self) -> None:
        """Forget the last frame (session end): the preview shows the empty background."""
        self._texture = None
        self._last_seq = None
        if self._buffer is not None:
            self._buffer.fill(0)   # no picture of the citizen left in memory
            self._buffer = None
        self._image.texture = None
        self._image.size = (0, 0)
        self._shown.clear()
        self.measured_fps = 0.0

    @property
    def running(self) -> bool:
        return self._event is not None

    # drawing ----------------------------------------------------------------------------------------------------------
    def _tick(self, _dt: float) -> None:
        source: Callable[[], Any] | None = self.frame_source
        frame = source() if source is not None else None
        if frame is None:
            if self._texture is not None:
                self.reset()
            return
        seq = getattr(frame, "seq", None)
        if seq is not None and seq == self._last_seq:
            return
        self._last_seq = seq
        image = self._scaled(frame.image)
        h, w = image.shape[:2]
        if self._texture is None or self._texture.size != (w, h):
            self._texture = Texture.create(size=(w, h), colorfmt="bgr")
            self._texture.flip_vertical()      # numpy rows go top-down, GL textures bottom-up
            self._texture.flip_horizontal()    # mirror image
            self._image.texture = self._texture
            self._layout()
        self._texture.blit_buffer(memoryview(image).cast("B"), colorfmt="bgr", bufferfmt="ubyte")
        self.canvas.ask_update()
        now = time.monotonic()
        self._shown.append(now)
        while self._shown and now - self._shown[0] > 1.0:
            self._shown.popleft()
        self.measured_fps = float(len(self._shown) - 1) if len(self._shown) > 1 else 0.0

    def _scaled(self, image: np.ndarray) -> np.ndarray:
        """``image`` scaled down to ``texture_width`` (or copied, when narrow enough) into the buffer reused for every
        frame: Kivy uploads from a writable buffer only, and camera frames are read-only."""
        h, w = image.shape[:2]
        limit = int(self.texture_width)
        size = (w, h) if limit <= 0 or w <= limit else (limit, max(1, round(h * limit / w)))
        if self._buffer is None or self._buffer.shape != (size[1], size[0], 3):
            self._buffer = np.empty((size[1], size[0], 3), np.uint8)
        if size == (w, h):
            np.copyto(self._buffer, image)
        else:
            import cv2

            cv2.resize(image, size, dst=self._buffer, interpolation=cv2.INTER_AREA)
        return self._buffer

    def _layout(self, *_: Any) -> None:
        if self._texture is not None:
            tw, th = self._texture.size
            scale = min(self.width / tw, self.height / th) if tw and th else 0
            iw, ih = tw * scale, th * scale
        else:
            iw, ih = min(self.width, self.height * 4 / 3), min(self.height, self.width * 3 / 4)
        x, y = self.x + (self.width - iw) / 2, self.y + (self.height - ih) / 2
        self._image.pos, self._image.size = ((x, y), (iw, ih)) if self._texture is not None else ((x, y), (0, 0))
        if self._texture is None:
            self._bg.pos, self._bg.size = self.pos, self.size
            self._bg2.size = (0, 0)
        elif iw < self.width - 0.5:   # bars left and right
            self._bg.pos, self._bg.size = self.pos, (x - self.x, self.height)
            self._bg2.pos, self._bg2.size = (x + iw, self.y), (self.right - x - iw, self.height)
        else:                         # bars below and above
            self._bg.pos, self._bg.size = self.pos, (self.width, y - self.y)
            self._bg2.pos, self._bg2.size = (self.x, y + ih), (self.width, self.top - y - ih)
        gw = iw * self.guide_width
        gh = gw * 1.3
        self._guide.ellipse = (x + (iw - gw) / 2, y + (ih - gh) / 2 + ih * 0.04, gw, gh)

    def _recolour(self, *_: Any) -> None:
        self._guide_colour.rgba = GUIDE_COLOURS[self.guide_state]
