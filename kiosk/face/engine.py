"""The face models (dlib through face_recognition) and the one operation the kiosk needs from them: :func:`analyze`.

This module is what runs inside the face worker process (``kiosk.face.worker``). It can also be used in-process by
tools and benchmarks, but never on the kiosk's UI process: dlib's Python bindings hold the GIL for the whole call
(~100–200 ms per encoding on this CPU), which would freeze the UI thread even from a worker thread.

Nothing here imports ``face_recognition``/``dlib`` at module import time: :meth:`FaceEngine.load` does, so the shell
starts without waiting for the models (``import face_recognition`` alone takes ~1.2 s).

Privacy: images and encodings are arguments and results only; nothing is kept between calls, logged or written.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# 68-point landmark indices (iBUG 300-W layout, as dlib's shape_predictor_68_face_landmarks)
JAW = slice(0, 17)
EYE_IMAGE_LEFT = slice(36, 42)    # the citizen's right eye (camera image, not mirrored)
EYE_IMAGE_RIGHT = slice(42, 48)   # the citizen's left eye
NOSE_TIP = 30


class EngineUnavailable(RuntimeError):
    """The face models cannot be loaded (package missing, or ``face_recognition`` exiting on import)."""

    code = "engine_error"


@dataclass(frozen=True)
class FaceBox:
    """A detected face: (top, right, bottom, left) pixel box as face_recognition's "css" order, and dlib's score."""

    top: int
    right: int
    bottom: int
    left: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0

    def css(self) -> tuple[int, int, int, int]:
        return self.top, self.right, self.bottom, self.left


@dataclass(frozen=True, repr=False)
class Analysis:
    """What one frame holds. ``faces`` are the faces that count (score and size filtered), largest first;
    ``landmarks`` (68×2, float32) and ``encoding`` (128 floats) belong to ``faces[0]`` and are only computed when
    exactly one face counts. The repr shows no biometric data."""

    faces: tuple[FaceBox, ...]
    landmarks: np.ndarray | None = None
    encoding: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    image_size: tuple[int, int] = (0, 0)  # (width, height)

    @property
    def face_count(self) -> int:
        return len(self.faces)

    @property
    def primary(self) -> FaceBox | None:
        return self.faces[0] if self.faces else None

    def __repr__(self) -> str:
        return (f"Analysis(faces={self.face_count}, landmarks={self.landmarks is not None}, "
                f"encoding={self.encoding is not None}, timings={self.timings})")


@dataclass(frozen=True)
class EngineSettings:
    """Detection parameters (all picklable: they travel to the worker process).

    * ``upsample``: HOG upsampling for camera frames. 0 finds faces of ≥ ~80 px in ~30 ms at 640×480, which a
      citizen standing at a kiosk always has; 1 finds ≥ ~40 px but costs ~4× and "finds" more non-faces.
    * ``reference_upsample``: the most upsampling tried for a reference photo (the card photo is 102×126 px).
    * ``min_score``: dlib HOG detections scoring below this are not faces (astronaut.png's mission patch scores
      ~0.1 at upsample 1, real faces ≥ 1).
    * ``other_face_min_ratio``: a second face counts ("ask the others to step away") when its width is at least
      this fraction of the largest face's; smaller ones are people far behind.
    * ``num_jitters``: face_recognition's re-sampling count for encodings (1 = its default; each one costs a full
      encoding).
    * ``max_width``: frames wider than this are scaled down before detection (boxes and landmarks are given in the
      original frame's pixels).
    """

    upsample: int = 0
    reference_upsample: int = 2
    min_score: float = 0.3
    other_face_min_ratio: float = 0.33
    num_jitters: int = 1
    max_width: int = 800


class FaceEngine:
    """The loaded models. Not thread-safe: one engine per worker process, one call at a time."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self._api: Any = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._api is not None

    def load(self) -> float:
        """Import face_recognition and its models (once). Returns the load time in seconds."""
        if self._api is None:
            start = time.perf_counter()
            try:
                import builtins

                # face_recognition calls quit() when face_recognition_models cannot be imported (it needs
                # pkg_resources: setuptools<82). Turn that silent exit into an error we can report.
                real_quit = getattr(builtins, "quit", None)

                def _no_quit(*_: object) -> None:
                    raise EngineUnavailable("face_recognition_models is not importable (is setuptools<82 installed?)")

                builtins.quit = _no_quit  # type: ignore[assignment]
                try:
                    import face_recognition.api as api
                finally:
                    if real_quit is not None:
                        builtins.quit = real_quit
            except EngineUnavailable:
                raise
            except Exception as exc:  # ImportError, dlib load failures
                raise EngineUnavailable(f"cannot load the face models: {type(exc).__name__}: {exc}") from exc
            self._api = api
            self._warm()
            self.load_seconds = time.perf_counter() - start
        return self.load_seconds or 0.0

    def _warm(self) -> None:
        """Run the detector, both shape predictors and the encoder once on a blank image, so that the first
        citizen's frame does not pay for first-call set-up (lazy allocations, cold caches) inside dlib."""
        import dlib

        api = self._api
        blank = np.full((160, 160, 3), 128, np.uint8)
        api.face_detector.run(blank, 0, 0.0)
        rect = dlib.rectangle(20, 20, 140, 140)
        api.pose_predictor_68_point(blank, rect)
        api.face_encoder.compute_face_descriptor(blank, api.pose_predictor_5_point(blank, rect), 1)

    # ---------------------------------------------------------------------------------------------------------------
    def analyze(self, image_bgr: np.ndarray, *, encode: bool = False, landmarks: bool = True,
                upsample: int | None = None, reference: bool = False) -> Analysis:
        """Detect faces in a BGR uint8 image; for a single face also return its 68 landmarks and (``encode``) its
        128-d encoding. ``reference=True`` retries with more upsampling (up to ``reference_upsample``) until a
        face is found, and then takes the largest face even when there are several."""
        import cv2

        self.load()
        api = self._api
        s = self.settings
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if image_bgr.ndim == 2:
            rgb = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
        elif image_bgr.shape[2] == 4:
            rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2RGB)
        else:
            rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if width > s.max_width:
            scale = s.max_width / width
            small = cv2.resize(rgb, (s.max_width, round(height * scale)), interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(small)

        first = s.upsample if upsample is None else upsample
        levels = range(first, (max(first, s.reference_upsample) if reference else first) + 1)
        boxes: list[FaceBox] = []
        for level in levels:
            rects, scores, _ = api.face_detector.run(small, level, 0.0)
            boxes = []
            for rect, score in zip(rects, scores):
                if score < s.min_score:
                    continue
                box = FaceBox(top=max(0, round(rect.top() / scale)), right=min(width, round(rect.right() / scale)),
                              bottom=min(height, round(rect.bottom() / scale)), left=max(0, round(rect.left() / scale)),
                              score=float(score))
                if box.area > 0:
                    boxes.append(box)
            if boxes:
                break
        boxes.sort(key=lambda b: b.area, reverse=True)
        if boxes:
            biggest = boxes[0].width
            boxes = [b for b in boxes if b is boxes[0] or b.width >= s.other_face_min_ratio * biggest]
        faces = tuple(boxes[:1] if reference else boxes)
        timings["detect"] = time.perf_counter() - t0

        points = encoding = None
        if len(faces) == 1:
            import dlib

            rgb_c = np.ascontiguousarray(rgb)
            box = faces[0]
            rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
            if landmarks:
                t1 = time.perf_counter()
                shape = api.pose_predictor_68_point(rgb_c, rect)
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
                timings["landmarks"] = time.perf_counter() - t1
            if encode:
                t2 = time.perf_counter()
                # face_recognition.face_encodings' own path: the 5-point shape aligns the face chip
                shape5 = api.pose_predictor_5_point(rgb_c, rect)
                encoding = np.array(api.face_encoder.compute_face_descriptor(rgb_c, shape5, s.num_jitters),
                                    dtype=np.float64)
                timings["encode"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        return Analysis(faces=faces, landmarks=points, encoding=encoding, timings=timings,
                        image_size=(width, height))


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two 128-d encodings (what ``face_recognition.face_distance`` computes)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def decode_image(data: Any) -> np.ndarray:
    """An encoded image (JPEG/PNG/BMP bytes), a BGR image array, or a decoded card photo (anything with ``width``,
    ``height``, ``pixels`` and ``mode`` "BGR"/"RGB", as ``drivers.idcard.wlt.DecodedPhoto``) → BGR uint8 array.
    ValueError if unreadable."""
    import cv2

    if all(hasattr(data, a) for a in ("width", "height", "pixels", "mode")):
        try:
            image = np.frombuffer(bytes(data.pixels), np.uint8).reshape(int(data.height), int(data.width), 3)
        except ValueError as exc:
            raise ValueError("photo pixels do not match its size") from exc
        if data.mode == "RGB":
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
    elif isinstance(data, np.ndarray):
        image = data
    else:
        buf = np.frombuffer(bytes(data), dtype=np.uint8)
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        if image is None:
            raise ValueError("not a readable image")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 16:
        raise ValueError("expected an 8-bit image of at least 16×16 pixels")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)
