"""The fullscreen Kivy shell. It shows state and forwards taps to :class:`kiosk.core.KioskCore`; every flow lives in
the core. Results of workers come back on the UI thread through ``Clock``.

Import this module only after :func:`configure_kivy` (Kivy reads its window config at import time).

Unattended for months: the shell is locked down (no settings panel, no inspector, no key that leaves, minimises,
closes or reconfigures it; window close requests are refused — it stops on SIGTERM and on the restart path only),
survives exceptions (kiosk/lifecycle.py: the session is ended and wiped, "please start again", an alarm, out of service
after repeated crashes) and tells systemd it is alive from its own UI loop (kiosk/watchdog.py; deploy/systemd/).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.base import ExceptionHandler, ExceptionManager
from kivy.clock import Clock
from kivy.core.text import LabelBase
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import (AliasProperty, BooleanProperty, DictProperty, NumericProperty, ObjectProperty,
                             StringProperty)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager

from device_profiles.loader import Profile
from kiosk.core import Availability, KioskCore
from kiosk.elderly import ELDERLY_PALETTE, NORMAL_PALETTE, TOUCH_FACTOR, font_factor
from kiosk.lifecycle import CrashRecovery
from kiosk.session import State
from kiosk.watchdog import Heartbeat, Liveness, Notifier

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CJK_REGULAR = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
CJK_BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"


def register_fonts() -> None:
    """Make Noto Sans CJK the default font of every widget (Kivy's default, Roboto, has no Chinese)."""
    if Path(CJK_REGULAR).exists():
        LabelBase.register(name="Roboto", fn_regular=CJK_REGULAR,
                           fn_bold=CJK_BOLD if Path(CJK_BOLD).exists() else CJK_REGULAR)
    else:
        log.error("CJK font missing (%s): install fonts-noto-cjk", CJK_REGULAR)


#: modules of this package that hold no screens
NOT_SCREENS = frozenset({"app", "cli", "automation", "widgets", "display"})


def collect_screens() -> dict[str, type]:
    """Every screen of the shell: each module of ``screens/`` names its own in ``SCREENS`` (name → class), so a new
    capability adds its screens by adding a module (and its .kv file), not by editing this one."""
    import importlib
    import pkgutil

    import screens

    found: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(screens.__path__), key=lambda i: i.name):
        if info.name in NOT_SCREENS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"screens.{info.name}")
        for name, cls in getattr(module, "SCREENS", {}).items():
            if name in found:
                raise ValueError(f"screen {name!r} defined twice ({found[name].__module__}, {module.__name__})")
            found[name] = cls
    return found


def _dispatch_on_ui(fn) -> None:
    Clock.schedule_once(lambda _dt: fn(), 0)


#: keys Kivy or a window manager could use to leave, close, reconfigure or photograph the shell: swallowed
#: (F1 settings, Escape exit/back, F11/F12 Kivy's screen/keybinding modules, Alt+F4, Ctrl/Meta+Q/W)
_BLOCKED_KEYS = {27: "escape", 282: "f1", 292: "f11", 293: "f12"}
_BLOCKED_CHORDS = {285: "f4", 113: "q", 119: "w", 99: "c"}   # with ctrl, alt or meta


class _ShellExceptionHandler(ExceptionHandler):
    """Kivy's loop hands every exception of a callback here: the shell recovers and the loop goes on. Ctrl+C in a
    terminal (KeyboardInterrupt) and sys.exit still end it."""

    def __init__(self, app: "KioskApp") -> None:
        super().__init__()
        self.app = app
        self._last: BaseException | None = None

    def handle_exception(self, exception: BaseException) -> int:
        if isinstance(exception, (KeyboardInterrupt, SystemExit)):
            return ExceptionManager.RAISE
        if exception is self._last:   # the same exception seen again on its way up: handled once
            return ExceptionManager.PASS
        self._last = exception
        Clock.schedule_once(lambda _dt: setattr(self, "_last", None), 0)   # its frames may hold personal data
        try:
            self.app.recover(exception, "ui")
        except Exception as exc:  # noqa: BLE001 - never let the handler itself end the loop
            log.critical("exception handler failed: %s", type(exc).__name__)
        return ExceptionManager.PASS


class KioskApp(App):
    use_kivy_settings = False   # lockdown: no Kivy settings panel (F1), nothing written to ~/.kivy/config.ini
    lang = StringProperty("zh_CN")
    clock_text = StringProperty("")
    clock_time = StringProperty("")
    clock_date = StringProperty("")
    citizen_name = StringProperty("")
    citizen_id = StringProperty("")
    features = DictProperty({})
    #: menu feature → translation key of why this citizen's identity level cannot use it (kiosk/identity_levels.py)
    locks = DictProperty({})
    font_base = NumericProperty(36)
    #: elderly mode (适老化) for this session (kiosk/elderly.py): larger text and targets, the 7:1 palette
    elderly = BooleanProperty(False)
    #: colours of the common widgets (kiosk/elderly.py Palette), swapped with elderly mode
    palette = DictProperty(NORMAL_PALETTE.as_dict())
    #: the smallest touch target (px): 96, × 1.5 in elderly mode (KButton and the rows that hold buttons use it)
    touch_min = NumericProperty(96)
    sm = ObjectProperty(None)

    def _get_fs(self) -> Any:
        base, elderly = self.font_base, self.elderly
        return lambda scale: base * scale * font_factor(scale, elderly)

    #: ``app.fs(scale)`` → pixels: ``scale`` × the base font size (× 1.5, headings × 1.6, in elderly mode). A property
    #: (not a method) so that every kv rule using it is evaluated again when the window size or the mode changes
    fs = AliasProperty(_get_fs, None, bind=("font_base", "elderly"), cache=False)

    def __init__(self, profile: Profile, screenshot_dir: str | None = None, automation: tuple[str, int] | None = None,
                 core: KioskCore | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile = profile
        self.core = core or KioskCore(profile, dispatcher=_dispatch_on_ui)
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        self._shots = 0
        self._automation_addr = automation
        self.automation = None
        self._warning = None
        self._pin_pad = None
        self.restart_pending = False  # an operator asked for a restart: exit once no citizen is being served
        self.title = profile.kiosk.name.get("zh_CN", "kiosk")
        # exceptions: ended session, "please start again", alarm, out of service after repeated ones
        self.recovery = CrashRecovery(self.core.context)
        self.recoveries = 0
        self._exception_handler = _ShellExceptionHandler(self)
        # systemd: READY=1 once the attract screen is drawn, WATCHDOG=1 from this loop while frames are drawn
        self.notifier = Notifier()
        self.liveness = Liveness(stall_s=max(2.0, 1.5 * self.notifier.heartbeat_interval_s),
                                 ticks=lambda: Clock.frames)
        self._heartbeat = Heartbeat(self.notifier, self.liveness)
        self._ready_sent = False
        self.refused: list[str] = []   # the last keys and close requests the lockdown refused (automation reads them)

    # lockdown ---------------------------------------------------------------------------------------------------------
    def open_settings(self, *largs: Any) -> bool:
        return False   # never: the settings panel would let anyone reconfigure the kiosk

    def _install_settings_keys(self, window: Any) -> None:
        pass   # no F1 binding at all (open_settings refuses anyway)

    def on_pause(self) -> bool:
        return True   # a pause request (minimise) must not stop the shell

    def _on_keyboard(self, _window: Any, key: int, _scancode: Any = None, _codepoint: Any = None,
                     modifiers: Any = None) -> bool:
        mods = set(modifiers or ())
        if key in _BLOCKED_KEYS or (key in _BLOCKED_CHORDS and mods & {"ctrl", "alt", "meta"}):
            name = "+".join(sorted(mods & {"ctrl", "alt", "meta", "shift"}) +
                            [_BLOCKED_KEYS.get(key) or _BLOCKED_CHORDS[key]])
            log.info("key %s refused (kiosk lockdown)", name)
            self.refused.append(name)
            del self.refused[:-50]
            return True
        return False

    def _refuse_close(self, *_args: Any, **_kwargs: Any) -> bool:
        log.info("window close request refused (kiosk lockdown): stop the service instead")
        self.refused.append("close_request")
        return True

    def _on_minimize(self, *_args: Any) -> None:
        Clock.schedule_once(lambda _dt: Window.restore(), 0.2)

    # exceptions -------------------------------------------------------------------------------------------------------
    def recover(self, exc: BaseException, where: str = "ui") -> None:
        """After an unexpected exception (UI callback, unhandled worker task, thread): the core ends the session
        (wipe), logs, alarms, counts; the shell shows "please start again" and keeps running."""
        self.recoveries += 1
        decision = self.recovery.handle(exc, where)
        self.notifier.status(f"recovered from {type(exc).__name__} in {where} "
                             f"({decision.count} within {self.recovery.policy.window_s:.0f} s)"
                             + ("; out of service" if decision.out_of_service else ""))
        # after the core's "ended" event (delivered on the next frame): the notice is not wiped by its resets
        Clock.schedule_once(lambda _dt: self._show_recovery(), 0.1)

    def _show_recovery(self) -> None:
        from kivy.uix.modalview import ModalView

        for widget in list(Window.children):   # timeout warning, PIN pad, any dialog of the failed flow
            if isinstance(widget, ModalView):
                self._guarded("dismiss dialog", lambda w=widget: w.dismiss(animation=False))
        self._warning = None
        self.citizen_name = self.citizen_id = ""
        for screen in self.sm.screens:
            self._guarded(f"reset {screen.name}", screen.reset)
        out = self.core.availability.out_of_service
        self._guarded("show attract", lambda: setattr(self.sm, "current", "out_of_service" if out else "attract"))
        if out:
            return
        attract = self.sm.get_screen("attract")
        notice = self.t("recovery.start_again")
        attract.message = notice
        self.core.speak("recovery.voice")

        def clear(_dt: float) -> None:
            if attract.message == notice:
                attract.message = ""

        Clock.schedule_once(clear, 30)

    @staticmethod
    def _guarded(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - recovering must not raise into the handler again
            log.error("recovery: %s failed: %s", what, type(exc).__name__)

    def _thread_exception(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc = args.exc_value
        Clock.schedule_once(lambda _dt: self.recover(exc, f"thread {name}"), 0)

    # systemd ----------------------------------------------------------------------------------------------------------
    def _start_watchdog(self) -> None:
        Window.bind(on_flip=self._on_frame)
        Window.bind(on_key_down=self._on_any_key)
        interval = self.notifier.heartbeat_interval_s
        if interval > 0:
            Clock.schedule_interval(self._beat, interval)
            log.info("systemd watchdog: heartbeat every %.1f s from the UI loop", interval)

    def _on_any_key(self, *_args: Any) -> None:   # returns None: the key goes on
        self.liveness.input()

    def _on_frame(self, *_args: Any) -> None:
        self.liveness.frame()
        if not self._ready_sent and self.sm is not None and self.sm.current in ("attract", "out_of_service"):
            self._ready_sent = True
            self.notifier.ready(self._service_status())

    def _beat(self, _dt: float) -> None:
        self._heartbeat.beat()
        Window.canvas.ask_update()   # a static screen draws once per interval too: the next beat sees a frame

    def _service_status(self) -> str:
        avail = self.core.availability
        if avail.out_of_service:
            return "out of service" + (f" ({avail.maintenance})" if avail.maintenance else "")
        return "in service: " + self.sm.current

    # helpers used by the .kv files -----------------------------------------------------------------------------------
    def t(self, key: str, _lang: str | None = None, **placeholders: Any) -> str:
        """Translate; kv rules pass ``app.lang`` as second argument so text updates when the language changes."""
        return self.core.translator.t(key, **placeholders)

    def pick(self, texts: dict[str, str], _lang: str | None = None) -> str:
        return self.core.translator.pick(texts)

    # build ------------------------------------------------------------------------------------------------------------
    def build(self) -> Any:
        register_fonts()
        Window.clearcolor = (0.97, 0.98, 1, 1)
        self._size_fonts()
        Window.bind(size=lambda *_: self._size_fonts())   # a resized window (or rotated screen) re-lays out
        self.core.elderly.on_change = lambda on: self.core.dispatch(lambda: self._show_elderly(on))
        self._show_elderly(self.core.elderly.active)
        self.lang = self.core.translator.language
        self.core.translator.on_change(lambda lang: setattr(self, "lang", lang))
        self.bind(lang=lambda *_: self._show_announcement() if self.sm else None)
        from screens.timeout_warning import TimeoutWarning

        screens = collect_screens()
        for kv in sorted(HERE.glob("*.kv")):
            Builder.load_file(str(kv))
        self._warning_cls = TimeoutWarning
        sm = ScreenManager(transition=NoTransition())  # instant, unambiguous changes; cheap on software GL
        sm.add_widget(screens.pop("attract")(name="attract"))   # the first screen added is the one shown
        for name, cls in screens.items():
            sm.add_widget(cls(name=name))
        sm.bind(current=self._on_screen)
        self.sm = sm
        root = BoxLayout(orientation="vertical")
        root.add_widget(sm)
        from screens.control_bar import ControlBar

        root.add_widget(ControlBar())   # repeat / volume / mute / Help: the same place on every screen
        if self.profile.kiosk.demo_controls:
            root.add_widget(self._demo_bar())
        Window.bind(on_touch_down=self._on_any_touch)
        self.core.subscribe(self._on_core_event)
        self._tick_clock(0)
        Clock.schedule_interval(self._tick_clock, 1.0)
        Clock.schedule_interval(lambda _dt: self.core.tick(), 0.5)
        return root

    def _on_any_touch(self, *_args: Any) -> None:   # returns None: the touch goes on to the widgets
        self.core.touch()
        self.liveness.input()

    def on_start(self) -> None:
        # lockdown, bound here: after Kivy's own keyboard bindings, so these run first
        Window.bind(on_keyboard=self._on_keyboard, on_request_close=self._refuse_close,
                    on_minimize=self._on_minimize)
        ExceptionManager.add_handler(self._exception_handler)
        threading.excepthook = self._thread_exception
        self.core.workers.unhandled = lambda exc, where: self.recover(exc, where)
        self._start_watchdog()
        # devices (and their simulators) open on a worker: the attract screen shows without waiting for them
        self.core.workers.submit(self.core.start, on_error=lambda exc: log.error("kiosk start failed: %r", exc))
        if self._automation_addr is not None:
            from screens.automation import Automation

            self.automation = Automation(self, *self._automation_addr).start()
        self._on_screen(self.sm, self.sm.current)

    def on_stop(self) -> None:
        self.notifier.stopping("stopping")
        ExceptionManager.remove_handler(self._exception_handler)
        if self.automation is not None:
            self.automation.stop()
        self.core.stop()

    def _tick_clock(self, _dt: float) -> None:
        now = datetime.now()
        weekday = "一二三四五六日"[now.weekday()]
        self.clock_text = now.strftime("%Y-%m-%d %H:%M")
        self.clock_time = now.strftime("%H:%M")
        self.clock_date = f"{now:%Y年%m月%d日} 星期{weekday}" if self.lang == "zh_CN" else f"{now:%A, %d %B %Y}"

    # navigation -------------------------------------------------------------------------------------------------------
    def go(self, name: str, **kwargs: Any) -> None:
        self.core.touch()
        if name != "attract" and not self.core.session.active:
            self.core.start_anonymous()
        screen = self.sm.get_screen(name)
        screen.on_go(**kwargs)
        self.sm.current = name

    def open_feature(self, feature: str, screen: str, **kwargs: Any) -> None:
        """A menu tile: go to ``screen``, unless the citizen's identity level locks ``feature`` — then say why and
        offer the face check where the kiosk has a camera (the rule: KioskCore.feature_lock)."""
        reason = self.core.feature_lock(feature)
        if reason is None:
            self.go(screen, **kwargs)
            return
        from screens.menu import LockedNotice

        self.core.touch()
        can_verify = self.core.face_check.can_verify and reason.startswith("identity.")  # not for a full disk
        LockedNotice(reason=reason, can_verify=can_verify).open()

    def verify_face_again(self) -> None:
        """A card-only citizen asked for the face check after all."""
        if self.core.face_check.verify_again():
            self.go("face_consent")   # a new check: consent first

    def _refresh_locks(self) -> None:
        from kiosk.identity_levels import FEATURES

        self.locks = {f: reason for f in sorted(FEATURES) if (reason := self.core.feature_lock(f))}

    def _show_notice(self, text: str) -> None:
        if self.sm.current == "attract":
            self.sm.get_screen("attract").show_card_error(text)
            return
        from screens.menu import LockedNotice

        LockedNotice(text=text, can_verify=False).open()

    def start_without_card(self) -> None:
        self.core.start_anonymous()
        self.go("menu")

    def finish(self) -> None:
        self.core.end_session("finished")

    def _size_fonts(self) -> None:
        self.font_base = max(22.0, min(Window.width, Window.height) / 30.0)

    def _show_elderly(self, on: bool) -> None:
        self.palette = (ELDERLY_PALETTE if on else NORMAL_PALETTE).as_dict()
        self.touch_min = 96 * (TOUCH_FACTOR if on else 1)
        Window.clearcolor = self.palette["background"]
        self.elderly = on

    def toggle_elderly(self) -> None:
        """The large "elderly mode" button (attract and menu): on/off for this session; said aloud. Switching it on
        from the attract screen starts an anonymous session (the mode lasts for the session)."""
        self.core.touch()
        if not self.core.session.active:
            self.core.start_anonymous()
        on = self.core.elderly.toggle()
        self._show_elderly(on)
        self.core.speak("elderly.voice_on" if on else "elderly.voice_off")
        if on:   # the menu shows the most used services first: the platform's counts, fetched on a worker
            self.core.workers.submit(self.core.elderly.refresh_usage, on_error=lambda exc: None,
                                     on_result=lambda _counts: self.sm.get_screen("menu").arrange())

    def toggle_language(self) -> None:
        self.core.touch()
        self.core.translator.set_language("en" if self.lang == "zh_CN" else "zh_CN")
        self._tick_clock(0)

    def _on_screen(self, _sm: Any, name: str) -> None:
        self.core.speak(f"voice.{name}")
        self.core.journey.step(name)   # anonymous journey analytics: screen names only (kiosk/journey.py)
        if self.screenshot_dir is not None:
            self._shots += 1
            path = self.screenshot_dir / f"{self._shots:02d}-{name}.png"
            drawn = Clock.frames_displayed
            Clock.schedule_once(lambda _dt: self._save_screenshot(path, drawn), 1.0 if self._shots == 1 else 0.5)

    def _save_screenshot(self, path: Path, drawn_before: int, tries: int = 50) -> None:
        """Save the window once it has drawn a few frames since the screen changed (a loaded machine may not have
        drawn the first frame a second after start: the shot would be black)."""
        if Clock.frames_displayed < drawn_before + 3 and tries > 0:
            Clock.schedule_once(lambda _dt: self._save_screenshot(path, drawn_before, tries - 1), 0.2)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        written = Window.screenshot(name=str(path))
        if written and Path(written) != path:
            Path(written).replace(path)

    # core events ------------------------------------------------------------------------------------------------------
    def _on_core_event(self, name: str, payload: dict[str, Any]) -> None:
        if name in ("identified", "face_verified", "identity_card_only"):
            if self._pin_pad is not None:
                self._pin_pad.close()   # a card PIN still asked for, and a citizen identified by another reader
            citizen = self.core.session.citizen
            if name == "identified" and self.core.face_check.needs_check(citizen):
                self.go("face_consent")   # consent, then 人证核验: name and personal services once it passes
                return
            self.citizen_name = citizen.name_masked if citizen else ""
            self.citizen_id = citizen.id_masked if citizen else ""
            self._refresh_locks()
            if name != "identified" or self.sm.current in ("attract", "out_of_service", "menu"):
                self.go("menu")
        elif name == "kiosk_limited":
            self._show_notice(self.core.translator.error_text(payload["error"]))
        elif name == "card_error" and getattr(payload["error"], "code", "") in ("pin_required", "pin_incorrect"):
            from screens.pin_pad import PinPad

            if self._pin_pad is None or self._pin_pad.parent is None:
                self._pin_pad = PinPad()
                self._pin_pad.open()
            self._pin_pad.message = "" if payload["error"].code == "pin_required" else \
                self.core.translator.error_text(payload["error"])
        elif name == "card_removed":
            # the social-security card left while its PIN pad was open: nothing to type the PIN for any more
            if self._pin_pad is not None:
                self._pin_pad.close()
            self.sm.get_screen("attract").reset()   # "take your card" said after a cancel: taken
        elif name == "card_error":
            text = self.core.translator.error_text(payload["error"])
            if self.sm.current == "attract":
                self.sm.get_screen("attract").show_card_error(text)
        elif name == "warning":
            if self._warning is None:
                self._warning = self._warning_cls()
                self._warning.open()
                self.core.speak("voice.timeout_warning")
        elif name == "warning_cleared":
            self._close_warning()
        elif name == "ended":
            if self._pin_pad is not None:
                self._pin_pad.close()
            if self.restart_pending:  # a restart waited for the citizen to finish
                self.stop()
                return
            self._close_warning()
            self.citizen_name = self.citizen_id = ""
            self.locks = {}
            for screen in self.sm.screens:
                screen.reset()
            self.core.translator.set_language(self.profile.kiosk.language)
            self.sm.current = "out_of_service" if self.core.availability.out_of_service else "attract"
        elif name == "rating_requested":
            banner = self.sm.get_screen("print_confirm").status if self.sm.current == "print_confirm" else ""
            self.sm.get_screen("rating").open(banner)
            self.sm.current = "rating"
        elif name == "availability":
            self._apply_availability(payload["availability"])
            self.notifier.status(self._service_status())
        elif name == "announcement":
            self._show_announcement()
        elif name == "restart_requested":
            self.restart_pending = True
            if not self.core.session.active:
                self.stop()

    def pin_cancelled(self) -> None:
        """The citizen cancelled the card PIN: say to take the card (and how to try again) where they are."""
        if self.sm.current == "attract":
            self.sm.get_screen("attract").show_card_error(self.core.translator.t("pin.cancelled"))
        self.core.speak("pin.cancelled")

    def _apply_availability(self, availability: Availability) -> None:
        self.features = {f: availability.feature(f) for f in ("guide", "progress", "my_applications", "print",
                                                                 "identify")}
        self._refresh_locks()   # the data disk full or back: transaction tiles marked with the reason
        oos = self.sm.get_screen("out_of_service")
        oos.update(availability)
        if availability.out_of_service and self.core.session.state is State.IDLE:
            self.sm.current = "out_of_service"
        elif not availability.out_of_service and self.sm.current == "out_of_service":
            self.sm.current = "attract"

    def _show_announcement(self) -> None:
        texts = self.core.announcement
        self.sm.get_screen("attract").announcement = self.pick(texts) if texts else ""

    def _close_warning(self) -> None:
        if self._warning is not None:
            self._warning.dismiss()
            self._warning = None

    # demo -------------------------------------------------------------------------------------------------------------
    def _demo_bar(self) -> Any:
        from screens.widgets import KButton

        bar = BoxLayout(size_hint_y=None, height=70, spacing=8, padding=6)
        identities = ["zhang", "li", "chen", "yang", "wang_expired"]
        state = {"i": 0}

        def place(*_: Any) -> None:
            key = identities[state["i"] % len(identities)]
            state["i"] += 1
            self.core.simulate("idcard", "place_card", identity=key)

        for aid, key, action in (
            ("demo_place", "demo.place", place),
            ("demo_remove", "demo.remove", lambda *_: self.core.simulate("idcard", "remove_card")),
            ("demo_paper_out", "demo.paper_out",
             lambda *_: self.core.simulate("receipt_printer", "set_paper", state="out")),
            ("demo_paper_ok", "demo.paper_ok",
             lambda *_: self.core.simulate("receipt_printer", "set_paper", state="ok")),
        ):
            btn = KButton(text=self.t(key), aid=aid, height=60, font_size=22)
            btn.bind(on_release=action)
            bar.add_widget(btn)
        return bar


#: exit status asking the supervisor (systemd ``Restart=on-failure``, the demo) to start the shell again
RESTART_EXIT_CODE = 75


def run_app(profile: Profile, screenshot_dir: str | None = None,
            automation: tuple[str, int] | None = None) -> int:
    started = time.monotonic()
    app = KioskApp(profile, screenshot_dir=screenshot_dir, automation=automation)

    def announce(_dt: float) -> None:
        import json
        import sys

        line = {"pid": __import__("os").getpid(), "startup_s": round(time.monotonic() - started, 3)}
        if app.automation is not None:
            line["automation"] = app.automation.address
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    import signal

    # SIGTERM (demo stop, systemd) closes the app properly: devices closed, simulators stopped, session wiped
    signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda _dt: app.stop(), 0))
    Clock.schedule_once(announce, 0.3)  # after the first frames: the window is up
    app.run()
    return RESTART_EXIT_CODE if app.restart_pending else 0
