"""An automation endpoint for tests and accessibility tooling: one JSON command per line on a loopback socket.

Only started with ``kiosk run --automation HOST:PORT``. It reads the UI (current screen, visible texts, where a
widget named by its ``aid`` is on the X screen) and takes screenshots; it never presses anything — tests press real
buttons through X (xdotool), as a finger would. Every query runs on the UI thread via ``Clock``.

Fault injection for the lifecycle tests, only on a loopback address: ``raise_in_ui`` schedules a callback on the UI
thread that raises (the shell's exception handler must end the session and keep running), ``raise_in_worker`` a worker
task that raises with nobody handling it, ``freeze_ui`` blocks the UI thread for ``seconds`` (the systemd watchdog
heartbeats must stop).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import ipaddress
import time

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from drivers.sim.control import ControlServer


def _walk(widget: Widget):
    yield widget
    for child in widget.children:
        yield from _walk(child)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _visible(widget: Widget) -> bool:
    w = widget
    while w is not None:
        if getattr(w, "opacity", 1) == 0 or getattr(w, "disabled_hidden", False):
            return False
        parent = w.parent
        if parent is w:
            break
        w = parent
    return widget.width > 0 and widget.height > 0


class Automation:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.server = ControlServer({
            "state": lambda: self._on_ui(self._state),
            "find": lambda aid: self._on_ui(lambda: self._find(aid)),
            "texts": lambda: self._on_ui(self._texts),
            "buttons": lambda: self._on_ui(self._buttons),
            "screenshot": lambda path: self._on_ui(lambda: self._screenshot(path)),
            "simulators": lambda: self._on_ui(self._simulators),
            "layout": lambda: self._on_ui(self._layout),
        }, host, port)
        if _loopback(host):   # test-only fault injection: never reachable from the network
            self.server.handlers.update({
                "raise_in_ui": self._raise_in_ui,
                "raise_in_worker": self._raise_in_worker,
                "freeze_ui": self._freeze_ui,
                "resize": lambda width, height: self._on_ui(lambda: self._resize(width, height)),
                "show": lambda name: self._on_ui(lambda: self._show(name)),
            })

    @property
    def address(self) -> str:
        return self.server.address

    def start(self) -> "Automation":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @staticmethod
    def _on_ui(fn: Callable[[], dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:
        box: dict[str, Any] = {}
        done = threading.Event()

        def run(_dt: float) -> None:
            try:
                box["result"] = fn()
            except Exception as exc:  # reported to the caller, never raised into the UI loop
                box["error"] = exc
            done.set()

        Clock.schedule_once(run, 0)
        if not done.wait(timeout):
            raise TimeoutError("the UI thread did not answer")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _roots(self) -> list[Widget]:
        return list(Window.children)  # the screen manager plus any open modal (timeout warning)

    def _state(self) -> dict[str, Any]:
        core = self.app.core
        return {"screen": self.app.sm.current, "session": core.session.state.value,
                "settings_open": any("Settings" in type(w).__name__ for root in self._roots() for w in _walk(root)),
                "maintenance": core.availability.maintenance or "",
                "recovered": getattr(self.app, "recoveries", 0),
                "refused": list(getattr(self.app, "refused", [])),
                "overlays": [type(w).__name__ for w in Window.children],
                "screens": list(self.app.sm.screen_names), "elderly": bool(getattr(self.app, "elderly", False)),
                "warning": core.session.warning_active, "language": core.translator.language,
                "modal": any(type(w).__name__ == "TimeoutWarning" for w in Window.children),
                "window": {"left": Window.left, "top": Window.top, "width": Window.width, "height": Window.height}}

    def _find(self, aid: str) -> dict[str, Any]:
        for root in self._roots():
            for widget in _walk(root):
                if getattr(widget, "aid", "") == aid and _visible(widget):
                    x, y = widget.to_window(widget.center_x, widget.center_y)
                    return {"found": True, "x": int(Window.left + x), "y": int(Window.top + Window.height - y),
                            "width": widget.width, "height": widget.height,
                            "disabled": bool(getattr(widget, "disabled", False)),
                            "primary": bool(getattr(widget, "primary", False)),   # highlighted (chosen tag, …)
                            "text": getattr(widget, "text", "")}
        return {"found": False}

    def _texts(self) -> dict[str, Any]:
        texts: list[str] = []
        for root in self._roots():
            for widget in _walk(root):
                if isinstance(widget, Label) and widget.text and _visible(widget):
                    texts.append(widget.text)
        return {"texts": texts}

    def _buttons(self) -> dict[str, Any]:
        """Every visible touch target on screen with its size (to check the ≥ 60 px rule)."""
        found = []
        for root in self._roots():
            for widget in _walk(root):
                if isinstance(widget, ButtonBehavior) and _visible(widget):
                    found.append({"aid": getattr(widget, "aid", ""), "text": getattr(widget, "text", ""),
                                  "width": widget.width, "height": widget.height})
        return {"buttons": found}

    def _layout(self) -> dict[str, Any]:
        """Every visible label or button of the current screen (and open dialogs) whose text does not fit: its text
        texture larger than its box, lines cut off by a fixed text box, text shortened with "…", or its box (partly)
        outside the window (not counted inside a ScrollView, whose content may scroll)."""
        from screens.layout_check import layout_problems

        problems = [p.as_dict() for root in self._roots() for p in layout_problems(root, Window.width, Window.height)]
        return {"screen": self.app.sm.current, "window": [Window.width, Window.height], "problems": problems}

    def _resize(self, width: int, height: int) -> dict[str, Any]:
        """Test-only (loopback): resize the window, as a kiosk of another screen size or orientation would be."""
        Window.size = (int(width), int(height))
        Window.left, Window.top = 0, 0   # on the X screen, where clicks and screenshots reach it
        return {"requested": [int(width), int(height)]}

    def _show(self, name: str) -> dict[str, Any]:
        """Test-only (loopback): open screen ``name`` as a menu tile would (``app.go``), with no data handed over —
        the layout walk visits every screen this way; screens that need data raise (the caller reports them)."""
        self.app.go(name)
        return {"screen": self.app.sm.current, "screens": list(self.app.sm.screen_names)}

    def _screenshot(self, path: str) -> dict[str, Any]:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Window.screenshot(name=str(target))  # Kivy writes name with a counter: x.png → x0001.png
        written = sorted(target.parent.glob(target.stem + "*" + target.suffix), key=lambda p: p.stat().st_mtime)
        if written and written[-1] != target:
            written[-1].replace(target)
        return {"path": str(target)}

    # fault injection (loopback only) ---------------------------------------------------------------------------------
    @staticmethod
    def _raise_in_ui() -> dict[str, Any]:
        def boom(_dt: float) -> None:
            # the message carries made-up personal data: the crash log must not show it
            raise RuntimeError("automation: injected failure for 张*华 110101199003077777")

        Clock.schedule_once(boom, 0)
        return {"scheduled": True}

    def _raise_in_worker(self) -> dict[str, Any]:
        def injected_worker_failure() -> None:
            raise ValueError("automation: injected worker failure for 110101199003077777")

        self.app.core.workers.submit(injected_worker_failure)
        return {"scheduled": True}

    @staticmethod
    def _freeze_ui(seconds: float = 30.0) -> dict[str, Any]:
        Clock.schedule_once(lambda _dt: time.sleep(float(seconds)), 0)
        return {"scheduled": True, "seconds": float(seconds)}

    def _simulators(self) -> dict[str, Any]:
        return {kind: sim.endpoints for kind, sim in self.app.core.devices.simulators.items()}
