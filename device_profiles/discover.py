"""``kiosk-profile discover [--ports PORT …] [--hosts HOST:PORT …] [--listen S] [--cups SERVER] [--subnet CIDR]
[--no-local] [--json] [--out FILE]`` — what is attached, what answered, and a proposed ``devices`` block.

Without options it asks the machine's serial ports (and /dev/kiosk-*), pcscd, the system's CUPS and its cameras;
``--ports``/``--hosts`` add candidates. Port 9100 on the local subnet is scanned only with ``--subnet``. A QR
scanner only speaks when it scans: give ``--listen 10`` and scan any code while the silent ports are listened to.
Exit status 0 when at least one device was found, 1 when none.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from drivers.discovery import DiscoveryOptions, discover, propose_devices


def _host(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-profile discover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", nargs="+", default=[], metavar="PORT", help="serial ports to ask as well")
    parser.add_argument("--hosts", nargs="+", type=_host, default=[], metavar="HOST:PORT",
                        help="network devices to ask as well (printers, pads, cameras, serial servers)")
    parser.add_argument("--listen", type=float, default=0.0, metavar="S",
                        help="listen S seconds on silent serial ports for a scanned code (QR scanners)")
    parser.add_argument("--cups", metavar="SERVER", help="print server to list queues of (default: the system's)")
    parser.add_argument("--subnet", metavar="CIDR", help="also scan port 9100 on this subnet (at most a /22)")
    parser.add_argument("--no-local", action="store_true",
                        help="ask only the candidates given (not the machine's ports, pcscd, CUPS, cameras)")
    parser.add_argument("--timeout", type=float, default=0.3, metavar="S", help="per question (default 0.3)")
    parser.add_argument("--json", action="store_true", help="one JSON object: findings and proposed devices")
    parser.add_argument("--out", metavar="FILE", help="also write the proposed devices block (YAML) to FILE")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    options = DiscoveryOptions(ports=args.ports, hosts=args.hosts, listen_s=args.listen, cups_server=args.cups,
                               subnet_9100=args.subnet, local=not args.no_local, timeout_s=args.timeout)
    findings = discover(options)
    devices = propose_devices(findings)
    block: dict[str, Any] = {"devices": devices}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            yaml.safe_dump(block, fh, allow_unicode=True, sort_keys=False)
    if args.json:
        print(json.dumps({"findings": [f.to_dict() for f in findings], "devices": devices}, ensure_ascii=False,
                         indent=2))
    else:
        for f in findings:
            label = f"{f.kind}/{f.driver}" if f.driver else f.kind
            print(f"{f.confidence.value:6} {label:28} {f.address:36} {f.evidence}")
        print("\n# proposed devices block (check LOW/MEDIUM lines above; merge into the kiosk's profile)")
        print(yaml.safe_dump(block, allow_unicode=True, sort_keys=False), end="")
    return 0 if devices else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
