"""Synthetic camera clips made from one real face photo: for the simulated camera in the demo, the tests and the
benchmarks (no clip is shipped in the repository; they are written to temporary folders when needed).

What these clips are, honestly: 2-D image edits of a still photo.

* a **blink** stretches the upper-eyelid skin down over the eye opening (a vertical remap inside each eye's box,
  feathered at the sides) and darkens a lash line — the eye's iris and sclera disappear, as when a real eye closes;
* a **head turn** displaces the middle of the face (nose, mouth, the eyes less) sideways with a smooth Gaussian
  displacement field and slightly narrows the far side, so the nose tip moves relative to the eyes — the parallax
  cue a real turn produces (the nose stands in front of the eyes), and which a photo merely tilted in front of the
  camera does not produce;
* a **held photo** (spoof) is the same still photo moved, scaled, rotated and tilted in 3-D as a hand would (a
  planar homography): its landmarks move together, its eyes never close.

They prove that the pipeline (camera → worker → landmarks → eye-aspect ratio / yaw proxy → challenge state machine →
match) behaves as specified on real face texture; they do not prove that a real person's blink or turn produces the
same numbers, nor anything about replayed videos or masks (see kiosk/face/liveness.py).

Landmark coordinates (68×2, iBUG layout) for the base frame come from the caller (the face engine), so this module
needs only OpenCV and numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

FRAME_SIZE = (640, 480)


# --- composing a camera-like frame from a photo ----------------------------------------------------------------------

def place_face(photo_bgr: np.ndarray, face_box: tuple[int, int, int, int], *, size: tuple[int, int] = FRAME_SIZE,
               face_width: int = 190, center: tuple[float, float] = (0.5, 0.45),
               background: tuple[int, int, int] = (120, 128, 124)) -> np.ndarray:
    """Scale ``photo_bgr`` so the face (``face_box`` = top, right, bottom, left) is ``face_width`` px wide and put
    the face's centre at ``center`` (fractions of the frame) of a ``size`` frame; uncovered parts get ``background``."""
    top, right, bottom, left = face_box
    scale = face_width / max(1, right - left)
    fx, fy = (left + right) / 2 * scale, (top + bottom) / 2 * scale
    w, h = size
    m = np.float32([[scale, 0, w * center[0] - fx], [0, scale, h * center[1] - fy]])
    return cv2.warpAffine(photo_bgr, m, size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=background)


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Two frames' middles next to each other in one frame (two people in front of the kiosk)."""
    w, h = size
    half = w // 2
    out = np.empty((h, w, 3), np.uint8)
    for i, img in enumerate((left_bgr, right_bgr)):
        img = cv2.resize(img, size)
        x0 = (img.shape[1] - half) // 2
        out[:, i * half:(i + 1) * half] = img[:, x0:x0 + half]
    return out


def empty_scene(size: tuple[int, int] = FRAME_SIZE, seed: int = 1) -> np.ndarray:
    """A frame with no face: a lit wall with a door frame and sensor noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = 150 + 60 * (1 - y) - 30 * (x - 0.5) ** 2
    img = np.repeat(base[:, :, None], 3, axis=2) * np.float32([0.95, 1.0, 1.05])
    img[:, int(w * 0.62):int(w * 0.66)] *= 0.55
    img[int(h * 0.18):int(h * 0.22), int(w * 0.62):] *= 0.55
    return sensor_noise(np.clip(img, 0, 255).astype(np.uint8), rng, 3.0)


# --- edits -----------------------------------------------------------------------------------------------------------

def close_eyes(frame: np.ndarray, landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Close both eyes by ``amount`` (0 open … 1 closed): the upper-lid skin is stretched down to the lower lid."""
    if amount <= 0:
        return frame
    amount = min(1.0, float(amount))
    h, w = frame.shape[:2]
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out_y = map_y.copy()
    for eye in (landmarks[36:42], landmarks[42:48]):
        x_min, x_max = float(eye[:, 0].min()), float(eye[:, 0].max())
        eye_w = x_max - x_min
        y_upper = float(min(eye[1, 1], eye[2, 1]))          # upper lid
        y_lower = float(max(eye[4, 1], eye[5, 1])) + 0.08 * eye_w  # just below the lower lid
        y_top = y_upper - 0.55 * eye_w                        # the eyelid skin above the opening
        y_lid = y_upper + amount * (y_lower - y_upper)        # where the lid edge is now
        x0, x1 = int(max(0, x_min - 0.35 * eye_w)), int(min(w, x_max + 0.35 * eye_w + 1))
        y0, y1 = int(max(0, y_top)), int(min(h, y_lower + 1))
        ys = map_y[y0:y1, x0:x1]
        src = ys.copy()
        upper = ys <= y_lid
        src[upper] = y_top + (ys[upper] - y_top) * (y_upper - y_top) / max(1e-3, y_lid - y_top)
        lower = ~upper
        if y_lower - y_lid > 0.5:
            src[lower] = y_upper + (ys[lower] - y_lid) * (y_lower - y_upper) / (y_lower - y_lid)
        else:
            src[lower] = ys[lower]
        # feather: full effect over the eye, fading to none at the box sides
        xs = np.arange(x0, x1, dtype=np.float32)
        cx, half = (x_min + x_max) / 2, (x_max - x_min) / 2 + 0.35 * eye_w
        wx = np.clip(1.0 - np.abs(xs - cx) / half, 0, 1)
        wx = np.sin(wx * math.pi / 2) ** 2
        out_y[y0:y1, x0:x1] = ys + (src - ys) * wx[None, :]
    result = cv2.remap(frame, map_x, out_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if amount > 0.6:  # the lash line of the closed lid
        strength = (amount - 0.6) / 0.4
        for eye in (landmarks[36:42], landmarks[42:48]):
            y_upper = float(min(eye[1, 1], eye[2, 1]))
            y_lower = float(max(eye[4, 1], eye[5, 1]))
            y_lid = y_upper + amount * (y_lower - y_upper)
            pts = np.array([eye[0], [eye[1, 0], y_lid], [eye[2, 0], y_lid], eye[3]], np.int32)
            overlay = result.copy()
            cv2.polylines(overlay, [pts], False, (40, 35, 35), 2, cv2.LINE_AA)
            result = cv2.addWeighted(overlay, 0.7 * strength, result, 1 - 0.7 * strength, 0)
    return result


def turn_head(frame: np.ndarray, landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Turn the head by ``amount`` (−1 … 1; + is the citizen's own left, i.e. the nose moves to the image's right
    in an unmirrored camera frame)."""
    if amount == 0:
        return frame
    h, w = frame.shape[:2]
    jaw = landmarks[0:17]
    face_w = float(jaw[:, 0].max() - jaw[:, 0].min())
    nose = landmarks[30]
    eyes_y = float(landmarks[36:48, 1].mean())
    chin_y = float(landmarks[8, 1])
    cx, cy = float(nose[0]), float(nose[1])
    shift = 0.22 * face_w * amount                   # how far the nose tip moves
    sx, sy = 0.19 * face_w, 0.45 * (chin_y - eyes_y) + 0.2 * face_w
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    g = np.exp(-(((map_x - cx) ** 2) / (2 * sx * sx) + ((map_y - cy) ** 2) / (2 * sy * sy)))
    # narrow the far side a little (a turned face shows less of it): a smooth horizontal squeeze toward the nose
    side = np.tanh((map_x - cx) / (0.5 * face_w)) * (-np.sign(amount))
    band = np.exp(-((map_y - cy) ** 2) / (2 * (1.6 * sy) ** 2)) * np.exp(-((map_x - cx) ** 2) / (2 * (0.9 * face_w) ** 2))
    squeeze = 0.06 * face_w * abs(amount) * np.clip(side, 0, None) * band * np.sign(amount)
    src_x = map_x - shift * g - squeeze
    return cv2.remap(frame, src_x.astype(np.float32), map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def hold_photo(frame: np.ndarray, t: float, *, amplitude: float = 1.0,
               background: tuple[int, int, int] = (90, 96, 92)) -> np.ndarray:
    """The frame as a printed photo held in front of the camera at time ``t`` s: smooth hand tremor (shift, scale,
    in-plane rotation) and a slow out-of-plane tilt of the sheet (up to ~20°, a homography)."""
    h, w = frame.shape[:2]
    a = amplitude
    dx = a * (6 * math.sin(2 * math.pi * 0.7 * t) + 3 * math.sin(2 * math.pi * 1.9 * t + 1))
    dy = a * (4 * math.sin(2 * math.pi * 0.5 * t + 0.5) + 2 * math.sin(2 * math.pi * 2.3 * t))
    angle = a * 2.0 * math.sin(2 * math.pi * 0.4 * t)
    scale = 1.0 + a * 0.03 * math.sin(2 * math.pi * 0.3 * t)
    tilt = a * math.radians(20) * math.sin(2 * math.pi * 0.25 * t)   # sheet turned about its vertical axis
    # homography of a plane rotated by `tilt` about the vertical axis, seen by a pinhole camera (f = w)
    f = float(w)
    cx, cy = w / 2, h / 2
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
    r = np.array([[math.cos(tilt), 0, math.sin(tilt)], [0, 1, 0], [-math.sin(tilt), 0, math.cos(tilt)]])
    d = 3.0 * f   # the sheet is at 3 focal lengths
    n = np.array([0, 0, 1.0])
    hom = k @ (r + np.outer(np.array([0, 0, d]) - r @ np.array([0, 0, d]), n) / d) @ np.linalg.inv(k)
    rot = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    rot = np.vstack([rot, [0, 0, 1]])
    rot[0, 2] += dx
    rot[1, 2] += dy
    m = rot @ hom
    return cv2.warpPerspective(frame, m / m[2, 2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=background)


def sensor_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Gaussian sensor noise (deterministic for a given ``rng``; OpenCV's generator, ~10× faster than numpy's)."""
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))
    noise = np.empty(frame.shape, np.int16)
    cv2.randn(noise.reshape(frame.shape[0], -1), 0, sigma)   # one channel: a scalar sigma covers all samples
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


# --- scripted clips --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gesture:
    """One segment of a live clip: ``kind`` is "still", "blink", "turn_left" or "turn_right"; ``seconds`` long."""

    kind: str
    seconds: float


#: a live-looking clip: look, blink, look, turn to the citizen's left and back, look, turn right and back, look
DEFAULT_LIVE_SCRIPT: tuple[Gesture, ...] = (
    Gesture("still", 1.0), Gesture("blink", 0.5), Gesture("still", 0.8), Gesture("turn_left", 1.4),
    Gesture("still", 0.8), Gesture("turn_right", 1.4), Gesture("still", 0.6),
)


def live_frames(base: np.ndarray, landmarks: np.ndarray, script: Sequence[Gesture] = DEFAULT_LIVE_SCRIPT,
                fps: float = 25.0, seed: int = 7) -> Iterator[np.ndarray]:
    """Frames of a live-looking clip: small natural head sway and sensor noise, with the scripted gestures."""
    rng = np.random.default_rng(seed)
    t_total = 0.0
    for gesture in script:
        n = max(1, round(gesture.seconds * fps))
        for i in range(n):
            p = (i + 0.5) / n                    # progress through the gesture, 0…1
            t = t_total + i / fps
            frame = base
            if gesture.kind == "blink":
                # closes in ~30 % of the time, stays shut, opens: a deliberate blink
                amount = min(1.0, p / 0.3) if p < 0.3 else (1.0 if p < 0.6 else max(0.0, 1 - (p - 0.6) / 0.3))
                frame = close_eyes(frame, landmarks, amount)
            elif gesture.kind in ("turn_left", "turn_right"):
                amount = math.sin(math.pi * min(1.0, p * 1.15)) if p < 0.87 else 0.0
                frame = turn_head(frame, landmarks, amount if gesture.kind == "turn_left" else -amount)
            elif gesture.kind != "still":
                raise ValueError(f"unknown gesture {gesture.kind!r}")
            sway = np.float32([[1, 0, 1.5 * math.sin(2 * math.pi * 0.3 * t)], [0, 1, 1.0 * math.sin(2 * math.pi * 0.2 * t)]])
            frame = cv2.warpAffine(frame, sway, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REPLICATE)
            yield sensor_noise(frame, rng)
        t_total += n / fps


def photo_frames(base: np.ndarray, seconds: float, fps: float = 25.0, seed: int = 3) -> Iterator[np.ndarray]:
    """Frames of a printed photo of ``base`` held up to the camera for ``seconds``."""
    rng = np.random.default_rng(seed)
    for i in range(max(1, round(seconds * fps))):
        yield sensor_noise(hold_photo(base, i / fps), rng)


def still_frames(base: np.ndarray, seconds: float, fps: float = 25.0, seed: int = 5) -> Iterator[np.ndarray]:
    """``base`` with sensor noise only (no face, two faces, …)."""
    rng = np.random.default_rng(seed)
    for _ in range(max(1, round(seconds * fps))):
        yield sensor_noise(base, rng)


def write_clip(path: str | Path, frames: Iterable[np.ndarray], fps: float = 25.0) -> Path:
    """Write frames as an MJPG .avi (or mp4v .mp4, by suffix) that OpenCV's FFMPEG backend reads back."""
    path = Path(path)
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
                writer = cv2.VideoWriter(str(path), fourcc, fps, (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"cannot write video {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError("no frames to write")
    return path


def write_image_folder(folder: str | Path, frames: Iterable[np.ndarray], ext: str = ".jpg") -> Path:
    """Write frames as ``0000.jpg``, ``0001.jpg``, … (an image-folder camera source)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{i:04d}{ext}"), frame):
            raise OSError(f"cannot write {folder / f'{i:04d}{ext}'}")
    return folder


def build_demo_clip(path: str | Path, photo: str = "astronaut",
                    script: Sequence[Gesture] = DEFAULT_LIVE_SCRIPT, fps: float = 25.0) -> Path:
    """Write the demo's live clip (a packaged photo blinking and turning, see ``samples``) unless it exists.
    Finds the face and its landmarks with face_recognition (imported here, lazily: only the camera simulator
    process pays for it)."""
    path = Path(path)
    if path.is_file():
        return path
    import face_recognition

    from drivers.camera.samples import load_sample_photo

    image = load_sample_photo(photo)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    boxes = face_recognition.face_locations(rgb, 1)
    if not boxes:
        raise ValueError(f"no face found in sample photo {photo!r}")
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    base = place_face(image, box)
    base_rgb = np.ascontiguousarray(base[:, :, ::-1])
    found = face_recognition.face_locations(base_rgb, 0)
    if not found:
        raise ValueError("no face in the composed frame")
    shape = face_recognition.api.pose_predictor_68_point(base_rgb, face_recognition.api._css_to_rect(found[0]))
    landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    write_clip(tmp, live_frames(base, landmarks, script, fps), fps)
    tmp.replace(path)
    return path
