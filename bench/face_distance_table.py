"""The measured genuine/impostor distance table behind the face-match threshold (tests/data/README.md).

    .venv/bin/python bench/face_distance_table.py

The computation is ``kiosk/face/evaluation.py`` (photos: the packaged ones plus those scripts/setup.sh puts in
.venv/share/face-eval); ``tests/kiosk/face/test_face_evaluation.py`` (slow) reruns it and fails when the configured
threshold leaves the measured gap. Prints the distance range per kind and the false-reject / false-accept rates with
95 % Clopper-Pearson intervals for candidate thresholds. The pairs are not independent (many come from one photo),
so the intervals are optimistic.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.face.evaluation import describe, evaluate, rates  # noqa: E402

THRESHOLDS = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60)


def main() -> int:
    t = time.perf_counter()
    e = evaluate()
    print(f"{e.people} people, {len(e.pairs)} pairs in {time.perf_counter() - t:.0f} s; no face found in: "
          f"{e.missing or 'none'}")
    for kind, label in (("genuine_edit", "genuine, edits of one photo"),
                        ("genuine_card", "genuine, card-size copy vs camera-like frames"),
                        ("genuine_capture", "genuine, different captures"),
                        ("not_compared", "(not compared: turned heads vs original)")):
        print(f"  {label:<48} {describe(e.distances(kind))}")
    print(f"  {'impostor, all pairs':<48} {describe(e.distances('impostor'))}")
    print(f"  {'impostor, frontal (as the kiosk compares)':<48} {describe(e.impostor)}")
    print("  closest impostors: " + "; ".join(f"{p.distance:.3f} {p.a} vs {p.b}" for p in e.closest_impostors()))
    print("  largest genuine:   " + "; ".join(f"{p.distance:.3f} {p.a} vs {p.b}" for p in e.largest_genuine()))
    print("\nthreshold  false rejects (genuine > t)  |  false accepts (frontal impostor <= t)")
    for t in THRESHOLDS:
        fr, fa = rates(e, t)
        print(f"  {t:.2f}  {fr}  |  {fa}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
