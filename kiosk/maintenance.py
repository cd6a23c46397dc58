"""Maintenance mode: a technician opens it on site with their own card (ID or social-security card) and PIN, both
checked by the platform against this kiosk's technician list (service_platform/technicians.py: the kiosk sends only
the card number's hash, the answers are yes/no). Five taps in the corner open only the staff screen's PIN pad; from
there "technician maintenance" arms this flow.

States: ``closed`` → ``waiting_card`` (the next card read goes here, not to a citizen session) → ``pin`` (a listed
technician's card) → ``open``; a card that is not listed → ``refused``; ``exit`` → ``closed``. While open, the kiosk
serves no citizen (availability ``maintenance``: citizens see "under maintenance", the fleet sees service
``maintenance``) and the technician may read each device's status, counters and last errors, run self-tests at any
level, work the reprint queue (the staff desk, unlocked), switch to another profile on the kiosk (tried like a push,
rolled back if a required device fails), restart the kiosk, and leave. Every step is audited and reported to the fleet
as an event of device ``maintenance`` with the technician's card masked (``3403**********2018``) — never in clear.

Blocking calls (platform, devices) run on the core's workers; results come back through callbacks (dispatcher).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from drivers.health import HealthOptions, Level
from kiosk.errors import KioskError, KioskRateLimited, PlatformUnavailable, error_code

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)
CARD_HASH_CONTEXT = "kiosk-technician-card-v1:"
#: how long the flow waits for the technician's card, then their PIN, before it closes by itself
WAIT_CARD_S, WAIT_PIN_S = 60.0, 120.0
#: wrong PINs the kiosk accepts in one opening before it closes the flow (the platform locks after 5 in a row)
PIN_TRIES = 3
STATES = ("closed", "waiting_card", "checking", "pin", "open", "refused")
Callback = Callable[[Any], None] | None


class MaintenanceError(KioskError):
    """A maintenance step was refused (``code``: not_open, card_refused, pin_wrong, locked, profile_refused…)."""

    code = "maintenance_refused"
    translation_key = "maintenance.error.refused"

    #: codes with their own text (kiosk/locales/*/maintenance.yaml); any other says "refused"
    TEXTS = frozenset({"not_open", "card_refused", "pin_wrong", "pin_malformed", "locked", "platform_unavailable",
                       "citizen_present", "not_waiting_for_pin", "profile_invalid", "profile_wrong_kiosk",
                       "profile_protected"})

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.translation_key = f"maintenance.error.{code if code in self.TEXTS else 'refused'}"


def technician_card_hash(number: str) -> str:
    """What the platform lists a technician by: SHA-256 hex of the context string and the card's number."""
    return hashlib.sha256((CARD_HASH_CONTEXT + "".join(number.split()).upper()).encode("utf-8")).hexdigest()


@dataclass
class DeviceView:
    """One device on the maintenance screen: status, counters, last errors (error code → count)."""

    kind: str
    required: bool
    state: str
    error_code: str
    paper: str
    counters: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    detail: str = ""


class MaintenanceMode:
    def __init__(self, ctx: "UseCaseContext", clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self._clock = clock
        self.state = "closed"
        self._hash = ""
        self.card_masked = ""
        self._deadline = 0.0
        self._pin_failures = 0
        self._lock = threading.Lock()

    # the flow ---------------------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def wants_card(self) -> bool:
        return self.state == "waiting_card"

    def begin(self) -> None:
        """The technician asked for maintenance (staff screen): the next card read is theirs. Refused while a
        citizen is identified (their session must end first: nothing of them stays behind a technician)."""
        if self.state == "open":
            return
        if self.ctx.session.citizen is not None:
            raise MaintenanceError("citizen_present")
        self._set("waiting_card", WAIT_CARD_S)
        self._record("maintenance_begin")

    def cancel(self) -> None:
        if self.state == "closed":
            return
        if self.state == "open":
            self.exit()
            return
        self._forget()
        self._set("closed")

    def tick(self) -> None:
        """From the core's tick: a flow left waiting (no card, no PIN) closes by itself; while open, the technician's
        session does not time out like a citizen's."""
        if self.state == "open":
            self.ctx.session.touch()
            return
        if self.state in ("waiting_card", "pin", "refused") and self._clock() >= self._deadline:
            self._record("maintenance_timeout", step=self.state)
            self._forget()
            self._set("closed")

    def card(self, document: Any) -> None:
        """A card was read while waiting (UI thread): ask the platform whether it is a technician of this kiosk."""
        if self.state != "waiting_card":
            return
        number = str(getattr(document, "id_number", "") or "")
        self._hash = technician_card_hash(number)
        self.card_masked = document.masked_id() if hasattr(document, "masked_id") else "*" * len(number)
        self._set("checking", WAIT_CARD_S)

        def listed(yes: bool) -> None:
            if self.state != "checking":
                return
            if yes:
                self._pin_failures = 0
                self._set("pin", WAIT_PIN_S)
                self._record("maintenance_card_accepted")
            else:
                self._refuse("card_refused")

        self.ctx.workers.submit(self.ctx.platform.technician_lookup, self._hash, on_result=listed,
                                 on_error=lambda exc: self._refuse(_code(exc)))

    def submit_pin(self, pin: str, on_result: Callback = None, on_error: Callback = None) -> None:
        """The technician's PIN (never stored, logged or audited): the platform checks it with the card's hash."""
        if self.state != "pin":
            self._fail(on_error, MaintenanceError("not_waiting_for_pin"))
            return
        if not pin.isdigit() or not 4 <= len(pin) <= 12:
            self._fail(on_error, MaintenanceError("pin_malformed"))
            return
        self._set("checking", WAIT_PIN_S)

        def answered(yes: bool) -> None:
            if yes:
                self._open()
                if on_result:
                    on_result(True)
                return
            self._pin_failures += 1
            self._record("maintenance_pin_wrong", failures=self._pin_failures)
            if self._pin_failures >= PIN_TRIES:
                self._refuse("pin_wrong")
            else:
                self._set("pin", WAIT_PIN_S)
            self._fail(on_error, MaintenanceError("pin_wrong"))

        def failed(exc: BaseException) -> None:
            code = _code(exc)
            if code == "locked":
                self._refuse("locked")
            else:
                self._set("pin", WAIT_PIN_S)
            self._fail(on_error, MaintenanceError(code))

        self.ctx.workers.submit(self.ctx.platform.technician_verify, self._hash, pin, on_result=answered,
                                 on_error=failed)

    def _open(self) -> None:
        self._set("open")
        self.ctx.set_maintenance("technician")
        self.ctx.staff_desk.open_for_technician()
        self._record("maintenance_opened", severity="warning")

    def exit(self) -> None:
        """Leave maintenance: the kiosk serves citizens again (if its devices and the platform allow)."""
        if self.state != "open":
            self.cancel()
            return
        self._record("maintenance_closed", severity="info")
        self.ctx.staff_desk.lock()
        self._forget()
        self._set("closed")
        self.ctx.set_maintenance(None)
        self.ctx.check_health()

    def _refuse(self, code: str) -> None:
        self._record("maintenance_refused", severity="warning", code=code)
        self._forget()
        self._set("refused", 10.0)
        self.ctx.emit("maintenance_refused", code=code)

    def _forget(self) -> None:
        """Nothing of the last card stays for the next opening (a refused citizen's masked number included)."""
        self._hash, self._pin_failures, self.card_masked = "", 0, ""

    # while open -------------------------------------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self.state != "open":
            raise MaintenanceError("not_open")

    def devices(self) -> list[DeviceView]:
        """Each device's status, counters and last errors (blocking: a worker)."""
        self._require_open()
        views = []
        for kind, config in self.ctx.profile.devices.items():
            status = self.ctx.devices.status(kind)
            counters = {k: int(v) for k, v in status.counters.items() if not k.startswith("errors.")}
            errors = {k.split(".", 1)[1]: int(v) for k, v in status.counters.items() if k.startswith("errors.")}
            start_error = self.ctx.devices.start_errors.get(kind)
            if start_error is not None:
                errors.setdefault(start_error.code, 1)
            views.append(DeviceView(kind=kind, required=config.required, state=status.device.value,
                                    error_code=status.error_code or "", paper=status.paper.value if status.paper else "",
                                    counters=counters, errors=errors, detail=status.detail[:120]))
        self._record("maintenance_devices_viewed", report=False)
        return views

    def self_test(self, level: str = "internal", kinds: list[str] | None = None,
                  confirm: Callable[[str], bool] | None = None, card_timeout_s: float = 30.0) -> Any:
        """Self-test (blocking: a worker) at a level; the interactive level asks ``confirm(question)``. When a test
        starts waiting for the technician (``place_card``, ``look_at_camera``) the shell hears ``maintenance_prompt``:
        only then does a card placed reach the test (a card the watchers read first is halted, unseen by the test)."""
        self._require_open()
        options = HealthOptions(confirm=confirm, card_timeout_s=card_timeout_s,
                                prompt=lambda what: self.ctx.emit("maintenance_prompt", what=what))
        # the technician's test card must reach the self-test, not this flow or a citizen session
        watchers = list(self.ctx.card_watchers) if Level(level) is not Level.INTERNAL else []
        for w in watchers:
            w.stop()
        try:
            run = self.ctx.self_tests.run(level, origin="maintenance", options=options, kinds=kinds)
        finally:
            for w in watchers:
                w.start()
        self._record("maintenance_self_test", report=False, level=run.level.value, ok=run.ok,
                     failed=run.failed())
        return run

    def reprint_queue(self) -> list[Any]:
        self._require_open()
        return self.ctx.staff_desk.jobs()

    def reprint(self, job_id: str) -> Any:
        self._require_open()
        self._record("maintenance_reprint")
        return self.ctx.staff_desk.reprint(job_id)

    def profiles(self) -> list[str]:
        """Profiles a technician may switch to: ``<data_dir>/profiles/local/*.yaml`` (brought on a USB stick or
        prepared by the city) and the last good one."""
        self._require_open()
        folder = Path(self.ctx.profile.kiosk.data_dir) / "profiles"
        names = sorted(p.name for p in (folder / "local").glob("*.yaml"))
        return names + (["last-good.yaml"] if (folder / "last-good.yaml").exists() else [])

    def switch_profile(self, name: str) -> str:
        """Stage another profile (validated; protected settings refused — those need a signed push) and restart
        into its trial: a required device that fails rolls it back. Returns its digest."""
        self._require_open()
        from device_profiles.loader import ProfileError, parse_profile
        from fleet.profile_signing import protected_changes

        folder = Path(self.ctx.profile.kiosk.data_dir) / "profiles"
        path = folder / "last-good.yaml" if name == "last-good.yaml" else folder / "local" / Path(name).name
        try:
            text = path.read_text("utf-8")
            data = yaml.safe_load(text)
            new = parse_profile(data, str(path), environ={})
        except (OSError, yaml.YAMLError, ProfileError) as exc:
            self._record("maintenance_profile_refused", code="profile_invalid")
            raise MaintenanceError("profile_invalid", str(exc)[:200]) from None
        if new.kiosk.id != self.ctx.kiosk_id:
            self._record("maintenance_profile_refused", code="profile_wrong_kiosk")
            raise MaintenanceError("profile_wrong_kiosk")
        try:
            current = yaml.safe_load(Path(self.ctx.profile.source).read_text("utf-8"))
        except (OSError, yaml.YAMLError):
            current = {}
        changes = protected_changes(current, data)
        if changes:
            self._record("maintenance_profile_refused", code="profile_protected", changes=changes[:10])
            raise MaintenanceError("profile_protected", ", ".join(changes[:10]))
        self.ctx.profile_updates.stage(text, new.digest)
        self._record("maintenance_profile_switched", digest=new.digest, profile=path.name)
        self.ctx.request_restart("maintenance: profile switched")
        return new.digest

    def restart(self) -> None:
        self._require_open()
        self._record("maintenance_restart")
        self.ctx.request_restart("maintenance")

    # plumbing ---------------------------------------------------------------------------------------------------------
    def _set(self, state: str, wait_s: float = 0.0) -> None:
        with self._lock:
            self.state = state
            self._deadline = self._clock() + wait_s
        self.ctx.emit("maintenance", state=state)
        if self.ctx.fleet is not None:
            self.ctx.fleet.changed()

    def _record(self, action: str, severity: str = "info", report: bool = True, **fields: Any) -> None:
        """Audit every step; report it to the fleet (device ``maintenance``), the card masked."""
        self.ctx.audit(action, card=self.card_masked, **fields)
        fleet = self.ctx.fleet
        if not report or fleet is None:
            return
        detail = ", ".join(f"{k}={v}" for k, v in fields.items() if k != "changes")
        try:
            fleet.event("maintenance", action[:40], severity,
                        f"technician {self.card_masked or '-'}" + (f": {detail}" if detail else ""))
        except Exception as exc:  # noqa: BLE001 - the audit journal has it; the fleet link may be down
            log.warning("maintenance event %s not queued: %s", action, type(exc).__name__)

    def _fail(self, on_error: Callback, exc: BaseException) -> None:
        if on_error:
            self.ctx.dispatch(lambda: on_error(exc))


def _code(exc: BaseException) -> str:
    if isinstance(exc, KioskRateLimited):
        return "locked"
    if isinstance(exc, PlatformUnavailable):
        return "platform_unavailable"
    return error_code(exc) or "failed"
