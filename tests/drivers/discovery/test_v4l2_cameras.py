"""Local cameras by their V4L2 names: a sysfs tree as the kernel lays it out for two UVC cameras (each a capture
node and a metadata node of the same name), device nodes beside it, read by ``v4l2_devices``/``cameras`` and
classified by ``propose_devices``. This machine has no /dev/video*: only OpenCV's frame probe (``frame_size``, the
part that needs a real camera) is replaced, by one answering what each node would deliver."""
from __future__ import annotations

from pathlib import Path

import pytest

from drivers import registry
from drivers.base import settings_problems
from drivers.discovery import Confidence, propose_devices
from drivers.discovery import system_probe

FACE, DOCUMENT = "USB2.0 HD UVC WebCam: USB2.0 HD", "S500L 高拍仪 Document Camera"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """sys/class/video4linux with video0/1 (the face camera: capture + metadata), video2/3 (the document camera),
    v4l-subdev0 (not a video node) and video5 (no name file); dev/ with video0-3 only (video5 unplugged)."""
    sys_root, dev_root = tmp_path / "sys" / "class" / "video4linux", tmp_path / "dev"
    dev_root.mkdir(parents=True)
    for node, name in (("video0", FACE), ("video1", FACE), ("video2", DOCUMENT), ("video3", DOCUMENT),
                       ("v4l-subdev0", "ov5640 1-003c"), ("video5", None)):
        (sys_root / node).mkdir(parents=True)
        if name is not None:
            (sys_root / node / "name").write_text(name + "\n", "utf-8")
        if node.startswith("video") and node != "video5":
            (dev_root / node).touch()
    return sys_root, dev_root


def test_v4l2_names_are_read_from_sysfs(tree: tuple[Path, Path]) -> None:
    sys_root, dev_root = tree
    assert system_probe.v4l2_devices(str(sys_root), str(dev_root)) == [
        (str(dev_root / "video0"), FACE), (str(dev_root / "video1"), FACE),
        (str(dev_root / "video2"), DOCUMENT), (str(dev_root / "video3"), DOCUMENT),
        (str(dev_root / "video5"), "")]
    assert system_probe.v4l2_devices(str(sys_root.parent / "nothing-here")) == []


def test_capture_nodes_become_cameras_and_the_document_camera_is_told_by_its_name(
        tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sys_root, dev_root = tree
    # what OpenCV would get from each node: frames from the capture nodes, nothing from the metadata nodes; the
    # face camera has more pixels than the document camera here, so only the name can tell them apart
    delivers = {str(dev_root / "video0"): (1920, 1080), str(dev_root / "video2"): (1600, 1200)}
    asked: list[object] = []

    def frame_size(source: int | str) -> tuple[int, int] | None:
        asked.append(source)
        return delivers.get(str(source))

    monkeypatch.setattr(system_probe, "frame_size", frame_size)
    found = system_probe.cameras(sys_root=str(sys_root), dev_root=str(dev_root))

    assert sorted(asked) == [str(dev_root / f"video{i}") for i in range(4)]   # video5 has no device node
    assert [(f.kind, f.driver, f.address, dict(f.settings), f.confidence) for f in found] == [
        ("camera", "opencv", str(dev_root / "video0"), {"source": str(dev_root / "video0")}, Confidence.HIGH),
        ("camera", "opencv", str(dev_root / "video2"), {"source": str(dev_root / "video2")}, Confidence.HIGH)]
    assert found[0].extra == {"name": FACE, "size": [1920, 1080]}
    assert found[1].extra == {"name": DOCUMENT, "size": [1600, 1200]}
    assert f"'{DOCUMENT}' gives 1600x1200 frames" in found[1].evidence

    devices = propose_devices(found)
    assert set(devices) == {"camera", "document_camera"}
    assert devices["camera"]["settings"] == {"source": str(dev_root / "video0")}
    assert devices["document_camera"]["settings"] == {"source": str(dev_root / "video2")}
    for kind, entry in devices.items():
        assert not entry["required"]
        assert settings_problems(registry.resolve(kind, entry["driver"]).SETTINGS_SCHEMA, entry["settings"]) == []


def test_one_camera_is_the_face_camera_and_nodes_without_frames_are_not_cameras(
        tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sys_root, dev_root = tree
    monkeypatch.setattr(system_probe, "frame_size",
                        lambda source: (1280, 720) if source == str(dev_root / "video0") else None)
    found = system_probe.cameras(sys_root=str(sys_root), dev_root=str(dev_root))
    assert [f.address for f in found] == [str(dev_root / "video0")]
    assert propose_devices(found) == {"camera": {"driver": "opencv", "required": False,
                                                 "settings": {"source": str(dev_root / "video0")}}}
    monkeypatch.setattr(system_probe, "frame_size", lambda source: None)
    assert system_probe.cameras(sys_root=str(sys_root), dev_root=str(dev_root)) == []
