"""Run blocking work (device I/O, platform calls) off the UI thread and hand results back through a dispatcher.

The shell passes a dispatcher that schedules on Kivy's ``Clock`` (so callbacks run on the UI thread); tests and
tools use the default, which calls back on the worker thread.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
Dispatcher = Callable[[Callable[[], None]], None]


def call_now(fn: Callable[[], None]) -> None:
    fn()


class Workers:
    def __init__(self, max_workers: int = 4, dispatcher: Dispatcher = call_now) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kiosk-worker")
        self.dispatch = dispatcher
        #: called (through the dispatcher) with (exception, where) for an unexpected exception of a task submitted
        #: without ``on_error`` — the shell's crash handler (kiosk/lifecycle.py); typed device/kiosk errors are not
        #: crashes. Unset, such an exception is logged only.
        self.unhandled: Callable[[BaseException, str], None] | None = None

    def submit(self, fn: Callable[..., T], *args: Any,
               on_result: Callable[[T], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None) -> Future[T]:
        """Run ``fn(*args)`` on a worker; deliver its result or exception through the dispatcher."""

        def done(future: Future[T]) -> None:
            if future.cancelled():  # shutting down: nobody is waiting for the result
                return
            exc = future.exception()
            if exc is not None:
                from kiosk.lifecycle import describe_exception, is_expected

                name = getattr(fn, "__name__", repr(fn))
                expected = is_expected(exc)
                handler = self.unhandled if on_error is None and not expected else None
                if handler is not None:   # a bug nobody handles: the crash handler logs it and recovers
                    self.dispatch(lambda: handler(exc, f"worker task {name}"))
                    return
                if not expected:  # a bug, never silent: its stack (no message: it may carry personal data)
                    log.error("worker task %s raised %s:\n%s", name, type(exc).__name__, describe_exception(exc))
                elif on_error is None:
                    log.error("worker task %s failed: %s", name, type(exc).__name__)
                if on_error is not None:
                    self.dispatch(lambda: on_error(exc))
            elif on_result is not None:
                result = future.result()
                self.dispatch(lambda: on_result(result))

        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError:  # shut down: a late event (a device callback during stop) has nobody to serve
            log.debug("worker task %s dropped: shutting down", getattr(fn, "__name__", fn))
            cancelled: Future[T] = Future()
            cancelled.cancel()
            return cancelled
        future.add_done_callback(done)
        return future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
