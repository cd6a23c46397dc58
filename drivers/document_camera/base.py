"""The document camera (高拍仪): a second camera looking down at the desk, at high resolution, for paper materials.

It is a :class:`~drivers.camera.base.Camera` (frames, pause, clear, status) of its own kind, so a profile gives it
its own device and settings beside the face camera, plus what only it does: :meth:`DocumentCamera.detect_page`
(the page's outline in a frame, cheap enough for a live preview) and :meth:`DocumentCamera.capture_page` (wait for
a page lying still, then flatten, straighten and clean it into a readable image).

Privacy: as with the face camera, frames and captured pages live only in memory and are handed to the caller; the
driver never logs or writes them, and :meth:`Camera.clear` / ``close()`` drop what it holds.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from drivers.camera.base import Camera, Frame
from drivers.document_camera.page import PageQuad
from drivers.errors import DeviceError


@dataclass(frozen=True, eq=False, repr=False)
class CapturedPage:
    """One captured page: ``image`` is the flattened, upright, evened-out page (BGR uint8); ``quad`` where the page
    was in ``frame_size``; ``skew_deg`` the residual rotation that was taken out; ``turned`` whether it lay on its
    side and was turned a quarter."""

    image: np.ndarray
    quad: PageQuad
    frame_size: tuple[int, int]
    skew_deg: float = 0.0
    turned: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def __repr__(self) -> str:
        w, h = self.size
        return f"CapturedPage({w}x{h}, skew={self.skew_deg:+.2f}°)"


class NoPageFound(DeviceError):
    """No page lay still under the document camera before the capture timed out."""

    code = "no_page_detected"
    translation_key = "error.device.document_camera.no_page"
    action = "retry"


class DocumentCamera(Camera):
    KIND = "document_camera"

    @abc.abstractmethod
    def detect_page(self, frame: Frame | None = None) -> PageQuad | None:
        """The page's outline in ``frame`` (default: the newest frame), or None. Quick: for a live preview."""

    @abc.abstractmethod
    def capture_page(self, timeout: float | None = None) -> CapturedPage:
        """Wait (up to ``timeout``, default the driver's setting) for a page that lies still, then return it
        flattened, upright and cleaned; raises :class:`NoPageFound`."""


__all__ = ["CapturedPage", "DocumentCamera", "NoPageFound"]
