"""The camera interface every camera driver implements, and :class:`GrabbingCamera`, which grabs frames on a worker
thread, keeps only the newest one, watches for frames that stop and reopens the source by itself.

Status (CEN/XFS-like, see drivers/base.py):

* ``starting`` — open, no frame yet;
* ``online`` — frames arrive (``extra.fps`` is the measured rate);
* ``hardware_error`` (error_code ``frames_stopped``) — the source was open but no frame came for
  ``stall_timeout_s``; the driver drops the source and reopens it every ``reopen_interval_s`` (backing off);
* ``no_device`` (error_code ``no_device``) — the source cannot be opened (no such camera, file, or server);
* ``no_device`` with detail "driver not open" — before ``open()`` / after ``close()``.

Privacy: a frame lives only in memory; the driver keeps the newest one and drops it on :meth:`Camera.clear`,
:meth:`Camera.pause` and ``close()``. Frames' reprs show no pixels. Nothing here logs or writes frames.
"""
from __future__ import annotations

import abc
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.base import Device, DeviceState, DeviceStatus
from drivers.errors import DeviceError, NoDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False, repr=False)
class Frame:
    """One camera frame: ``image`` is BGR uint8 (H×W×3, read-only), ``seq`` counts frames since ``open()``
    (1, 2, …), ``timestamp`` is ``time.monotonic()`` when it was grabbed."""

    image: np.ndarray
    seq: int
    timestamp: float

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def __repr__(self) -> str:
        w, h = self.size
        return f"Frame(seq={self.seq}, {w}x{h})"


class Camera(Device):
    """A camera. ``open()`` starts grabbing; frames are read with :meth:`latest_frame` (non-blocking, for the
    preview) or :meth:`wait_frame` (blocking until a newer frame, for the face worker)."""

    KIND = "camera"

    @abc.abstractmethod
    def latest_frame(self) -> Frame | None:
        """The newest frame, or None (none yet, paused, cleared). Never blocks."""

    @abc.abstractmethod
    def wait_frame(self, after_seq: int = 0, timeout: float | None = None) -> Frame | None:
        """Block until a frame with ``seq > after_seq`` is there and return the newest; None on timeout."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Drop the frame held in memory (session end)."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Stop grabbing and release the device (frames dropped) until :meth:`resume`. Idempotent."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Grab again after :meth:`pause`. Idempotent."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...


class FrameSource(abc.ABC):
    """What :class:`GrabbingCamera` reads from; built by the driver's ``_open_source``. Used on the grab thread only."""

    #: whether ``read`` is paced by the device itself (a live camera) or must be paced by us (file, folder)
    live: bool = True
    #: frames per second the source plays at when it is not live
    fps: float = 25.0

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame (BGR) or None when none came (read failed / end of a non-looping file)."""

    @abc.abstractmethod
    def release(self) -> None: ...


class GrabbingCamera(Camera):
    """Grab thread, newest-frame buffer, stall detection and reopening. Subclasses implement ``_open_source``
    (raise :class:`NoDevice` when it cannot open) and may override ``_describe`` (what status shows of the source,
    without credentials)."""

    #: settings every grabbing camera understands (drivers merge these into their SETTINGS_SCHEMA)
    COMMON_SETTINGS: dict[str, Any] = {
        "stall_timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 2.0,
                            "description": "no frame for this long: hardware_error, and the source is reopened"},
        "reopen_interval_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 1.0,
                              "description": "first wait before reopening a lost source (doubles up to 10 s)"},
    }

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.stall_timeout_s = float(settings.get("stall_timeout_s", 2.0))
        self.reopen_interval_s = float(settings.get("reopen_interval_s", 1.0))
        self.max_backoff_s = max(10.0, self.reopen_interval_s)
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._paused = False
        self._thread: threading.Thread | None = None
        self._state = DeviceState.STARTING
        self._error: DeviceError | None = None
        self._detail = ""
        self._last_frame_at: float | None = None
        self._source_opened_at: float | None = None
        self._recent: deque[float] = deque(maxlen=30)
        self.counters: dict[str, int] = {"frames": 0, "reopens": 0, "stalls": 0, "open_failures": 0}

    # subclass hooks ---------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _open_source(self) -> FrameSource:
        """Open the source; raise NoDevice when it is not there."""

    def _describe(self) -> dict[str, Any]:
        return {}

    def _postprocess(self, image: np.ndarray) -> np.ndarray:
        return image

    # Device -----------------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._stop.clear()
        self._state, self._error, self._detail = DeviceState.STARTING, None, ""
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name=f"camera-{type(self).__name__}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        self.clear()

    # Camera -----------------------------------------------------------------------------------------------------------
    def latest_frame(self) -> Frame | None:
        return self._frame

    def wait_frame(self, after_seq: int = 0, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                frame = self._frame
                if frame is not None and frame.seq > after_seq:
                    return frame
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if not self._opened:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.5)

    def clear(self) -> None:
        with self._cond:
            self._frame = None
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:  # under the frame lock: a frame being published right now is dropped, not kept
            self._paused = True
            self._frame = None
            self._cond.notify_all()
        self._wake.set()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def status(self) -> DeviceStatus:
        extra = dict(self._describe())
        if not self._opened:
            return DeviceStatus(kind=self.KIND, device=DeviceState.NO_DEVICE, detail="driver not open",
                                counters=dict(self.counters), extra=extra)
        state, error, detail = self._state, self._error, self._detail
        now = time.monotonic()
        if state is DeviceState.ONLINE and self._last_frame_at is not None \
                and now - self._last_frame_at > self.stall_timeout_s and not self._paused:
            # the grab thread may be blocked inside a read: judge by the age of the newest frame
            state, detail = DeviceState.HARDWARE_ERROR, f"no frame for {now - self._last_frame_at:.1f} s"
            error = FramesStopped(detail)
        recent = list(self._recent)
        if len(recent) >= 2 and recent[-1] > recent[0] and state is DeviceState.ONLINE:
            extra["fps"] = round((len(recent) - 1) / (recent[-1] - recent[0]), 1)
        if self._frame is not None:
            extra["resolution"] = "%dx%d" % self._frame.size
        if self._paused:
            extra["paused"] = True
        return DeviceStatus(kind=self.KIND, device=state, error_code=error.code if error else None,
                            detail=detail or (str(error) if error else ""), counters=dict(self.counters),
                            extra=extra)

    # grab thread ------------------------------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState, error: DeviceError | None = None, detail: str = "") -> None:
        if state is not self._state:
            log.info("camera %s: %s%s", type(self).__name__, state.value,
                     f" ({error.code})" if error is not None else "")
        self._state, self._error, self._detail = state, error, detail

    def _publish(self, image: np.ndarray) -> None:
        image = self._postprocess(image)
        image.setflags(write=False)
        now = time.monotonic()
        with self._cond:
            if self._paused or self._stop.is_set():
                return
            self._seq += 1
            self._frame = Frame(image=image, seq=self._seq, timestamp=now)
            self._cond.notify_all()
        self._last_frame_at = now
        self._recent.append(now)
        self.counters["frames"] += 1

    def _run(self) -> None:
        source: FrameSource | None = None
        delay = self.reopen_interval_s
        ever_opened = False
        next_due = 0.0
        try:
            while not self._stop.is_set():
                if self._paused:
                    if source is not None:
                        source.release()
                        source = None
                    self.clear()
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                if source is None:
                    try:
                        source = self._open_source()
                    except NoDevice as exc:
                        self.counters["open_failures"] += 1
                        self._set_state(DeviceState.NO_DEVICE, exc)
                        self._wake.wait(delay)
                        self._wake.clear()
                        delay = min(delay * 2, self.max_backoff_s)
                        continue
                    if ever_opened:
                        self.counters["reopens"] += 1
                    ever_opened = True
                    self._source_opened_at = time.monotonic()
                    if self._state is not DeviceState.ONLINE:
                        self._set_state(DeviceState.STARTING, self._error, "waiting for the first frame")
                    next_due = time.monotonic()
                try:
                    image = source.read()
                except Exception as exc:  # a backend failure is a missing frame, never a dead thread
                    log.warning("camera read failed: %s", type(exc).__name__)
                    image = None
                now = time.monotonic()
                if image is None and self._paused:
                    continue   # paused while a read was waiting: not a stall (the loop releases the source)
                if image is None:
                    since = max(self._last_frame_at or 0.0, self._source_opened_at or now)
                    if now - since > self.stall_timeout_s:
                        self.counters["stalls"] += 1
                        self._set_state(DeviceState.HARDWARE_ERROR, FramesStopped(
                            f"no frame for {now - since:.1f} s; reopening"))
                        source.release()
                        source = None
                        self._wake.wait(delay)
                        self._wake.clear()
                        delay = min(delay * 2, self.max_backoff_s)
                    else:
                        self._stop.wait(0.01)
                    continue
                if not source.live:  # files and folders play at their own rate
                    next_due += 1.0 / source.fps
                    wait = next_due - time.monotonic()
                    if wait > 0:
                        if self._stop.wait(wait):
                            break
                    elif wait < -1.0:
                        next_due = time.monotonic()
                self._publish(image)
                delay = self.reopen_interval_s
                if self._state is not DeviceState.ONLINE:
                    self._set_state(DeviceState.ONLINE)
        finally:
            if source is not None:
                source.release()


class FramesStopped(DeviceError):
    """Frames stopped coming from a source that was open."""

    code = "frames_stopped"
    translation_key = "error.device.hardware_error"
    action = "call_staff"


__all__ = ["Camera", "Frame", "FrameSource", "GrabbingCamera", "FramesStopped"]
