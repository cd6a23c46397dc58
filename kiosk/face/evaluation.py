"""The genuine/impostor distance table behind the face-match threshold, from real photos that ship in packages.

Used by ``tests/kiosk/face/test_face_evaluation.py`` (which fails when the configured threshold leaves the measured
gap) and ``bench/face_distance_table.py`` (which prints the table). Sources and licences: tests/data/README.md.

People: the two photos every face test uses (scikit-image, matplotlib), and from ``.venv/share/face-eval`` (filled by
scripts/setup.sh; ``KIOSK_FACE_EVAL_DIR`` overrides) face_recognition 1.3.0's test photos — three different captures
of Barack Obama, one of Joe Biden — and Debian opencv-doc's Yale B row (four lightings of one person) and two men.

Genuine pairs: the first capture of each person against edits of itself (mirrored, darker, …, camera-like frames,
eyes closed, photo held up), an ID-card-sized copy (102×126, JPEG q=40: what a decoded card photo looks like) against
the camera-like frames of *every* capture (the kiosk's real comparison), and different captures against each other.
Impostor pairs: everything of one person against everything of another. Turned heads are encoded but kept out of the
"as compared" sets: the verifier encodes frontal frames only.

Runs in-process (tools and tests only; never on the kiosk's UI process).
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from kiosk.face.engine import EngineSettings, FaceEngine, face_distance

ROOT = Path(__file__).resolve().parents[2]
EVAL_DIR_ENV = "KIOSK_FACE_EVAL_DIR"
INSTALL_HINT = "run scripts/setup.sh (it fetches the evaluation photos into .venv/share/face-eval)"


class EvaluationPhotosMissing(FileNotFoundError):
    pass


def eval_dir() -> Path:
    return Path(os.environ.get(EVAL_DIR_ENV) or ROOT / ".venv" / "share" / "face-eval")


def load_people() -> dict[str, list[tuple[str, np.ndarray]]]:
    """person → [(capture name, BGR image)], first capture first. Raises EvaluationPhotosMissing."""
    import cv2

    from drivers.camera.samples import load_sample_photo

    people: dict[str, list[tuple[str, np.ndarray]]] = {
        "astronaut": [("photo", load_sample_photo("astronaut"))],
        "grace_hopper": [("photo", load_sample_photo("grace_hopper"))],
    }
    base = eval_dir()

    def read(rel: str) -> np.ndarray:
        image = cv2.imread(str(base / rel), cv2.IMREAD_COLOR)
        if image is None:
            raise EvaluationPhotosMissing(f"{base / rel} is missing; {INSTALL_HINT}")
        return image

    people["obama"] = [(n, read(f"face_recognition/{n}.jpg")) for n in ("obama", "obama2", "obama3")]
    people["biden"] = [("biden", read("face_recognition/biden.jpg"))]
    yale = read("opencv-doc/lbp_yale.jpg")
    tile_w = yale.shape[1] // 4
    people["yale"] = [(f"yale_{i + 1}", pad_tight_crop(yale[:190, i * tile_w:(i + 1) * tile_w])) for i in range(4)]
    people["opencv_man_a"] = [("230501201_1", read("opencv-doc/230501201_1.jpg"))]
    people["opencv_man_b"] = [("227943776_1", read("opencv-doc/227943776_1.jpg"))]
    return people


def pad_tight_crop(image: np.ndarray) -> np.ndarray:
    """Tight face crops (Yale tiles): give the detector some context around the face."""
    import cv2

    pad = max(image.shape[:2]) // 4
    fill = [int(c) for c in image.reshape(-1, 3).mean(axis=0)]
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)


def card_copy(image: np.ndarray, box) -> np.ndarray:  # noqa: ANN001
    """What the ID card's WLT photo looks like after decoding: 102×126 px of the head, heavily compressed."""
    import cv2

    top, right, bottom, left = box.css()
    w = right - left
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half_w, half_h = w * 0.95, w * 0.95 * 126 / 102
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h * 0.9))
    x1, y1 = int(min(image.shape[1], cx + half_w)), int(min(image.shape[0], cy + half_h * 1.1))
    small = cv2.resize(image[y0:y1, x0:x1], (102, 126), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def variants(engine: FaceEngine, image: np.ndarray, full: bool = True) -> dict[str, np.ndarray]:
    """Edits of one photo a kiosk meets; ``full=False``: only the card copy and the camera-like frame."""
    import cv2

    from drivers.camera import synthetic

    box = engine.analyze(image, reference=True, landmarks=False).faces[0]
    base = synthetic.place_face(image, box.css())
    out = {"card_102x126": card_copy(image, box), "camera_frame": base}
    if not full:
        return out
    rng = np.random.default_rng(0)
    h, w = image.shape[:2]
    lut_dark = np.clip(((np.arange(256) / 255) ** 1.8) * 255, 0, 255).astype(np.uint8)
    lut_bright = np.clip(((np.arange(256) / 255) ** 0.6) * 255, 0, 255).astype(np.uint8)
    out.update({
        "mirrored": cv2.flip(image, 1),
        "darker": cv2.LUT(image, lut_dark),
        "brighter": cv2.LUT(image, lut_bright),
        "rotated_10": cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0), (w, h),
                                     borderMode=cv2.BORDER_REPLICATE),
        "blurred": cv2.GaussianBlur(image, (0, 0), 2.5),
        "noisy": np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8),
        "grey": cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        "jpeg_q20": cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_COLOR),
    })
    lms = engine.analyze(base).landmarks
    if lms is not None:
        out["blink_closed"] = synthetic.close_eyes(base, lms, 1.0)
        out["turned_left"] = synthetic.turn_head(base, lms, 1.0)
        out["turned_right"] = synthetic.turn_head(base, lms, -1.0)
    out["held_photo_tilted"] = synthetic.hold_photo(base, 1.0)
    return out


def encode(engine: FaceEngine, image: np.ndarray) -> np.ndarray | None:
    """The reference path of the verifier: small photos enlarged to 200 px, largest face, upsampling retried."""
    import cv2

    if min(image.shape[:2]) < 200:
        f = 200 / min(image.shape[:2])
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return engine.analyze(image, encode=True, landmarks=False, reference=True).encoding


@dataclass(frozen=True)
class Pair:
    kind: str          # genuine_edit · genuine_card · genuine_capture · impostor · not_compared
    a: str
    b: str
    distance: float

    @property
    def frontal(self) -> bool:
        return "turned_" not in self.a and "turned_" not in self.b


@dataclass
class Evaluation:
    pairs: list[Pair] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # images in which no face was found
    people: int = 0

    def distances(self, *kinds: str, frontal_only: bool = False) -> list[float]:
        return [p.distance for p in self.pairs if p.kind in kinds and (p.frontal or not frontal_only)]

    @property
    def genuine(self) -> list[float]:
        return self.distances("genuine_edit", "genuine_card", "genuine_capture")

    @property
    def impostor(self) -> list[float]:
        """Impostor pairs as the kiosk compares them (frontal frames)."""
        return self.distances("impostor", frontal_only=True)

    def closest_impostors(self, n: int = 3) -> list[Pair]:
        return sorted((p for p in self.pairs if p.kind == "impostor" and p.frontal), key=lambda p: p.distance)[:n]

    def largest_genuine(self, n: int = 3) -> list[Pair]:
        return sorted((p for p in self.pairs if p.kind.startswith("genuine")), key=lambda p: -p.distance)[:n]


def evaluate(engine: FaceEngine | None = None, people: dict[str, list[tuple[str, np.ndarray]]] | None = None
             ) -> Evaluation:
    engine = engine or FaceEngine()
    lenient = FaceEngine(EngineSettings(min_score=-0.5))   # tight crops: take the best detection even when weak
    people = load_people() if people is None else people
    result = Evaluation(people=len(people))
    encs: dict[str, dict[str, np.ndarray]] = {}
    for person, captures in people.items():
        mine: dict[str, np.ndarray] = {}
        for i, (name, image) in enumerate(captures):
            eng = lenient if person == "yale" else engine
            original = encode(eng, image)
            if original is None:
                result.missing.append(f"{person}/{name}")
                continue
            mine[name] = original
            for label, img in variants(eng, image, full=(i == 0)).items():
                enc = encode(eng, img)
                if enc is None:
                    result.missing.append(f"{person}/{name}/{label}")
                else:
                    mine[f"{name}/{label}"] = enc
        encs[person] = mine
        first = captures[0][0]
        originals = [n for n, _ in captures if n in mine]
        for label, enc in mine.items():
            if label.startswith(first + "/") and first in mine:
                kind = "not_compared" if "turned_" in label else (
                    "genuine_card" if label.endswith("card_102x126") else "genuine_edit")
                result.pairs.append(Pair(kind, f"{person}/{first}", f"{person}/{label}",
                                         face_distance(mine[first], enc)))
        for a, b in itertools.combinations(originals, 2):
            result.pairs.append(Pair("genuine_capture", f"{person}/{a}", f"{person}/{b}",
                                     face_distance(mine[a], mine[b])))
        # the card copy of each capture against the camera-like frames of every capture (incl. other captures)
        cards = [k for k in mine if k.endswith("/card_102x126")]
        frames = [k for k in mine if k.endswith(("/camera_frame", "/blink_closed", "/held_photo_tilted"))]
        for c in cards:
            for fr in frames:
                result.pairs.append(Pair("genuine_card", f"{person}/{c}", f"{person}/{fr}",
                                         face_distance(mine[c], mine[fr])))
    for (pa, ea), (pb, eb) in itertools.combinations(encs.items(), 2):
        for la, a in ea.items():
            for lb, b in eb.items():
                result.pairs.append(Pair("impostor", f"{pa}/{la}", f"{pb}/{lb}", face_distance(a, b)))
    return result


# --- error rates with confidence --------------------------------------------------------------------------------------
def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    return min(1.0, sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp
                                 + (n - i) * lq) for i in range(k + 1)))


def clopper_pearson(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for errors/n (for 0 errors the upper bound is
    1 − (α/2)^(1/n); the "rule of three" 3/n is the one-sided 95 % approximation)."""
    if n <= 0:
        return 0.0, 1.0
    alpha = 1 - confidence

    def solve(target: float, k: int) -> float:   # p with P(X ≤ k; n, p) = target (decreasing in p)
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if _binom_cdf(k, n, mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if errors == 0 else solve(1 - alpha / 2, errors - 1)   # P(X ≥ errors; p) = α/2
    upper = 1.0 if errors >= n else solve(alpha / 2, errors)
    return lower, upper


@dataclass(frozen=True)
class Rate:
    errors: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.errors / self.n if self.n else 0.0

    def __str__(self) -> str:
        return (f"{self.errors}/{self.n} = {self.value:.2%} (95 % CI {self.low:.2%}–{self.high:.2%}; "
                f"rule of three {min(1.0, 3 / self.n):.2%})" if self.n else "n=0")


def rates(evaluation: Evaluation, threshold: float) -> tuple[Rate, Rate]:
    """(false reject, false accept) at ``threshold``: genuine > t rejected, frontal impostor ≤ t accepted."""
    g, i = evaluation.genuine, evaluation.impostor
    fr, fa = sum(d > threshold for d in g), sum(d <= threshold for d in i)
    return Rate(fr, len(g), *clopper_pearson(fr, len(g))), Rate(fa, len(i), *clopper_pearson(fa, len(i)))


def describe(values: Iterable[float]) -> str:
    import statistics

    v = list(values)
    if not v:
        return "n=0"
    return f"n={len(v):4d}  min {min(v):.3f}  median {statistics.median(v):.3f}  max {max(v):.3f}"
