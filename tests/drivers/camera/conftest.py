"""Camera fixtures: small clips and image folders written at test time, each frame stamped with its index so the
tests can tell which frame they got (the index is in the top-left 8×8 block's blue value and printed)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from drivers.camera import synthetic


def stamped(index: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    frame = synthetic.empty_scene(size, seed=index)
    frame[:16, :16] = (index * 20 % 250, 0, 0)
    cv2.putText(frame, str(index), (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 255), 3)
    return frame


def _stamp_of(image: np.ndarray) -> int:
    return int(round(float(image[2:14, 2:14, 0].mean()) / 20))


@pytest.fixture
def stamp_of() -> Callable[[np.ndarray], int]:
    """The index a test frame was stamped with."""
    return _stamp_of


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    def make(frames: int = 10, fps: float = 25.0, name: str = "clip.avi", size=(320, 240)) -> Path:
        return synthetic.write_clip(tmp_path / name, (stamped(i, size) for i in range(frames)), fps)

    return make


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    def make(frames: int = 5, name: str = "images") -> Path:
        return synthetic.write_image_folder(tmp_path / name, (stamped(i) for i in range(frames)), ext=".png")

    return make
