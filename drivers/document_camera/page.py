"""A paper page in a document-camera frame: find its quadrilateral, flatten it (``getPerspectiveTransform``), turn it
upright, take out the last small skew, and even out shadows — pure OpenCV/NumPy, no device.

Finding the page: a page is the largest bright, four-cornered region on a darker desk. The frame is thresholded
(Otsu on a blurred grey image, on a copy at most ``DETECT_WIDTH`` wide), the largest outer contour is simplified to a
polygon, and when that has four convex corners its sides are re-fitted as straight lines on the full-resolution
frame: across each side the grey profile is read at half-pixel steps and the edge put where it crosses half-way from
page to desk (so a shadow, which darkens both, does not move it); a straight line is fitted to those points
(``fitLine``) and neighbouring lines are intersected. That puts each corner within a pixel or so of the real one.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: detection runs on a copy this wide at most (a 5 MP frame costs ~10× more for no better corners after re-fitting)
DETECT_WIDTH = 1024
#: ISO 216 paper: height / width
A_SERIES_RATIO = 2 ** 0.5


@dataclass(frozen=True)
class PageQuad:
    """The page's corners in frame pixels, ordered top-left, top-right, bottom-right, bottom-left (float32 4×2), and
    the share of the frame it covers."""

    corners: np.ndarray
    area_fraction: float

    def as_list(self) -> list[list[float]]:
        return [[round(float(x), 1), round(float(y), 1)] for x, y in self.corners]

    def moved(self, other: "PageQuad") -> float:
        """The largest corner displacement from ``other``, in pixels."""
        return float(np.max(np.linalg.norm(self.corners - other.corners, axis=1)))


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left (by the sums and differences of x and y)."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = pts[:, 1] - pts[:, 0]
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], dtype=np.float32)


def _intersect(l1: np.ndarray, l2: np.ndarray) -> np.ndarray | None:
    (vx1, vy1, x1, y1), (vx2, vy2, x2, y2) = l1, l2
    det = vx1 * (-vy2) - vy1 * (-vx2)
    if abs(det) < 1e-9:
        return None
    t = ((x2 - x1) * (-vy2) - (y2 - y1) * (-vx2)) / det
    return np.array([x1 + t * vx1, y1 + t * vy1], dtype=np.float32)


def _edge_points(gray: np.ndarray, a: np.ndarray, b: np.ndarray, outward: np.ndarray, reach: float,
                 samples: int = 48) -> np.ndarray:
    """Sub-pixel points of the page edge between corners ``a`` and ``b``: along the middle 70 % of the side, the
    grey profile across the edge (``reach`` px either way, half-pixel steps) and where it crosses half-way between
    the page's level inside and the desk's outside."""
    ts = np.linspace(0.15, 0.85, samples, dtype=np.float32)
    offsets = np.arange(-reach, reach + 0.25, 0.5, dtype=np.float32)
    base = a[None, :] + ts[:, None] * (b - a)[None, :]
    grid = base[:, None, :] + offsets[None, :, None] * outward[None, None, :]
    profiles = cv2.remap(gray, grid[..., 0].astype(np.float32), grid[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    quarter = max(2, len(offsets) // 4)
    points = []
    for row, origin in zip(profiles, base):
        inside, outside = float(np.median(row[:quarter])), float(np.median(row[-quarter:]))
        if inside - outside < 12:   # no clear step here (shadow edge, print touching the edge): skip the sample
            continue
        level = (inside + outside) / 2
        below = np.nonzero(row < level)[0]
        if not len(below) or below[0] == 0:
            continue
        i = int(below[0])
        v0, v1 = float(row[i - 1]), float(row[i])
        frac = (v0 - level) / (v0 - v1) if v0 != v1 else 0.5
        points.append(origin + (offsets[i - 1] + frac * 0.5) * outward)
    return np.array(points, dtype=np.float32)


def _refit(gray: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Corners re-computed at full resolution: each side's edge located to a fraction of a pixel across the side,
    a straight line fitted to those points, adjacent lines intersected."""
    centre = corners.mean(axis=0)
    reach = max(4.0, 0.006 * float(max(gray.shape)))
    lines = []
    g = gray.astype(np.float32)
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        side = b - a
        length = float(np.linalg.norm(side))
        if length < 20:
            return corners
        normal = np.array([side[1], -side[0]], dtype=np.float32) / length
        if float(np.dot((a + b) / 2 - centre, normal)) < 0:
            normal = -normal
        pts = _edge_points(g, a, b, normal, reach)
        if len(pts) < 8:
            return corners
        lines.append(cv2.fitLine(pts, cv2.DIST_HUBER, 0, 0.01, 0.01).reshape(4))
    refined = [_intersect(lines[(i - 1) % 4], lines[i]) for i in range(4)]
    if any(p is None for p in refined):
        return corners
    out = np.array(refined, dtype=np.float32)
    if float(np.max(np.linalg.norm(out - corners, axis=1))) > 2 * reach:
        return corners   # a fit that wandered off: keep the polygon's corners
    return out


def find_page(image: np.ndarray, min_area_fraction: float = 0.12, refine: bool = True) -> PageQuad | None:
    """The page in a BGR (or grey) frame, or None when no four-cornered bright region of at least
    ``min_area_fraction`` of the frame is there. ``refine=False`` skips the full-resolution line fit (live
    preview)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    scale = min(1.0, DETECT_WIDTH / w)
    small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
    blur = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)   # print on the page must not cut it into pieces
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)    # nor specks of the desk join it
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour) / float(small.shape[0] * small.shape[1])
    if area < min_area_fraction or area > 0.97:   # nearly the whole frame bright: no desk around a page
        return None
    hull = cv2.convexHull(contour)
    poly = None
    for eps in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, eps * cv2.arcLength(hull, True), True)
        if len(approx) == 4:
            poly = approx
            break
    if poly is None or not cv2.isContourConvex(poly):
        return None
    corners = order_corners((poly.reshape(4, 2).astype(np.float32) + 0.5) / scale - 0.5)
    if refine:
        corners = _refit(gray, corners)
    return PageQuad(corners=corners, area_fraction=float(area))


def page_size(corners: np.ndarray, long_side: int, paper: str = "auto") -> tuple[int, int]:
    """(width, height) of the flattened page: its long side ``long_side`` px, its aspect measured from the corners
    — snapped to the A series (1:√2) when within 6 % of it, or forced with ``paper="A4"``."""
    tl, tr, br, bl = corners
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    ratio = height / max(width, 1e-6)
    portrait = ratio >= 1
    r = ratio if portrait else 1 / ratio
    if paper.upper() == "A4" or abs(r - A_SERIES_RATIO) / A_SERIES_RATIO < 0.06:
        r = A_SERIES_RATIO
    short = round(long_side / r)
    return (short, long_side) if portrait else (long_side, short)


def flatten(image: np.ndarray, corners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The page warped to a ``size`` rectangle (``getPerspectiveTransform`` + ``warpPerspective``)."""
    w, h = size
    target = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(np.asarray(corners, np.float32), target)
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _ink(image: np.ndarray, width: int = 600) -> np.ndarray:
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = width / gray.shape[1]
    small = cv2.resize(gray, (width, max(1, round(gray.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ink = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)
    m = max(2, width // 40)   # the page's own border (and what is left of the desk) is not text
    ink[:m, :], ink[-m:, :], ink[:, :m], ink[:, -m:] = 0, 0, 0, 0
    return ink


def _line_score(ink: np.ndarray, angle: float) -> float:
    """How sharply the ink falls into horizontal lines after rotating by ``angle`` degrees (variance of the row
    sums: text lines and gaps alternate)."""
    h, w = ink.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rotated = cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_NEAREST)
    return float(np.var(rotated.sum(axis=1, dtype=np.float64)))


def skew_angle(image: np.ndarray, max_angle: float = 4.0, step: float = 0.25) -> float:
    """The rotation (degrees, counter-clockwise positive as ``getRotationMatrix2D``) that makes the text lines
    horizontal, found by the sharpest row profile; 0 when the page has too little ink to tell."""
    ink = _ink(image)
    if ink.mean() < 0.5:
        return 0.0
    angles = np.arange(-max_angle, max_angle + step / 2, step)
    scores = [_line_score(ink, float(a)) for a in angles]
    best = int(np.argmax(scores))
    if scores[best] <= 1.05 * _line_score(ink, 0.0):
        return 0.0   # no clear gain over leaving it: keep the page as flattened
    return float(angles[best])


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def quarter_turns(image: np.ndarray) -> int:
    """0 or 1: whether the text runs vertically (the page lay on its side), judged by which axis' ink profile is
    sharper. Upside-down pages (180°) cannot be told apart without reading the text and are left as they are."""
    ink = _ink(image, 400)
    rows = float(np.var(ink.sum(axis=1, dtype=np.float64)))
    cols = float(np.var(ink.sum(axis=0, dtype=np.float64)))
    return 1 if cols > 1.8 * rows and ink.mean() > 0.5 else 0


def even_out(image: np.ndarray, strength: int = 0) -> np.ndarray:
    """Shadows and uneven light taken out: each channel divided by its own background (a large dilate + median),
    so paper comes out white and ink keeps its colour."""
    k = strength or max(15, (min(image.shape[:2]) // 40) | 1)
    channels = []
    for ch in cv2.split(image):
        background = cv2.medianBlur(cv2.dilate(ch, np.ones((7, 7), np.uint8)), k)
        channels.append(cv2.divide(ch, background, scale=255))
    return cv2.merge(channels)
