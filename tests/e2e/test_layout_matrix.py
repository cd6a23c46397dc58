"""Right at every size: every screen of the demo at 1920×1080 landscape, 1080×1920 portrait and 1280×1024, in zh and
en, in normal and elderly mode (适老化) — the automation endpoint's ``layout`` report (screens/layout_check.py:
text larger than its box, lines cut, text shortened, boxes off the window) must be empty everywhere.

One kiosk process for the whole matrix: the window is resized in-process (automation ``resize``), language and mode
are switched by real taps on the attract screen (the buttons a citizen uses), each screen is reached by a tap where
the demo has one (menu, guide → a service's guide → print) and otherwise opened as its menu tile would open it
(automation ``show``). Screenshots of every screen go to test-output/<test>/; the attract and menu pictures of every
combination are composed into one grid image (docs/screenshots/layout-matrix.png is a copy of it).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.e2e.conftest import KioskUI

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

SIZES = {"landscape": (1920, 1080), "portrait": (1080, 1920), "sxga": (1280, 1024)}
LANGS = ("zh_CN", "en")
MODES = ("normal", "elderly")
#: screens that show a citizen's data handed over by the flow before them: reached by taps (guide_detail,
#: print_confirm), or not in the demo (face_check needs a camera; rating comes after a print; staff needs the PIN)
#: screens photographed in every combination (others only when their report is not empty)
PHOTOGRAPHED = {"attract", "menu", "guide_detail"}
#: the screens whose layout was checked
CHECKED: set[str] = set()
NEEDS_CONTEXT = {"attract", "menu", "guide_detail", "print_confirm", "apply_review", "rating", "face_check", "staff"}


def _settled_layout(ui: KioskUI, wait_for: Callable[..., Any]) -> dict[str, Any]:
    """The automation's ``layout`` report once the screen has settled (a new screen, size, language or mode is laid
    out over a few frames): the same report on two looks in a row — each look is a trip through the UI thread's
    clock, so layout passes ran between them."""
    last: dict[str, Any] = {}

    def same_twice() -> dict[str, Any] | None:
        report = ui.ask("layout")
        settled = last.get("report") == report
        last["report"] = report
        return report if settled else None

    return wait_for(same_twice, timeout=20, interval=0.1, what="the layout settled")


def _check(ui: KioskUI, wait_for: Callable[..., Any], tag: str, shots: dict[str, Path], problems: list[str]) -> None:
    report = _settled_layout(ui, wait_for)
    for p in report["problems"]:
        problems.append(f"{report['screen']}: {p['problem']} {p['widget']} aid={p['aid']!r} text={p['text']!r}"
                        f"\t{tag} box={p['box']} needs={p['needed']}")
    if report["problems"] or report["screen"] in PHOTOGRAPHED:   # the evidence, and the grid's pictures
        shots[f"{tag}-{report['screen']}"] = ui.screenshot(f"{tag}-{report['screen']}")
    CHECKED.add(report["screen"])


def _resize(ui: KioskUI, wait_for: Callable[..., Any], width: int, height: int) -> None:
    ui.ask("resize", width=width, height=height)
    wait_for(lambda: (lambda w: w["width"] == width and w["height"] == height)(ui.state()["window"]),
             timeout=15, what=f"window {width}×{height}")   # laid out anew: each check waits for that


def _walk(ui: KioskUI, wait_for: Callable[..., Any], tag: str, lang: str, mode: str,
          shots: dict[str, Path], problems: list[str], unreachable: set[str]) -> None:
    ui.wait_screen("attract", wait_for)
    if lang != ui.state()["language"]:
        ui.tap("lang", wait_for)
        wait_for(lambda: ui.state()["language"] == lang, what=f"language {lang}")
    if (mode == "elderly") != ui.state()["elderly"]:
        ui.tap("elderly_mode", wait_for)
        wait_for(lambda: ui.state()["elderly"] == (mode == "elderly"), what=f"{mode} mode")
    _check(ui, wait_for, tag, shots, problems)
    ui.tap("start_without_card", wait_for)
    ui.wait_screen("menu", wait_for)
    _check(ui, wait_for, tag, shots, problems)
    try:
        _guide_journey(ui, wait_for, tag, shots, problems)
    except pytest.fail.Exception as exc:   # noqa: PERF203 - the walk goes on; the failure is one of the problems
        problems.append(f"{tag}: the guide journey stopped: {str(exc).splitlines()[0]}")
    # every other screen as its tile opens it (whatever screens the shell has when this runs)
    for name in ui.state()["screens"]:
        if name in NEEDS_CONTEXT:
            continue
        try:
            ui.ask("show", name=name)
        except AssertionError:   # the screen needs data from the flow before it
            unreachable.add(name)
            continue
        ui.wait_screen(name, wait_for)
        _check(ui, wait_for, tag, shots, problems)
    ui.ask("show", name="menu")
    ui.wait_screen("menu", wait_for)
    ui.tap("finish", wait_for)   # the session ends: language and mode go back to the profile's
    wait_for(lambda: ui.state()["session"] == "idle" and not ui.state()["elderly"], what="session ended")


def _guide_journey(ui: KioskUI, wait_for: Callable[..., Any], tag: str, shots: dict[str, Path],
                   problems: list[str]) -> None:
    """The guide of a popular service, and its print confirmation: real data on screen."""
    ui.tap("tile_guide", wait_for)
    ui.wait_screen("guide", wait_for)
    # the popular service highest on the screen (the list scrolls: lower ones may be out of its view)
    hot = wait_for(lambda: min(((ui.find(b["aid"])["y"], b["aid"]) for b in ui.ask("buttons")["buttons"]
                                if b["aid"].startswith("hot_")), default=(0, None))[1],
                   timeout=30, what="a popular service")
    ui.tap(hot, wait_for)
    wait_for(lambda: ui.find("service_0")["found"] or ui.state()["screen"] == "guide_detail", timeout=30,
             what="search results")
    if ui.state()["screen"] == "guide":
        _check(ui, wait_for, tag, shots, problems)
        ui.tap("service_0", wait_for)
    ui.wait_screen("guide_detail", wait_for)
    wait_for(lambda: ui.find("service_name")["found"], timeout=30, what="the service's guide")
    _check(ui, wait_for, tag, shots, problems)
    ui.tap("print_notice", wait_for)
    ui.wait_screen("print_confirm", wait_for)
    _check(ui, wait_for, tag, shots, problems)


def compose_grid(images: list[tuple[str, Path]], target: Path, cell: int = 360) -> Path:
    """One picture of many screenshots (each scaled to fit a ``cell``-pixel square, captioned)."""
    from PIL import Image, ImageDraw, ImageFont

    cols = 6
    rows = (len(images) + cols - 1) // cols
    caption = 28
    grid = Image.new("RGB", (cols * cell, rows * (cell + caption)), "white")
    font = ImageFont.truetype("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 18)
    draw = ImageDraw.Draw(grid)
    for i, (label, path) in enumerate(images):
        with Image.open(path) as shot:
            shot.thumbnail((cell - 8, cell - 8))
            x, y = (i % cols) * cell, (i // cols) * (cell + caption)
            grid.paste(shot.convert("RGB"), (x + (cell - shot.width) // 2, y + caption + (cell - shot.height) // 2))
            draw.text((x + 6, y + 4), label, fill="black", font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    grid.quantize(colors=256).save(target, optimize=True)   # a palette PNG: a fraction of the size
    return target


def test_every_screen_fits_at_every_size_language_and_mode(start_kiosk: Callable[..., KioskUI],
                                                           wait_for: Callable[..., Any], output_dir: Path) -> None:
    ui = start_kiosk()
    ui.simulators(wait_for)
    shots: dict[str, Path] = {}
    problems: list[str] = []
    unreachable: set[str] = set()
    sizes = os.environ.get("LAYOUT_SIZES", ",".join(SIZES)).split(",")   # a developer may walk fewer
    for size_name, (width, height) in ((s, SIZES[s]) for s in sizes):
        _resize(ui, wait_for, width, height)
        for lang in LANGS:
            for mode in MODES:
                _walk(ui, wait_for, f"{size_name}-{lang}-{mode}", lang, mode, shots, problems, unreachable)
    grid = compose_grid([(k.rsplit("-", 1)[0] if k.endswith(("attract", "menu")) else k, p)
                         for k, p in shots.items() if k.endswith(("-attract", "-menu"))],
                        output_dir / "layout-matrix.png")
    assert grid.stat().st_size > 50_000
    covered = set(CHECKED)   # every screen whose layout was checked
    assert {"attract", "menu", "guide", "guide_detail", "print_confirm"} <= covered, covered
    (output_dir / "layout-problems.txt").write_text("\n".join(problems), "utf-8")
    grouped: dict[str, list[str]] = {}
    for line in problems:   # one line per widget and problem, with the combinations it occurs in
        what, _, where = line.partition("\t")
        grouped.setdefault(what, []).append(where.split(" ", 1)[0])
    summary = [f"{what}  [{len(tags)}×: {', '.join(sorted(set(tags))[:4])}]" for what, tags in sorted(grouped.items())]
    assert not problems, f"{len(problems)} layout problems ({len(grouped)} distinct):\n" + "\n".join(summary[:150])
    assert not unreachable, f"screens the walk could not open: {sorted(unreachable)}"
