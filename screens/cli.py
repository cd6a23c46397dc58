"""``kiosk run --profile PATH [--windowed] [--screenshot DIR] [--automation HOST:PORT]`` — the kiosk shell (lives with
the shell: it configures Kivy, which kiosk/ never imports).

Fullscreen by default; ``--windowed`` for development. With no DISPLAY it starts a private Xvfb. ``--screenshot DIR``
saves a picture of every screen shown. The first stdout line is a JSON object (pid, start-up time, automation
endpoint) printed once the window is up.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from device_profiles.loader import ProfileError, load_profile
from kiosk.privacy import ScrubbingFilter


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def configure_kivy(profile_size: tuple[int, int], windowed: bool, orientation: str) -> None:
    """Set Kivy's window options; must run before anything imports kivy.core.window."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    from kivy.config import Config

    width, height = profile_size
    if orientation == "portrait" and width > height:
        width, height = height, width
    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "fullscreen", "0" if windowed else "auto")
    Config.set("graphics", "borderless", "0" if windowed else "1")
    Config.set("graphics", "position", "custom")
    Config.set("graphics", "left", "0")
    Config.set("graphics", "top", "0")
    Config.set("graphics", "resizable", "0")
    # no multisampling: under software GL (kiosks without a GPU driver, Xvfb) Kivy's default 2× MSAA triples the CPU
    # per frame (45–60 ms → 16–18 ms measured by bench/face_ui_fps.py); the cost is slightly rougher round corners
    Config.set("graphics", "multisamples", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")  # a touch screen: no red multitouch-emulation dots
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "keyboard_mode", "dock" if not windowed else "system")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the kiosk shell")
    run.add_argument("--profile", required=True)
    run.add_argument("--windowed", action="store_true")
    run.add_argument("--screenshot", metavar="DIR", help="save a screenshot of every screen shown into DIR")
    run.add_argument("--automation", type=_address, metavar="HOST:PORT",
                     help="serve the read-only automation endpoint (tests)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubbingFilter())
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1

    xvfb = None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        from kiosk.display import Xvfb

        width, height = profile.kiosk.size
        if profile.kiosk.orientation == "portrait" and width > height:
            width, height = height, width
        xvfb = Xvfb(width, height)
        os.environ["DISPLAY"] = xvfb.display
        logging.getLogger(__name__).info("no display: started Xvfb on %s", xvfb.display)
    try:
        configure_kivy(profile.kiosk.size, args.windowed, profile.kiosk.orientation)
        from screens.app import run_app

        return run_app(profile, screenshot_dir=args.screenshot, automation=args.automation)
    finally:
        if xvfb is not None:
            xvfb.stop()


if __name__ == "__main__":
    sys.exit(main())
