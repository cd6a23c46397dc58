"""The kiosk's link to the fleet: builds the :class:`fleet.agent.FleetAgent` from the profile and turns the
controller's signed commands into core actions. The agent sees devices only through the device manager.

Commands run on the agent's command thread; anything that touches the session or screens is handed to the core's
dispatcher (the UI thread in the shell).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from device_profiles.loader import ProfileError, parse_profile

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)
APP_VERSION = "0.1.0"


class FleetLink:
    def __init__(self, ctx: "UseCaseContext") -> None:
        from fleet.agent import CommandResult, FleetAgent, HostProbe, identity_from_profile

        self.ctx = ctx
        self._result = CommandResult
        profile = ctx.profile
        config = profile.fleet
        assert config is not None
        self.sessions_started = 0
        self.agent = FleetAgent(
            profile.kiosk.id, config.broker_url,
            status_source=ctx.devices.statuses,
            verify_key=config.verify_key,
            identity=identity_from_profile(profile, app_version=APP_VERSION),
            app_source=self._app_state,
            host_probe=HostProbe(profile.kiosk.data_dir, profile.platform.url),
            command_handlers={
                "out_of_service": self._out_of_service,
                "back_in_service": self._back_in_service,
                "show_announcement": self._announce,
                "restart_app": self._restart,
                "push_profile": self._push_profile,
                "self_test": self._self_test,
                "assistance_acknowledged": self._assistance_acknowledged,
            },
            outbox_path=Path(profile.kiosk.data_dir) / "fleet-outbox.sqlite3",
            heartbeat_s=config.heartbeat_s,
        )

        # print jobs left unfinished (crash, paper out mid-job): a counter operators see, reported when it changes
        self._prints_unfinished = self._unfinished_prints()
        ctx.print_service.subscribe(self._on_print_event)

    def start(self) -> None:
        self.agent.start()

    def stop(self) -> None:
        self.agent.stop()

    def changed(self) -> None:
        """Something operators care about changed (availability, paper, a session): report it now."""
        self.agent.notify_changed()

    def journeys(self, records: list[dict[str, Any]]) -> None:
        """Finished anonymous journeys (kiosk/journey.py) → topic ``journey``, through the agent's disk outbox."""
        self.agent.report_journeys(records)

    def alarm(self, code: str, severity: str, text: str = "", active: bool = True) -> None:
        """An application alarm for operators (device ``app``): the shell's crash handler (kiosk/lifecycle.py), the
        storage guard (``storage_full``). ``active=False`` clears it (the condition is gone)."""
        self.agent.report_alarm("app", code, severity, text, active=active)
        self.agent.notify_changed()   # the service state (out of service after a crash loop) goes with it

    def event(self, device: str, code: str, severity: str, text: str = "") -> None:
        """A one-shot event for the kiosk's history on the controller (a self-test's result, a maintenance action, a
        profile's trial): sent as an alarm event of ``device`` (not ``app``: no alarm state, no alert), kept in the
        agent's disk outbox while the broker is away."""
        self.agent.report_alarm(device, code, severity, text, active=True)

    # what the agent reports besides devices ---------------------------------------------------------------------------
    def _app_state(self) -> dict[str, Any]:
        avail = self.ctx.availability
        service = "maintenance" if self.ctx.maintenance.is_open else \
            "out_of_service" if avail.out_of_service else "in_service"
        state: dict[str, Any] = {"service": service,
                                 "counters": {"sessions": self.sessions_started,
                                              "prints_unfinished": self._unfinished_prints()}}
        if self.ctx.announcement:
            state["announcement"] = self.ctx.announcement.get("zh_CN", "")
        # the audit chain head: the controller alerts when it goes backwards (tail deleted, chain rewritten)
        state["audit_head"] = self.ctx.audit_journal.head()
        return state

    def _unfinished_prints(self) -> int:
        """Print jobs waiting for staff: not completed, not settled, not printing right now (a count, no details)."""
        try:
            return int(self.ctx.staff_desk.count())
        except Exception:  # noqa: BLE001 - a journal error must not stop the telemetry
            return self._prints_unfinished if hasattr(self, "_prints_unfinished") else 0

    def _on_print_event(self, name: str, payload: dict[str, Any]) -> None:
        if name != "print_job":
            return
        count = self._unfinished_prints()
        if count != self._prints_unfinished:
            self._prints_unfinished = count
            self.changed()

    # commands ---------------------------------------------------------------------------------------------------------
    def _out_of_service(self, args: dict[str, Any]) -> Any:
        reason = str(args.get("reason") or "operator")
        self.ctx.dispatch(lambda: self.ctx.set_maintenance(f"fleet: {reason}"))
        return self._result.done("out of service once the current citizen (if any) has finished")

    def _back_in_service(self, args: dict[str, Any]) -> Any:
        self.ctx.dispatch(lambda: self.ctx.set_maintenance(None))
        return self._result.done()

    def _announce(self, args: dict[str, Any]) -> Any:
        texts = {k: str(v) for k, v in args.items() if k in ("zh_CN", "en") and v}
        if not texts and args.get("text"):
            texts = {"zh_CN": str(args["text"])}
        self.ctx.dispatch(lambda: self.ctx.announce(texts or None))
        return self._result.done("announcement cleared" if not texts else "announcement shown")

    def _restart(self, args: dict[str, Any]) -> Any:
        # the result is published first; the shell exits and its supervisor (systemd Restart=) starts it again
        self.ctx.dispatch(lambda: self.ctx.request_restart("fleet"))
        return self._result.done("restarting")

    def _push_profile(self, args: dict[str, Any]) -> Any:
        """Validate the pushed profile completely before it replaces the current one (atomically); then restart."""
        text = args.get("profile")
        if not isinstance(text, str):
            return self._result.failed("no profile text")
        try:
            data = yaml.safe_load(text)
            new = parse_profile(data, "pushed profile", environ={})
        except (yaml.YAMLError, ProfileError) as exc:
            problems = getattr(exc, "problems", [str(exc)])
            return self._result.failed("invalid profile", problems=problems[:20])
        if new.kiosk.id != self.ctx.profile.kiosk.id:
            return self._result.failed("profile is for another kiosk", code="profile_wrong_kiosk")
        refused = self._check_protected(data, args.get("profile_signature"))
        if refused is not None:
            return refused
        # written atomically; tried at the next start, rolled back if a required device fails (profile_updates.py)
        self.ctx.profile_updates.stage(text, new.digest)
        self.ctx.dispatch(lambda: self.ctx.request_restart("profile pushed"))
        return self._result.done("profile saved; restarting to try it", digest=new.digest)

    def _check_protected(self, data: Any, signature: Any) -> Any:
        """A pushed profile that turns on simulators or the demo bar, or changes the staff PIN, the platform's URL or
        credentials, or the fleet link's broker or keys, needs its own signature for this kiosk by the profile-signing
        key this kiosk's local profile trusts (fleet/profile_signing.py); None when the push may go ahead."""
        from fleet.profile_signing import ProfileSignatureError, protected_changes, verify_profile

        try:
            current = yaml.safe_load(Path(self.ctx.profile.source).read_text("utf-8"))
        except (OSError, yaml.YAMLError):
            current = {}  # cannot compare: everything protected counts as changed
        changes = protected_changes(current, data)
        if not changes:
            return None
        if signature is None:
            log.warning("pushed profile refused: it changes %s and carries no profile signature", ", ".join(changes))
            return self._result.failed("the profile changes protected settings and is not signed for this kiosk",
                                       code="profile_not_signed", changes=changes[:20])
        fleet = self.ctx.profile.fleet
        try:
            verify_profile(fleet.profile_signing_key if fleet else "", data, self.ctx.profile.kiosk.id, signature)
        except ProfileSignatureError as exc:
            log.warning("pushed profile refused: %s (%s)", exc.code, exc)
            return self._result.failed(f"profile signature refused: {exc.code}", code=exc.code, changes=changes[:20])
        log.info("pushed profile with protected changes %s: signature for this kiosk verified", ", ".join(changes))
        return None

    def _assistance_acknowledged(self, args: dict[str, Any]) -> Any:
        """A member of staff acknowledged the citizen's help request on the dashboard: "someone is coming"."""
        request = args.get("request") if isinstance(args.get("request"), str) else None
        self.ctx.dispatch(lambda: self.ctx.assistance.acknowledged(request))
        return self._result.done("shown on the kiosk")

    def _self_test(self, args: dict[str, Any]) -> Any:
        """The internal self-test (open + status) of every device, or ``{"level": "external"}`` (a test slip, a
        pad loopback… — a card or a face needs a technician there and fails without one)."""
        level = args.get("level") if args.get("level") in ("internal", "external") else "internal"
        if level == "external" and self.ctx.session.active:
            return self._result.failed("a citizen is being served: external self-test refused", code="busy")
        run = self.ctx.self_tests.run(level, origin="fleet")
        devices = {kind: r.to_dict() for kind, r in run.results.items()}
        return self._result.done(run.text(), devices=devices) if run.ok else \
            self._result.failed(run.text(), devices=devices)
