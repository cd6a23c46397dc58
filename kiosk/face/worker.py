"""The face worker: one child process that owns the face models, started and loaded lazily.

Why a process and not a thread: dlib's Python bindings keep the GIL for the whole of each call (measured: the UI
thread stalls ~110 ms per encoding when a thread does face work), so only a separate process keeps the Kivy UI at
≥ 30 fps while a face is verified.

* Lazy: nothing starts at import or construction. :meth:`FaceWorker.warm_up` starts the process and loads the
  models in the background (the shell calls it after the attract screen is up); the first :meth:`analyze` does the
  same if nobody warmed up.
* One request at a time (a kiosk has one camera); calls from several threads are serialised.
* A child that hangs past the call's timeout is killed and that call raises :class:`FaceEngineError`; the next call
  starts a fresh process. A child found dead (killed, out of memory) is replaced and the request retried once.
* Privacy: frames go to the child through a pipe (memory only) and are dropped when the request is answered; the
  child keeps nothing between requests, cannot write core dumps (RLIMIT_CORE = 0) and ends when the kiosk's end
  of the socket closes (the kiosk exited or died).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.face.engine import Analysis, EngineSettings, EngineUnavailable

log = logging.getLogger(__name__)


class FaceEngineError(RuntimeError):
    """The worker failed (models not loadable, process died, request timed out)."""

    code = "engine_error"


class _WorkerGone(FaceEngineError):
    """The connection to the worker broke (it had died, or died on this request)."""


def _child_main(conn: Connection, settings: EngineSettings) -> None:  # runs in the worker process
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write frames to a core file
    except (ImportError, ValueError, OSError):
        pass
    # Not PR_SET_PDEATHSIG: Linux sends it when the *thread* that started us ends (the warm-up thread), not the
    # kiosk. When the kiosk dies its end of the socket closes, recv() raises EOFError and we return.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the kiosk, which closes us
    from kiosk.face.engine import FaceEngine

    engine = FaceEngine(settings)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        op = request[0]
        try:
            if op == "load":
                reply: tuple[str, Any] = ("ok", engine.load())
            elif op == "analyze":
                _, image, kwargs = request
                reply = ("ok", engine.analyze(image, **kwargs))
                del image
            elif op == "ping":
                reply = ("ok", os.getpid())
            elif op == "stop":
                conn.send(("ok", None))
                return
            else:
                reply = ("error", f"unknown request {op!r}")
        except EngineUnavailable as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # never the image: only the type and message
            reply = ("error", f"{type(exc).__name__}: {exc}")
        request = None
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class FaceWorker:
    """Proxy to the face process. Thread-safe; every method blocks the calling thread (never the UI thread).

    The process is ``python -m kiosk.face.worker_main --fd N`` (a fresh interpreter, never a fork of a process that
    holds a GL context, and without multiprocessing's re-import of the caller's ``__main__``); requests and replies
    travel as pickles over a socket pair."""

    def __init__(self, settings: EngineSettings | None = None, *, load_timeout_s: float = 60.0) -> None:
        self.settings = settings or EngineSettings()
        self._load_timeout = load_timeout_s
        self._lock = threading.Lock()
        self._warm_lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._loaded = False
        self.load_seconds: float | None = None   # model load time in the child (last start)
        self.start_seconds: float | None = None  # process start + model load, as the caller waited for it
        self.restarts = 0          # process starts after the first one
        self._started = False
        self._warm: Future[float] | None = None

    # lifecycle -------------------------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._loaded and self.running

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def warm_up(self) -> "Future[float]":
        """Start the process and load the models on a background thread; the future gives the load time (s) or
        the :class:`FaceEngineError`. Calling it again returns the same future while it is pending or succeeded.
        Never blocks: safe to call from the UI thread."""
        with self._warm_lock:   # not self._lock: that one is held for whole requests and loads
            warm = self._warm
            if warm is not None and (not warm.done() or (warm.exception() is None and self.running)):
                return warm
            future: Future[float] = Future()
            self._warm = future

        def run() -> None:
            try:
                future.set_result(self.load())
            except BaseException as exc:  # delivered through the future
                future.set_exception(exc)

        threading.Thread(target=run, name="face-warm-up", daemon=True).start()
        return future

    def load(self) -> float:
        """Start the process if needed and load the models (blocking). Returns the models' load time."""
        with self._lock:
            self._ensure_loaded()
            return self.load_seconds or 0.0

    def close(self) -> None:
        """Stop the process (idempotent)."""
        with self._lock:
            self._stop_process(graceful=True)

    def __enter__(self) -> "FaceWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # requests --------------------------------------------------------------------------------------------------------
    def analyze(self, image_bgr: np.ndarray, *, encode: bool = False, landmarks: bool = True,
                reference: bool = False, timeout: float = 5.0) -> Analysis:
        """Detect faces (and for a single face its landmarks and, with ``encode``, its encoding) in a BGR image.
        ``timeout`` bounds this request once the models are loaded; loading has its own limit."""
        image = np.ascontiguousarray(image_bgr)
        request = ("analyze", image, {"encode": encode, "landmarks": landmarks, "reference": reference})
        with self._lock:
            self._ensure_loaded()
            try:
                reply = self._call(request, timeout)
            except _WorkerGone:
                # it may have died before this request (killed, out of memory): one more try on a fresh process;
                # a frame that kills the worker twice is reported
                log.warning("face worker connection lost; retrying once on a new process")
                self._ensure_loaded()
                reply = self._call(request, timeout)
        assert isinstance(reply, Analysis)
        return reply

    # internals (hold self._lock) ---------------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded and self.running:
            return
        if self._proc is not None:
            log.warning("face worker process ended (exit code %s); starting a new one", self._proc.poll())
            self._stop_process(graceful=False)
        if self._started:
            self.restarts += 1
        self._started = True
        start = time.perf_counter()
        parent_sock, child_sock = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])   # the folder holding the kiosk package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kiosk.face.worker_main", "--fd", str(child_sock.fileno()),
                 "--settings", json.dumps(dataclasses.asdict(self.settings))],
                pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as exc:
            parent_sock.close()
            raise FaceEngineError(f"cannot start the face worker: {exc}") from exc
        finally:
            child_sock.close()
        parent = Connection(parent_sock.detach())
        self._proc, self._conn = proc, parent
        self.load_seconds = float(self._call(("load",), self._load_timeout))
        self._loaded = True
        self.start_seconds = time.perf_counter() - start
        log.info("face worker ready (pid %d): models loaded in %.2f s, %.2f s with process start",
                 proc.pid, self.load_seconds, self.start_seconds)

    def _call(self, request: tuple[Any, ...], timeout: float) -> Any:
        conn = self._conn
        if conn is None:
            raise FaceEngineError("face worker is not running")
        try:
            conn.send(request)
            if not conn.poll(timeout):
                self._stop_process(graceful=False)
                raise FaceEngineError(f"face worker did not answer within {timeout:.1f} s")
            status, value = conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            exitcode = self._proc.poll() if self._proc is not None else None
            self._stop_process(graceful=False)
            raise _WorkerGone(f"face worker process ended (exit code {exitcode})") from exc
        if status != "ok":
            if request[0] == "load":
                self._stop_process(graceful=False)
            raise FaceEngineError(str(value))
        return value

    def _stop_process(self, graceful: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._loaded = False
        if proc is None:
            return
        if graceful and conn is not None and proc.poll() is None:
            try:
                conn.send(("stop",))
                if conn.poll(2.0):
                    conn.recv()
            except (EOFError, OSError):
                pass
        try:
            proc.wait(timeout=2.0 if graceful else 0.1)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2.0)
        if conn is not None:
            conn.close()

