"""Face fixtures: one face worker process for the whole run, the packaged photos, and clips built from them into a
temporary folder (see tests/data/README.md for what each clip is and what it proves)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from drivers.camera import synthetic as synth
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.camera.samples import load_sample_photo
from kiosk.face.config import FaceSettings
from kiosk.face.liveness import LivenessSettings
from kiosk.face.verifier import FaceVerifier
from kiosk.face.worker import FaceWorker

#: the short live clip the tests use: look, blink, look, turn to the citizen's left and back, look (~4.6 s)
LIVE_SCRIPT = (synth.Gesture("still", 1.0), synth.Gesture("blink", 0.5), synth.Gesture("still", 0.8),
               synth.Gesture("turn_left", 1.4), synth.Gesture("still", 0.9))


INSTALL = ("the face tests need (tests/data/README.md): .venv/bin/pip install dlib-bin face_recognition_models && "
           ".venv/bin/pip install --no-deps face_recognition==1.3.0 && "
           ".venv/bin/pip install --no-deps scikit-image==0.26.0 matplotlib==3.11.2 (and setuptools<82)")


@pytest.fixture(scope="session")
def face_packages() -> None:
    """Fail at once, saying what to install, when the face packages or the packaged photos are missing."""
    import importlib.util

    from drivers.camera.samples import SAMPLE_PHOTOS, SampleMissing, sample_photo_path

    missing = [m for m in ("dlib", "face_recognition", "face_recognition_models") if importlib.util.find_spec(m) is None]
    for name in SAMPLE_PHOTOS:
        try:
            sample_photo_path(name)
        except SampleMissing:
            missing.append(f"photo {name}")
    if missing:
        pytest.fail(f"missing {missing}; {INSTALL}", pytrace=False)


@pytest.fixture(scope="session")
def face_worker(face_packages: None) -> Iterator[FaceWorker]:
    worker = FaceWorker()
    worker.warm_up()
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture(scope="session")
def photos(face_packages: None) -> dict[str, np.ndarray]:
    return {"holder": load_sample_photo("astronaut"), "other": load_sample_photo("grace_hopper")}


@dataclass
class Base:
    frame: np.ndarray          # a 640×480 camera-like frame of the person
    landmarks: np.ndarray      # its 68 landmarks


@pytest.fixture(scope="session")
def bases(face_worker: FaceWorker, photos: dict[str, np.ndarray]) -> dict[str, Base]:
    out = {}
    for who, photo in photos.items():
        box = face_worker.analyze(photo, reference=True, landmarks=False).faces[0]
        frame = synth.place_face(photo, box.css())
        out[who] = Base(frame, face_worker.analyze(frame).landmarks)
    return out


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory, bases: dict[str, Base]) -> dict[str, Path]:
    """live: the holder blinking and turning left; spoof: the holder's photo held up; impostor: another person;
    no_face: an empty scene; two_faces: the holder and another person side by side."""
    folder = tmp_path_factory.mktemp("face-clips")
    holder, other = bases["holder"], bases["other"]
    return {
        "live": synth.write_clip(folder / "live.avi", synth.live_frames(holder.frame, holder.landmarks, LIVE_SCRIPT)),
        "spoof": synth.write_clip(folder / "spoof.avi", synth.photo_frames(holder.frame, 4.0)),
        "impostor": synth.write_clip(folder / "impostor.avi",
                                     synth.live_frames(other.frame, other.landmarks, LIVE_SCRIPT[:2])),
        "no_face": synth.write_clip(folder / "no_face.avi", synth.still_frames(synth.empty_scene(), 1.0)),
        "two_faces": synth.write_clip(folder / "two_faces.avi",
                                      synth.still_frames(synth.side_by_side(holder.frame, other.frame), 1.0)),
    }


@pytest.fixture(scope="session")
def test_settings() -> FaceSettings:
    """Kiosk defaults with shorter limits so refusals come quickly."""
    return FaceSettings(attempt_timeout_s=15.0, liveness=LivenessSettings(step_timeout_s=3.0))


@pytest.fixture(scope="session")
def verifier(face_worker: FaceWorker, test_settings: FaceSettings) -> FaceVerifier:
    return FaceVerifier(test_settings, worker=face_worker)


@pytest.fixture(scope="session")
def holder_reference(verifier: FaceVerifier, photos: dict[str, np.ndarray]):
    ok, png = cv2.imencode(".png", photos["holder"])
    assert ok
    return verifier.prepare_reference(png.tobytes())


@pytest.fixture
def camera_for(clips: dict[str, Path]) -> Iterator:
    """``camera_for("live")`` → an open OpenCvCamera playing that clip from its start (closed after the test)."""
    opened: list[OpenCvCamera] = []

    def make(name: str) -> OpenCvCamera:
        cam = OpenCvCamera(source=str(clips[name]), fps=25)
        cam.open()
        opened.append(cam)
        return cam

    yield make
    for cam in opened:
        cam.close()
