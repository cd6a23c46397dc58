"""Entry of the face worker process: ``python -m kiosk.face.worker_main --fd N --settings JSON``.

Started by :class:`kiosk.face.worker.FaceWorker`, never by people; ``N`` is the inherited socket to the kiosk.
"""
from __future__ import annotations

import argparse
import json
import sys
from multiprocessing.connection import Connection

from kiosk.face.engine import EngineSettings
from kiosk.face.worker import _child_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.face.worker_main")
    parser.add_argument("--fd", type=int, required=True, help="socket to the kiosk (inherited)")
    parser.add_argument("--settings", default="{}", help="EngineSettings as JSON")
    args = parser.parse_args(argv)
    _child_main(Connection(args.fd), EngineSettings(**json.loads(args.settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
