"""``kiosk-profile validate|probe|self-test PATH`` — the technicians' tool.

``validate`` checks the file against the schema and each driver's settings and lists every bad field. ``probe`` and
``self-test`` open each device named in the profile (starting simulators where ``simulate: true``) and print its
status. ``self-test --level internal|external|interactive`` runs the self-test levels of :mod:`drivers.health`
(external: a test card read, a test slip, a face on camera, a pad loopback, a CUPS test page; interactive: the
technician confirms on the terminal). Exit status 0 = fine, 1 = a problem found, 2 = usage.

``kiosk-profile discover [--ports PORT …] [--hosts HOST:PORT …]`` lists what is attached and proposes a devices block
(device_profiles/discover.py); ``kiosk-profile udev-rules PATH`` writes the udev rules giving the profile's USB
devices their stable /dev/kiosk-* names (device_profiles/udev.py). Both: docs/install-kiosk.md.
"""
from __future__ import annotations

import argparse
import json
import sys

from device_profiles.loader import ProfileError, load_profile


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["discover"]:   # what is attached, and a proposed devices block (device_profiles/discover.py)
        from device_profiles.discover import run as discover

        return discover(argv[1:])
    if argv[:1] == ["udev-rules"]:   # stable /dev/kiosk-* names for the profile's USB devices (device_profiles/udev.py)
        from device_profiles.udev import run as udev_rules

        return udev_rules(argv[1:])
    parser = argparse.ArgumentParser(prog="kiosk-profile", description=__doc__)
    parser.add_argument("action", choices=["validate", "probe", "self-test"])
    parser.add_argument("path")
    parser.add_argument("--level", choices=["internal", "external", "interactive"], default="internal",
                        help="self-test level (UnifiedPOS checkHealth); default internal")
    parser.add_argument("--device", action="append", dest="devices", metavar="KIND",
                        help="self-test only this device kind (repeatable)")
    parser.add_argument("--card-timeout", type=float, default=30.0, metavar="S",
                        help="external level: how long to wait for the technician's card")
    parser.add_argument("--face-timeout", type=float, default=10.0, metavar="S",
                        help="external level: how long the camera gets to show a face")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.path)
    except ProfileError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1
    if args.action == "validate":
        print(f"{args.path}: valid ({len(profile.devices)} devices: {', '.join(profile.devices)})")
        return 0
    from drivers.device_set import DeviceSet

    manager = DeviceSet(profile.devices, profile.kiosk.data_dir)
    if args.action == "self-test":
        from device_profiles import self_test
        from drivers.health import Level

        level = Level(args.level)
        try:
            manager.start()
            options = self_test.terminal_options(level, args.card_timeout, args.face_timeout)
            report, ok = self_test.run(manager.devices, level, options, args.devices)
        finally:
            manager.stop()
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0 if ok else 1
    try:
        manager.start()
        statuses = manager.statuses()
    finally:
        manager.stop()
    print(json.dumps({k: s.to_dict() for k, s in statuses.items()}, ensure_ascii=False, indent=2))
    return 0 if all(s.usable for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
