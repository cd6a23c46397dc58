"""The live document-camera preview both page-photographing screens share (screens/page_preview.py: the apply flow's
capture screen and the supplement screen's photograph step): in a real Kivy window (offscreen) with the real
document camera driver playing a photographed page of the simulator's scenes, ``start_preview`` wakes the idle
camera, the detected page is outlined where it lies in the picture (corners within a few pixels of the scene's truth),
and ``stop_preview`` clears the outline and idles the camera again. Neither screen keeps a copy of the preview."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from drivers.document_camera.simulator import cached_scenes

ROOT = Path(__file__).resolve().parents[2]


def test_the_preview_outlines_the_page_and_idles_the_camera_when_stopped(tmp_path: Path) -> None:
    scenes, truth = cached_scenes()
    folder = tmp_path / "desk"
    folder.mkdir()
    shutil.copy(scenes / "page-001" / "frame.png", folder / "frame.png")
    env = {**os.environ, "KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp_path / "kivy"), "KIVY_NO_FILELOG": "1",
           "SDL_VIDEODRIVER": "offscreen", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    run = subprocess.run([sys.executable, str(Path(__file__).with_name("preview_probe.py")), str(folder)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("PROBE ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("PROBE "))

    assert out["paused_before"] and out["started_with_camera"] and out["resumed"], out
    assert out["points"], "the detected page is outlined"
    # back from widget coordinates (y upwards) to the half-size preview image's pixels (rows downwards)
    tw, th = out["texture_size"]
    (x, y), (iw, ih) = out["image_pos"], out["image_size"]
    scale = iw / tw
    pts = np.array(out["points"], float).reshape(4, 2)
    drawn = np.column_stack([(pts[:, 0] - x) / scale, (y + ih - pts[:, 1]) / scale])
    expected = np.array(truth["pages"][0]["corners"], float) / 2
    assert float(np.linalg.norm(drawn - expected, axis=1).max()) < 4.0, (drawn, expected)
    assert out["points_after_stop"] == [] and out["paused_after"], "stopped: no outline, the camera idles"


def test_both_screens_use_the_shared_preview_and_neither_keeps_a_copy() -> None:
    for name in ("apply.py", "supplement.py"):
        tree = ast.parse((ROOT / "screens" / name).read_text("utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "screens.page_preview"
                    for a in n.names}
        assert {"DocumentPreview", "start_preview", "stop_preview"} <= imported, name
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and "Preview" in n.name], name
