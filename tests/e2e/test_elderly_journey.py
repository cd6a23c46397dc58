"""Elderly mode (适老化) on the real window: one large button on the attract screen switches it on; the touch targets
grow ≥ 1.5×; the card is read in the same session; the menu shows at most 6 tiles a page, the most used services
first (the platform's counts); my applications → one application's timeline; "finish" ends the session and the next
citizen starts in normal mode. Screenshots of each step in test-output/<test>/."""
from __future__ import annotations

import os
from typing import Any, Callable

import pytest

from drivers.sim.control import send_command
from kiosk.elderly import TILES_PER_PAGE, TOUCH_FACTOR, order_by_usage
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner
from screens.menu import USAGE_FEATURE
from tests.e2e.conftest import KioskUI

pytestmark = pytest.mark.e2e


def heights(ui: KioskUI) -> dict[str, float]:
    return {b["aid"]: b["height"] for b in ui.ask("buttons")["buttons"] if b["aid"]}


def tiles(ui: KioskUI) -> list[str]:
    """The menu tiles on screen, in their order (the grid lists them left to right, top to bottom)."""
    found = [(ui.find(aid), aid) for aid in heights(ui) if aid.startswith("tile_")]
    return [aid for f, aid in sorted(found, key=lambda fa: (fa[0]["y"], fa[0]["x"]))]


def platform_counts(url: str) -> dict[str, int]:
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    client = PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10)
    try:
        return client.feature_usage()["features"]
    finally:
        client.close()


def test_elderly_mode_through_a_journey(start_kiosk: Callable[..., KioskUI], platform_server: Any,
                                        wait_for: Callable[..., Any]) -> None:
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    sims = ui.simulators(wait_for)
    normal = heights(ui)
    ui.tap("elderly_mode", wait_for)
    wait_for(lambda: ui.state()["elderly"], what="elderly mode on")
    ui.wait_text("退出长辈模式", wait_for)
    large = wait_for(lambda: (lambda h: h if h["start_without_card"] >= TOUCH_FACTOR * normal["start_without_card"]
                              else None)(heights(ui)), what="larger touch targets")
    for aid in ("start_without_card", "lang", "elderly_mode"):
        assert large[aid] >= TOUCH_FACTOR * normal[aid] - 1, (aid, normal[aid], large[aid])
    ui.screenshot("e01-attract-elderly")

    send_command(sims["idcard"]["control"], "place_card", identity="zhang")
    ui.wait_screen("menu", wait_for)
    ui.wait_text("您好，张*华", wait_for)
    assert ui.state()["elderly"], "the mode lasts for the session: still on after the card"
    # most used first, six a page (the platform's aggregate counts; fetched when the mode was switched on)
    counts = platform_counts(platform_server.url)

    def feature_list(aids: list[str]) -> list[str]:
        return [USAGE_FEATURE.get(aid.removeprefix("tile_"), aid.removeprefix("tile_")) for aid in aids]

    shown = wait_for(lambda: (lambda t: t if t and feature_list(t) == order_by_usage(feature_list(t), counts)
                              else None)(tiles(ui)), timeout=20, what="the menu in order of use")
    assert 0 < len(shown) <= TILES_PER_PAGE, shown
    features = feature_list(shown)
    assert counts.get(features[0], 0) == max(counts.get(f, 0) for f in features)
    ui.screenshot("e02-menu-elderly")
    seen = list(shown)
    if ui.find("menu_next")["found"] and not ui.find("menu_next")["disabled"]:
        ui.tap("menu_next", wait_for)
        page2 = wait_for(lambda: (lambda t: t if t and t != shown else None)(tiles(ui)), what="the second page")
        assert len(page2) <= TILES_PER_PAGE and not set(page2) & set(shown)
        seen += page2
        ui.screenshot("e03-menu-elderly-page2")
        if "tile_my_applications" not in page2:
            ui.tap("menu_prev", wait_for)
            wait_for(lambda: tiles(ui) == shown, what="back on the first page")
    assert "tile_my_applications" in seen and "tile_guide" in seen
    assert feature_list(seen) == order_by_usage(feature_list(seen), counts), "most used first, across the pages"

    ui.tap("tile_my_applications", wait_for)
    ui.wait_screen("progress", wait_for)
    ui.wait_text("我的办件", wait_for)
    ui.tap("application_0", wait_for)
    ui.wait_text("办件编号：", wait_for)
    ui.screenshot("e04-progress-elderly")

    ui.tap("back", wait_for)
    ui.wait_screen("menu", wait_for)
    ui.tap("finish", wait_for)
    wait_for(lambda: ui.state()["session"] == "idle" and ui.state()["screen"] == "attract", what="session ended")
    assert not ui.state()["elderly"], "the next citizen starts in normal mode"
    ui.wait_text("长辈模式（大字）", wait_for)
    assert heights(ui)["start_without_card"] == pytest.approx(normal["start_without_card"], abs=1)
