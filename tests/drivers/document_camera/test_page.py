"""Page detection and correction on photographed pages (drivers/document_camera/page.py), without a camera: pages
of the simulator's rendered form laid on the desk at other angles and positions, with and without the shadow."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from drivers.document_camera import page as pg
from drivers.document_camera import scenes
from drivers.document_camera.simulator import cached_scenes


@pytest.fixture(scope="module")
def form() -> np.ndarray:
    _, truth = cached_scenes()
    return cv2.imread(truth["pages"][0]["reference"])


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_corners_found_within_a_pixel_or_two(form: np.ndarray, seed: int) -> None:
    shot = scenes.photograph(form, (1280, 960), seed=seed, shadow=seed % 2 == 0)
    quad = pg.find_page(shot.image)
    assert quad is not None
    assert float(np.linalg.norm(quad.corners - shot.corners, axis=1).max()) < 2.0
    rough = pg.find_page(shot.image, refine=False)        # the preview's quick outline: close, not exact
    assert rough is not None and rough.moved(quad) < 8.0


def test_no_page_on_an_empty_desk_or_a_frame_filled_with_paper() -> None:
    assert pg.find_page(scenes.desk((1280, 960), seed=3)) is None
    assert pg.find_page(np.full((960, 1280, 3), 235, np.uint8)) is None


def test_corners_are_ordered_whatever_order_they_come_in() -> None:
    tl, tr, br, bl = [10, 12], [200, 8], [210, 300], [5, 290]
    assert pg.order_corners(np.array([br, tl, bl, tr])).tolist() == [tl, tr, br, bl]


def test_a_flattened_page_is_deskewed_and_turned_upright(form: np.ndarray) -> None:
    assert pg.skew_angle(form) == 0.0
    tilted = pg.rotate(form, -2.5)
    assert abs(pg.skew_angle(tilted) - 2.5) <= 0.25
    assert pg.quarter_turns(form) == 0
    assert pg.quarter_turns(cv2.rotate(form, cv2.ROTATE_90_CLOCKWISE)) == 1


def test_page_size_snaps_to_a4_or_keeps_the_measured_aspect() -> None:
    a4ish = np.array([[0, 0], [700, 0], [700, 1000], [0, 1000]], np.float32)
    assert pg.page_size(a4ish, 2000) == (1414, 2000)
    square = np.array([[0, 0], [800, 0], [800, 900], [0, 900]], np.float32)
    assert pg.page_size(square, 1800) == (1600, 1800)
    assert pg.page_size(square, 1800, paper="A4") == (1273, 1800)


def test_even_out_whitens_a_shadowed_page(form: np.ndarray) -> None:
    h, w = form.shape[:2]
    shade = np.tile(np.linspace(0.55, 1.0, w, dtype=np.float32), (h, 1))[:, :, None]
    shadowed = (form.astype(np.float32) * shade).astype(np.uint8)
    cleaned = pg.even_out(shadowed)
    band = (slice(int(0.55 * h), int(0.6 * h)), slice(int(0.05 * w), int(0.2 * w)))
    assert np.percentile(shadowed[band], 60) < 160
    assert np.percentile(cleaned[band], 60) > 230
