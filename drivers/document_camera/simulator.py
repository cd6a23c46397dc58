"""``kiosk-sim document-camera [--pdf FILE] [--tcp HOST:PORT] [--out DIR] [--fps N]`` — a document camera (高拍仪)
that photographs pages: each page of the PDF (default: a two-page sample form) is rendered, laid on a desk in
perspective with uneven light and a shadow (``scenes.py``), and served as MJPEG over HTTP like the face camera
simulator, so the real :class:`OpenCvDocumentCamera` reads it through its URL path.

First stdout line: ``{"url": …, "tcp": …, "control": …, "pages": N, "size": [w, h], "truth": "<DIR>/truth.json"}``;
``truth.json`` lists where each page's corners lie in the frame (TL, TR, BR, BL) — the reference for tests. The
scenes are built once (a few seconds) into ``var/cache/document-camera/`` and reused; ``--out DIR`` builds them
there instead.

Control: ``show page=N`` (the citizen lays page N under the camera; 0 = the empty desk), ``status`` and the face
camera simulator's ``freeze``/``unfreeze``/``offline``/``online``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2

from drivers.camera.simulator import MjpegSimulator
from drivers.document_camera import scenes
from drivers.sim.control import ControlServer

FRAME_SIZE = (2048, 1536)


#: bump when the scenes change, so cached ones are built anew
SCENES_VERSION = 1
#: built scenes are kept here (relative to the working directory) and reused: the sample PDF alone takes seconds
CACHE_DIR = Path("var/cache/document-camera")


def build_scenes(out: Path, pdf: str | None = None, size: tuple[int, int] = FRAME_SIZE, dpi: int = 110,
                 seed: int = 7) -> dict[str, Any]:
    """Write ``out/page-000`` (the empty desk), ``out/page-001`` … (one photographed page each, as a one-image
    folder the camera source can loop) and ``out/truth.json``; returns the truth."""
    out.mkdir(parents=True, exist_ok=True)
    source = Path(pdf) if pdf else scenes.sample_pdf(out / "sample.pdf")
    pages = scenes.render_pdf(source, dpi)
    truth: dict[str, Any] = {"size": list(size), "pdf": str(source), "pages": []}
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    empty = out / "page-000"
    empty.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(empty / "frame.png"), scenes.desk(size, seed), png)
    for i, page in enumerate(pages, start=1):
        shot = scenes.photograph(page, size, seed=seed + i)
        folder = out / f"page-{i:03d}"
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "frame.png"), shot.image, png)
        cv2.imwrite(str(out / f"reference-{i:03d}.png"), page, png)
        truth["pages"].append({"page": i, "corners": [[float(x), float(y)] for x, y in shot.corners],
                               "reference": str((out / f"reference-{i:03d}.png").resolve())})
    (out / "truth.json").write_text(json.dumps(truth, indent=1), "utf-8")
    return truth


def cached_scenes(pdf: str | None = None, cache: Path = CACHE_DIR) -> tuple[Path, dict[str, Any]]:
    """The scenes for ``pdf`` (default: the sample form), built once into ``cache/<key>`` and reused."""
    digest = hashlib.sha256(f"v{SCENES_VERSION} {FRAME_SIZE}".encode())
    digest.update(Path(pdf).read_bytes() if pdf else b"sample")
    folder = cache / digest.hexdigest()[:16]
    if not (folder / "truth.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache.mkdir(parents=True, exist_ok=True) or cache))
        build_scenes(tmp, pdf)
        truth = json.loads((tmp / "truth.json").read_text("utf-8"))
        for item in truth["pages"]:   # the references' paths once the folder has its final name
            item["reference"] = str((folder / Path(item["reference"]).name).resolve())
        (tmp / "truth.json").write_text(json.dumps(truth, indent=1), "utf-8")
        try:
            tmp.rename(folder)        # two builders at once: the first one's folder wins
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, json.loads((folder / "truth.json").read_text("utf-8"))


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    if getattr(args, "out", None):
        out = Path(args.out)
        truth = build_scenes(out, getattr(args, "pdf", None))
    else:
        out, truth = cached_scenes(getattr(args, "pdf", None))
    host, port = getattr(args, "tcp", None) or ("127.0.0.1", 0)
    sim = MjpegSimulator(str(out / "page-001"), fps=float(getattr(args, "fps", None) or 5.0), host=host,
                         port=port, quality=92).start()
    handlers = sim.handlers()
    shown = {"page": 1}

    def show(page: int) -> dict[str, Any]:
        page = int(page)
        if not 0 <= page <= len(truth["pages"]):
            raise ValueError(f"page {page}: the simulator has pages 1…{len(truth['pages'])} (0 = empty desk)")
        handlers["set_source"](str(out / f"page-{page:03d}"))
        shown["page"] = page
        return {"page": page}

    base_status = handlers["status"]
    handlers.update({"show": show, "status": lambda: {**base_status(), "page": shown["page"]}})
    control_host, control_port = getattr(args, "control", None) or ("127.0.0.1", 0)
    control = ControlServer(handlers, control_host, control_port).start()
    print(json.dumps({"url": sim.url, "tcp": sim.address, "control": control.address, "pages": len(truth["pages"]),
                      "size": truth["size"], "truth": str((out / "truth.json").resolve())}), flush=True)
    try:
        stop_event.wait()
    finally:
        control.stop()
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.document_camera.simulator`` is ``kiosk-sim document-camera``."""
    from drivers.sim.cli import main as kiosk_sim

    return kiosk_sim(["document-camera", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
