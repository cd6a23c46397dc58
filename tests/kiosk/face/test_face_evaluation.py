"""The face-match threshold against the measured table (kiosk/face/evaluation.py; tests/data/README.md): genuine and
impostor distances recomputed from real photos that ship in packages, 7 people; 60–100 s on this 2-core box, so
it is marked slow (run it with `-m slow`)."""
from __future__ import annotations

import pytest
import yaml

from kiosk.face.config import DEFAULT_THRESHOLD, FaceSettings
from kiosk.face.evaluation import ROOT, EvaluationPhotosMissing, clopper_pearson, describe, evaluate, rates


@pytest.fixture(scope="module")
def evaluation(face_packages: None):
    try:
        return evaluate()
    except EvaluationPhotosMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def configured_thresholds() -> dict[str, float]:
    profile = yaml.safe_load((ROOT / "device_profiles" / "simulated.yaml").read_text("utf-8"))
    return {"kiosk/face/config.py default": DEFAULT_THRESHOLD,
            "device_profiles/simulated.yaml face.threshold": FaceSettings.from_mapping(profile["face"]).threshold}


@pytest.mark.slow
def test_configured_threshold_lies_in_the_measured_gap(evaluation, capsys) -> None:
    genuine, impostor = evaluation.genuine, evaluation.impostor
    assert evaluation.people >= 7 and len(genuine) >= 60 and len(impostor) >= 1000
    assert not [m for m in evaluation.missing if "/" not in m.split("/", 1)[1]], evaluation.missing  # every photo
    with capsys.disabled():
        print(f"\nface evaluation, {evaluation.people} people: genuine {describe(genuine)}; impostor (frontal) "
              f"{describe(impostor)}")
        print("  largest genuine: " + "; ".join(f"{p.distance:.3f} {p.a} vs {p.b}" for p in evaluation.largest_genuine()))
        print("  closest impostors: " + "; ".join(f"{p.distance:.3f} {p.a} vs {p.b}"
                                                  for p in evaluation.closest_impostors()))
    for where, threshold in configured_thresholds().items():
        fr, fa = rates(evaluation, threshold)
        with capsys.disabled():
            print(f"  {where} = {threshold}: false reject {fr}; false accept {fa}")
        assert max(genuine) < threshold < min(impostor), (
            f"{where} = {threshold} is outside the measured gap ({max(genuine):.3f}, {min(impostor):.3f})")


def test_clopper_pearson_known_values() -> None:
    low, high = clopper_pearson(0, 36)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 36), abs=1e-6)   # 9.74 %
    low, high = clopper_pearson(5, 414)
    assert low == pytest.approx(0.00393, abs=2e-4) and high == pytest.approx(0.02797, abs=3e-4)
