"""Help that reaches a person: the Help button on every screen (screens/control_bar.py) asks for a member
of staff.

    tap Help ──► Assistance.request(screen)
                   ├─ worker: the kiosk's hall (profile ``kiosk.hall``) from the platform — open now? its phone
                   ├─ worker: fleet alarm ``assistance_requested`` (critical, device ``app``) over the app-alarm path
                   │          (kiosk/fleet_link.py → agent outbox → controller rule ``app_alarm``): kiosk, screen, time
                   └─ event ``assistance`` (state ``waiting`` · ``hall_closed`` · ``not_sent``)
    operator acknowledges the alert on the dashboard ──► controller sends the signed command
    ``assistance_acknowledged`` ──► FleetLink ──► Assistance.acknowledged() ──► event ``assistance`` (``coming``)

While the hall is closed (or its hours unknown and the alarm could not be sent) the screen gives the hall's phone,
else 12345 (the citizens' service hotline). No personal data anywhere: the alarm carries the screen name and the time
only; the request is the kiosk's, not the session's (a person may still stand at the kiosk after a timeout), and it
expires after :attr:`Assistance.expire_after_s`.

No Kivy here: events go through the core's ``emit`` (the dispatcher: the UI thread in the shell).
"""
from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable

from kiosk.errors import error_code

log = logging.getLogger(__name__)

ALARM_CODE = "assistance_requested"
#: the fleet command that carries a staff member's acknowledgement back (fleet/controller/service.py)
ACK_COMMAND = "assistance_acknowledged"
#: the citizens' service hotline (12345 政务服务便民热线), when the hall names no phone
HOTLINE = "12345"
#: states of a request, in the order they can happen
STATES = ("sending", "waiting", "hall_closed", "not_sent", "coming")
_SCREEN_RE = re.compile(r"[^a-z_]")   # screen names: letters and _ only (never a number)


@dataclass(frozen=True)
class HallInfo:
    """What the help screen needs to know about the kiosk's hall (public data from the platform)."""

    name: str = ""
    phone: str = HOTLINE
    open_now: bool | None = None     # None: unknown (no hall configured, platform unreachable)
    next_open_at: str = ""


@dataclass(frozen=True)
class AssistanceRequest:
    """One help request as the screen shows it (a snapshot: a new one is emitted on every change)."""

    id: str
    screen: str
    requested_at: datetime
    state: str = "sending"
    hall: HallInfo = HallInfo()

    @property
    def open(self) -> bool:
        """Still waiting for a person (not answered, not given up)."""
        return self.state in ("sending", "waiting", "hall_closed")


class Assistance:
    """The kiosk's help requests. ``fleet`` returns the FleetLink (or None), ``halls`` the platform's halls
    (blocking: called on a worker)."""

    def __init__(self, hall_code: str, *, fleet: Callable[[], Any], halls: Callable[[], list[Any]], workers: Any,
                 emit: Callable[..., None], audit: Callable[..., None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now().astimezone(),
                 resend_after_s: float = 60.0, expire_after_s: float = 900.0) -> None:
        self.hall_code = hall_code
        self._fleet = fleet
        self._halls = halls
        self._workers = workers
        self._emit = emit
        self._audit = audit
        self._clock = clock
        self._wall = wall
        self.resend_after_s = resend_after_s
        self.expire_after_s = expire_after_s
        self._lock = threading.Lock()
        self._current: AssistanceRequest | None = None
        self._since = 0.0

    @property
    def current(self) -> AssistanceRequest | None:
        """The request being answered, or None (none made, or it expired)."""
        with self._lock:
            if self._current is not None and self._clock() - self._since > self.expire_after_s:
                self._current = None
            return self._current

    def request(self, screen: str) -> AssistanceRequest:
        """A citizen tapped Help on ``screen``. A request still waiting is shown again rather than sent twice (until
        :attr:`resend_after_s` passed: then it is raised again)."""
        screen = _SCREEN_RE.sub("", str(screen).lower())[:40] or "unknown"
        current = self.current
        if current is not None and current.open and self._clock() - self._since < self.resend_after_s:
            self._emit("assistance", request=current)
            return current
        req = AssistanceRequest(id=uuid.uuid4().hex[:12], screen=screen, requested_at=self._wall())
        with self._lock:
            self._current, self._since = req, self._clock()
        self._audit("assistance_requested", screen=screen, request=req.id)
        self._emit("assistance", request=req)
        self._workers.submit(self._send, req, on_result=self._sent,
                             on_error=lambda exc: self._sent(replace(req, state="not_sent")))
        return req

    def acknowledged(self, request_id: str | None = None) -> bool:
        """Staff acknowledged the alarm (fleet command): "someone is coming". False when nothing was waiting, or when
        the acknowledgement names another request (``request_id``, from the alarm's text): a command queued while the
        kiosk was unreachable must not tell a later citizen that someone is coming for them."""
        with self._lock:
            req = self._current
            if req is None or not req.open:
                return False
            stale = bool(request_id) and request_id != req.id
            if not stale:
                req = self._current = replace(req, state="coming")
        if stale:
            self._audit("assistance_ack_stale", request=req.id, acknowledged=request_id)
            return False
        self._audit("assistance_acknowledged", request=req.id)
        self._emit("assistance", request=req)
        return True

    def dismiss(self) -> None:
        """The citizen closed the help panel: a request answered is done (one still waiting stays)."""
        with self._lock:
            if self._current is not None and not self._current.open:
                self._current = None

    # worker ---------------------------------------------------------------------------------------------------------
    def _send(self, req: AssistanceRequest) -> AssistanceRequest:
        hall = self._hall()
        fleet = self._fleet()
        where = {True: "open", False: "closed", None: "unknown"}[hall.open_now]
        sent = False
        if fleet is not None:
            text = (f"help requested (request {req.id}) on screen {req.screen} at "
                    f"{req.requested_at:%Y-%m-%d %H:%M:%S}; hall {where}")
            try:
                fleet.alarm(ALARM_CODE, "critical", text)
                sent = True
            except Exception as exc:  # noqa: BLE001 - the citizen is given the phone instead
                log.warning("assistance alarm not queued: %s", type(exc).__name__)
        if hall.open_now is False:
            state = "hall_closed"
        else:
            state = "waiting" if sent else "not_sent"
        return replace(req, state=state, hall=hall)

    def _hall(self) -> HallInfo:
        if not self.hall_code:
            return HallInfo()
        try:
            for hall in self._halls():
                if hall.code == self.hall_code:
                    return HallInfo(name=hall.name, phone=hall.phone or HOTLINE, open_now=hall.open_now,
                                    next_open_at=hall.next_open_at)
            log.warning("hall %s not on the platform: help gives %s", self.hall_code, HOTLINE)
        except Exception as exc:  # noqa: BLE001 - platform down: hours unknown
            log.warning("hall hours unavailable: %s", error_code(exc))
        return HallInfo()

    def _sent(self, req: AssistanceRequest) -> None:
        with self._lock:
            current = self._current
            if current is None or current.id != req.id or current.state == "coming":
                return   # answered (or replaced) meanwhile
            self._current = req
        self._emit("assistance", request=req)
