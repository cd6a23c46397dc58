"""The kiosk core: what the shell talks to. It owns the session, the devices, the platform client, the audit journal
and the workers, and turns citizen taps into use-cases run off the UI thread.

Screens call methods (each takes ``on_result``/``on_error`` callbacks, delivered through the dispatcher) and
subscribe to events: ``identified``, ``card_error``, ``warning``, ``warning_cleared``, ``ended``, ``state``,
``availability``, ``rating_requested``. Nothing here imports Kivy.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

from device_profiles.loader import Profile, ProfileError
from drivers.errors import DeviceError
from kiosk.audit import AuditJournal
from kiosk.context import UseCaseContext
from kiosk.devices import DeviceManager
from kiosk import identity_levels
from kiosk.errors import InvalidSessionState, KioskError, KioskRateLimited, PlatformUnavailable, error_code
from kiosk.i18n import Translator
from kiosk.platform_client import Application, PlatformClient, ServiceDetail
from kiosk.request_signing import KioskRequestSigner, SigningKeyError
from kiosk.session import RatingTarget, Session, State
from kiosk.print_journal import PrintJournal
from kiosk.outbox import Outbox, OutboxDrainer
from kiosk.usecases.apply import ApplyFlow
from kiosk.usecases import identify
from kiosk.usecases.face_check import FaceCheck
from kiosk.usecases.printing import PrintService
from kiosk.voice import Voice
from kiosk.guide_cache import GuideCache
from kiosk.nightly import NightlyMaintenance
from kiosk.workers import Dispatcher, Workers, call_now

log = logging.getLogger(__name__)
Callback = Callable[[Any], None] | None
EventListener = Callable[[str, dict[str, Any]], None]

HEALTH_INTERVAL_S = 15.0
#: while a device or the platform is down, the health check runs this often: a replugged device is back in seconds
DEGRADED_HEALTH_INTERVAL_S = 2.0
#: menu features that are transactions (journaled on the data disk): refused while it is full (kiosk/storage.py)
TRANSACTION_FEATURES = frozenset({"apply", "pay", "certificates", "delivery", "print"})
#: how often the shell's tick looks whether the offline guide copy is a day old
GUIDE_CHECK_INTERVAL_S = 3600.0
#: how often (core clock) the journals' retention runs while the kiosk is idle — not only at start: a kiosk whose
#: profile sets no nightly restart runs for months in one process
RETENTION_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Availability:
    """What the kiosk can do now. ``out_of_service`` when a required device or the platform is down."""

    platform: bool = True
    devices: dict[str, bool] = field(default_factory=dict)
    device_errors: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: set by an operator (fleet command) or a technician: the kiosk serves nobody, whatever works
    maintenance: str | None = None
    #: the data disk is below ``kiosk.min_free_mb``: transactions refused, guides and progress still served
    storage_full: bool = False

    def feature(self, name: str) -> bool:
        if self.maintenance:
            return False
        if self.storage_full and name in TRANSACTION_FEATURES:
            return False
        needs = {"guide": ("platform",), "progress": ("platform",), "my_applications": ("platform", "idcard"),
                 "print": ("receipt_printer",), "identify": ("idcard",)}[name]
        return all(self.platform if n == "platform" else self.devices.get(n, False) for n in needs)

    @property
    def out_of_service(self) -> bool:
        return bool(self.maintenance) or not self.platform or \
            not all(self.devices.get(k, False) for k in self.required)

    def working_features(self) -> list[str]:
        return [f for f in ("guide", "progress", "my_applications", "print", "identify") if self.feature(f)]

    @property
    def degraded(self) -> bool:
        """Something that may come back by itself is down (a device unplugged, the platform unreachable)."""
        return not self.platform or not all(self.devices.values())


def _platform_signer(profile: Profile) -> KioskRequestSigner:
    """The signer of every platform request: the profile's ``platform.key_file`` (checked by the loader)."""
    if not profile.platform.key_file:
        raise ProfileError(profile.source, ["platform.key_file: required to reach the platform (the kiosk's Ed25519 "
                                            "signing key: `kiosk keygen --out FILE`, then enrol its public key with "
                                            "`service-platform kiosk add`)"])
    try:
        return KioskRequestSigner.from_file(profile.kiosk.id, profile.platform.key_file)
    except SigningKeyError as exc:
        raise ProfileError(profile.source, [f"platform.key_file: {exc}"]) from exc


class KioskCore:
    def __init__(self, profile: Profile, dispatcher: Dispatcher = call_now, clock: Callable[[], float] = time.monotonic,
                 platform: PlatformClient | None = None, devices: DeviceManager | None = None) -> None:
        from kiosk.memory import limit_malloc_arenas

        limit_malloc_arenas()   # before any thread of ours starts: memory flat over months (kiosk/memory.py)
        self.profile = profile
        self.kiosk_id = profile.kiosk.id
        self.translator = Translator(profile.kiosk.language)
        self.workers = Workers(dispatcher=dispatcher)
        self.dispatch = dispatcher
        self._clock = clock
        data_dir = Path(profile.kiosk.data_dir)
        # no leftovers (README "Retention"): escpos's capability cache under data_dir (set again here for the
        # simulators this process starts; `kiosk run` sets it before the profile load imports escpos), and a 0700
        # folder for session temp files, swept now (what a crash left behind)
        from kiosk import housekeeping

        housekeeping.use_private_escpos_cache(data_dir)
        self.temp_root = housekeeping.private_temp_root(data_dir)
        #: (code, severity, text) raised to the fleet once its link is up: broken audit chain, lost outbox key
        self.startup_alarms: list[tuple[str, str, str]] = []
        # the data disk: new transactions refused below kiosk.min_free_mb (kiosk/storage.py), checked with the
        # health check and before each transaction; the fleet alarm storage_full follows it
        from kiosk.storage import StorageGuard

        self.storage = StorageGuard(data_dir, profile.kiosk.min_free_mb, on_change=self._on_storage_change)
        self._storage_alarm: bool | None = None   # the state of the storage_full alarm the fleet last accepted
        self.audit = AuditJournal(data_dir / "audit.jsonl", profile.kiosk.id)
        if self.audit.chain_break is not None:
            brk = self.audit.chain_break
            self.startup_alarms.append(("audit_chain_break", "critical",
                                        f"audit {brk.reason}: new chain segment {brk.epoch} after seq "
                                        f"{brk.previous.get('seq')}"))
        if self.audit.torn_count:
            self.startup_alarms.append(("audit_torn_tail", "warning",
                                        f"{self.audit.torn_count} torn audit line(s) quarantined"))
        # one writer thread: entries keep their order and the fsync never runs on the UI thread
        self._audit_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiosk-audit")
        self.session = Session(profile.session.idle_timeout_s, profile.session.warning_s, clock=clock,
                               temp_root=str(self.temp_root))
        self.session.subscribe(self._on_session_event)
        # anonymous journey analytics (kiosk/journey.py): screens from the shell, outcomes from the session and flows
        from kiosk.journey import JourneyRecorder

        self.journey = JourneyRecorder(clock=clock)
        self.platform = platform or PlatformClient(profile.platform.url, profile.kiosk.id, _platform_signer(profile),
                                                   profile.platform.timeout_s, profile.platform.retries)
        self.devices = devices or DeviceManager(profile)
        self.voice = Voice(profile.voice)
        # elderly mode (适老化) for the session: timeouts ×2, slower speech, the menu's most used services first
        from kiosk.elderly import ElderlyMode

        self.elderly = ElderlyMode(profile.kiosk.elderly_mode, self.session, self.voice,
                                   usage=lambda: self.platform.feature_usage())
        self.guide_cache = GuideCache(data_dir / "guide-cache.sqlite3")
        #: date of the offline copy the last guide answer came from (None: the answer was live)
        self.guide_offline_as_of: datetime | None = None
        self._last_guide_check = -GUIDE_CHECK_INTERVAL_S
        self._last_retention = self._clock()   # the first purge runs at start (_recover_prints), then hourly
        self.print_journal = PrintJournal(data_dir / "print-journal.sqlite3")
        self.print_service = PrintService(self.print_journal, devices=self.devices.get, kiosk_id=self.kiosk_id,
                                          kiosk_name=profile.kiosk.name.get("zh_CN", ""),
                                          listener=self._on_print_event)
        self.print_service.storage = self.storage
        # QR codes on paper point at the platform's PUBLIC verification pages (kiosk/public_urls.py)
        from kiosk.public_urls import PublicUrls

        self.public_urls = PublicUrls(profile.platform.url, data_dir / "public-urls.json")
        self.print_service.urls = self.public_urls
        self.platform.public_urls = self.public_urls   # the cashier QR shown for phone payment
        self.availability = Availability(required=tuple(k for k, d in profile.devices.items() if d.required))
        # 人证核验 after the card when the profile has a camera (kiosk/usecases/face_check.py)
        self.face_check = FaceCheck(profile, self.session, self.platform, devices=self.devices.get,
                                    workers=self.workers, emit=self._emit, audit=self._audit,
                                    refused=self.session_refused)
        self._listeners: list[EventListener] = []
        self._watchers: list[Any] = []  # one per card device (ID reader, PC/SC); same CardEvent from each
        # online applications; applications and ratings go through the encrypted outbox
        self.outbox = self._open_outbox(data_dir)
        # what the use-cases below may use of the kiosk (they never import this module)
        self.context = self._use_case_context()
        self.apply = ApplyFlow(self.context, self.outbox)  # wipes its state itself when the session ends
        self.outbox_drainer = OutboxDrainer(self.outbox, listener=self.apply.drained)
        self._last_health = -HEALTH_INTERVAL_S
        self._health_running = threading.Event()
        # nightly self-test and restart at a quiet hour (profile kiosk.nightly_restart_at; kiosk/nightly.py)
        self.nightly = NightlyMaintenance.from_profile(profile.kiosk.nightly_restart_at, profile.kiosk.data_dir)
        self._nightly_running = threading.Event()
        self._maintenance: str | None = None
        self.announcement: dict[str, str] | None = None
        self.fleet: Any = None  # kiosk.fleet_link.FleetLink when the profile names a broker
        # citizen flows (kiosk/usecases): appointments and queue tickets, EMS delivery, e-certificate printing
        from kiosk.usecases.booking import BookingFlow
        self.booking = BookingFlow(self.context)
        from kiosk.usecases.delivery import DeliveryFlow
        self.delivery = DeliveryFlow(self.context)
        from kiosk.usecases.certificates import CertificatesFlow
        self.certificates = CertificatesFlow(self.context)
        # 补正 at the kiosk (kiosk/usecases/supplement.py), proofs on demand (kiosk/usecases/proofs.py)
        from kiosk.usecases.supplement import SupplementFlow
        self.supplement = SupplementFlow(self.context)
        from kiosk.usecases.proofs import ProofsFlow
        self.proofs = ProofsFlow(self.context)
        # photos sent from the citizen's phone (one-time QR per session; stopped and forgotten at session end)
        from kiosk.phone_upload import PhoneUploads
        self.phone_uploads = PhoneUploads(self.platform, self.citizen_token, self.dispatch)
        self.session.subscribe(lambda name, _p: self.phone_uploads.end_session() if name == "ended" else None)
        from kiosk.usecases.printing import StaffDesk
        self.staff_desk = StaffDesk(self.print_service, profile.kiosk.maintenance_pin_hash, audit=self._audit)
        self._started = threading.Event()  # devices opened: health checks before that would report them missing
        # device self-tests at a level (drivers/health.py) and pushed-profile trials with rollback
        from kiosk.self_test import SelfTestRunner
        from kiosk.profile_updates import ProfileUpdates

        self.self_tests = SelfTestRunner(lambda: self.devices.devices, self._audit, lambda: self.fleet)
        self.profile_updates = ProfileUpdates(self.context)
        # maintenance mode by a technician's card + PIN (kiosk/maintenance.py)
        from kiosk.maintenance import MaintenanceMode

        self.maintenance = MaintenanceMode(self.context, clock=clock)
        # fees — payment journal, reconciler, pad / payment code / phone QR (kiosk/payments)
        from kiosk.payments.flow import PaymentFlow
        self.payments = PaymentFlow(self.context)
        # applying for someone else (代办), complaints and questions (kiosk/usecases/proxy.py, feedback.py)
        from kiosk.usecases.feedback import FeedbackFlow
        from kiosk.usecases.proxy import ProxyFlow
        self.proxy = ProxyFlow(self.context)
        self.feedback = FeedbackFlow(self.context)
        # the Help button on every screen raises a fleet alarm; staff acknowledge it (kiosk/assistance.py)
        from kiosk.assistance import Assistance

        self.assistance = Assistance(profile.kiosk.hall, fleet=lambda: self.fleet, halls=self.platform.halls,
                                     workers=self.workers, emit=self._emit, audit=self._audit)
        self.subscribe(lambda name, payload: self.assistance.request(payload.get("reason") or "face_check")
                       if name == "staff_assistance" else None)   # "ask staff" on the face check is a help request

    def _use_case_context(self) -> UseCaseContext:
        """The :class:`UseCaseContext` handed to each use-case: built once, after the parts it names as fields."""
        return UseCaseContext(
            kiosk_id=self.kiosk_id, translator=self.translator, session=self.session, platform=self.platform,
            devices=self.devices, print_service=self.print_service, workers=self.workers, dispatch=self.dispatch,
            public_urls=self.public_urls, storage=self.storage, outbox=self.outbox, guide_cache=self.guide_cache,
            audit_journal=self.audit, face_check=self.face_check, card_watchers=self._watchers, audit=self._audit,
            emit=self._emit, run=self._run, citizen_token=self.citizen_token, check_health=self.check_health,
            touch=self.touch, require_storage=self.require_storage, complete_action=self.complete_action,
            subscribe=self.subscribe, identity_level=self.identity_level, status_texts=self.status_texts,
            speak=self.speak, end_session=self.end_session, set_maintenance=self.set_maintenance,
            request_restart=self.request_restart, announce=self.announce, lookup=lambda name: getattr(self, name))

    def _open_outbox(self, data_dir: Path) -> Outbox:
        """The encrypted outbox. Its key missing while rows are sealed with it is never papered over with a silently
        new key: a critical log, the database moved aside untouched (``outbox.sqlite3.keyless-<time>``, for staff:
        its requests cannot be opened without that key), an audit entry and a critical fleet alarm
        ``outbox_key_missing``; a new outbox starts so citizens are served."""
        from kiosk.outbox import OutboxKeyError

        path, key = data_dir / "outbox.sqlite3", data_dir / "outbox.key"
        try:
            return Outbox(path, key)
        except OutboxKeyError as exc:
            if key.exists():
                raise   # a key that others may read or of the wrong size: the technician must fix it
            aside = path.with_name(f"{path.name}.keyless-{time.strftime('%Y%m%dT%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    part.rename(Path(f"{aside}{suffix}"))
            log.critical("%s; the outbox was moved to %s and a new one started", exc, aside.name)
            self.audit.record("outbox_key_missing", moved_to=aside.name)
            self.startup_alarms.append(("outbox_key_missing", "critical",
                                        f"outbox key missing with sealed requests; moved to {aside.name}"))
            return Outbox(path, key)

    # audit ----------------------------------------------------------------------------------------------------------
    def _audit(self, event: str, session_id: str | None = None, **fields: Any) -> None:
        try:
            self._audit_writer.submit(self.audit.record, event, session_id, **fields).add_done_callback(
                lambda fut, event=event: self._audit_written(fut, event))
        except RuntimeError:  # writer stopped (shutting down): write here rather than lose the entry
            self.audit.record(event, session_id, **fields)

    def _audit_written(self, fut: Any, event: str) -> None:
        """An audit entry the writer could not write is never silent: logged, and a full disk noted by the guard
        (the journal cuts a failed append back: no half line, the chain goes on from the last whole entry)."""
        exc = fut.exception()
        if exc is None:
            return
        from kiosk.storage import is_disk_full

        log.error("audit entry %s not written: %s", event, type(exc).__name__)
        if is_disk_full(exc):
            self.storage.note_full()

    def flush_audit(self, timeout: float = 10.0) -> None:
        """Wait until every audit entry asked for so far is on disk."""
        self._audit_writer.submit(lambda: None).result(timeout)

    # events ---------------------------------------------------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _emit(self, name: str, **payload: Any) -> None:
        def deliver() -> None:
            for listener in list(self._listeners):
                listener(name, payload)
        self.dispatch(deliver)

    def _on_session_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "started":
            self._audit("session_start", payload["session_id"])
            self.journey.start()
            if self.fleet is not None:
                self.fleet.sessions_started += 1
        elif name == "identified":
            self._audit("identified", payload["session_id"], id=payload["id_masked"])
            self.journey.identified()
        elif name == "state" and payload.get("state") == State.RATING.value:
            self.journey.completed()
        elif name == "ended":
            self._audit("session_end", payload["session_id"], reason=payload["reason"])
            self.journey.end(payload["reason"])
            self.voice.stop()   # nothing more is said about this citizen
            self.voice.reset_session()   # the citizen's volume / mute last for their session only
            from kiosk.memory import release_free_memory

            self.workers.submit(release_free_memory)   # what the session left free goes back to the system
        self._emit(name, **payload)

    # lifecycle ------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open devices (starting simulators where the profile says so), start card polling, check health."""
        self.devices.start()
        self._audit("kiosk_start", profile=self.profile.digest)
        self.payments.reconcile_now()  # settle payments left open by a crash before anyone is served
        reader = self.devices.get("idcard")
        if reader is not None:
            from drivers.idcard.base import CardWatcher

            self._watchers.append(CardWatcher(reader, self._on_card_event).start())
        smartcard = self.devices.get("smartcard")
        if smartcard is not None:
            from drivers.smartcard.watcher import PcscCardWatcher

            self._watchers.append(PcscCardWatcher(smartcard, self._on_card_event).start())
        if self.profile.fleet is not None:
            from kiosk.fleet_link import FleetLink

            self.fleet = FleetLink(self.context)
            self.fleet.start()
            self.journey.sink = self.fleet.journeys
            backlog = self.journey.drain()
            if backlog:
                self.fleet.journeys(backlog)
            for code, severity, text in self.startup_alarms:
                self.fleet.alarm(code, severity, text)
        self.face_check.start()
        self.workers.submit(self.profile_updates.after_start)   # a pushed profile's trial, or drift
        self._started.set()
        self.check_health()
        self.workers.submit(self._recover_prints)
        self.workers.submit(self.refresh_guides)
        from kiosk.forms import ime

        self.workers.submit(ime.warm_up)   # the pinyin dictionary (~1 s) loads now, not on a keyboard's first tap
        self.outbox_drainer.start()

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self.end_session("shutdown")
        self.face_check.close()
        if self.fleet is not None:
            self.fleet.stop()  # explicit death message: operators see a clean shutdown, not a crash
        self.outbox_drainer.stop()
        self.workers.shutdown()
        self.payments.close()
        self.print_journal.close()
        self.outbox.close()
        self.devices.stop()
        self.platform.close()
        self.voice.close()
        self.guide_cache.close()
        self._audit("kiosk_stop")
        self._audit_writer.shutdown(wait=True)

    def tick(self) -> None:
        """Called about twice a second by the shell: session timeouts, periodic health checks, the nightly
        self-test and restart."""
        self.session.tick()
        self.maintenance.tick()
        if self.nightly is not None and self._started.is_set() and not self._nightly_running.is_set() \
                and self.nightly.due(self._wall_now(), busy=self.session.state is not State.IDLE):
            self.run_nightly()
        if self._started.is_set() and self.session.state is State.IDLE \
                and self._clock() - self._last_retention >= RETENTION_INTERVAL_S:
            self._last_retention = self._clock()
            self.workers.submit(self.purge_journals)
        if self._started.is_set() and self._clock() - self._last_guide_check >= GUIDE_CHECK_INTERVAL_S:
            self._last_guide_check = self._clock()
            self.workers.submit(self.refresh_guides)
        interval = DEGRADED_HEALTH_INTERVAL_S if self.availability.degraded else HEALTH_INTERVAL_S
        if self._started.is_set() and self._clock() - self._last_health >= interval:
            self.check_health()

    def run_nightly(self) -> None:
        """Self-test every device on a worker (results audited; a device that fails raises the fleet alarm
        ``nightly_self_test_failed``), record the day, then ask the supervisor for a restart."""
        self._nightly_running.set()

        def work() -> dict[str, str]:
            run = self.self_tests.run("internal", origin="nightly", report=False)
            results = {kind: (r.reason or "online") for kind, r in run.results.items()}
            failed = run.failed()
            self._audit("nightly_self_test", results=results)
            if failed and self.fleet is not None:
                try:
                    self.fleet.alarm("nightly_self_test_failed", "major",
                                     "nightly self-test: " + ", ".join(f"{k}={v}" for k, v in sorted(failed.items())))
                except Exception as exc:  # noqa: BLE001 - the restart still happens; the audit has the results
                    log.warning("nightly self-test alarm not queued: %s", type(exc).__name__)
            assert self.nightly is not None
            self.nightly.mark_done(self._wall_now())
            return results

        def done(_results: dict[str, str]) -> None:
            self.request_restart("nightly maintenance")

        def failed(exc: BaseException) -> None:
            log.error("nightly maintenance failed: %s", type(exc).__name__)
            self._nightly_running.clear()

        self.workers.submit(work, on_result=done, on_error=failed)

    def _wall_now(self) -> datetime:
        """Local wall-clock time (the nightly run is at a time of day; durations use the monotonic clock)."""
        return datetime.now().astimezone()

    def check_health(self, on_result: Callback = None) -> None:
        if self._health_running.is_set():
            return
        self._health_running.set()
        self._last_health = self._clock()

        def probe() -> Availability:
            try:
                statuses = self.devices.statuses()
                self.storage.check()   # the periodic free-space check (changes reach _on_storage_change)
                self._sync_storage_alarm()
                platform_up = self.platform.health()
                if platform_up and not self.public_urls.live:
                    self.public_urls.refresh(self.platform)
                return Availability(
                    platform=platform_up,
                    devices={k: s.usable for k, s in statuses.items()},
                    device_errors={k: s.error_code or s.device.value for k, s in statuses.items() if not s.usable},
                    required=self.availability.required, maintenance=self._maintenance)
            finally:
                self._health_running.clear()

        def done(avail: Availability) -> None:
            self._apply_availability(replace(avail, maintenance=self._maintenance, storage_full=self.storage.full))
            if on_result:
                on_result(avail)

        self.workers.submit(probe, on_result=done)

    # printing -------------------------------------------------------------------------------------------------------
    def _recover_prints(self) -> None:
        """After a crash or power loss: settle what the print journal left open and tell staff what did not print."""
        self.purge_journals()
        unfinished = self.print_service.recover()
        if unfinished:
            self._audit("print_unfinished", jobs=[e.id for e in unfinished])
            self._emit("print_unfinished", jobs=unfinished)

    def purge_journals(self) -> dict[str, int]:
        """Retention (profile ``retention``): closed print jobs, resolved payments and settled outbox rows older than
        their days, rotated audit files older than theirs. At start and hourly while idle (:meth:`tick`)."""
        self._last_retention = self._clock()
        retention = self.profile.retention
        removed = {"print_jobs": self.print_journal.purge(retention.print_journal_days * 86400),
                   "payments": self.payments.journal.purge(retention.payment_journal_days * 86400),
                   "outbox": self.outbox.purge(retention.outbox_days * 86400),
                   "audit_files": len(self.audit.prune(retention.audit_days))}
        if any(removed.values()):
            log.info("retention: removed %s", ", ".join(f"{k}={v}" for k, v in removed.items() if v))
        return removed

    def _on_print_event(self, name: str, payload: dict[str, Any]) -> None:
        """From the print service (a worker thread): paper near-end/out and low supplies go to screens and audit."""
        if name in ("paper", "supply_low"):
            self._audit(name, **{k: getattr(v, "value", v) for k, v in payload.items()})
            self._emit(name, **payload)
            if name == "paper":
                self.check_health()
            if self.fleet is not None:
                self.fleet.changed()

    # storage (kiosk/storage.py) -------------------------------------------------------------------------------------
    def require_storage(self, action: str) -> None:
        """Before a transaction starts (application, payment, print, delivery): StorageFull when the data disk is
        below ``kiosk.min_free_mb`` (audited, the citizen sees why; guides and progress go on)."""
        from kiosk.storage import StorageFull

        try:
            self.storage.require(action)
        except StorageFull:
            self._sync_storage_alarm()
            raise

    def _on_storage_change(self, full: bool, free_bytes: int) -> None:
        """The guard saw the disk go below the threshold or come back (any thread): menu, audit, fleet alarm."""
        if not hasattr(self, "availability"):
            return   # still constructing: start()'s health check reports it
        self._audit("storage", full=full, free_mb=free_bytes // (1024 * 1024))
        self._sync_storage_alarm()
        self.dispatch(lambda: self._apply_availability(replace(self.availability, storage_full=self.storage.full)))

    def _sync_storage_alarm(self) -> None:
        """Raise or clear the fleet alarm ``storage_full`` (major) to match the guard. The agent queues alarms on the
        same disk: one it could not take is tried again at the next check (the threshold keeps room for it)."""
        if self.fleet is None:
            return
        full = self.storage.full
        if self._storage_alarm is full or (self._storage_alarm is None and not full):
            return
        free_mb = (self.storage.free_bytes or 0) // (1024 * 1024)
        minimum = self.storage.min_free_bytes // (1024 * 1024)
        text = (f"data disk nearly full: {free_mb} MB free (minimum {minimum} MB); new transactions refused"
                if full else f"data disk has room again: {free_mb} MB free")
        try:
            self.fleet.alarm("storage_full", "major", text, active=full)
        except Exception as exc:  # noqa: BLE001 - the refusal stands; the alarm is tried again at the next check
            log.warning("storage_full alarm not queued: %s", type(exc).__name__)
            return
        self._storage_alarm = full

    # operators ------------------------------------------------------------------------------------------------------
    def set_maintenance(self, reason: str | None) -> None:
        """Take the kiosk out of service (``reason``, e.g. from a fleet command) or back (None). A citizen being
        served finishes first: the out-of-service screen shows when the session ends."""
        self._maintenance = reason
        self._audit("maintenance", reason=reason or "")
        self._apply_availability(replace(self.availability, maintenance=reason))

    def request_restart(self, reason: str) -> None:
        """Ask the shell to exit so its supervisor starts it again (after the citizen being served, if any)."""
        self._audit("restart_requested", reason=reason)
        self._emit("restart_requested", reason=reason)

    def announce(self, texts: dict[str, str] | None) -> None:
        """Show (or clear, with None) an announcement on the attract screen: ``{"zh_CN": ..., "en": ...}``."""
        self.announcement = texts
        self._emit("announcement", texts=texts)

    def _apply_availability(self, avail: Availability) -> None:
        changed = avail != self.availability
        self.availability = avail
        if changed:
            log.info("availability: platform=%s devices=%s maintenance=%s", avail.platform, avail.devices,
                     bool(avail.maintenance))
            self._audit("availability", platform=avail.platform, devices=avail.devices,
                        errors=avail.device_errors)
            self._emit("availability", availability=avail)
            if avail.out_of_service and not avail.maintenance:
                self.journey.out_of_service()   # a required device or the platform went away mid-session
            if self.fleet is not None:
                self.fleet.changed()

    # session --------------------------------------------------------------------------------------------------------
    def touch(self) -> None:
        """Someone touched the screen: the session stays alive, and a card is likely soon, so the card watchers
        poll fast for a while (card placed → identity in < 200 ms; idle polling stays slow)."""
        self.session.touch()
        if not self.session.citizen:
            for watcher in self._watchers:
                expect = getattr(watcher, "expect_card", None)
                if expect is not None:
                    expect()

    def start_anonymous(self) -> None:
        self.session.start_anonymous()

    def speak(self, key: str, **placeholders: Any) -> None:
        """Say the text of ``key`` in the citizen's language (nothing when the key has no text)."""
        if self.translator.has(key):
            self.voice.say(self.translator.t(key, **placeholders), self.translator.language)

    def end_session(self, reason: str = "finished") -> None:
        citizen = self.session.citizen
        token = citizen.platform_token if citizen else ""
        self.session.end(reason)
        if token:
            self.workers.submit(self.platform.close_citizen_session, token, on_error=lambda exc: None)

    def submit_card_pin(self, pin: str) -> None:
        """The citizen typed their social-security card PIN (after a ``card_error`` whose code is ``pin_required``
        or ``pin_incorrect``): the smart card watcher reads the card again with it. Raises ValueError for a
        malformed PIN. The PIN goes to the card only: never stored, logged or audited."""
        for watcher in self._watchers:
            if hasattr(watcher, "submit_pin"):
                watcher.submit_pin(pin)
                return
        raise InvalidSessionState("no smart card reader")

    def _on_card_event(self, event: Any) -> None:
        """From the card watcher's thread: hand over to the dispatcher (UI thread in the shell)."""
        self.dispatch(lambda: self._handle_card_event(event))

    def _handle_card_event(self, event: Any) -> None:
        if event.type == "error":
            self._audit("card_error", self.session.data.id if self.session.active else None,
                              code=error_code(event.error))
            if error_code(event.error) in ("no_device", "timeout", "hardware_error"):
                self.check_health()   # the reader itself went away or broke: the menu and the fleet know at once
            self._emit("card_error", error=event.error)
            return
        if event.type == "removed" and event.source == "smartcard":
            # a PC/SC reader sees a card leave (a GA 467 reader cannot, after a read): the profile decides; the shell
            # closes a PIN pad still asking for this card's PIN
            self._emit("card_removed", source="smartcard")
            citizen = self.session.citizen
            if citizen is not None and citizen.source == "smartcard" and \
                    self.profile.session.on_card_removed == "end":
                self.end_session("card_removed")
            return
        if event.type != "read":
            return  # inserted; bank_card (no identity: used for payment later, never for identification)
        if self.maintenance.wants_card:
            self.maintenance.card(event.document)   # the technician's card: never a citizen session
            return
        if self.maintenance.state != "closed":
            return   # a technician is at work: no citizen sessions
        if self.session.citizen is not None:
            if self.proxy.waiting_for_principal and event.source == "idcard":
                self.proxy.card_read(event.document)   # 代办: the principal's card after the agent's
            return  # one citizen per session; the card of the person being served was simply read again
        try:
            citizen = identify.citizen_from_document(event.document, date.today(), source=event.source)
            citizen.pin_verified = bool(getattr(event, "pin_verified", False))
        except DeviceError as exc:
            self._audit("card_refused", code=exc.code)
            self._emit("card_error", error=exc)
            return
        self.session.identify(citizen)
        if self.face_check.begin(citizen):
            return  # the platform session opens once the face check passes, with face_match

        def opened(token: str) -> None:
            if self.session.citizen is citizen:
                citizen.platform_token = token

        def failed(exc: BaseException) -> None:
            self._audit("platform_session_failed", self.session.data.id, code=error_code(exc))
            self.session_refused(exc)

        # kept so that a request needing the token waits for this one instead of opening a second session
        self.session.data.scratch["token_future"] = self.workers.submit(
            identify.open_platform_session, self.platform, citizen, on_result=opened, on_error=failed)

    # use-cases ------------------------------------------------------------------------------------------------------
    def _run(self, action: str, fn: Callable[..., Any], *args: Any, on_result: Callback = None,
             on_error: Callback = None) -> None:
        session_id = self.session.data.id

        def failed(exc: BaseException) -> None:
            self._audit("action_failed", session_id, action=action, code=error_code(exc))
            if self.session.data.id == session_id:
                self.journey.error(error_code(exc))
            if isinstance(exc, PlatformUnavailable):
                self.check_health()
            if on_error:
                on_error(exc)

        self.workers.submit(fn, *args, on_result=on_result, on_error=failed)

    def search_services(self, query: str, on_result: Callback = None, on_error: Callback = None,
                        category: str = "") -> None:
        self.session.touch()
        self._run("guide_search", self._guide, lambda: self.platform.search_services(query, category),
                  lambda: self.guide_cache.search(query, category), on_result=on_result, on_error=on_error)

    def service_detail(self, code: str, on_result: Callback = None, on_error: Callback = None) -> None:
        self.session.touch()
        self._run("guide_detail", self._guide, lambda: self.platform.service_detail(code),
                  lambda: self.guide_cache.detail(code), on_result=on_result, on_error=on_error)

    def _guide(self, live: Callable[[], Any], offline: Callable[[], Any]) -> Any:
        """A guide answer from the platform, or from the offline copy while the platform is unreachable (then
        ``guide_offline_as_of`` says the copy's date, which the screens show)."""
        try:
            answer = live()
        except PlatformUnavailable:
            if self.guide_cache.refreshed_at is None:
                raise
            answer = offline()
            self.guide_offline_as_of = self.guide_cache.refreshed_at
            return answer
        self.guide_offline_as_of = None
        return answer

    def refresh_guides(self) -> int:
        """Refresh the offline copy of the catalogue when it is a day old (on a worker; a failure keeps the old one)."""
        self._last_guide_check = self._clock()
        from kiosk.storage import is_disk_full

        try:
            return self.guide_cache.refresh_if_stale(self.platform)
        except KioskError as exc:
            log.warning("guide cache not refreshed: %s", error_code(exc))
            return 0
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            log.warning("guide cache not refreshed: the data disk is full (the old copy stays)")
            self.storage.note_full()
            return 0

    def query_progress(self, number: str, id_last4: str | None = None, on_result: Callback = None,
                       on_error: Callback = None) -> None:
        """By number alone: the state only; with the last 4 characters of the applicant's ID number: the full
        progress with its timeline (the platform throttles wrong guesses). A complaint/question reference (FB…)
        answers with its state (kiosk/usecases/feedback.py)."""
        self.session.begin_service()
        from kiosk.usecases.feedback import is_reference

        if is_reference(number):
            self._run("query_feedback", self.feedback.status_now, number, on_result=on_result, on_error=on_error)
            return
        self._run("query_progress", self.platform.application_progress, number.strip().upper(),
                  (id_last4 or "").strip().upper() or None, on_result=on_result, on_error=on_error)

    def citizen_token(self, fresh: bool = False) -> str:
        """The identified citizen's platform session token (blocking: call it on a worker). Refused until the card
        holder is confirmed (face check, where the kiosk has one); waits for the session being opened after the card
        read or the face check instead of opening a second; ``fresh`` opens a new one (the previous expired). A
        session opened here carries the face check's result, as the first one did."""
        citizen = self.session.citizen
        if citizen is None or not self.face_check.identity_confirmed():
            raise InvalidSessionState("no identified citizen")
        pending = self.session.data.scratch.get("token_future")
        if not fresh and pending is not None and not citizen.platform_token:
            try:
                citizen.platform_token = pending.result(timeout=self.profile.platform.timeout_s * 3)
            except Exception:  # noqa: BLE001 - that attempt failed: open one below
                pass
        token = "" if fresh else citizen.platform_token
        if not token:
            face = self.session.data.scratch.get("face_result")
            try:
                token = identify.open_platform_session(self.platform, citizen,
                                                       face_match=bool(face.get("match")) if face else None)
            except KioskRateLimited as exc:
                self.session_refused(exc)
                raise
        citizen.platform_token = token
        return token

    # identity levels (kiosk/identity_levels.py) ---------------------------------------------------------------------
    def identity_level(self) -> str | None:
        """The identified citizen's level: ``card+face`` once the face check passed, ``card+pin`` after a
        social-security card accepted its PIN, else ``card``; None without a confirmed citizen."""
        citizen = self.session.citizen
        if citizen is None or not self.face_check.identity_confirmed():
            return None
        face = self.session.data.scratch.get("face_result")
        return identity_levels.level_of(bool(face.get("match")) if face else None, citizen.pin_verified)

    def feature_lock(self, feature: str) -> str | None:
        """Why a menu feature is unavailable now (a translation key): the data disk full for a transaction
        (``storage.unavailable``), or this session's identity level (needs face verification); None when it is
        available. Screens mark such tiles and explain on a tap."""
        if feature in TRANSACTION_FEATURES and (self.storage.full or self.availability.storage_full):
            return "storage.unavailable"
        return identity_levels.lock_reason(self.identity_level(), feature, camera=self.face_check.can_verify)

    def session_refused(self, exc: BaseException) -> None:
        """The platform refused a citizen session (or photo): a kiosk over its hourly limit of distinct citizens is
        shown to the citizen (event ``kiosk_limited``: "ask staff") and raised to operators as a fleet alarm."""
        if not isinstance(exc, KioskRateLimited):
            return
        self._audit("kiosk_rate_limited", self.session.data.id, retry_after_s=exc.retry_after_s)
        self._emit("kiosk_limited", error=exc, retry_after_s=exc.retry_after_s)
        if self.fleet is not None:
            try:
                self.fleet.alarm("kiosk_rate_limited", "major",
                                 f"platform refused citizen sessions: too many citizens this hour "
                                 f"(retry after {exc.retry_after_s} s)")
            except Exception as alarm_exc:  # noqa: BLE001 - the citizen's screen must not depend on the agent
                log.warning("rate-limit alarm not sent: %s", type(alarm_exc).__name__)

    def my_applications(self, on_result: Callback = None, on_error: Callback = None) -> None:
        if self.session.citizen is None or not self.face_check.identity_confirmed():
            if on_error:
                self.dispatch(lambda: on_error(InvalidSessionState("no identified citizen")))
            return
        self.session.begin_service()
        self._run("my_applications", lambda: self.platform.my_applications(self.citizen_token()),
                  on_result=on_result, on_error=on_error)

    def status_texts(self) -> dict[str, str]:
        codes = ("received", "accepted", "in_review", "supplement_required", "decided", "rejected", "delivered")
        return {c: self.translator.t(f"application.status.{c}") for c in codes}

    def guide_url(self, code: str) -> str:
        return self.public_urls.guide(code)

    def _printed(self, action: str, target: RatingTarget, on_result: Callback) -> Callable[[Any], None]:
        session_id = self.session.data.id

        def done(result: Any) -> None:
            self._audit("printed", session_id, action=action, job=result.job_id, bytes=result.bytes_sent,
                              paper=getattr(result.paper, "value", str(result.paper)))
            if self.session.active:
                self.session.complete_action(target)
                self._emit("rating_requested", target=target)
            if result.paper is not None and getattr(result.paper, "value", "") == "low":
                self.check_health()
            if on_result:
                on_result(result)
        return done

    def print_service_notice(self, detail: ServiceDetail, on_result: Callback = None,
                             on_error: Callback = None) -> None:
        self.session.begin_service()
        target = RatingTarget("service", detail.summary.code, "print_notice")
        self._run("print_notice", self.print_service.print_service_notice, detail, self.guide_url(detail.summary.code),
                  on_result=self._printed("print_notice", target, on_result), on_error=self._print_failed(on_error))

    def print_progress(self, application: Application, on_result: Callback = None, on_error: Callback = None) -> None:
        self.session.begin_service()
        target = RatingTarget("application", application.number, "print_progress")
        self._run("print_progress", self.print_service.print_progress, application, self.status_texts(),
                  on_result=self._printed("print_progress", target, on_result), on_error=self._print_failed(on_error))

    def reprint(self, failed: BaseException, kind: str, payload: Any, on_result: Callback = None,
                on_error: Callback = None) -> None:
        """Print again after a job failed part-way (paper ran out mid-receipt): a journaled reprint of that job,
        marked 补打 on paper, so the journal shows one receipt delivered rather than a failed job left open.
        ``kind``/``payload`` as for the first print: "notice" + ServiceDetail or "progress" + Application."""
        self.session.begin_service()
        if kind == "notice":
            action, target = "print_notice", RatingTarget("service", payload.summary.code, "print_notice")
        else:
            action, target = "print_progress", RatingTarget("application", payload.number, "print_progress")
        self._run(action, self.print_service.reprint, getattr(failed, "job_id"),
                  on_result=self._printed(action, target, on_result), on_error=self._print_failed(on_error))

    @staticmethod
    def needs_reprint(exc: BaseException) -> bool:
        """Whether a failed print reached the printer in part (then a retry must be a reprint of that job)."""
        return bool(getattr(exc, "job_id", "")) and getattr(exc, "bytes_sent", 0) > 0

    def _print_failed(self, on_error: Callback) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            self.check_health()
            if on_error:
                on_error(exc)
        return failed

    def complete_action(self, target: RatingTarget) -> None:
        """A citizen finished an action that printed nothing (e.g. read a progress on screen): ask for a rating."""
        self.session.complete_action(target)
        self._emit("rating_requested", target=target)

    def submit_rating(self, stars: int, tags: list[str] | None = None, comment: str | None = None,
                      on_result: Callback = None, on_error: Callback = None) -> None:
        target = self.session.data.rating_target
        if target is None:
            if on_error:
                self.dispatch(lambda: on_error(InvalidSessionState("nothing to rate")))
            return
        if not 1 <= stars <= 5:
            raise ValueError("stars must be 1..5")
        scratch = self.session.data.scratch
        key = scratch.setdefault(("rating_key", target), str(uuid.uuid4()))  # a retry reuses the key: no duplicates
        if ("journey_rated", target) not in scratch:   # counted once per target in the anonymous journey
            scratch[("journey_rated", target)] = True
            self.journey.rated(stars, tags)
        citizen = self.session.citizen
        token = citizen.platform_token if citizen else None
        session_id = self.session.data.id

        def saved(result: Any) -> None:
            self._audit("rated", session_id, target_type=target.target_type, stars=stars)
            if on_result:
                on_result(result)

        self.session.touch()
        self._run("rating", self.apply.rate, target.target_type, target.target_id, stars, tags or [],
                  comment, token, key, on_result=saved, on_error=on_error)  # via the outbox: kept if unreachable

    def rating_finished(self, continue_service: bool) -> None:
        if self.session.state is State.RATING:
            if continue_service:
                self.session.rating_done(continue_service=True)
            else:
                self.end_session("finished")

    # demo -----------------------------------------------------------------------------------------------------------
    def simulate(self, kind: str, cmd: str, **args: Any) -> None:
        """Send a command to a device simulator (demo controls only)."""
        self.workers.submit(lambda: self.devices.simulator_control(kind, cmd, **args),
                            on_error=lambda exc: log.warning("simulator %s %s failed: %s", kind, cmd, exc))
