"""``kiosk-profile validate|probe|self-test PATH`` — the technicians' tool.

``validate`` checks the file against the schema and each driver's settings and lists every bad field. ``probe`` and
``self-test`` open each device named in the profile (starting simulators where ``simulate: true``) and print its
status. Exit status 0 = fine, 1 = a problem found, 2 = usage.
"""
from __future__ import annotations

import argparse
import json
import sys

from device_profiles.loader import ProfileError, load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-profile", description=__doc__)
    parser.add_argument("action", choices=["validate", "probe", "self-test"])
    parser.add_argument("path")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.path)
    except ProfileError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1
    if args.action == "validate":
        print(f"{args.path}: valid ({len(profile.devices)} devices: {', '.join(profile.devices)})")
        return 0
    from kiosk.devices import DeviceManager

    manager = DeviceManager(profile)
    try:
        manager.start()
        statuses = manager.self_test() if args.action == "self-test" else manager.statuses()
    finally:
        manager.stop()
    print(json.dumps({k: s.to_dict() for k, s in statuses.items()}, ensure_ascii=False, indent=2))
    return 0 if all(s.usable for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
