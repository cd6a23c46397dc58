"""The face worker process: lazy start, model loading off the caller's process, recovery after a crash or a hang;
the engine's face counting; the settings schema."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from drivers.camera.synthetic import empty_scene
from kiosk.face.config import DEFAULT_THRESHOLD, FaceSettings
from kiosk.face.worker import FaceEngineError, FaceWorker


def test_importing_and_constructing_loads_no_model():
    code = (
        "import sys, json\n"
        "from kiosk.face import FaceVerifier, FaceSettings\n"
        "v = FaceVerifier(FaceSettings())\n"
        "print(json.dumps({'fr': 'face_recognition' in sys.modules, 'dlib': 'dlib' in sys.modules,\n"
        "                  'running': v.worker.running, 'kivy': 'kivy' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"fr": False, "dlib": False, "running": False,
                                                                 "kivy": False}


def test_worker_analyzes_in_its_own_process(face_worker, photos):
    face_worker.load()
    assert face_worker.loaded and face_worker.pid != os.getpid()
    assert face_worker.load_seconds is not None and face_worker.load_seconds > 0
    assert face_worker.analyze(empty_scene()).face_count == 0
    holder = face_worker.analyze(photos["holder"], encode=True)
    assert holder.face_count == 1, "astronaut.png's mission patch must not count as a second face"
    assert holder.encoding is not None and holder.encoding.shape == (128,)
    assert holder.landmarks is not None and holder.landmarks.shape == (68, 2)
    assert "encoding=True" in repr(holder) and "[" not in repr(holder).split("timings")[0]


def test_worker_recovers_from_a_crash_and_a_hang(photos):
    with FaceWorker() as worker:
        worker.load()
        first = worker.pid
        os.kill(first, signal.SIGKILL)  # the process we started
        assert worker.analyze(photos["holder"]).face_count == 1
        assert worker.pid != first and worker.restarts == 1
        big = np.ascontiguousarray(np.tile(photos["holder"], (3, 3, 1)))
        with pytest.raises(FaceEngineError, match="did not answer"):
            worker.analyze(big, encode=True, timeout=0.001)
        assert not worker.running, "a worker that did not answer in time is killed"
        assert worker.analyze(photos["other"]).face_count == 1
        assert worker.restarts == 2
    assert not worker.running


def test_warm_up_is_shared_and_reports_load_time():
    with FaceWorker() as worker:
        first = worker.warm_up()
        assert worker.warm_up() is first
        assert first.result(timeout=120) > 0
        assert worker.loaded


def test_settings_from_profile_block():
    assert FaceSettings.from_mapping(None).threshold == DEFAULT_THRESHOLD == 0.55
    s = FaceSettings.from_mapping({"threshold": 0.45, "max_attempts": 2, "challenges": ["turn", "blink"],
                                   "detection": {"upsample": 1}, "liveness": {"step_timeout_s": 5}})
    assert (s.threshold, s.max_attempts, s.challenges) == (0.45, 2, ("turn", "blink"))
    assert s.detection.upsample == 1 and s.liveness.step_timeout_s == 5
    with pytest.raises(ValueError) as exc:
        FaceSettings.from_mapping({"threshold": 0.9, "challenges": ["smile"], "alternatives": [],
                                   "liveness": {"turn_frames": 0}, "colour": "red"})
    message = str(exc.value)
    for field in ("threshold", "challenges.0", "alternatives", "liveness.turn_frames", "colour"):
        assert field in message
