"""What a use-case may use of the kiosk: :class:`UseCaseContext`, built once by the kiosk core and handed to each
citizen flow, the maintenance mode, the fleet link, profile updates and crash recovery.

The use-cases never import the core: they receive this small object instead. Fixed parts (session, platform client,
devices, workers, print service …) and the core's operations (audit, citizen token, health check …) are plain fields;
what the core replaces while it runs (availability, the fleet link once started, the announcement) or builds after the
context (staff desk, self-tests, maintenance mode …) is read through ``lookup`` when asked for, so a use-case always
sees the current value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from device_profiles.loader import Profile
    from kiosk.audit import AuditJournal
    from kiosk.devices import DeviceManager
    from kiosk.guide_cache import GuideCache
    from kiosk.i18n import Translator
    from kiosk.outbox import Outbox
    from kiosk.platform_client import PlatformClient
    from kiosk.public_urls import PublicUrls
    from kiosk.session import RatingTarget, Session
    from kiosk.storage import StorageGuard
    from kiosk.usecases.face_check import FaceCheck
    from kiosk.usecases.printing import PrintService
    from kiosk.workers import Dispatcher, Workers

@dataclass(frozen=True)
class UseCaseContext:
    """The kiosk as a use-case sees it (see the module docstring)."""

    kiosk_id: str
    translator: "Translator"
    session: "Session"
    platform: "PlatformClient"
    devices: "DeviceManager"
    print_service: "PrintService"
    workers: "Workers"
    dispatch: "Dispatcher"
    public_urls: "PublicUrls"
    storage: "StorageGuard"
    outbox: "Outbox"
    guide_cache: "GuideCache"
    audit_journal: "AuditJournal"
    face_check: "FaceCheck"
    #: the card watchers (ID reader, PC/SC): polled fast while a card is expected
    card_watchers: list[Any]
    #: ``audit(event, session_id=None, **fields)``: an audit journal entry (written off the caller's thread)
    audit: Callable[..., None]
    #: ``emit(name, **payload)``: an event to the shell's listeners (delivered through the dispatcher)
    emit: Callable[..., None]
    #: ``run(action, fn, *args, on_result=, on_error=)``: ``fn`` on a worker, a failure audited and translated
    run: Callable[..., None]
    #: ``citizen_token(fresh=False)``: the citizen session token (blocking)
    citizen_token: Callable[..., str]
    #: ``check_health(on_result=None)``: probe the devices and update the availability
    check_health: Callable[..., None]
    #: the citizen did something: the idle timer restarts
    touch: Callable[[], None]
    #: ``require_storage(action)``: raises ``StorageFull`` when the disk is too full for it
    require_storage: Callable[[str], None]
    #: ``complete_action(target)``: an action is done, the rating is asked for
    complete_action: Callable[["RatingTarget"], None]
    subscribe: Callable[..., None]
    identity_level: Callable[[], str | None]
    status_texts: Callable[[], dict[str, str]]
    speak: Callable[..., None]
    end_session: Callable[..., None]
    set_maintenance: Callable[[str | None], None]
    request_restart: Callable[[str], None]
    announce: Callable[[dict[str, str] | None], None]
    #: the core's current value of a part it replaces or builds later (see the module docstring)
    lookup: Callable[[str], Any] = field(repr=False)

    # parts the core replaces while it runs -------------------------------------------------------------------
    @property
    def profile(self) -> "Profile":
        return self.lookup("profile")

    @property
    def availability(self) -> Any:
        """The current ``kiosk.core.Availability`` (replaced after each health check)."""
        return self.lookup("availability")

    @property
    def announcement(self) -> dict[str, str] | None:
        return self.lookup("announcement")

    @property
    def fleet(self) -> Any:
        """The fleet link (``kiosk.fleet_link.FleetLink``) once started with a broker, else None."""
        return self.lookup("fleet")

    # parts built after the context ------------------------------------------------------------------------------
    @property
    def outbox_drainer(self) -> Any:
        return self.lookup("outbox_drainer")

    @property
    def phone_uploads(self) -> Any:
        return self.lookup("phone_uploads")

    @property
    def staff_desk(self) -> Any:
        return self.lookup("staff_desk")

    @property
    def self_tests(self) -> Any:
        return self.lookup("self_tests")

    @property
    def profile_updates(self) -> Any:
        return self.lookup("profile_updates")

    @property
    def maintenance(self) -> Any:
        return self.lookup("maintenance")

    @property
    def assistance(self) -> Any:
        return self.lookup("assistance")
