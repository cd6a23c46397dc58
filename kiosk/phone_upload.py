"""手机上传, kiosk half: photos of paper materials sent from the citizen's own phone (docs/protocols/proofs.md,
"Phone upload").

The kiosk asks the platform for a one-time upload token bound to this citizen session and shows its ``upload_url`` as a
QR; the phone opens the platform's small upload page and sends photos; a poller (a worker thread, every
``interval_s``) asks the platform what arrived and hands each new photo (an ordinary page upload id) to ``on_files``.
It stops when asked, when the token expires or is closed, and — with everything it received — at the end of the
session: the token is closed on the platform (which deletes photos not attached to an application) and nothing stays
in memory. The secret URL is never logged.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from kiosk.platform_proofs import PhoneUpload, PhoneUploadFile

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.5

FilesListener = Callable[[list[PhoneUploadFile]], None]
EndListener = Callable[[str], None]


@dataclass
class PhoneUploadWatch:
    """One shown QR and what arrived through it."""

    upload: PhoneUpload
    received: list[PhoneUploadFile] = field(default_factory=list)
    status: str = "open"                 # open | expired | closed | stopped
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.upload.upload_url


class PhoneUploads:
    """The phone-upload tokens of the current session. ``token`` gives the citizen's platform token (blocking)."""

    def __init__(self, platform: Any, token: Callable[[], str], dispatch: Callable[[Callable[[], None]], None],
                 interval_s: float = POLL_INTERVAL_S) -> None:
        self.platform = platform
        self._token = token
        self._dispatch = dispatch
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._watches: list[PhoneUploadWatch] = []

    def start(self, purpose: str, on_files: FilesListener, on_end: EndListener | None = None) -> PhoneUploadWatch:
        """Blocking (a worker): a new one-time token, polled until stopped. ``on_files(new)`` and ``on_end(status)``
        are called through the dispatcher (the UI thread in the shell)."""
        upload = self.platform.create_phone_upload(self._token(), purpose, idempotency_key=str(uuid.uuid4()))
        watch = PhoneUploadWatch(upload)
        watch.thread = threading.Thread(target=self._poll, args=(watch, on_files, on_end), daemon=True,
                                        name="kiosk-phone-upload")
        with self._lock:
            self._watches.append(watch)
        watch.thread.start()
        return watch

    def _poll(self, watch: PhoneUploadWatch, on_files: FilesListener, on_end: EndListener | None) -> None:
        seen = {f.upload_id for f in watch.upload.files}
        while not watch.stop_event.wait(self.interval_s):
            try:
                now = self.platform.phone_upload(self._token(), watch.upload.id)
            except Exception as exc:  # noqa: BLE001 - unreachable for a moment, or the session is gone: try again
                log.info("phone upload poll failed: %s", type(exc).__name__)
                if getattr(exc, "status", None) == 404:
                    watch.status = "closed"
                    break
                continue
            if watch.stop_event.is_set():
                break   # stopped (or the session ended) while asking: nothing more is handed on
            new = [f for f in now.files if f.upload_id not in seen]
            if new:
                seen.update(f.upload_id for f in new)
                watch.received.extend(new)
                self._dispatch(lambda new=new: on_files(new))
            if now.status != "open":
                watch.status = now.status
                break
        if on_end is not None and not watch.stop_event.is_set():
            self._dispatch(lambda: on_end(watch.status))

    def stop(self, watch: PhoneUploadWatch, close: bool = True) -> None:
        """Stop polling; ``close`` also closes the token on the platform (blocking: call it on a worker)."""
        watch.stop_event.set()
        if watch.status == "open":
            watch.status = "stopped"
        if close:
            try:
                self.platform.close_phone_upload(self._token(), watch.upload.id)
            except Exception as exc:  # noqa: BLE001 - the platform closes it with the session anyway
                log.info("phone upload token not closed: %s", type(exc).__name__)

    def end_session(self) -> None:
        """Session end: stop every poller and forget what arrived (the platform closes the tokens with the citizen
        session and deletes the photos not attached to an application)."""
        with self._lock:
            watches, self._watches = self._watches, []
        for watch in watches:   # (not joined: a poll in flight ends by itself, and its answer is dropped)
            watch.stop_event.set()
            watch.received.clear()

    @property
    def active(self) -> list[PhoneUploadWatch]:
        with self._lock:
            return [w for w in self._watches if not w.stop_event.is_set()]
