"""Anonymous journey recording: each citizen session as a sequence of steps (screens entered and left, with
durations), the services used and how the session ended — for the operators' reports (fleet topic ``journey``,
``fleet/protocol.py`` :func:`check_journey`). No Kivy here.

What a record holds, and nothing else: a random session id (12 letters, drawn here, never the kiosk's own session id
nor the platform's), when it started relative to now, its duration, screen names and seconds spent on each, the
service codes entered (the kiosk's feature names, e.g. ``print``, ``apply``), each service's outcome and time, the
session's outcome (completed · abandoned · timed_out · error · out_of_service), the step it ended on and an error code,
the screens each service went through (for the per-service funnel) and the ratings given (service code, stars and the
suggested tag codes — never the comment, never a free-text tag).
Never an ID/card/application number, a name or anything typed: the hooks take only screen names and codes, and
every value is checked against the protocol's closed alphabets before it is kept.

Hooks: the core calls :meth:`start`/:meth:`end` from its session events and :meth:`completed` when an action
completes (the session asks for a rating), :meth:`error` when a use-case fails, :meth:`rated` when the citizen
submits a rating; the shell calls :meth:`step` on every
screen change (``core.journey.step(screen, service_code=None)``). Finished records go to ``sink`` (the fleet link's
agent, which batches them through its disk outbox) or wait in :attr:`pending` (no fleet link).
"""
from __future__ import annotations

import secrets
import string
import threading
import time
from functools import lru_cache
from typing import Any, Callable

from fleet.protocol import (JOURNEY_NAME_RE, MAX_JOURNEY_RATING_TAGS, MAX_JOURNEY_RATINGS, MAX_JOURNEY_SERVICE_SCREENS,
                            MAX_JOURNEY_SERVICES, MAX_JOURNEY_STEPS, journey_name_ok, journey_service_ok)

#: finished records kept while no fleet link takes them (a kiosk without a fleet keeps only the latest few: memory
#: stays flat over months of sessions)
PENDING_MAX = 50
#: screens → funnel steps (attract → card → face → menu → service → done); other screens are service screens
#: (their service code from SERVICE_OF_SCREEN, else the screen name) or ignored (rating, staff, out_of_service)
STEP_OF_SCREEN = {"attract": "attract", "face_consent": "face", "face_check": "face", "menu": "menu",
                  "rating": "rating"}
SERVICE_OF_SCREEN = {"apply": "apply", "apply_notice": "apply", "apply_form": "apply", "appointment": "booking",
                     "certificates": "certificates", "delivery": "delivery", "guide": "guide",
                     "guide_detail": "guide", "payment": "pay", "print_confirm": "print", "progress": "progress"}
NOT_JOURNEY = frozenset({"staff", "out_of_service"})
#: session end reasons → outcome when nothing was completed
END_OUTCOME = {"timeout": "timed_out", "finished": "abandoned", "card_removed": "abandoned", "shutdown": "error",
               "crash": "error", "error": "error", "recover": "error", "out_of_service": "out_of_service",
               "maintenance": "out_of_service"}
_ALPHABET = string.ascii_lowercase


#: the rating screen's tags (kiosk/locales ``rating.tags_good`` / ``rating.tags_bad``, in this order) → the
#: platform's suggested tag codes (``GET /api/v1/rating-tags``): the journey carries codes, never the text shown
TAG_CODES_GOOD = ("fast", "one_visit", "easy_to_use", "clear_guidance")
TAG_CODES_BAD = ("long_wait", "too_many_materials", "complicated", "device_fault")


@lru_cache(maxsize=1)
def tag_codes() -> dict[str, str]:
    """Every language's tag text (lower-cased) → its code; the codes themselves map to themselves."""
    from kiosk.i18n import LANGUAGES, table

    out = {c: c for c in (*TAG_CODES_GOOD, *TAG_CODES_BAD)}
    for language in LANGUAGES:
        t = table(language)
        for key, codes in (("rating.tags_good", TAG_CODES_GOOD), ("rating.tags_bad", TAG_CODES_BAD)):
            for text, code in zip(t.get(key, "").split("|"), codes):
                if text.strip():
                    out[text.strip().lower()] = code
    return out


def new_session_id() -> str:
    """12 random lowercase letters (56 bits): not linkable to any other id, and never digit-like."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _name(value: Any) -> str | None:
    text = str(value or "").strip().lower()[:40]
    return text if JOURNEY_NAME_RE.match(text) else None


class JourneyRecorder:
    def __init__(self, sink: Callable[[list[dict[str, Any]]], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        self._cur: dict[str, Any] | None = None

    # hooks ----------------------------------------------------------------------------------------------------------
    def start(self, screen: str = "attract") -> None:
        """A session started (a card read or a tap on the attract screen)."""
        with self._lock:
            now = self._clock()
            self._cur = {"sid": new_session_id(), "t0": now, "wall0": self._wall(), "steps": [], "step": None,
                         "step_t": now, "services": {}, "service": None, "completed": False, "err": None,
                         "oos": False, "ratings": []}
            self._enter(screen, now)

    def step(self, screen: str, service_code: str | None = None) -> None:
        """The shell shows ``screen``; ``service_code`` names the service when the screen alone does not."""
        with self._lock:
            if self._cur is None or screen in NOT_JOURNEY:
                return
            self._enter(screen, self._clock(), service_code)

    def identified(self) -> None:
        """A card was read: the funnel's ``card`` step (the attract screen reads it; no screen of its own)."""
        self.step("card")

    def completed(self, service_code: str | None = None) -> None:
        """The citizen completed an action (printed, submitted, paid, read a progress): the current service done."""
        with self._lock:
            cur = self._cur
            if cur is None:
                return
            now = self._clock()
            code = service_code if journey_service_ok(service_code) else cur["service"]
            if code is None:
                code = "other"
            svc = cur["services"].setdefault(code, [code, "abandoned", now, None, []])
            if svc[1] != "completed":
                svc[1], svc[3] = "completed", now
            cur["completed"] = True

    def error(self, code: str | None) -> None:
        """A use-case failed (the platform unreachable, a device error): the last error code of this session."""
        with self._lock:
            if self._cur is not None:
                self._cur["err"] = _name(code) or "error"

    def rated(self, stars: int, tags: list[str] | None = None, service_code: str | None = None) -> None:
        """The citizen rated what they just did: stars and the suggested tag codes (anything that is not a code —
        free text, a number — is dropped; the comment never comes here). Counted for ``service_code`` or the
        current service."""
        with self._lock:
            cur = self._cur
            if cur is None or type(stars) is not int or not 1 <= stars <= 5 \
                    or len(cur["ratings"]) >= MAX_JOURNEY_RATINGS:
                return
            code = service_code if journey_service_ok(service_code) else (cur["service"] or "other")
            codes: list[str] = []
            known = tag_codes()
            for tag in tags or []:
                tag = str(tag).strip().lower()
                tag = known.get(tag, tag)   # a tag as shown on screen → its code; anything else must be a code
                if journey_name_ok(tag) and tag not in codes and len(codes) < MAX_JOURNEY_RATING_TAGS:
                    codes.append(tag)
            cur["ratings"].append([code, stars, codes])

    def out_of_service(self) -> None:
        """The kiosk went out of service during the session."""
        with self._lock:
            if self._cur is not None:
                self._cur["oos"] = True

    def end(self, reason: str) -> dict[str, Any] | None:
        """The session ended (``reason`` from :class:`kiosk.session.Session`): the record is finished and handed to
        the sink (or kept in :attr:`pending`)."""
        with self._lock:
            cur, self._cur = self._cur, None
            if cur is None:
                return None
            now = self._clock()
            self._close_step(cur, now)
            if cur["completed"]:
                outcome = "completed"
            elif cur["oos"]:
                outcome = "out_of_service"
            else:
                outcome = END_OUTCOME.get(reason, "abandoned")
                if outcome == "abandoned" and cur["err"]:
                    outcome = "error"
            services = []
            for code, state, entered, done, screens in list(cur["services"].values())[:MAX_JOURNEY_SERVICES]:
                svc_outcome = state if state == "completed" else (outcome if outcome != "completed" else "abandoned")
                services.append([code, svc_outcome, round(max(0.0, (done or now) - entered), 1), list(screens)])
            steps = cur["steps"][:MAX_JOURNEY_STEPS - 1]
            last = steps[-1][0] if steps else "attract"
            if outcome == "completed":
                steps.append(["done", 0.0])
            record = {"sid": cur["sid"], "start_s": round(max(0.0, self._wall() - cur["wall0"]), 1),
                      "dur_s": round(min(86_400.0, max(0.0, now - cur["t0"])), 1), "outcome": outcome,
                      "at": "done" if outcome == "completed" else last, "err": cur["err"],
                      "steps": steps, "services": services}
            if cur["ratings"]:
                record["ratings"] = cur["ratings"]
        self._deliver([record])
        return record

    # internals ------------------------------------------------------------------------------------------------------
    def _deliver(self, records: list[dict[str, Any]]) -> None:
        if self.sink is None:
            with self._lock:
                self.pending.extend(records)
                del self.pending[:-PENDING_MAX]
            return
        try:
            self.sink(records)
        except Exception:  # noqa: BLE001 - analytics must never disturb the citizen's session
            import logging

            logging.getLogger(__name__).exception("journey record not queued")

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self.pending = self.pending, []
        return out

    def _close_step(self, cur: dict[str, Any], now: float) -> None:
        if cur["step"] is not None:
            secs = round(min(86_400.0, max(0.0, now - cur["step_t"])), 1)
            if len(cur["steps"]) < MAX_JOURNEY_STEPS - 1:
                cur["steps"].append([cur["step"], secs])
            cur["step"] = None

    def _enter(self, screen: str, now: float, service_code: str | None = None) -> None:
        cur = self._cur
        assert cur is not None
        name = _name(screen)
        if name is None:
            return
        step = STEP_OF_SCREEN.get(name, name)
        if step == cur["step"]:
            return
        self._close_step(cur, now)
        cur["step"], cur["step_t"] = step, now
        if name in STEP_OF_SCREEN or name == "card":
            return
        code = service_code if journey_service_ok(service_code) else SERVICE_OF_SCREEN.get(name, name)
        cur["service"] = code
        if code not in cur["services"] and len(cur["services"]) < MAX_JOURNEY_SERVICES:
            cur["services"][code] = [code, "abandoned", now, None, []]
        svc = cur["services"].get(code)
        if svc is not None and name not in svc[4] and len(svc[4]) < MAX_JOURNEY_SERVICE_SCREENS:
            svc[4].append(name)   # the service's screens in the order first seen: its funnel on the controller
