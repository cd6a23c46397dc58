"""Lockdown of the shell (unattended for months): on the real window under Xvfb, every key that Kivy or a window
manager could use to leave, minimise, close or reconfigure the kiosk is pressed through X (xdotool), and a real
window close request (a WM_DELETE_WINDOW client message, what a window manager sends for Alt+F4 or the close
button) is sent — the kiosk stays as it was: same screen, same process, no settings panel, no inspector. A planted
~/.kivy/config.ini asking for exit on Escape and the inspector has no effect. SIGTERM (the supervisor's stop) still
ends it cleanly. One kiosk process for all the steps."""
from __future__ import annotations

import ctypes
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

#: (what xdotool presses, what the shell reports refusing, or None when Kivy would have done nothing anyway)
KEYS = [
    ("F1", "f1"),                 # Kivy's settings panel
    ("Escape", "escape"),         # Kivy's exit_on_escape (the planted config.ini asks for it)
    ("alt+F4", "alt+f4"),         # a window manager's close
    ("ctrl+c", "ctrl+c"),
    ("ctrl+q", "ctrl+q"),
    ("ctrl+w", "ctrl+w"),
    ("super+q", "meta+q"),
    ("F11", "f11"),               # Kivy's screen/keybinding modules
    ("F12", "f12"),
    ("shift+F12", "shift+f12"),
    ("ctrl+e", None),             # Kivy's inspector (module planted in config.ini)
    ("alt+Tab", None),
    ("ctrl+alt+BackSpace", None),
]

#: pressed after each key: the shell refuses and records it, and X delivers keys in order — so once its refusal is
#: recorded, the key before it was handled too (whatever it could have started, a panel or an exit, has happened)
SENTINEL = ("F12", "f12")

PLANTED_CONFIG = """[kivy]
exit_on_escape = 1
pause_on_minimize = 1
[modules]
inspector =
keybinding =
screen =
"""


def _xdo(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10,
                          capture_output=True, text=True).stdout


def send_close_request(display: str, window: int) -> None:
    """What a window manager does for Alt+F4 or the title bar's ×: a ClientMessage WM_PROTOCOLS/WM_DELETE_WINDOW to
    the client's window (Xvfb has no window manager; ``xdotool windowclose`` would destroy the window instead)."""
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(XEvent)]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        event = XEvent()
        event.xclient.type = 33   # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0   # CurrentTime
        assert x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


def test_no_key_and_no_close_request_leaves_the_shell(start_kiosk, wait_for, tmp_path, output_dir):
    kivy_home = tmp_path / "kivy-home"   # the KIVY_HOME start_kiosk gives the shell
    kivy_home.mkdir(parents=True, exist_ok=True)
    (kivy_home / "config.ini").write_text(PLANTED_CONFIG, "utf-8")
    ui = start_kiosk()
    ui.wait_screen("attract", wait_for, timeout=30)
    pid = ui.proc.pid
    windows = [int(w) for w in _xdo(ui.display, "search", "--pid", str(pid)).split()]
    assert windows, "the kiosk's X window"
    window = windows[-1]
    # keyboard focus on the kiosk (no window manager: XSetInputFocus), pointer over it without clicking
    _xdo(ui.display, "windowfocus", "--sync", str(window))
    before = ui.state()
    assert before["refused"] == [] and not before["settings_open"]

    # the shell keeps the last 50 refusals: this walk makes at most 2 × len(KEYS) + 2
    assert 2 * len(KEYS) + 2 <= 50
    for key, refused in KEYS:
        seen = len(ui.state()["refused"])
        _xdo(ui.display, "key", "--clearmodifiers", key)
        _xdo(ui.display, "key", "--clearmodifiers", SENTINEL[0])
        # the key refused by the shell where it reaches the shell (None: Kivy would have done nothing anyway)
        expected = [r for r in (refused, SENTINEL[1]) if r is not None]
        wait_for(lambda: ui.state()["refused"][seen:] == expected, timeout=10,
                 what=f"{key} handled ({expected} refused)")
        state = ui.state()
        assert ui.proc.proc.poll() is None, f"the kiosk exited after {key}"
        assert state["screen"] == "attract", (key, state)
        assert not state["settings_open"], f"settings panel open after {key}"
        assert state["overlays"] == before["overlays"], (key, state["overlays"])   # no inspector, no popup
        assert state["window"] == before["window"], (key, state["window"])         # not moved, resized, minimised

    send_close_request(ui.display, window)
    wait_for(lambda: "close_request" in ui.state()["refused"], timeout=10, what="close request refused")
    _xdo(ui.display, "key", "--clearmodifiers", SENTINEL[0])   # handled after it: the shell kept running
    wait_for(lambda: ui.state()["refused"][-2:] == ["close_request", SENTINEL[1]], timeout=10,
             what="a key handled after the close request")
    assert ui.proc.proc.poll() is None, "the kiosk closed on a window close request"
    assert ui.state()["screen"] == "attract"
    ui.screenshot("lockdown-after-keys")
    assert (output_dir / "lockdown-after-keys.png").exists()

    # only the supervisor's stop ends it, cleanly and at once
    t0 = time.monotonic()
    ui.proc.stop(timeout=15)
    assert ui.proc.proc.returncode == 0, ui.proc.proc.returncode
    assert time.monotonic() - t0 < 10
    # Kivy wrote nothing back into its home (KIVY_NO_CONFIG): the planted file is untouched
    assert (kivy_home / "config.ini").read_text("utf-8") == PLANTED_CONFIG
