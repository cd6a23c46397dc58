"""What does not fit on the screen: the automation endpoint's ``layout`` report (tests walk every screen at every
window size, language and mode and expect it empty).

A visible label or button (anything showing text: Kivy's ``Label`` and its subclasses) is reported when
- ``text_overflow``: its text texture is larger than its box (the text is drawn over its neighbours or cut by them);
- ``lines_cut``: its text box has a fixed height (``text_size: self.size``) and the wrapped text needs more — Kivy
  silently drops the lines that do not fit;
- ``shortened``: ``shorten`` replaced part of the text with "…";
- ``word_broken``: a word is wider than the text box, so Kivy breaks it in the middle ("Standar / d mode");
- ``off_window``: its box lies (partly) outside the window — not counted inside a ScrollView, whose content scrolls;
- ``outside_parent``: its box sticks out of its parent's (a row too low for its button, a column too full: drawn over
  the neighbours — how the attract screen's clock ended up above the window's top edge).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator

from kivy.core.text import Label as CoreLabel
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

#: pixels of slack (sub-pixel layouts, rounding of texture sizes)
TOLERANCE = 2.0


@dataclass(frozen=True)
class LayoutProblem:
    problem: str
    widget: str
    aid: str
    text: str
    box: tuple[float, float, float, float]      # x, y, width, height in window coordinates
    needed: tuple[float, float]                 # what the text needs (width, height)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shown(widget: Widget) -> bool:
    w: Widget | None = widget
    while w is not None:
        if getattr(w, "opacity", 1) == 0:
            return False
        parent = w.parent
        if parent is w:
            break
        w = parent
    return widget.width > 0 and widget.height > 0


def _parked(widget: Widget, window_w: float, window_h: float) -> bool:
    """Moved far off the window on purpose (a hidden step: screens/payment.kv parks its panels at −10 × width)."""
    x, y = widget.to_window(*widget.pos)
    return x + widget.width < -window_w or x > 2 * window_w or y + widget.height < -window_h or y > 2 * window_h


def _walk(widget: Widget, window_w: float, window_h: float,
          in_scroll: bool = False) -> Iterator[tuple[Widget, bool]]:
    if widget.children and _parked(widget, window_w, window_h):
        return
    yield widget, in_scroll
    inside = in_scroll or isinstance(widget, ScrollView)
    for child in widget.children:
        yield from _walk(child, window_w, window_h, inside)


def _measure(label: Label, width: float | None, text: str | None = None) -> tuple[float, float]:
    """The size the label's text (or ``text`` in its font) needs when wrapped at ``width`` with no height limit."""
    core = CoreLabel(text=label.text if text is None else text, font_size=label.font_size, font_name=label.font_name, bold=label.bold,
                     italic=label.italic, halign=label.halign, markup=label.markup, text_size=(width, None),
                     line_height=label.line_height, max_lines=label.max_lines or 0,
                     padding=getattr(label, "padding", (0, 0, 0, 0)))
    core.refresh()
    return core.content_size if hasattr(core, "content_size") else core.texture.size


def label_problems(label: Label, window_w: float, window_h: float, in_scroll: bool) -> list[LayoutProblem]:
    if not label.text or not _shown(label):
        return []
    x, y = label.to_window(*label.pos)
    box = (round(x, 1), round(y, 1), round(label.width, 1), round(label.height, 1))

    def problem(kind: str, needed: tuple[float, float]) -> LayoutProblem:
        return LayoutProblem(kind, type(label).__name__, str(getattr(label, "aid", "") or ""), label.text[:60], box,
                             (round(needed[0], 1), round(needed[1], 1)))

    found: list[LayoutProblem] = []
    tw, th = label.texture_size
    if tw > label.width + TOLERANCE or th > label.height + TOLERANCE:
        found.append(problem("text_overflow", (tw, th)))
    text_w, text_h = label.text_size
    if label.shorten and text_w:
        needed = _measure(label, None)  # type: ignore[arg-type]   # one line, no width limit
        if needed[0] > text_w + TOLERANCE:
            found.append(problem("shortened", needed))
    elif text_w and text_h is not None and not found:
        needed = _measure(label, text_w)
        if needed[1] > text_h + TOLERANCE:
            found.append(problem("lines_cut", needed))
    if text_w and not label.shorten and not label.markup:
        longest = max(label.text.split(), key=len, default="")
        if longest.isascii() and len(longest) > 1:   # Latin words: Kivy breaks a word too long for its line
            needed = _measure(label, None, longest)
            if needed[0] > text_w + TOLERANCE:
                found.append(problem("word_broken", needed))
    if not in_scroll and (x < -TOLERANCE or y < -TOLERANCE or x + label.width > window_w + TOLERANCE
                          or y + label.height > window_h + TOLERANCE):
        found.append(problem("off_window", (label.width, label.height)))
    else:
        parent = label.parent
        if parent is not None and parent is not label and isinstance(parent, Widget) \
                and not isinstance(parent, ScrollView) and parent.width > 0 and parent.height > 0:
            px, py = parent.to_window(*parent.pos)
            if x < px - TOLERANCE or y < py - TOLERANCE or x + label.width > px + parent.width + TOLERANCE \
                    or y + label.height > py + parent.height + TOLERANCE:
                found.append(problem("outside_parent", (label.width, label.height)))
    return found


def layout_problems(root: Widget, window_w: float, window_h: float) -> list[LayoutProblem]:
    """Every problem of the visible labels under ``root`` (the screen manager shows only the current screen)."""
    found: list[LayoutProblem] = []
    for widget, in_scroll in _walk(root, window_w, window_h):
        if isinstance(widget, Label):
            found += label_problems(widget, window_w, window_h, in_scroll)
    return found
