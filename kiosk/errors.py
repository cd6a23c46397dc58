"""Typed errors of the kiosk core. Each has a stable ``code`` (operators, audit, fleet) and a ``translation_key``
(citizens' zh/en text). Device errors come from :mod:`drivers.errors` and follow the same two attributes."""
from __future__ import annotations

from typing import Any, ClassVar


class KioskError(Exception):
    code: ClassVar[str] = "kiosk_error"
    translation_key: ClassVar[str] = "error.generic"

    def __init__(self, message: str = "", **placeholders: Any) -> None:
        super().__init__(message or self.code)
        self.placeholders = placeholders


class PlatformUnavailable(KioskError):
    """The service platform cannot be reached or answered with a server error, after retries."""

    code = "platform_unavailable"
    translation_key = "error.platform.unavailable"


class PlatformRejected(KioskError):
    """The platform understood the request and refused it (4xx); ``platform_code`` is its stable error code."""

    code = "platform_rejected"
    translation_key = "error.platform.rejected"

    def __init__(self, message: str = "", status: int = 400, platform_code: str = "", **placeholders: Any) -> None:
        super().__init__(message, **placeholders)
        self.status = status
        self.platform_code = platform_code


class NotFound(PlatformRejected):
    code = "not_found"
    translation_key = "error.platform.not_found"


class CitizenSessionExpired(PlatformRejected):
    code = "citizen_session_expired"
    translation_key = "error.session.expired"


class VerificationLevelInsufficient(PlatformRejected):
    """The platform refused because the citizen session's identity level is too low (403
    ``verification_level_insufficient``): a ``card`` session asked for something that needs the holder confirmed.
    ``required`` lists the levels that would do (``card+face``, ``card+pin``), ``have`` the session's."""

    code = "verification_level_insufficient"
    translation_key = "identity.error.level_insufficient"

    def __init__(self, message: str = "", required: tuple[str, ...] = ("card+face", "card+pin"), have: str = "card",
                 **kwargs: Any) -> None:
        super().__init__(message, status=403, platform_code="verification_level_insufficient", **kwargs)
        self.required = tuple(required)
        self.have = have


class IdentityNotRecognised(PlatformRejected):
    """The population registry does not know the card (403 ``unknown_person``) or knows the number under another
    name (403 ``identity_mismatch``): no session; the citizen is asked to see staff."""

    code = "identity_not_recognised"
    translation_key = "identity.error.not_recognised"


class KioskRateLimited(PlatformRejected):
    """The platform refused a citizen session or photo because this kiosk asked about too many distinct citizens
    within an hour (429 ``rate_limited``); ``retry_after_s`` from its Retry-After. Reported to the fleet as an alarm."""

    code = "kiosk_rate_limited"
    translation_key = "identity.error.kiosk_limited"

    def __init__(self, message: str = "", retry_after_s: int = 0, **kwargs: Any) -> None:
        super().__init__(message, status=429, platform_code="rate_limited", **kwargs)
        self.retry_after_s = retry_after_s


class DeviceUnavailable(KioskError):
    """A device the action needs is not configured or not usable now."""

    code = "device_unavailable"
    translation_key = "error.device.unavailable"


class InvalidSessionState(KioskError):
    """A step was asked for that the session's state does not allow (e.g. rating with nothing to rate)."""

    code = "invalid_session_state"
    translation_key = "error.generic"


def error_code(exc: BaseException) -> str:
    return getattr(exc, "code", "internal_error")


def translation_key(exc: BaseException) -> str:
    return getattr(exc, "translation_key", "error.generic")
