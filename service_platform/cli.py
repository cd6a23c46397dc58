"""``service-platform serve|seed|openapi`` — run, seed or describe the reference service platform.

``serve`` prints ONE JSON line on stdout once the socket is listening, e.g.
``{"url": "http://127.0.0.1:8700", "pid": 123}``; logs go to stderr. It stops cleanly on SIGTERM/SIGINT (exit 0).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import signal
import socket
import sys
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700

# uvicorn's default sends access logs to stdout; stdout is reserved for the single JSON line.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s",
                    "use_colors": False},
        "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                   "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'},
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "service_platform": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service-platform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="create tables, seed an empty database, serve HTTP")
    serve.add_argument("--db", default=None, help="SQLAlchemy URL or SQLite file path (default ./var/platform.db)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--session-minutes", type=float, default=15.0,
                       help="citizen session lifetime in minutes (default 15)")
    serve.add_argument("--photos", default=None, metavar="FILE",
                       help="YAML photo map: registered photos per ID number (default: env PLATFORM_PHOTOS, else "
                            "drawn placeholders); see service_platform/photos.py")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    seed = sub.add_parser("seed", help="create tables and load the demo data into an empty database")
    seed.add_argument("--db", default=None, help="SQLAlchemy URL or SQLite file path (default ./var/platform.db)")
    sub.add_parser("openapi", help="print the OpenAPI spec as JSON")
    return parser


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    # without it every response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from service_platform.app import create_app

    from service_platform.photos import load_photo_map

    photos = load_photo_map(args.photos) if args.photos else None
    app = create_app(args.db, session_ttl=dt.timedelta(minutes=args.session_minutes), photo_source=photos)
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(f"service-platform: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    announce = json.dumps({"url": _url(args.host, port), "pid": os.getpid()})

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                sys.stdout.write(announce + "\n")
                sys.stdout.flush()

    config = uvicorn.Config(app, log_config=LOG_CONFIG, log_level=args.log_level,
                            access_log=not args.no_access_log, lifespan="on", timeout_graceful_shutdown=5)
    server = _Server(config)
    # uvicorn re-raises the signal it caught after its graceful shutdown; with these handlers in place that
    # becomes a no-op, so SIGTERM ends the process with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1


def seed_command(args: argparse.Namespace) -> int:
    import os

    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url
    from service_platform.seed.loader import seed_if_empty

    url = normalize_db_url(args.db)
    engine = make_engine(url)
    create_tables(engine)
    with make_sessionmaker(engine)() as db:
        summary = seed_if_empty(db, demo_kiosk_key=os.environ.get("PLATFORM_DEMO_KIOSK_KEY"))
    engine.dispose()
    print(json.dumps({"db": url, **dataclasses.asdict(summary)}, ensure_ascii=False))
    return 0


def openapi_spec() -> dict[str, Any]:
    from service_platform.app import create_app

    return create_app("sqlite://", init_db=False).openapi()


def openapi_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(openapi_spec(), ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "seed": seed_command, "openapi": openapi_command}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
