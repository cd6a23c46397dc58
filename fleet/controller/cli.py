"""``fleet-controller`` — the fleet controller operators run.

``serve`` subscribes to the broker through the shared subscription ``$share/<group>/fleet/v1/...`` (start several
processes against one broker and one database to split the load), stores state, time series and alerts (SQLite file
by default, PostgreSQL with ``--db postgresql://…``) and serves the operators' dashboard and the REST API. It prints
ONE JSON line on stdout once listening — ``{"http": "127.0.0.1:8710", "pid": 123, "controller_id": "…"}`` — and
logs to stderr; SIGTERM/SIGINT stop it cleanly (it publishes its offline state first).

Other commands: ``keygen DIR`` (the Ed25519 command-signing key pair: .key stays with the controllers, .pub goes
to every kiosk), ``add-operator NAME`` (password from $FLEET_OPERATOR_PASSWORD or asked for), ``openapi``.
"""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_HTTP = "127.0.0.1:8710"
DEFAULT_KEY = Path("var") / "fleet" / "command-signing.key"

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        "fleet": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-controller", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="ingest from the broker, keep state and alerts, serve the dashboard and API")
    serve.add_argument("--broker", default=os.environ.get("FLEET_BROKER", "mqtt://127.0.0.1:1883"),
                       help="broker URL, e.g. mqtt://127.0.0.1:1883 or mqtts://host:8883?ca=…&cert=…&key=…")
    serve.add_argument("--db", default=os.environ.get("FLEET_DB"),
                       help="SQLite file path (default var/fleet/fleet.db) or postgresql://user@host/db")
    serve.add_argument("--http", default=DEFAULT_HTTP, help=f"HOST:PORT for the dashboard and API (default "
                                                            f"{DEFAULT_HTTP}; port 0 picks a free one)")
    serve.add_argument("--signing-key", default=os.environ.get("FLEET_SIGNING_KEY", str(DEFAULT_KEY)),
                       help="Ed25519 command-signing key (PEM); created with its .pub beside it if missing")
    serve.add_argument("--controller-id", default="", help="name of this controller process (default host-pid)")
    serve.add_argument("--share-group", default="controllers", help="shared-subscription group (default controllers)")
    serve.add_argument("--offline-after", type=float, default=60.0, help="kiosk offline alert after S seconds")
    serve.add_argument("--disk-low-pct", type=float, default=10.0)
    serve.add_argument("--retention-days", type=int, default=30, help="keep the time series this many days")
    serve.add_argument("--flush-interval", type=float, default=0.25, help="seconds between database commits")
    serve.add_argument("--command-timeout", type=float, default=120.0,
                       help="seconds a kiosk may take to finish an accepted command")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    keygen = sub.add_parser("keygen", help="write command-signing.key/.pub into DIR")
    keygen.add_argument("dir")
    add = sub.add_parser("add-operator", help="create or update an operator account")
    add.add_argument("username")
    add.add_argument("--db", default=os.environ.get("FLEET_DB"))
    add.add_argument("--display-name", default="")
    add.add_argument("--role", default="operator", choices=["operator", "admin"])
    sub.add_parser("openapi", help="print the REST API's OpenAPI spec as JSON")
    return parser


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # IPPROTO_TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fleet.controller.api import create_app
    from fleet.controller.auth import hash_password
    from fleet.controller.rules import RuleConfig
    from fleet.controller.service import ControllerConfig, FleetController
    from fleet.protocol import now_ms
    from fleet.signing import generate_keypair

    logging.config.dictConfig(LOG_CONFIG)  # type: ignore[attr-defined]
    logging.getLogger("fleet").setLevel(args.log_level.upper())
    key = Path(args.signing_key)
    if not key.exists():
        generate_keypair(key.parent, key.stem)
        logging.getLogger("fleet.controller").warning(
            "created the command-signing key %s; give %s to every kiosk", key, key.with_suffix(".pub"))
    config = ControllerConfig(broker=args.broker, db=args.db, signing_key=key, controller_id=args.controller_id,
                              share_group=args.share_group, flush_interval_s=args.flush_interval,
                              retention_days=args.retention_days, command_timeout_s=args.command_timeout,
                              rules=RuleConfig(offline_after_s=args.offline_after, disk_low_pct=args.disk_low_pct))
    import gc

    # the ingest keeps per-kiosk caches (tens of thousands of small objects) and creates many short-lived ones:
    # collect the young generation less often, and leave what exists at start-up out of full collections
    gc.set_threshold(50_000, 20, 50)
    controller = FleetController(config)
    gc.freeze()
    password = os.environ.get("FLEET_ADMIN_PASSWORD")
    if password and controller.store.operator_count() == 0:
        controller.store.upsert_operator("admin", hash_password(password), "管理员", "admin", now_ms())
    host, port = _hostport(args.http)
    try:
        sock = _listen(host, port)
    except OSError as exc:
        print(f"fleet-controller: cannot listen on {args.http}: {exc}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    app = create_app(controller)
    controller.start()
    # announce once subscribed, so that what kiosks publish from then on reaches us (or after 10 s without a broker)
    subscribed = controller.wait_connected(10.0)
    announce = json.dumps({"http": f"{shown}:{sock.getsockname()[1]}", "pid": os.getpid(),
                           "controller_id": controller.id, "broker_connected": subscribed})

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                sys.stdout.write(announce + "\n")
                sys.stdout.flush()

    uv_config = uvicorn.Config(app, log_config=LOG_CONFIG, log_level=args.log_level, access_log=False,
                               lifespan="on", timeout_graceful_shutdown=3)
    server = _Server(uv_config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # uvicorn installs its own; this keeps its re-raise harmless
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        controller.stop()
    return 0 if server.started else 1


def keygen(args: argparse.Namespace) -> int:
    from fleet.signing import generate_keypair

    key, pub = generate_keypair(args.dir)
    print(json.dumps({"key": str(key), "pub": str(pub)}))
    return 0


def add_operator(args: argparse.Namespace) -> int:
    from fleet.controller.auth import hash_password
    from fleet.controller.store import Store
    from fleet.protocol import now_ms

    password = os.environ.get("FLEET_OPERATOR_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < 8:
        print("fleet-controller: the password needs at least 8 characters", file=sys.stderr)
        return 2
    store = Store(args.db)
    store.create_schema()
    store.upsert_operator(args.username, hash_password(password), args.display_name or args.username, args.role,
                          now_ms())
    store.dispose()
    print(json.dumps({"operator": args.username, "role": args.role}))
    return 0


def openapi_spec() -> dict[str, Any]:
    from fleet.controller.api import create_app

    return create_app(None).openapi()


def openapi_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(openapi_spec(), ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    import logging.config  # noqa: F401 - used by serve

    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "keygen": keygen, "add-operator": add_operator, "openapi": openapi_command}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
