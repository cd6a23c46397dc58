"""``kiosk-sim camera``: a network camera simulator — a video file or a folder of images played in a loop and
served as MJPEG over HTTP (``multipart/x-mixed-replace``, as IP cameras do), so the real :class:`OpenCvCamera`
driver reads it through its URL path exactly as it would read a camera.

    python -m drivers.camera.simulator --video clip.avi [--tcp 127.0.0.1:0] [--control 127.0.0.1:0] [--fps 25]
    python -m drivers.camera.simulator --images folder/
    python -m drivers.camera.simulator --demo var/demo/camera-live.avi   # builds the demo clip first if missing

First stdout line: ``{"url": "http://127.0.0.1:PORT/stream.mjpg", "tcp": "127.0.0.1:PORT", "control": "…"}``.
``GET /snapshot.jpg`` answers one frame.

Control commands (``drivers.sim.control``): ``freeze`` (stop sending frames, connections stay open — the driver
sees frames stop), ``unfreeze``, ``disconnect`` (drop every client now; they may reconnect), ``offline`` (drop clients
and answer 503 until ``online``), ``online``, ``set_source path=…`` (another clip or folder), ``status``.
"""
from __future__ import annotations

import argparse
import http.server
import json
import socketserver
import sys
import threading
import time
from typing import Any

import cv2

from drivers.camera.opencv_camera import OpenCvCamera
from drivers.sim.control import ControlServer


class MjpegSimulator:
    def __init__(self, source: str, fps: float = 25.0, host: str = "127.0.0.1", port: int = 0,
                 quality: int = 80) -> None:
        self.fps = fps
        self.quality = quality
        self._camera = OpenCvCamera(source=source, fps=fps, loop=True)
        self._lock = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.frozen = False
        self.offline = False
        self._generation = 0          # bumped by disconnect/offline: streams of older generations end
        self._stop = threading.Event()
        self.clients = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # no access log
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if outer.offline:
                    self.send_error(503, "camera offline")
                    return
                if self.path.startswith("/snapshot"):
                    jpeg = outer.wait_jpeg(0, 5.0)
                    if jpeg is None:
                        self.send_error(503, "no frame")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(jpeg[1])))
                    self.end_headers()
                    self.wfile.write(jpeg[1])
                    return
                if not self.path.startswith("/stream"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                generation = outer._generation
                seq = 0
                outer.clients += 1
                try:
                    while not outer._stop.is_set() and generation == outer._generation:
                        got = outer.wait_jpeg(seq, 0.5)
                        if got is None or outer.frozen:
                            continue
                        seq, jpeg = got
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                finally:
                    outer.clients -= 1

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self._threads = [threading.Thread(target=self._server.serve_forever, name="camera-sim-http", daemon=True),
                         threading.Thread(target=self._produce, name="camera-sim-frames", daemon=True)]

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/stream.mjpg"

    def start(self) -> "MjpegSimulator":
        self._camera.open()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._camera.close()

    def wait_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._seq <= after or self._jpeg is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._lock.wait(remaining)
            return self._seq, self._jpeg

    def _produce(self) -> None:
        seq = 0
        camera = self._camera
        while not self._stop.is_set():
            if camera is not self._camera:   # set_source: the new clip's frames count from 1 again
                camera, seq = self._camera, 0
            frame = camera.wait_frame(seq, timeout=0.5)
            if frame is None:
                continue
            seq = frame.seq
            ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                with self._lock:
                    self._jpeg = buf.tobytes()
                    self._seq += 1
                    self._lock.notify_all()

    # control ----------------------------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Any]:
        def freeze() -> dict[str, Any]:
            self.frozen = True
            return {"frozen": True}

        def unfreeze() -> dict[str, Any]:
            self.frozen = False
            return {"frozen": False}

        def disconnect() -> dict[str, Any]:
            self._generation += 1
            return {"generation": self._generation}

        def offline() -> dict[str, Any]:
            self.offline = True
            self._generation += 1
            return {"offline": True}

        def online() -> dict[str, Any]:
            self.offline = False
            return {"offline": False}

        def set_source(path: str) -> dict[str, Any]:
            old = self._camera
            self._camera = OpenCvCamera(source=path, fps=self.fps, loop=True).open()
            old.close()
            return {"source": path}

        def status() -> dict[str, Any]:
            return {"frozen": self.frozen, "offline": self.offline, "clients": self.clients,
                    "frames": self._seq, "camera": self._camera.status().to_dict()}

        return {"freeze": freeze, "unfreeze": unfreeze, "disconnect": disconnect, "offline": offline,
                "online": online, "set_source": set_source, "status": status}


def run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    """``kiosk-sim camera`` entry: serve until ``stop_event``; prints the endpoint line first."""
    source = getattr(args, "video", None) or getattr(args, "images", None)
    if getattr(args, "demo", None):
        from drivers.camera.synthetic import build_demo_clip

        source = str(build_demo_clip(args.demo))
    if not source:
        raise SystemExit("kiosk-sim camera: give --video FILE, --images FOLDER or --demo FILE")
    host, port = getattr(args, "tcp", None) or ("127.0.0.1", 0)
    sim = MjpegSimulator(source, fps=float(getattr(args, "fps", None) or 25.0), host=host, port=port).start()
    control_host, control_port = getattr(args, "control", None) or ("127.0.0.1", 0)
    control = ControlServer(sim.handlers(), control_host, control_port).start()
    print(json.dumps({"url": sim.url, "tcp": sim.address, "control": control.address}), flush=True)
    try:
        stop_event.wait()
    finally:
        control.stop()
        sim.stop()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.camera.simulator`` is ``kiosk-sim camera``."""
    from drivers.sim.cli import main as kiosk_sim

    return kiosk_sim(["camera", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
