"""The ID card reader interface every idcard driver implements, and :class:`CardWatcher`, which turns polling into
card events for the kiosk.
"""
from __future__ import annotations

import abc
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from drivers.base import Device, DeviceStatus
from drivers.errors import CardRemoved, DeviceError
from drivers.idcard.identity import IdentityDocument

if TYPE_CHECKING:  # no runtime dependency of the ID reader on the smart card package
    from drivers.smartcard.bankcard import BankCard

log = logging.getLogger(__name__)


class IdCardReader(Device):
    """A resident ID card reader.

    ``status()`` reports ``device`` (online · offline · no_device · hardware_error) and ``media`` (present ·
    not_present · unknown). Every method may raise :class:`drivers.errors.DeviceError` subclasses; none returns
    partial data.
    """

    KIND = "idcard"

    @abc.abstractmethod
    def find_card(self) -> bool:
        """Whether a readable card is in the field now (False also while a card that was just read still lies
        there: GA 467 readers only see it again after it left the field)."""

    @abc.abstractmethod
    def read_card(self) -> IdentityDocument:
        """Select and read the card in the field. Raises NoCard when there is none, CardRemoved when it left
        during the read (nothing of it is returned), CardReadFailed / InvalidCardData / DeviceTimeout / NoDevice…"""

    @abc.abstractmethod
    def sam_id(self) -> str:
        """The reader's SAM module ID, ``%02d.%02d-%08u-%010u-%010u``."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...


EventType = Literal["inserted", "read", "bank_card", "removed", "error"]


@dataclass(frozen=True)
class CardEvent:
    """What :class:`CardWatcher` (ID reader) and ``drivers.smartcard.watcher.PcscCardWatcher`` (social-security and
    bank cards) report. ``document`` is set for "read" (always an :class:`IdentityDocument`, whichever card),
    ``error`` for "error", ``bank_card`` for "bank_card" (a smart-card reader found a bank card: a masked PAN, no
    identity — only the smart card watcher emits it). ``source`` is the device kind that saw the card ("idcard" or
    "smartcard"), so a session can tell which card was removed.

    Its repr is safe for logs (the document's repr shows only the kind and the masked number; a bank card holds only
    the masked PAN).
    """

    type: EventType
    document: IdentityDocument | None = None
    error: DeviceError | None = None
    source: str = "idcard"
    bank_card: "BankCard | None" = None
    #: the card verified its PIN before this read (a social-security card read after submit_pin)
    pin_verified: bool = False


class CardWatcher:
    """Polls ``reader.find_card()`` in a background thread and reports card events to ``on_event``.

    Behaviour (one card presentation → one read attempt):

    * no card known: ``find_card()`` every ``interval`` s. When it finds one: "inserted", then ``read_card()`` →
      "read" (with the document) or "error" (with the typed exception). A CardRemoved error is followed by
      "removed" at once (the card is known to be gone).
    * after the attempt the card is never re-read while it stays: a "removed" event is emitted once ``find_card()``
      has returned False for ``removal_polls`` consecutive polls, and only then can the next "inserted" come.
      Note that after a *successful* read a GA 467 reader cannot see the (halted) card any more, so "removed" then
      really means "the reader no longer sees a card" — it fires ``removal_polls × interval`` after the read even
      if the card still lies on the reader; treat "read" as the end of the card interaction. After a successful read
      a ``find_card()`` that succeeds can only be a different card (swapped quickly): "removed" and "inserted" are
      emitted and the new card is read. After a failed read, the card may still be visible; it is not retried until
      it was taken away.
    * errors from ``find_card()``: one "error" event per outage (not one per poll), and the poll interval backs off
      (doubling up to ``max_backoff`` s) until the reader answers again — NoDevice never makes the thread spin.
    * poll rate: a GA 467 reader only answers commands (it never reports a card by itself), so the time from card
      placed to read is the wait for the next poll plus the link (~124 ms at 115200 baud). The watcher polls every
      ``fast_interval`` s (default 0.04) while a card is expected — for ``fast_for`` s after it starts, after any card
      event, and after :meth:`expect_card` (call it when a screen asks for the card or the kiosk is touched) — and
      every ``interval`` s (default 0.2, the idle rate: ~0.35 ms of CPU per poll on the kiosk side) otherwise, so
      idle CPU stays what it was while a citizen who is about to place a card gets ~40 ms polls.

    ``on_event`` runs in the watcher thread; an exception it raises is logged and ignored. ``start()`` and ``stop()``
    are idempotent; ``stop()`` joins the thread (it may wait for a read in progress, at most the driver timeouts).
    """

    def __init__(self, reader: IdCardReader, on_event: Callable[[CardEvent], None], interval: float = 0.2,
                 removal_polls: int = 3, max_backoff: float = 5.0, fast_interval: float = 0.04,
                 fast_for: float = 30.0) -> None:
        if interval <= 0 or fast_interval <= 0:
            raise ValueError("interval must be > 0")
        if removal_polls < 1:
            raise ValueError("removal_polls must be >= 1")
        if fast_for < 0:
            raise ValueError("fast_for must be >= 0")
        self.reader = reader
        self.on_event = on_event
        self.interval = float(interval)
        self.fast_interval = min(float(fast_interval), self.interval)
        self.fast_for = float(fast_for)
        self.removal_polls = int(removal_polls)
        self.max_backoff = max(float(max_backoff), self.interval)
        self._fast_until = 0.0
        self._wake = threading.Event()   # expect_card() and stop() cut the current wait short
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "CardWatcher":
        with self._start_lock:
            if not self.running:
                self._stop.clear()
                self._wake.clear()
                self._fast_until = time.monotonic() + self.fast_for
                self._thread = threading.Thread(target=self._run, name="idcard-watcher", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float | None = 15.0) -> None:
        with self._start_lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
                if not thread.is_alive():
                    self._thread = None

    def expect_card(self, seconds: float | None = None) -> None:
        """A card is likely soon (a screen asks for it, the kiosk was touched): poll at ``fast_interval`` for
        ``seconds`` (default ``fast_for``), starting now. Cheap and safe from any thread."""
        self._fast_until = max(self._fast_until, time.monotonic() + (self.fast_for if seconds is None else seconds))
        self._wake.set()

    @property
    def polling_fast(self) -> bool:
        return time.monotonic() < self._fast_until

    def _poll_delay(self) -> float:
        return self.fast_interval if time.monotonic() < self._fast_until else self.interval

    def __enter__(self) -> "CardWatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------------------------------
    def _emit(self, event: CardEvent) -> None:
        if event.type != "error":   # a citizen is at the reader: the next card (or its return) comes soon
            self._fast_until = max(self._fast_until, time.monotonic() + self.fast_for)
        try:
            self.on_event(event)
        except Exception as exc:  # a faulty listener must not stop the watcher
            log.error("card event listener failed on %s event: %s", event.type, type(exc).__name__)

    def _run(self) -> None:
        card_known = False       # a card was found and handled; waiting for it to leave
        last_read_ok = False     # that card was read successfully (so the reader can no longer see it)
        misses = 0               # consecutive finds that failed since then
        error_streak: type[DeviceError] | None = None
        delay = self._poll_delay()
        while True:
            if self._wake.wait(delay):
                self._wake.clear()
            if self._stop.is_set():
                return
            try:
                found = self.reader.find_card()
            except DeviceError as exc:
                if error_streak is not type(exc):
                    error_streak = type(exc)
                    self._emit(CardEvent("error", error=exc))
                delay = min(delay * 2, self.max_backoff)
                continue
            except Exception as exc:  # a driver bug must not kill the thread silently in a loop
                log.error("find_card raised %s", type(exc).__name__)
                delay = min(delay * 2, self.max_backoff)
                continue
            error_streak = None
            delay = self._poll_delay()
            if card_known:
                if not found:
                    misses += 1
                    if misses >= self.removal_polls:
                        card_known = False
                        self._emit(CardEvent("removed"))
                    continue
                if not last_read_ok:
                    misses = 0  # the card that failed to read is still there: wait for it to leave
                    continue
                # after a successful read the old card is invisible: a found card is a new one
                self._emit(CardEvent("removed"))
            if found:
                card_known, last_read_ok, misses = True, False, 0
                self._emit(CardEvent("inserted"))
                if self._stop.is_set():
                    return
                outcome = self._read()
                last_read_ok = outcome == "read"
                if outcome == "removed":
                    card_known = False
                    self._emit(CardEvent("removed"))
            else:
                card_known = False

    def _read(self) -> str:
        """One read attempt: "read", "error", or "removed" (the error was CardRemoved)."""
        try:
            document = self.reader.read_card()
        except DeviceError as exc:
            self._emit(CardEvent("error", error=exc))
            return "removed" if isinstance(exc, CardRemoved) else "error"
        except Exception as exc:
            log.error("read_card raised %s", type(exc).__name__)
            self._emit(CardEvent("error", error=DeviceError(f"driver failure: {type(exc).__name__}")))
            return "error"
        self._emit(CardEvent("read", document=document))
        return "read"


__all__ = ["IdCardReader", "CardEvent", "CardWatcher", "EventType"]
