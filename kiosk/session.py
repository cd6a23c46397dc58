"""The citizen session: a state machine with an idle timeout that warns before it ends, and a wipe at the end.

    IDLE ──card read──► IDENTIFIED ──action──► IN_SERVICE ──action done──► RATING ──rated/skip──► IDLE
      └──── tap (no card) ─────────────────────► IN_SERVICE (anonymous)      └── continue ──► IN_SERVICE

Time comes from an injected clock and advances only through :meth:`Session.tick`, so the logic is tested without
waiting. No Kivy here: the shell calls ``tick()`` from a ``Clock`` interval and listens for events.
"""
from __future__ import annotations

import enum
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kiosk.errors import InvalidSessionState


class State(str, enum.Enum):
    IDLE = "idle"
    IDENTIFIED = "identified"
    IN_SERVICE = "in_service"
    RATING = "rating"


@dataclass
class Citizen:
    """Who is at the kiosk. Holds personal data: lives only in this session's memory, never logged."""

    document: Any  # drivers.idcard.identity.IdentityDocument (kept untyped: kiosk may run without that driver)
    platform_token: str = field(default="", repr=False)
    name_masked: str = ""
    id_masked: str = ""
    source: str = "idcard"  # which card device identified them: "idcard" or "smartcard"
    pin_verified: bool = False  # a social-security card accepted its PIN before giving the cardholder records
    level: str = ""  # the platform session's identity level once opened: card | card+face | card+pin

    def __repr__(self) -> str:
        return f"Citizen({self.id_masked})"


@dataclass(frozen=True)
class RatingTarget:
    """What the citizen is asked to rate after an action completed."""

    target_type: str  # "application" | "service" | "kiosk_action"
    target_id: str
    action: str  # e.g. "print_notice", "query_progress"


@dataclass
class SessionData:
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    started_at: float = 0.0
    citizen: Citizen | None = None
    rating_target: RatingTarget | None = None
    scratch: dict[str, Any] = field(default_factory=dict)  # per-session cache (results shown on screens)
    temp_dir: Path | None = None

    def wipe(self) -> None:
        """Drop every reference to personal data and delete the session's temp files."""
        if self.citizen is not None:
            self.citizen.document = None
            self.citizen.platform_token = ""
            self.citizen = None
        self.scratch.clear()
        self.rating_target = None
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


Listener = Callable[[str, dict[str, Any]], None]


class Session:
    """Thread-safe session state. Events go to listeners as ``(name, payload)``: ``started``, ``identified``,
    ``state``, ``warning`` (payload ``seconds_left``), ``warning_cleared``, ``ended`` (payload ``reason``)."""

    def __init__(self, idle_timeout_s: float = 90.0, warning_s: float = 20.0,
                 clock: Callable[[], float] = time.monotonic, temp_root: str | None = None) -> None:
        if warning_s >= idle_timeout_s:
            raise ValueError("warning_s must be shorter than idle_timeout_s")
        self.idle_timeout_s = idle_timeout_s
        self.warning_s = warning_s
        self._clock = clock
        self._temp_root = temp_root
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.state = State.IDLE
        self.data = SessionData()
        self._last_activity = clock()
        self.warning_active = False

    # listeners ------------------------------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, name: str, **payload: Any) -> None:
        for listener in list(self._listeners):
            listener(name, payload)

    # queries --------------------------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state is not State.IDLE

    @property
    def citizen(self) -> Citizen | None:
        return self.data.citizen

    def seconds_left(self) -> float:
        return max(0.0, self.idle_timeout_s - (self._clock() - self._last_activity))

    def temp_dir(self) -> Path:
        """A private folder for this session's files (e.g. a PDF to print); deleted at session end."""
        with self._lock:
            if self.data.temp_dir is None:
                self.data.temp_dir = Path(tempfile.mkdtemp(prefix="kiosk-session-", dir=self._temp_root))
            return self.data.temp_dir

    # transitions ----------------------------------------------------------------------------------------------------
    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self._emit("state", state=state.value)

    def _ensure_started(self) -> None:
        if self.state is State.IDLE:
            self.data = SessionData(started_at=self._clock())
            self._last_activity = self._clock()
            self._emit("started", session_id=self.data.id)

    def touch(self) -> None:
        """Any citizen activity: restarts the idle timer and clears a warning."""
        with self._lock:
            self._last_activity = self._clock()
            if self.warning_active:
                self.warning_active = False
                self._emit("warning_cleared")

    extend = touch

    def start_anonymous(self) -> None:
        """A tap on the attract screen without a card: services that need no identity."""
        with self._lock:
            self._ensure_started()
            self.touch()
            if self.state is State.IDLE:
                self._set_state(State.IN_SERVICE)

    def identify(self, citizen: Citizen) -> None:
        """A card was read. From idle or an anonymous session; a different card mid-session is refused."""
        with self._lock:
            current = self.data.citizen
            if current is not None and self.state is not State.IDLE:
                raise InvalidSessionState("a citizen is already identified; end the session first")
            self._ensure_started()
            self.touch()
            self.data.citizen = citizen
            self._set_state(State.IDENTIFIED)
            self._emit("identified", session_id=self.data.id, id_masked=citizen.id_masked)

    def begin_service(self) -> None:
        with self._lock:
            self._ensure_started()
            self.touch()
            if self.state in (State.IDENTIFIED, State.RATING, State.IDLE):
                self._set_state(State.IN_SERVICE)

    def complete_action(self, target: RatingTarget) -> None:
        """An action finished (printed, queried…): ask for a rating of it."""
        with self._lock:
            if self.state is State.IDLE:
                raise InvalidSessionState("no session")
            self.touch()
            self.data.rating_target = target
            self._set_state(State.RATING)

    def rating_done(self, continue_service: bool = False) -> None:
        with self._lock:
            if self.state is not State.RATING:
                raise InvalidSessionState("not rating")
            self.data.rating_target = None
            if continue_service:
                self.touch()
                self._set_state(State.IN_SERVICE)
            else:
                self.end("finished")

    def end(self, reason: str = "finished") -> str | None:
        """End the session now: wipe personal data and temp files, back to IDLE. Returns the ended session's id."""
        with self._lock:
            if self.state is State.IDLE and self.data.citizen is None and self.data.temp_dir is None:
                return None
            session_id = self.data.id
            self.data.wipe()
            self.data = SessionData()
            self.warning_active = False
            self._set_state(State.IDLE)
            self._emit("ended", session_id=session_id, reason=reason)
            return session_id

    def tick(self) -> None:
        """Advance time: raise the warning when the idle time nears its end, end the session when it is over."""
        with self._lock:
            if self.state is State.IDLE:
                return
            left = self.seconds_left()
            if left <= 0:
                self.end("timeout")
            elif left <= self.warning_s and not self.warning_active:
                self.warning_active = True
                self._emit("warning", seconds_left=left)
