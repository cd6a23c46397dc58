"""The OpenCV camera driver over files and folders (the simulated camera) — frames on its own thread, status,
stall detection and reopening by itself, pause/clear for privacy, settings validation."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from drivers.base import DeviceState, InvalidSettings
from drivers.camera.base import Frame
from drivers.camera.opencv_camera import OpenCvCamera, mask_url, source_kind
from drivers.registry import resolve


def test_registry_names_the_opencv_camera():
    assert resolve("camera", "opencv") is OpenCvCamera
    assert OpenCvCamera.KIND == "camera"


def test_video_file_plays_at_its_rate_in_a_loop(make_clip, wait_for, stamp_of):
    clip = make_clip(frames=10, fps=25)
    with OpenCvCamera(source=str(clip)) as camera:
        assert camera.status().device in (DeviceState.STARTING, DeviceState.ONLINE)
        first = camera.wait_frame(0, timeout=5)
        assert first is not None and first.seq >= 1
        seen: list[int] = []

        def collect() -> bool:
            frame = camera.wait_frame(camera.latest_frame().seq, timeout=2)
            seen.append(stamp_of(frame.image))
            return len(seen) >= 25

        wait_for(collect, timeout=10, what="25 frames")
        wraps = sum(1 for a, b in zip(seen, seen[1:]) if b < a)
        assert wraps >= 1, f"the 10-frame clip did not loop: {seen}"
        status = camera.status()
        assert status.device is DeviceState.ONLINE and status.usable
        assert 12 <= status.extra["fps"] <= 40, status.extra
        assert status.extra["resolution"] == "320x240" and status.extra["source_kind"] == "file"
        assert status.counters["frames"] >= 25


def test_image_folder_plays_in_name_order_and_loops(make_folder, wait_for, stamp_of):
    folder = make_folder(frames=4)
    (folder / "notes.txt").write_text("not an image")
    seen: list[int] = []
    last = [0]
    with OpenCvCamera(source=str(folder), fps=20) as camera:
        def collect() -> bool:
            frame = camera.wait_frame(last[0], timeout=2)
            if frame is not None:
                last[0] = frame.seq
                seen.append(stamp_of(frame.image))
            return len(seen) >= 10

        wait_for(collect, timeout=10, what="10 frames")
        assert camera.status().extra["source_kind"] == "folder"
    assert set(seen) == {0, 1, 2, 3}, seen
    steps = [(b - a) % 4 for a, b in zip(seen, seen[1:])]
    assert steps.count(1) >= len(steps) - 1, f"not in name order: {seen}"
    assert any(a == 3 and b == 0 for a, b in zip(seen, seen[1:])), f"did not loop: {seen}"
    assert camera.status().detail == "driver not open"


def test_frames_are_resized_and_read_only(make_clip):
    with OpenCvCamera(source=str(make_clip()), width=640, height=480) as camera:
        frame = camera.wait_frame(0, timeout=5)
    assert frame is not None and frame.size == (640, 480) and frame.image.shape == (480, 640, 3)
    with pytest.raises(ValueError):
        frame.image[0, 0, 0] = 1
    assert repr(frame) == f"Frame(seq={frame.seq}, 640x480)"


def test_missing_source_is_no_device_until_it_appears(tmp_path, make_clip, wait_for):
    target = tmp_path / "later.avi"
    with OpenCvCamera(source=str(target), reopen_interval_s=0.1) as camera:
        status = wait_for(lambda: camera.status().device is DeviceState.NO_DEVICE and camera.status(),
                          timeout=5, what="no_device")
        assert status.error_code == "no_device" and not status.usable
        assert camera.wait_frame(0, timeout=0.2) is None
        shutil.copy(make_clip(name="source.avi"), target)
        wait_for(lambda: camera.status().device is DeviceState.ONLINE, timeout=15, what="reopen by itself")
        assert camera.latest_frame() is not None
        assert camera.status().counters["open_failures"] >= 1


def test_frames_that_stop_are_a_hardware_error_then_reopened(make_clip, wait_for):
    clip = make_clip(frames=12, fps=25)
    with OpenCvCamera(source=str(clip), loop=False, stall_timeout_s=0.4, reopen_interval_s=0.2) as camera:
        wait_for(lambda: camera.status().device is DeviceState.ONLINE, timeout=5, what="online")
        status = wait_for(lambda: camera.status().device is DeviceState.HARDWARE_ERROR and camera.status(),
                          timeout=5, what="frames stopped")
        assert status.error_code == "frames_stopped"
        wait_for(lambda: camera.status().counters["reopens"] >= 1 and camera.status().device is DeviceState.ONLINE,
                 timeout=10, what="reopened and online again")
        assert camera.status().counters["stalls"] >= 1


def test_pause_drops_frames_and_resume_grabs_again(make_clip, wait_for):
    with OpenCvCamera(source=str(make_clip())) as camera:
        assert camera.wait_frame(0, timeout=5) is not None
        camera.pause()
        assert camera.latest_frame() is None and camera.paused
        assert camera.status().extra.get("paused") is True
        assert camera.wait_frame(0, timeout=0.5) is None, "no frames while paused"
        camera.resume()
        assert camera.wait_frame(0, timeout=5) is not None
        camera.clear()
        assert camera.latest_frame() is None or camera.latest_frame().seq > 0


def test_close_is_idempotent_and_drops_the_frame(make_clip):
    camera = OpenCvCamera(source=str(make_clip()))
    camera.open()
    assert camera.wait_frame(0, timeout=5) is not None
    camera.close()
    camera.close()
    assert camera.latest_frame() is None
    status = camera.status()
    assert status.device is DeviceState.NO_DEVICE and status.detail == "driver not open"
    assert not [t for t in threading.enumerate() if t.name == "camera-OpenCvCamera" and t.is_alive()]


def test_wait_frame_wakes_a_waiting_thread(make_clip):
    with OpenCvCamera(source=str(make_clip())) as camera:
        got: list[Frame | None] = []
        waiter = threading.Thread(target=lambda: got.append(camera.wait_frame(10**9, timeout=0.3)))
        waiter.start()
        waiter.join(5)
        assert got == [None], "a frame newer than any possible one never comes: None after the timeout"
        frame = camera.wait_frame(0, timeout=5)
        later = camera.wait_frame(frame.seq, timeout=5)
        assert later is not None and later.seq > frame.seq and later.timestamp >= frame.timestamp


@pytest.mark.parametrize("settings, fields", [
    ({}, ["source"]),
    ({"source": "x.avi", "width": 640}, ["height"]),
    ({"source": -1}, ["source"]),
    ({"source": "x.avi", "backend": "directshow", "fps": 0, "colour": True}, ["backend", "fps", "colour"]),
])
def test_bad_settings_are_refused_naming_each_field(settings, fields):
    with pytest.raises(InvalidSettings) as exc:
        OpenCvCamera(**settings)
    text = str(exc.value)
    for field in fields:
        assert field in text


def test_source_kinds_and_masked_urls(tmp_path):
    assert source_kind(0) == "index" and source_kind("2") == "index"
    assert source_kind("/dev/video0") == "device"
    assert source_kind("rtsp://10.0.0.5/s") == "url"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "a.mp4")) == "file"
    assert mask_url("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    camera = OpenCvCamera(source="rtsp://admin:secret@127.0.0.1:9/live")
    assert "secret" not in str(camera.status().to_dict())
    assert OpenCvCamera(source="3").source == 3


def test_unreachable_url_is_no_device(wait_for):
    from socket import socket

    with socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with OpenCvCamera(source=f"http://127.0.0.1:{port}/stream.mjpg", open_timeout_s=1,
                      reopen_interval_s=0.2) as camera:
        status = wait_for(lambda: camera.status().device is DeviceState.NO_DEVICE and camera.status(),
                          timeout=10, what="no_device")
        assert status.error_code == "no_device"
        assert np.all([camera.latest_frame() is None])
