"""The measured genuine/impostor distance table behind the face-match threshold (tests/data/README.md).

    .venv/bin/python bench/face_distance_table.py [--extra DIR ...]

Genuine pairs: each packaged photo against variants of itself that a kiosk meets — an ID-card-sized copy (102×126,
JPEG q=40), mirrored, darker, brighter, rotated, blurred, noisy, grey, recompressed, and frames of the synthetic
live clip (blinking, turning). Impostor pairs: every variant of one person against every variant of the other.
``--extra DIR`` adds photos from a folder, one person per file name prefix before "__" (e.g. ``yale__1.jpg``,
``yale__2.jpg``): real different captures of the same person give more honest genuine pairs than edits of one photo.
Prints the distance range per kind and the false-accept / false-reject counts for candidate thresholds.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.camera import synthetic  # noqa: E402
from drivers.camera.samples import SAMPLE_PHOTOS, load_sample_photo  # noqa: E402
from kiosk.face.engine import EngineSettings, FaceEngine, face_distance  # noqa: E402

THRESHOLDS = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60)


def card_copy(image: np.ndarray, box) -> np.ndarray:
    """What the ID card's WLT photo looks like after decoding: 102×126 px of the head, heavily compressed."""
    top, right, bottom, left = box.css()
    w = right - left
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half_w, half_h = w * 0.95, w * 0.95 * 126 / 102
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h * 0.9))
    x1, y1 = int(min(image.shape[1], cx + half_w)), int(min(image.shape[0], cy + half_h * 1.1))
    small = cv2.resize(image[y0:y1, x0:x1], (102, 126), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def variants(engine: FaceEngine, image: np.ndarray) -> dict[str, np.ndarray]:
    box = engine.analyze(image, reference=True, landmarks=False).faces[0]
    rng = np.random.default_rng(0)
    h, w = image.shape[:2]
    rot = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0), (w, h),
                         borderMode=cv2.BORDER_REPLICATE)
    lut_dark = np.clip(((np.arange(256) / 255) ** 1.8) * 255, 0, 255).astype(np.uint8)
    lut_bright = np.clip(((np.arange(256) / 255) ** 0.6) * 255, 0, 255).astype(np.uint8)
    out = {
        "card_102x126": card_copy(image, box),
        "mirrored": cv2.flip(image, 1),
        "darker": cv2.LUT(image, lut_dark),
        "brighter": cv2.LUT(image, lut_bright),
        "rotated_10": rot,
        "blurred": cv2.GaussianBlur(image, (0, 0), 2.5),
        "noisy": np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8),
        "grey": cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        "jpeg_q20": cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_COLOR),
    }
    base = synthetic.place_face(image, box.css())
    lms = engine.analyze(base).landmarks
    out["camera_frame"] = base
    out["blink_closed"] = synthetic.close_eyes(base, lms, 1.0)
    out["turned_left"] = synthetic.turn_head(base, lms, 1.0)
    out["turned_right"] = synthetic.turn_head(base, lms, -1.0)
    out["held_photo_tilted"] = synthetic.hold_photo(base, 1.0)
    return out


def encode(engine: FaceEngine, image: np.ndarray) -> np.ndarray | None:
    if min(image.shape[:2]) < 200:
        f = 200 / min(image.shape[:2])
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return engine.analyze(image, encode=True, landmarks=False, reference=True).encoding


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", action="append", default=[], help="folder of PERSON__N.jpg photos to add")
    args = parser.parse_args(argv)
    engine = FaceEngine()
    t = time.perf_counter()
    engine.load()
    print(f"models loaded in {time.perf_counter() - t:.2f} s")

    people: dict[str, dict[str, np.ndarray]] = {}   # person → {variant → encoding}
    for name in SAMPLE_PHOTOS:
        image = load_sample_photo(name)
        encs = {"original": encode(engine, image)}
        for label, img in variants(engine, image).items():
            encs[label] = encode(engine, img)
        missing = [k for k, v in encs.items() if v is None]
        if missing:
            print(f"  {name}: no face found in {missing}")
        people[name] = {k: v for k, v in encs.items() if v is not None}
    lenient = FaceEngine(EngineSettings(min_score=-0.5))
    for folder in args.extra:
        for path in sorted(Path(folder).iterdir()):
            if "__" not in path.stem:
                continue
            image = cv2.imread(str(path))
            if image is None:
                continue
            person = "extra:" + path.stem.split("__")[0]
            pad = max(image.shape[:2]) // 4   # tight crops (Yale tiles): give the detector some context
            fill = [int(c) for c in image.reshape(-1, 3).mean(axis=0)]
            # one face per file: take the best detection even when it scores low (cut-off forehead and chin)
            enc = encode(lenient, cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill))
            if enc is None:
                print(f"  {path.name}: no face found")
                continue
            people.setdefault(person, {})[path.stem] = enc

    not_compared: list[float] = []   # turned heads: the verifier encodes frontal frames only
    genuine_edit: list[float] = []
    genuine_card: list[float] = []
    genuine_capture: list[float] = []
    impostor: list[float] = []
    print("\nper person: reference (original photo) vs each variant")
    for person, encs in people.items():
        if person.startswith("extra:"):
            for (a, ea), (b, eb) in itertools.combinations(encs.items(), 2):
                genuine_capture.append(face_distance(ea, eb))
            continue
        row = []
        for label, enc in encs.items():
            if label == "original":
                continue
            d = face_distance(encs["original"], enc)
            row.append(f"{label} {d:.3f}")
            if label.startswith("turned_"):
                not_compared.append(d)
            else:
                (genuine_card if label == "card_102x126" else genuine_edit).append(d)
        # the card copy as reference against the camera-like frames (the kiosk's real comparison)
        if "card_102x126" in encs:
            for label in ("camera_frame", "blink_closed", "held_photo_tilted"):
                if label in encs:
                    genuine_card.append(face_distance(encs["card_102x126"], encs[label]))
        print(f"  {person}: " + ", ".join(row))
    closest: list[tuple[float, str]] = []
    impostor_frontal: list[float] = []
    for (pa, ea), (pb, eb) in itertools.combinations(people.items(), 2):
        for la, a in ea.items():
            for lb, b in eb.items():
                d = face_distance(a, b)
                impostor.append(d)
                if not (la.startswith("turned_") or lb.startswith("turned_")):
                    impostor_frontal.append(d)
                closest.append((d, f"{pa}/{la} vs {pb}/{lb}"))

    def describe(values: list[float]) -> str:
        if not values:
            return "n=0"
        return (f"n={len(values):4d}  min {min(values):.3f}  median {statistics.median(values):.3f}  "
                f"max {max(values):.3f}")

    print("\ndistances")
    print(f"  genuine, edits of one photo            {describe(genuine_edit)}")
    print(f"  genuine, card-size copy vs photo/frames {describe(genuine_card)}")
    print(f"  genuine, different captures (--extra)  {describe(genuine_capture)}")
    print(f"  impostor, different people             {describe(impostor)}")
    print(f"  impostor, frontal only (as compared)   {describe(impostor_frontal)}")
    print(f"  (not compared by the kiosk: turned heads vs original {describe(not_compared)})")
    print("  closest impostor pairs: " + "; ".join(f"{d:.3f} {what}" for d, what in sorted(closest)[:3]))
    genuine = genuine_edit + genuine_card + genuine_capture
    print("\nthreshold  false rejects (genuine > t)   false accepts (impostor <= t)")
    for t in THRESHOLDS:
        fr = sum(d > t for d in genuine)
        fa = sum(d <= t for d in impostor)
        print(f"   {t:.2f}     {fr:4d} / {len(genuine):<4d}                    {fa:4d} / {len(impostor)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
