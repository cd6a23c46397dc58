"""The MJPEG-over-HTTP camera simulator, read by the real driver through its URL path: frames, frames that stop,
a dropped connection, a camera that goes away and comes back — the driver reports each and recovers by itself."""
from __future__ import annotations

import sys
import urllib.request

import cv2
import numpy as np
import pytest

from drivers.base import DeviceState
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.sim.control import send_command
from drivers.sim.process import ManagedProcess


@pytest.fixture
def camera_sim(make_clip):
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "camera", "--video", str(make_clip(frames=20)),
                           "--fps", "25"], "camera-sim", start_timeout=30)
    try:
        yield proc
    finally:
        proc.stop()


def test_endpoint_line_and_snapshot(camera_sim):
    assert set(camera_sim.endpoints) == {"url", "tcp", "control"}
    assert camera_sim.endpoints["url"].endswith("/stream.mjpg")
    host_port = camera_sim.endpoints["tcp"]
    with urllib.request.urlopen(f"http://{host_port}/snapshot.jpg", timeout=5) as reply:
        image = cv2.imdecode(np.frombuffer(reply.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    assert send_command(camera_sim.endpoints["control"], "help")["ok"]


def test_driver_reads_the_stream_and_recovers_from_stalls_and_outages(camera_sim, wait_for):
    control = camera_sim.endpoints["control"]
    with OpenCvCamera(source=camera_sim.endpoints["url"], width=640, height=480, open_timeout_s=1.5,
                      read_timeout_s=1.0, stall_timeout_s=0.8, reopen_interval_s=0.2) as camera:
        wait_for(lambda: camera.status().device is DeviceState.ONLINE, timeout=15, what="online over HTTP")
        frame = camera.wait_frame(0, timeout=5)
        assert frame is not None and frame.size == (640, 480)
        assert camera.status().extra["source_kind"] == "url"

        send_command(control, "freeze")            # connection open, no frames
        status = wait_for(lambda: camera.status().device is DeviceState.HARDWARE_ERROR and camera.status(),
                          timeout=10, what="frames stopped")
        assert status.error_code == "frames_stopped"
        # the read times out, the driver drops the connection and keeps trying to reopen
        wait_for(lambda: camera.status().counters["stalls"] >= 1, timeout=10, what="connection dropped")
        send_command(control, "unfreeze")
        wait_for(lambda: camera.status().device is DeviceState.ONLINE, timeout=15, what="online after the stall")
        assert camera.status().counters["reopens"] >= 1

        send_command(control, "offline")           # drops the connection, refuses new ones
        wait_for(lambda: camera.status().device in (DeviceState.NO_DEVICE, DeviceState.HARDWARE_ERROR),
                 timeout=10, what="camera gone")
        send_command(control, "online")
        wait_for(lambda: camera.status().device is DeviceState.ONLINE, timeout=15, what="back after the outage")
        seq = camera.latest_frame().seq
        assert camera.wait_frame(seq, timeout=5) is not None


def test_demo_clip_is_built_once_and_served(tmp_path, wait_for):
    clip = tmp_path / "demo" / "live.avi"
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "camera", "--demo", str(clip)], "camera-sim",
                          start_timeout=120)
    try:
        assert clip.is_file() and clip.stat().st_size > 0
        with OpenCvCamera(source=proc.endpoints["url"], open_timeout_s=3) as camera:
            frame = camera.wait_frame(0, timeout=15)
            assert frame is not None and frame.size == (640, 480)
    finally:
        proc.stop()
    built = clip.stat().st_mtime_ns
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "camera", "--demo", str(clip)], "camera-sim",
                          start_timeout=60)
    proc.stop()
    assert clip.stat().st_mtime_ns == built, "an existing demo clip is reused"
