"""Photographed pages for the document camera simulator: pages rendered from a PDF (poppler's ``pdftoppm``), laid
on a wooden desk in perspective, slightly turned, lit unevenly and partly shadowed (a hand or the camera arm), with
sensor noise and a little blur — and the exact corners where each page landed, the reference a test compares the
driver's page detection with.

``sample_pdf`` writes a two-page application form with four registration squares (``MARKS_MM``) whose places on the
flattened page show whether it came out flat and upright (the top-left one is larger).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

A4_MM = (210.0, 297.0)
#: (x, y, side) in mm of the registration squares: top-left (large), top-right, bottom-right, bottom-left
MARKS_MM = ((12.0, 12.0, 12.0), (190.0, 12.0, 8.0), (190.0, 277.0, 8.0), (12.0, 277.0, 8.0))
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def sample_pdf(path: str | Path, pages: int = 2, title: str = "居民身份证明申请表") -> Path:
    """A synthetic application form (fpdf2 and the Noto CJK font): registration squares, a Chinese title, a table
    of fields and lines of text, the page number."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creator("govkiosk document camera simulator")
    pdf.set_auto_page_break(False)
    pdf.add_font("cjk", fname=CJK_FONT, collection_font_number=2)
    for page in range(1, pages + 1):
        pdf.add_page()
        for x, y, side in MARKS_MM:
            pdf.rect(x, y, side, side, style="F")
        pdf.set_font("cjk", size=22)
        pdf.set_xy(30, 28)
        pdf.cell(150, 12, f"{title}（第{page}页）", align="C")
        pdf.set_font("cjk", size=12)
        rows = [("姓名", "张*华"), ("证件号码", "3403**********1234"), ("联系电话", "138****0000"),
                ("住址", "蚌埠市龙子湖区东海社区"), ("申请事项", "户籍证明"), ("办理方式", "自助终端")]
        y = 50.0
        for label, value in rows:
            pdf.rect(25, y, 45, 11)
            pdf.rect(70, y, 115, 11)
            pdf.set_xy(27, y + 1.5)
            pdf.cell(41, 8, label)
            pdf.set_xy(72, y + 1.5)
            pdf.cell(110, 8, value)
            y += 11
        pdf.set_font("helvetica", size=11)
        y += 10
        for line in range(14):
            pdf.set_xy(25, y)
            pdf.cell(160, 7, f"{line + 1:02d}. The applicant confirms that the information above is true and complete"
                              f" (page {page}).")
            y += 8.5
        pdf.set_font("cjk", size=12)
        pdf.set_xy(25, 250)
        pdf.cell(160, 8, "申请人签名：__________    日期：2026年12月07日")
    out = Path(path)
    pdf.output(str(out))
    return out


def render_pdf(pdf: str | Path, dpi: int = 100) -> list[np.ndarray]:
    """Each page of a PDF as a BGR image (poppler-utils' pdftoppm)."""
    if shutil.which("pdftoppm") is None:
        raise RuntimeError("pdftoppm (poppler-utils) is needed to render PDF pages")
    with tempfile.TemporaryDirectory(prefix="doccam-render-") as tmp:
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), f"{tmp}/page"], check=True,
                       capture_output=True, timeout=60)
        return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted(Path(tmp).glob("page*.png"))]


def desk(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A wooden desk top: brown with grain, darker than paper (the grain drawn at a quarter size, scaled up)."""
    w, h = size
    rng = np.random.default_rng(seed)
    sw, sh = max(8, w // 4), max(8, h // 4)
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32) * 4
    grain = np.sin(x / 9.0 + 6 * np.sin(y / 140.0 + rng.uniform(0, 6))) * 0.5 + 0.5
    grain = 0.75 + 0.25 * grain + rng.normal(0, 0.03, (sh, sw)).astype(np.float32)
    grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
    base = np.array([45, 75, 115], np.float32)   # BGR brown
    return np.clip(base[None, None, :] * grain[:, :, None], 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Shot:
    """A photographed page: the camera frame and where the page's corners are in it (TL, TR, BR, BL)."""

    image: np.ndarray
    corners: np.ndarray


def page_corners(page_size: tuple[int, int], size: tuple[int, int], seed: int, fill: float = 0.78,
                 max_turn_deg: float = 7.0, keystone: float = 0.06) -> np.ndarray:
    """Where a page lands: ``fill`` of the frame's height, turned up to ``max_turn_deg``, its far (top) edge
    narrower by up to ``keystone`` (the camera looks slightly from the citizen's side), shifted a little."""
    rng = np.random.default_rng(seed)
    w, h = size
    pw, ph = page_size
    height = fill * h
    width = height * pw / ph
    k = rng.uniform(0.3, 1.0) * keystone
    rect = np.array([[-width / 2 * (1 - k), -height / 2], [width / 2 * (1 - k), -height / 2],
                     [width / 2, height / 2], [-width / 2, height / 2]], np.float32)
    a = np.deg2rad(rng.uniform(-max_turn_deg, max_turn_deg))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    centre = np.array([w / 2 + rng.uniform(-0.06, 0.06) * w, h / 2 + rng.uniform(-0.03, 0.03) * h], np.float32)
    jitter = rng.uniform(-0.004, 0.004, (4, 2)).astype(np.float32) * w
    return (rect @ rot.T + centre + jitter).astype(np.float32)


def photograph(page: np.ndarray, size: tuple[int, int] = (2048, 1536), seed: int = 0, shadow: bool = True,
               corners: np.ndarray | None = None) -> Shot:
    """``page`` (BGR) photographed on the desk by a camera of ``size``."""
    w, h = size
    rng = np.random.default_rng(seed + 1000)
    ph, pw = page.shape[:2]
    quad = page_corners((pw, ph), size, seed) if corners is None else np.asarray(corners, np.float32)
    # the page's outer edges (pixel centres are at 0…pw-1, so its edges at -0.5 and pw-0.5)
    src = np.array([[-0.5, -0.5], [pw - 0.5, -0.5], [pw - 0.5, ph - 0.5], [-0.5, ph - 0.5]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad)
    warped = cv2.warpPerspective(page, matrix, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
    scene = desk(size, seed).astype(np.float32) * (1 - mask) + warped.astype(np.float32) * mask
    # light and shadow vary slowly: computed on a frame 8× smaller and scaled up
    sw, sh = max(8, w // 8), max(8, h // 8)
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32) * 8
    light = 1.02 - 0.18 * ((x - w * rng.uniform(0.3, 0.7)) ** 2 + (y - h * 0.3) ** 2) / (w * w)  # lamp falloff
    if shadow:   # a soft shadow (hand, camera arm) over one side of the page
        blob = np.zeros((sh, sw), np.float32)
        cx = quad[:, 0].mean() + rng.uniform(0.1, 0.25) * w
        cy = quad[:, 1].mean() + rng.uniform(-0.2, 0.2) * h
        cv2.ellipse(blob, (int(cx / 8), int(cy / 8)), (int(0.02 * w), int(0.04 * h)), float(rng.uniform(-30, 30)),
                    0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), 0.005 * w)
        light = light * (1 - 0.35 * blob)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = rng.normal(0, 2.5, (h // 2, w // 2)).astype(np.float32)
    scene = scene * light[:, :, None] + cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)[:, :, None]
    scene = cv2.GaussianBlur(np.clip(scene, 0, 255).astype(np.uint8), (3, 3), 0.8)
    return Shot(image=scene, corners=quad)


def mark_centres(size: tuple[int, int]) -> np.ndarray:
    """Where the registration squares' centres are on a flattened page of ``size`` (w, h) px."""
    w, h = size
    return np.array([[(x + s / 2) / A4_MM[0] * w, (y + s / 2) / A4_MM[1] * h] for x, y, s in MARKS_MM], np.float32)
