"""The URLs the kiosk prints as QR codes come from the platform's kiosk configuration (its PUBLIC base URL and verify
pages), survive a restart while the platform is down (the copy on disk), are URL-encoded, and open real pages."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx

from kiosk.platform_client import PlatformClient
from kiosk.public_urls import PublicUrls
from kiosk.request_signing import KioskRequestSigner


def client_for(url: str) -> PlatformClient:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    return PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10, retries=0)


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_templates_from_the_platform_kept_across_a_restart(platform_server, tmp_path: Path) -> None:
    internal = "http://kiosk-internal.invalid:9"   # what the profile says: never what goes on paper once known
    urls = PublicUrls(internal, tmp_path / "public-urls.json")
    assert urls.application("SP1").startswith(internal) and not urls.from_platform
    client = client_for(platform_server.url)
    try:
        assert urls.refresh(client) and urls.live and urls.public_base_url
        config = client.kiosk_config()
    finally:
        client.close()
    assert urls.application("SP20261012000101") == \
        config["verify_urls"]["application"].replace("{number}", "SP20261012000101")
    assert urls.url("guide", service_code="a b/c").endswith("/guides/a%20b%2Fc"), "values are URL-encoded"
    for url in (urls.application("SP20261012000101"), urls.guide("hukou-move-in")):
        assert httpx.get(url, timeout=10).status_code == 200, url

    down = client_for(closed_url())
    try:
        restarted = PublicUrls(internal, tmp_path / "public-urls.json")   # a restart while the platform is down
        assert not restarted.refresh(down) and restarted.from_platform and not restarted.live
    finally:
        down.close()
    assert restarted.application("SP1") == urls.application("SP1") and not restarted.application("SP1").startswith(
        internal)
