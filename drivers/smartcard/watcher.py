"""Card events from a PC/SC reader, through pyscard's ``CardMonitor``, as the ID reader's :class:`CardEvent`.

pyscard's monitor thread tells its observers which cards were added and removed (``SCardGetStatusChange``, event
driven). :class:`PcscCardWatcher` registers one observer, keeps only its reader's cards, and hands every
notification to its own worker thread, which reads the card (never on pyscard's thread: a read must not delay the
next notification) and reports to ``on_event``:

* card put in: ``inserted``, then ``read`` (``event.document``: the social-security card as an IdentityDocument),
  ``bank_card`` (``event.bank_card``: a BankCard, masked PAN only) or ``error`` (``event.error``: the typed error —
  PinRequired when the card wants its PIN: call :meth:`PcscCardWatcher.submit_pin`, the result comes as the next
  ``read``/``error`` event).
* card taken out: ``removed`` (once). A card pulled mid-read gives ``error`` (CardRemoved) and ``removed`` at once.
* the card is read once per presentation; a failed read is not retried until the card was taken out (or a PIN is
  submitted).
* PC/SC service or reader gone: one ``error`` (NoDevice) per outage, checked every ``health_interval`` s; when the
  service comes back the monitor is restarted by itself (pyscard's monitor thread ends for good when pcscd stops).

Every event has ``source == "smartcard"``. ``on_event`` runs in the watcher's thread; what it raises is logged and
ignored. ``start()``/``stop()`` are idempotent; ``stop()`` joins the worker (it may wait for a read in progress).
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from smartcard.CardMonitoring import CardMonitor, CardMonitoringThread, CardObserver

from drivers.base import DeviceState
from drivers.errors import CardRemoved, DeviceError, NoCard, NoDevice
from drivers.idcard.base import CardEvent
from drivers.idcard.identity import IdentityDocument
from drivers.smartcard.apdu import pin_to_bcd
from drivers.smartcard.bankcard import BankCard
from drivers.smartcard.pcsc_reader import PcscSmartCardReader

log = logging.getLogger(__name__)

SOURCE = "smartcard"
_STOP = object()


class _Observer(CardObserver):
    """Runs on pyscard's monitor thread: only queues the reader names (must never raise or block)."""

    def __init__(self, inbox: "queue.Queue[Any]") -> None:
        self.inbox = inbox

    def update(self, observable: Any, handlers: Any) -> None:
        try:
            added, removed = handlers
            self.inbox.put(("cards", [str(c.reader) for c in added], [str(c.reader) for c in removed]))
        except Exception:  # never let an exception end pyscard's thread
            log.error("card monitor notification could not be queued")


_monitor_lock = threading.Lock()


def _monitor_thread_alive(monitor: CardMonitor) -> bool:
    thread = getattr(monitor.instance, "rmthread", None)
    try:
        return bool(thread is not None and thread.is_alive())
    except Exception:  # pyscard's wrapper raises when its instance is gone
        return False


def restart_monitor_thread(monitor: CardMonitor) -> None:
    """Start pyscard's monitoring thread again after it ended (it stops for good when pcscd goes away).

    pyscard 2.x keeps the thread in ``CardMonitor().instance.rmthread`` (a ``CardMonitoringThread`` singleton whose
    ``join()`` forgets the dead instance); a new ``CardMonitoringThread(observable)`` starts a fresh one, which
    first reports every card present as added.
    """
    with _monitor_lock:
        if _monitor_thread_alive(monitor):
            return
        old = getattr(monitor.instance, "rmthread", None)
        if old is not None:
            try:
                # its PC/SC context died with the old pcscd: forget it, or pyscard's __del__ raises releasing it
                request = old.cardrequest
                getattr(request, "pcsccardrequest", request).hcontext = None
            except Exception:
                pass
            try:
                old.join(0.1)
            except Exception:
                CardMonitoringThread.instance = None
        monitor.instance.rmthread = CardMonitoringThread(monitor.instance)


def stop_monitor_thread(timeout: float = 5.0) -> None:
    """Stop pyscard's monitoring thread cleanly (cancel its pending ``SCardGetStatusChange`` so it does not print a
    traceback when pcscd goes away later). The next watcher that attaches starts it again."""
    from smartcard import scard as sc

    with _monitor_lock:
        monitor = CardMonitor()
        thread = getattr(monitor.instance, "rmthread", None)
        if thread is None or not _monitor_thread_alive(monitor):
            return
        thread.stop()
        request = getattr(thread, "cardrequest", None)
        context = getattr(getattr(request, "pcsccardrequest", request), "hcontext", None)
        if context is not None:
            sc.SCardCancel(context)
        try:
            thread.join(timeout)
        except Exception:
            pass


class PcscCardWatcher:
    """Card events of one :class:`PcscSmartCardReader`. See the module documentation."""

    def __init__(self, reader: PcscSmartCardReader, on_event: Callable[[CardEvent], None],
                 health_interval: float = 1.0) -> None:
        if health_interval <= 0:
            raise ValueError("health_interval must be > 0")
        self.reader = reader
        self.on_event = on_event
        self.health_interval = float(health_interval)
        self._inbox: "queue.Queue[Any]" = queue.Queue()
        self._observer = _Observer(self._inbox)
        self._monitor: CardMonitor | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._card_known = False
        self._last_read_ok = False
        self._outage: type[DeviceError] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "PcscCardWatcher":
        with self._start_lock:
            if self.running:
                return self
            self._inbox = queue.Queue()
            self._observer.inbox = self._inbox
            self._card_known = False
            self._thread = threading.Thread(target=self._run, name="smartcard-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 15.0) -> None:
        with self._start_lock:
            thread = self._thread
            if thread is None:
                return
            self._inbox.put(_STOP)
            if thread is not threading.current_thread():
                thread.join(timeout)
                if not thread.is_alive():
                    self._thread = None

    def __enter__(self) -> "PcscCardWatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit_pin(self, pin: str) -> None:
        """Read the card again with ``pin`` verified first (after an ``error`` event with PinRequired/PinIncorrect).
        The outcome comes as a ``read``/``bank_card``/``error`` event. Raises ValueError at once for a malformed PIN
        (4–12 digits); the PIN is never logged."""
        pin_to_bcd(pin)
        self._inbox.put(("pin", pin))

    # ---------------------------------------------------------------------------------------------------------------
    def _emit(self, type_: str, **fields: Any) -> None:
        event = CardEvent(type_, source=SOURCE, **fields)  # type: ignore[arg-type]
        try:
            self.on_event(event)
        except Exception as exc:  # a faulty listener must not stop the watcher
            log.error("card event listener failed on %s event: %s", event.type, type(exc).__name__)

    def _attach(self) -> bool:
        """Register with pyscard's monitor (restarting its thread when it died); False while PC/SC is down."""
        if self.reader.status().device is not DeviceState.ONLINE:
            return False
        if self._monitor is None:
            self._monitor = CardMonitor()
        if not _monitor_thread_alive(self._monitor):
            restart_monitor_thread(self._monitor)
        if self._observer not in self._monitor.obs:
            self._monitor.addObserver(self._observer)   # reports the cards already present as added
        return True

    def _detach(self) -> None:
        if self._monitor is not None and self._observer in self._monitor.obs:
            try:
                self._monitor.deleteObserver(self._observer)
            except ValueError:
                pass

    def _health(self) -> None:
        status = self.reader.status()
        if status.device is DeviceState.ONLINE:
            self._outage = None
            if self._monitor is None or not _monitor_thread_alive(self._monitor) \
                    or self._observer not in self._monitor.obs:
                self._attach()
            return
        error: DeviceError = NoDevice(status.detail or "smart card reader not available")
        if self._outage is None:
            self._outage = NoDevice
            self._emit("error", error=error)
        if self._card_known:     # the card went with the reader (or the service)
            self._card_known = False
            self._emit("removed")

    def _run(self) -> None:
        try:
            if not self._attach():
                self._health()
            while True:
                try:
                    item = self._inbox.get(timeout=self.health_interval)
                except queue.Empty:
                    self._health()
                    continue
                if item is _STOP:
                    return
                if item[0] == "cards":
                    _, added, removed = item
                    if any(self.reader.matches(name) for name in removed):
                        self._removed()
                    if any(self.reader.matches(name) for name in added):
                        self._inserted()
                elif item[0] == "pin":
                    self._pin(item[1])
        finally:
            self._detach()

    def _removed(self) -> None:
        if self._card_known:
            self._card_known = False
            self._emit("removed")

    def _inserted(self) -> None:
        if self._card_known:
            return            # already handled (the initial report and a change may overlap)
        self._card_known = True
        self._emit("inserted")
        self._read(None)

    def _pin(self, pin: str) -> None:
        if not self._card_known:
            self._emit("error", error=NoCard("no card in the smart card reader"))
            return
        self._read(pin)

    def _read(self, pin: str | None) -> None:
        try:
            result = self.reader.read_card(pin)
        except DeviceError as exc:
            self._last_read_ok = False
            if isinstance(exc, NoCard):   # gone between the notification and the connect: it was pulled
                exc = CardRemoved("the card left the reader before it could be read")
            self._emit("error", error=exc)
            if isinstance(exc, CardRemoved):
                self._card_known = False
                self._emit("removed")
            return
        except Exception as exc:  # a driver bug must not kill the thread
            log.error("smart card read raised %s", type(exc).__name__)
            self._emit("error", error=DeviceError(f"driver failure: {type(exc).__name__}"))
            return
        self._last_read_ok = True
        if isinstance(result, IdentityDocument):
            self._emit("read", document=result, pin_verified=pin is not None)
        elif isinstance(result, BankCard):
            self._emit("bank_card", bank_card=result)


SmartCardWatcher = PcscCardWatcher

__all__ = ["PcscCardWatcher", "SmartCardWatcher", "restart_monitor_thread", "stop_monitor_thread", "SOURCE"]
