"""``kiosk-sim <kind> [--tcp HOST:PORT | --pty] [--control HOST:PORT]`` — run one device simulator.

The first line on stdout is one JSON object naming the endpoints; the process then serves until SIGTERM/SIGINT.
``kiosk-sim ctl ADDRESS CMD [key=value ...]`` sends one control command (for the demo and technicians).
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
from typing import Callable

# kind → "module:function(args) -> None"; each function prints its endpoint line then blocks until stop_event is set
SIMULATORS: dict[str, str] = {
    "idcard": "drivers.idcard.simulator:run",
    "receipt-printer": "drivers.receipt_printer.emulator:run",
    "smartcard": "drivers.smartcard.simulator:run",  # a virtual card behind pcscd's vpcd reader
    "licence-printer": "drivers.licence_printer.simulator:run",  # a private cupsd with a cups-pdf queue
    "camera": "drivers.camera.simulator:run",  # MJPEG over HTTP from a video, an image folder or a demo clip
    # bank-card pad + its acquirer host: nexo Sale-to-POI over HTTP (--tcp, POST /nexo) and/or in ECR frames on a pty
    # (--pty --protocol nexo); the legacy ECR message layer on a pty (--pty, the default protocol there)
    "payment-pad": "drivers.payment.simulator:run",
    "qr-scanner": "drivers.qr_scanner.simulator:run",  # serial QR scanner (one line + CR per code), on a pty
    # document camera (高拍仪): pages of a PDF photographed on a desk (perspective, shadow), MJPEG over HTTP
    "document-camera": "drivers.document_camera.simulator:run",
}


def _parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-sim", description=__doc__)
    parser.add_argument("kind", help=f"one of {sorted(SIMULATORS)} or 'ctl'")
    parser.add_argument("--tcp", type=_parse_address, help="serve the device on HOST:PORT (port 0: a free one)")
    parser.add_argument("--pty", action="store_true", help="serve the device on a new pseudo-terminal")
    parser.add_argument("--control", type=_parse_address, default=("127.0.0.1", 0),
                        help="control endpoint HOST:PORT (default: a free loopback port)")
    parser.add_argument("--out", help="folder for the simulator's output (printed receipts, …)")
    parser.add_argument("--baud", type=int, default=115200, help="serial speed to emulate (idcard)")
    parser.add_argument("--video", help="camera: play this video file in a loop")
    parser.add_argument("--images", help="camera: play this folder of images in a loop")
    parser.add_argument("--demo", help="camera: the demo clip (built from packaged photos on first use) at this path")
    parser.add_argument("--fps", type=float, help="camera: frames per second (default 25)")
    parser.add_argument("--pdf", help="document-camera: photograph the pages of this PDF (default: a sample form)")
    parser.add_argument("--protocol", choices=("ecr", "nexo"), default="ecr",
                        help="payment-pad: message layer on the pty (--tcp always speaks nexo over HTTP)")
    parser.add_argument("--vpcd-base", type=int,
                        help="smartcard: the port of vpcd's first slot, its reader.conf CHANNELID (default 35963)")
    parser.add_argument("rest", nargs="*", help="for ctl: ADDRESS CMD [key=value ...]")
    return parser


def _ctl(rest: list[str]) -> int:
    from drivers.sim.control import send_command

    if len(rest) < 2:
        print("usage: kiosk-sim ctl HOST:PORT CMD [key=value ...]", file=sys.stderr)
        return 2
    args = {}
    for item in rest[2:]:
        key, _, value = item.partition("=")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    reply = send_command(rest[0], rest[1], **args)
    print(json.dumps(reply, ensure_ascii=False))
    return 0 if reply.get("ok") else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.kind == "ctl":
        return _ctl(args.rest)
    target = SIMULATORS.get(args.kind)
    if target is None:
        print(f"kiosk-sim: unknown kind {args.kind!r}; choose one of {sorted(SIMULATORS)}", file=sys.stderr)
        return 2
    module_name, _, func_name = target.partition(":")
    run: Callable[[argparse.Namespace, threading.Event], None] = getattr(
        importlib.import_module(module_name), func_name)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(args, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
