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
    """Set Kivy's window options; must run before anything imports kivy (Kivy reads its config and command line at
    import) — and it does: nothing of the kiosk imports kivy before this.

    Lockdown: Kivy's config is written here at every start from the profile, never read from ``~/.kivy/config.ini``
    (``KIVY_NO_CONFIG``: a changed file there has no effect, and Kivy writes nothing back); no Kivy command-line
    options (``KIVY_NO_ARGS``: no ``-m inspector``), no Kivy modules (inspector, screenshot/keybinding keys), Escape
    does not exit, minimising does not pause. The app itself refuses the settings panel and window close requests
    (screens/app.py)."""
    os.environ["KIVY_NO_CONFIG"] = "1"
    os.environ["KIVY_NO_ARGS"] = "1"
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
    Config.set("kivy", "pause_on_minimize", "0")
    for module in list(Config.options("modules")) if Config.has_section("modules") else []:
        Config.remove_option("modules", module)   # no inspector, no screen/keybinding modules
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
    keygen = sub.add_parser("keygen", help="write a new Ed25519 key pair for signing platform requests",
                            description="Writes the PRIVATE key (PEM, mode 0600; never overwrites) for the profile's "
                                        "platform.key_file and prints the public key (base64) and its key id, to "
                                        "enrol with `service-platform kiosk add --public-key FILE`.")
    keygen.add_argument("--out", required=True, metavar="FILE", help="where to write the private key")
    verify = sub.add_parser("audit-verify", help="check the audit journal files of a folder with the audit key",
                            description="Checks every entry's HMAC, every link and the sequence across rotated "
                                        "files; prints a JSON report (head, breaks, problems). Exit 0 when intact.")
    verify.add_argument("dir", metavar="DIR", help="the kiosk's data_dir (audit.jsonl, audit-*.jsonl, audit.key)")
    verify.add_argument("--key", metavar="FILE", help="the audit key file (default DIR/audit.key)")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        from kiosk.request_signing import keygen_command

        return keygen_command(args.out)
    if args.command == "audit-verify":
        from kiosk.audit import verify_command

        return verify_command(args.dir, args.key)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubbingFilter())
    # before the profile is loaded: loading resolves the drivers, and the ESC/POS one imports python-escpos, which
    # unpickles its capability cache at import — from the kiosk's own data_dir only (kiosk/housekeeping.py)
    from kiosk.housekeeping import use_private_escpos_cache_for

    use_private_escpos_cache_for(args.profile)
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
