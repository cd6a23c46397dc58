"""Run by tests/screens/test_page_preview.py in its own process (a Kivy window, offscreen): the shared document
camera preview (screens/page_preview.py) wired by ``start_preview`` to a real document camera driver playing a
photographed page; prints one JSON line with what the preview drew and the camera's state."""
from __future__ import annotations

import json
import sys
import time

from kivy.app import App
from kivy.clock import Clock
from kivy.uix.boxlayout import BoxLayout

from drivers.document_camera.opencv_document_camera import OpenCvDocumentCamera
from screens.page_preview import DocumentPreview, start_preview, stop_preview


class Probe(App):
    def __init__(self, folder: str) -> None:
        super().__init__()
        self.camera = OpenCvDocumentCamera(source=folder, fps=10, loop=True, pause_when_idle=True)
        self.out: dict = {}

    def build(self) -> BoxLayout:
        root = BoxLayout()
        self.preview = DocumentPreview()
        root.add_widget(self.preview)
        return root

    def on_start(self) -> None:
        self.camera.open()
        self.deadline = time.monotonic() + 30
        Clock.schedule_interval(self.wait_idle, 0.05)

    def wait_idle(self, _dt: float) -> bool:
        if not self.camera.paused and time.monotonic() < self.deadline:
            return True          # (the camera idles once its first frame proved it online)
        self.out["paused_before"] = self.camera.paused
        self.out["started_with_camera"] = start_preview(self.preview, {"document_camera": self.camera}.get) \
            is self.camera
        self.out["resumed"] = not self.camera.paused
        Clock.schedule_interval(self.wait_outline, 0.05)
        return False

    def wait_outline(self, _dt: float) -> bool:
        p = self.preview
        if not p._page.points and time.monotonic() < self.deadline:
            return True
        self.out.update(points=[float(v) for v in p._page.points], image_pos=[float(v) for v in p._image.pos],
                        image_size=[float(v) for v in p._image.size],
                        texture_size=list(p._texture.size) if p._texture is not None else None)
        stop_preview(self.preview, {"document_camera": self.camera}.get)
        self.out.update(points_after_stop=list(p._page.points), paused_after=self.camera.paused)
        self.stop()
        return False

    def on_stop(self) -> None:
        self.camera.close()


if __name__ == "__main__":
    app = Probe(sys.argv[1])
    app.run()
    print("PROBE " + json.dumps(app.out), flush=True)
