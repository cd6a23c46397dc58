"""Profile versions on the kiosk: a pushed profile applied atomically, tried, and rolled back when it breaks a
required device; a technician's local change reported as drift.

Files under ``<data_dir>/profiles/``:

* ``last-good.yaml`` — the last profile whose internal self-test passed every required device;
* ``state.json`` — ``{"known": digest}``: the profile this kiosk last knew it was running (pushed and tried, or
  accepted as drift), and while a pushed profile waits for its trial ``{"pending": {"digest", "previous", "starts"}}``.

A push (:meth:`ProfileUpdates.stage`): the new text replaces the profile file atomically (temp file, fsync,
``os.replace``), the trial is marked pending, and the kiosk restarts into it. At the next start
(:meth:`ProfileUpdates.after_start`, on a worker once the devices are open) the internal self-test runs: every
required device passes → ``profile_applied`` (info) and it becomes the last good profile; a required device fails
(or the kiosk crashed twice starting with it) → ``profile_trial_failed`` (major: which device, why) and the last
good profile is put back (atomically again), ``profile_rolled_back`` (major, an operators' alert) and a restart;
the start after that reports ``profile_restored`` with its own self-test. A profile file that differs from the known
one with no trial pending was changed on the kiosk itself: ``profile_drift`` (warning) names the changed fields (paths
only, never values) and the change becomes the known profile. Events go to the audit journal and the fleet (device
``profile``; the rollback also as an application alarm, so operators get an alert); the birth's ``profile_hash``
is the reported version the controller compares with the desired one.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from drivers.health import Level

if TYPE_CHECKING:
    from kiosk.context import UseCaseContext

log = logging.getLogger(__name__)
#: a kiosk that starts this often with a pending profile without finishing its trial (it crashes) rolls back
MAX_TRIAL_STARTS = 2


def write_atomically(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` so that a reader (or a power cut) sees the old file or the new, never half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def changed_paths(old: Any, new: Any, prefix: str = "", limit: int = 40) -> list[str]:
    """Dotted paths whose values differ between two parsed profiles (values never shown)."""
    out: list[str] = []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            out += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key), limit)
            if len(out) >= limit:
                break
    elif old != new:
        out.append(prefix or "(profile)")
    return out[:limit]


class ProfileUpdates:
    def __init__(self, ctx: "UseCaseContext") -> None:
        self.ctx = ctx
        self.source = Path(ctx.profile.source)
        self.folder = Path(ctx.profile.kiosk.data_dir) / "profiles"
        self.state_file = self.folder / "state.json"
        self.last_good = self.folder / "last-good.yaml"
        #: the outcome of this start's check (for tests and the maintenance screen)
        self.outcome: str = ""
        self._count_start()

    def _count_start(self) -> None:
        """Count this start of a pending profile now, before anything can crash: a profile that kills the kiosk
        while starting is rolled back after :data:`MAX_TRIAL_STARTS` starts."""
        state = self._state()
        pending = state.get("pending")
        if isinstance(pending, dict) and pending.get("digest") == self.ctx.profile.digest \
                and not pending.get("rolled_back_from"):
            pending["starts"] = int(pending.get("starts", 0)) + 1
            try:
                self._save(state)
            except OSError as exc:
                log.warning("profile trial start not counted: %s", type(exc).__name__)
            if pending["starts"] > MAX_TRIAL_STARTS and self.last_good.exists():
                # the kiosk died starting with it: the file goes back now, whatever happens to this process
                log.error("profile %s did not survive %d starts: putting the last good profile back",
                          pending["digest"], pending["starts"] - 1)
                write_atomically(self.source, self.last_good.read_text("utf-8"))

    # state ------------------------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        try:
            value = json.loads(self.state_file.read_text("utf-8"))
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, state: Mapping[str, Any]) -> None:
        write_atomically(self.state_file, json.dumps(dict(state), ensure_ascii=False))

    @property
    def pending(self) -> dict[str, Any] | None:
        return self._state().get("pending")

    # a push -----------------------------------------------------------------------------------------------------------
    def stage(self, text: str, digest: str) -> None:
        """Write a pushed (already validated and authorised) profile in place of the current one, atomically, and
        mark its trial pending for the next start. The current file is the fallback when no trial has passed yet."""
        state = self._state()
        if not self.last_good.exists():
            write_atomically(self.last_good, self.source.read_text("utf-8"))
        state["pending"] = {"digest": digest, "previous": self.ctx.profile.digest, "starts": 0}
        self._save(state)
        write_atomically(self.source, text)
        self._event("profile", "profile_staged", "info", f"profile {digest} saved; trial at the next start")

    # at start ---------------------------------------------------------------------------------------------------------
    def after_start(self) -> str:
        """Blocking (a worker, once the devices are open and the fleet link exists): the trial of a pending profile,
        the check after a rollback, or drift. Returns what happened: ``applied``, ``rolled_back``, ``restored``,
        ``drift``, ``first_start`` or ``unchanged``."""
        digest = self.ctx.profile.digest
        state = self._state()
        pending = state.get("pending")
        if isinstance(pending, dict) and pending.get("digest") == digest and not pending.get("rolled_back_from"):
            self.outcome = self._trial(state, pending)
        elif isinstance(pending, dict) and pending.get("rolled_back_from"):
            run = self._self_test()
            state.pop("pending", None)
            state["known"] = digest
            self._save(state)
            self._event("profile", "profile_restored", "info" if run.ok else "major",
                        f"profile {digest} restored after the rollback of {pending['rolled_back_from']}; "
                        + run.text())
            self.outcome = "restored"
        elif isinstance(pending, dict) and not pending.get("rolled_back_from"):
            self.outcome = self._rolled_back_after_crashes(state, pending, digest)
        elif not state.get("known"):
            state["known"] = digest
            state.pop("pending", None)
            self._save(state)
            write_atomically(self.last_good, self.source.read_text("utf-8"))
            self.outcome = "first_start"
        elif state["known"] != digest:
            self.outcome = self._drift(state, digest)
        else:
            self.outcome = "unchanged"
        return self.outcome

    def _self_test(self) -> Any:
        return self.ctx.self_tests.run(Level.INTERNAL, origin="profile_trial", report=False)

    def _trial(self, state: dict[str, Any], pending: dict[str, Any]) -> str:
        digest = pending["digest"]
        required = tuple(k for k, d in self.ctx.profile.devices.items() if d.required)
        run = self._self_test()
        failed = run.failed(required)
        if not failed and int(pending.get("starts", 1)) <= MAX_TRIAL_STARTS:
            text = self.source.read_text("utf-8")
            write_atomically(self.last_good, text)
            state.pop("pending", None)
            state["known"] = digest
            self._save(state)
            self._event("profile", "profile_applied", "info",
                        f"profile {digest} applied (was {pending.get('previous', '?')}); " + run.text())
            return "applied"
        why = ", ".join(f"{k}={v}" for k, v in sorted(failed.items())) or \
            f"the kiosk did not finish starting {int(pending.get('starts', 1)) - 1} times"
        self._event("profile", "profile_trial_failed", "major", f"profile {digest}: required device failed: {why}")
        try:
            previous = yaml.safe_load(self.last_good.read_text("utf-8"))
            old_digest = _digest(previous)
            write_atomically(self.source, self.last_good.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            log.error("profile rollback impossible: %s", type(exc).__name__)
            self._event("app", "profile_rollback_failed", "critical", f"no last good profile to go back to ({why})")
            return "rollback_failed"
        state["pending"] = {"rolled_back_from": digest, "digest": old_digest}
        self._save(state)
        text = f"profile {digest} rolled back to {old_digest}: {why}"
        self._event("profile", "profile_rolled_back", "major", text)
        self._event("app", "profile_rolled_back", "major", text, audit=False)
        self.ctx.request_restart("profile rolled back")
        return "rolled_back"

    def _rolled_back_after_crashes(self, state: dict[str, Any], pending: dict[str, Any], digest: str) -> str:
        """The pending profile killed the kiosk while starting; the last good one was put back before the devices
        opened (:meth:`_count_start`): report both outcomes now."""
        why = f"the kiosk did not finish starting {int(pending.get('starts', 1)) - 1} times"
        self._event("profile", "profile_trial_failed", "major", f"profile {pending.get('digest')}: {why}")
        text = f"profile {pending.get('digest')} rolled back to {digest}: {why}"
        self._event("profile", "profile_rolled_back", "major", text)
        self._event("app", "profile_rolled_back", "major", text, audit=False)
        state.pop("pending", None)
        state["known"] = digest
        self._save(state)
        run = self._self_test()
        self._event("profile", "profile_restored", "info" if run.ok else "major",
                    f"profile {digest} restored; " + run.text())
        return "rolled_back"

    def _drift(self, state: dict[str, Any], digest: str) -> str:
        try:
            before = yaml.safe_load(self.last_good.read_text("utf-8"))
            now = yaml.safe_load(self.source.read_text("utf-8"))
            paths = changed_paths(before, now)
        except (OSError, yaml.YAMLError):
            paths = []
        previous = state.get("known", "?")
        state["known"] = digest
        self._save(state)
        run = self._self_test()
        if run.ok:
            write_atomically(self.last_good, self.source.read_text("utf-8"))
        self._event("profile", "profile_drift", "warning",
                    f"profile changed on the kiosk: {previous} -> {digest}; fields: "
                    + (", ".join(paths) if paths else "unknown") + "; " + run.text())
        return "drift"

    def _event(self, device: str, code: str, severity: str, text: str, audit: bool = True) -> None:
        if audit:
            self.ctx.audit("profile_event", code=code, text=text)
        fleet = self.ctx.fleet
        if fleet is None:
            return
        try:
            fleet.event(device, code, severity, text)
        except Exception as exc:  # noqa: BLE001 - the audit journal keeps it; the fleet link may be down
            log.warning("profile event %s not queued: %s", code, type(exc).__name__)


def _digest(data: Any) -> str:
    """The same digest as :func:`device_profiles.loader.parse_profile` gives a profile."""
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
