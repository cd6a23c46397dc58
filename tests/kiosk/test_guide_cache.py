"""The offline copy of the guides against the real reference platform: a full copy, the same search a citizen gets
(pinyin initials too), and guides served from the copy with its date while the platform is down."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from device_profiles.loader import load_profile
from drivers.sim.process import ManagedProcess
from kiosk.errors import PlatformUnavailable
from kiosk.guide_cache import GuideCache, GuideNotCached
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner



@pytest.fixture
def own_platform(make_platform_server: Callable[..., Any]) -> ManagedProcess:
    """A platform of this test's own, so that the test can take it down."""
    return make_platform_server().proc


def client(url: str) -> PlatformClient:
    return PlatformClient(url, "KSK-340302-0001", signer(), timeout_s=2.0, retries=0)


def signer() -> KioskRequestSigner:
    """The demo kiosk's signing key of this test run (tests/conftest.py)."""
    return KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])


def test_the_copy_holds_the_whole_catalogue_and_searches_like_the_platform(platform_server: Any,
                                                                           tmp_path: Path) -> None:
    platform = client(platform_server.url)
    cache = GuideCache(tmp_path / "guides.sqlite3")
    try:
        assert cache.stale() and cache.refreshed_at is None
        catalogue = platform.catalogue(page_size=7)     # several pages
        assert cache.refresh(platform) == len(catalogue) >= 30 and len(cache) == len(catalogue)
        assert not cache.stale()
        assert [s.code for s in cache.search(limit=500)] == [s["code"] for s in catalogue]

        found = cache.search("gjj")
        assert found and all("公积金" in s.name for s in found)
        live = {s.code for s in platform.search_services("gjj", limit=100) if "公积金" in s.name}
        assert {s.code for s in found} == live
        assert {s.code for s in cache.search("gongjijin")} == live
        assert cache.search("公积金 提取") and all("提取" in s.name for s in cache.search("公积金 提取"))

        category = catalogue[0]["category"]
        in_category = cache.search(category=category, limit=500)
        assert in_category and {s.code for s in in_category} == \
            {s.code for s in platform.search_services(category=category, limit=100)}

        code = found[0].code
        assert cache.detail(code) == platform.service_detail(code)
        with pytest.raises(GuideNotCached):
            cache.detail("NO-SUCH-SERVICE")
    finally:
        cache.close()
        platform.close()


def test_a_failed_refresh_keeps_yesterdays_copy(own_platform: ManagedProcess, tmp_path: Path) -> None:
    platform = client(own_platform.endpoints["url"])
    now = [1_800_000_000.0]
    cache = GuideCache(tmp_path / "guides.sqlite3", clock=lambda: now[0])
    try:
        count = cache.refresh(platform)
        taken = cache.refreshed_at
        now[0] += 25 * 3600
        assert cache.stale()
        own_platform.stop()
        with pytest.raises(PlatformUnavailable):
            cache.refresh_if_stale(platform)
        assert len(cache) == count and cache.refreshed_at == taken and cache.search("gjj")
    finally:
        cache.close()
        platform.close()


class HeldPlatform(PlatformClient):
    """The real client, whose catalogue call waits at a gate: a refresh can be held in the middle."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "KSK-340302-0001", signer(), timeout_s=2.0, retries=0)
        self.entered, self.gate = threading.Event(), threading.Event()

    def catalogue(self, page_size: int = 100) -> list[dict[str, Any]]:
        self.entered.set()
        assert self.gate.wait(30)
        return super().catalogue(page_size)


def test_one_refresh_at_a_time(platform_server: Any, tmp_path: Path) -> None:
    platform = HeldPlatform(platform_server.url)
    cache = GuideCache(tmp_path / "guides.sqlite3")
    counts: list[int] = []
    try:
        first = threading.Thread(target=lambda: counts.append(cache.refresh(platform)))
        first.start()
        assert platform.entered.wait(10)
        assert cache.refresh(platform) == 0 and cache.refresh(platform) == 0, "a refresh is already running"
        platform.gate.set()
        first.join(60)
        assert counts == [len(cache)] and counts[0] > 0
    finally:
        cache.close()
        platform.close()


def test_the_kiosk_shows_guides_from_its_copy_while_the_platform_is_down(
        own_platform: ManagedProcess, make_profile: Callable[..., Path], wait_for: Callable[..., Any]) -> None:
    from kiosk.core import KioskCore

    profile = load_profile(make_profile(platform__url=own_platform.endpoints["url"], platform__retries=0),
                           environ={})
    core = KioskCore(profile)
    results: list[Any] = []
    errors: list[BaseException] = []
    try:
        core.search_services("gjj", on_result=results.append, on_error=errors.append)
        wait_for(lambda: results or errors, what="live search")
        assert results[0] and core.guide_offline_as_of is None and not errors
        assert core.refresh_guides() > 0
        live = [s.code for s in results[0]]

        own_platform.stop()
        results.clear()
        core.search_services("gjj", on_result=results.append, on_error=errors.append)
        wait_for(lambda: results or errors, what="offline search")
        assert not errors and {s.code for s in results[0]} <= set(live) and results[0]
        assert core.guide_offline_as_of == core.guide_cache.refreshed_at is not None

        core.service_detail(live[0], on_result=results.append, on_error=errors.append)
        wait_for(lambda: len(results) == 2 or errors, what="offline detail")
        assert not errors and results[1].summary.code == live[0] and results[1].materials

        core.service_detail("NO-SUCH-SERVICE", on_result=results.append, on_error=errors.append)
        wait_for(lambda: errors, what="uncached detail")
        assert isinstance(errors[0], GuideNotCached)
        assert core.translator.error_text(errors[0]) != errors[0].translation_key
    finally:
        core.workers.shutdown()
        core.voice.close()
        core.guide_cache.close()
        core.print_journal.close()
        core.platform.close()


def test_without_a_copy_the_platform_outage_is_reported(make_profile: Callable[..., Path],
                                                        wait_for: Callable[..., Any], own_platform: ManagedProcess
                                                        ) -> None:
    from kiosk.core import KioskCore

    url = own_platform.endpoints["url"]
    own_platform.stop()
    core = KioskCore(load_profile(make_profile(platform__url=url, platform__retries=0), environ={}))
    errors: list[BaseException] = []
    try:
        core.search_services("gjj", on_error=errors.append)
        wait_for(lambda: errors, what="search failure")
        assert isinstance(errors[0], PlatformUnavailable) and core.guide_offline_as_of is None
    finally:
        core.workers.shutdown()
        core.voice.close()
        core.guide_cache.close()
        core.print_journal.close()
        core.platform.close()
