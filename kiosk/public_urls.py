"""The URLs the kiosk prints as QR codes: built from the platform's PUBLIC base URL (what a citizen's phone can open),
never from the kiosk's internal API URL, and only for pages that exist (docs/protocols/proofs.md, "Kiosk
configuration").

The platform tells its verification URL templates (``GET /api/v1/kiosk/config``). :class:`PublicUrls` asks for them
when the kiosk starts and after the platform comes back (:meth:`PublicUrls.refresh`, blocking: on a worker), keeps
the last answer in ``<data_dir>/public-urls.json`` so a restart while the platform is down still prints the right
address, and builds URLs without any I/O (:meth:`PublicUrls.url`: safe on the UI thread). Until the platform has
answered once, the templates are the contract's paths under the platform URL of the profile.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

#: kind → path under the public base URL (the contract's pages), used until the platform has answered
DEFAULT_PATHS: dict[str, str] = {
    "document": "/verify/d/{code}", "application": "/verify/a/{number}", "payment": "/verify/p/{order_no}",
    "queue_ticket": "/verify/t/{ticket_id}", "appointment": "/verify/m/{appointment_no}",
    "feedback": "/verify/f/{reference}", "guide": "/guides/{service_code}",
    "cashier": "/cashier/{order_no}",
}


class PublicUrls:
    def __init__(self, fallback_base: str, cache_path: str | os.PathLike[str] | None = None) -> None:
        self.fallback_base = fallback_base.rstrip("/")
        self.cache_path = Path(cache_path) if cache_path else None
        self._lock = threading.Lock()
        self._templates: dict[str, str] = {}
        self.public_base_url = ""
        #: True once the platform's own answer (now or cached from an earlier run) is in use
        self.from_platform = False
        #: True once the platform answered in this process (the kiosk asks again after each start)
        self.live = False
        self._load_cache()

    # ------------------------------------------------------------------------------------------ templates
    def _load_cache(self) -> None:
        if self.cache_path is None or not self.cache_path.exists():
            return
        try:
            self._set(json.loads(self.cache_path.read_text("utf-8")))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("public URL cache unreadable (%s): using defaults until the platform answers",
                        type(exc).__name__)

    def _set(self, config: Mapping[str, Any]) -> None:
        templates = {str(k): str(v) for k, v in dict(config.get("verify_urls") or {}).items()
                     if isinstance(v, str) and v.startswith(("http://", "https://"))}
        if not templates:
            raise ValueError("no verify_urls in the platform's kiosk configuration")
        with self._lock:
            self._templates = templates
            self.public_base_url = str(config.get("public_base_url") or "").rstrip("/")
            self.from_platform = True

    def refresh(self, platform: Any) -> bool:
        """Ask the platform for its templates (blocking); keep them and their copy on disk. False when the platform
        could not be asked (the previous templates stay)."""
        try:
            config = platform.kiosk_config()
            self._set(config)
            self.live = True
        except Exception as exc:  # noqa: BLE001 - unreachable, older platform: the old templates stay
            log.info("public URLs not refreshed: %s", type(exc).__name__)
            return False
        if self.cache_path is not None:
            try:
                tmp = self.cache_path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"public_base_url": self.public_base_url, "verify_urls": self._templates},
                                          ensure_ascii=False), "utf-8")
                tmp.replace(self.cache_path)
            except OSError as exc:
                log.warning("public URL cache not written: %s", type(exc).__name__)
        return True

    def template(self, kind: str) -> str:
        with self._lock:
            found = self._templates.get(kind)
        if found:
            return found
        return self.fallback_base + DEFAULT_PATHS[kind]

    # ------------------------------------------------------------------------------------------ URLs
    def url(self, kind: str, **values: Any) -> str:
        """The URL of one page, e.g. ``url("application", number="SP…")``; values are URL-encoded."""
        text = self.template(kind)
        for name, value in values.items():
            text = text.replace("{" + name + "}", quote(str(value), safe=""))
        return text

    def application(self, number: str) -> str:
        return self.url("application", number=number)

    def document(self, code: str) -> str:
        return self.url("document", code=code)

    def payment(self, order_no: str) -> str:
        return self.url("payment", order_no=order_no)

    def queue_ticket(self, ticket_id: str) -> str:
        return self.url("queue_ticket", ticket_id=ticket_id)

    def appointment(self, appointment_no: str) -> str:
        return self.url("appointment", appointment_no=appointment_no)

    def guide(self, service_code: str) -> str:
        return self.url("guide", service_code=service_code)

    def cashier(self, order_no: str) -> str:
        return self.url("cashier", order_no=order_no)

    def feedback(self, reference: str) -> str:
        return self.url("feedback", reference=reference)


def application_url(profile_or_core: Any, number: str) -> str:
    """Helper for callers holding the core (``core.public_urls``) — or, in tests without one, a profile."""
    urls = getattr(profile_or_core, "public_urls", None)
    if isinstance(urls, PublicUrls):
        return urls.application(number)
    base = getattr(getattr(profile_or_core, "platform", None), "url", "")
    return PublicUrls(base).application(number)
