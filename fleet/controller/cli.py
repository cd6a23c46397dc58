"""``fleet-controller`` — the fleet controller operators run.

``serve`` subscribes to the broker through the shared subscription ``$share/<group>/fleet/v1/...`` (start several
processes against one broker and one database to split the load), stores state, time series and alerts (SQLite file
by default, PostgreSQL with ``--db postgresql://…``) and serves the operators' dashboard and the REST API. It prints
ONE JSON line on stdout once listening — ``{"http": "127.0.0.1:8710", "pid": 123, "controller_id": "…"}`` — and
logs to stderr; SIGTERM/SIGINT stop it cleanly (it publishes its offline state first).

``serve`` refuses to start while the database has no enabled admin: create one first with
``fleet-controller add-operator --role admin NAME``. Only ``serve --demo`` (the demo and the tests) creates the admin
``admin`` itself, with the password in $FLEET_ADMIN_PASSWORD (which must then be set; there is no default).
The session cookie is ``Secure`` on requests that came over TLS (``--tls-cert``/``--tls-key``, or a proxy named with
``--trusted-proxy`` saying X-Forwarded-Proto: https) and always with ``--cookie-secure``.

Other commands: ``keygen DIR`` (the Ed25519 command-signing key pair: .key stays with the controllers, .pub goes
to every kiosk), ``add-operator NAME [--role viewer|operator|admin]`` (password from $FLEET_OPERATOR_PASSWORD or
asked for; for an existing name it sets the password and role and ends its sessions), ``openapi``.
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
    serve.add_argument("--app-alarm-backlog", type=float, default=600.0, metavar="S",
                       help="an application alarm sent from a kiosk's outbox still opens an alert when at most S "
                            "seconds old (startup alarms, short outages); older ones go to the event log only")
    serve.add_argument("--retention-days", type=int, default=30, help="keep the time series this many days")
    serve.add_argument("--flush-interval", type=float, default=0.25, help="seconds between database commits")
    serve.add_argument("--command-timeout", type=float, default=120.0,
                       help="seconds a kiosk may take to finish an accepted command")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--demo", action="store_true",
                       help="demo/test mode: create the admin 'admin' from $FLEET_ADMIN_PASSWORD if there is no admin")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM); needs --tls-key")
    serve.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serve.add_argument("--cookie-secure", action="store_true",
                       help="always mark the session cookie Secure (TLS ends at a proxy in front)")
    serve.add_argument("--metrics-token-file", default=os.environ.get("FLEET_METRICS_TOKEN_FILE"), metavar="FILE",
                       help="a Prometheus scraper may read GET /metrics with Authorization: Bearer <the token in "
                            "FILE, ≥ 16 characters> (default env FLEET_METRICS_TOKEN_FILE); without it /metrics "
                            "needs a viewer session or bearer token")
    serve.add_argument("--opening-hours", default=os.environ.get("FLEET_OPENING_HOURS"), metavar="FILE",
                       help="JSON: kiosks' opening hours, required devices, pages per paper roll — for the "
                            "availability and paper reports (fleet/controller/opening_hours.py); stored for every "
                            "controller on the database")
    serve.add_argument("--trusted-proxy", default="",
                       help="comma-separated addresses of reverse proxies whose X-Forwarded-For/-Proto are believed "
                            "(default none: the peer address is the client's, for login throttling too)")
    keygen = sub.add_parser("keygen", help="write command-signing.key/.pub into DIR")
    keygen.add_argument("dir")
    keygen.add_argument("--name", default="command-signing",
                        help="file stem (profile-signing: the key pushed profiles with protected changes need)")
    sign = sub.add_parser("sign-profile", help="sign a device profile for one kiosk (fleet/profile_signing.py); "
                                               "prints the push_profile command's arguments as JSON")
    sign.add_argument("profile", help="the profile YAML file")
    sign.add_argument("--key", required=True, help="the profile-signing private key (keygen --name profile-signing)")
    sign.add_argument("--kiosk", required=True, help="the one kiosk id the signature is for")
    sign.add_argument("--expires", default="24h", help="30m / 24h / 7d from now, ISO 8601 with zone, or epoch ms")
    add = sub.add_parser("add-operator", help="create or update an operator account")
    add.add_argument("username")
    add.add_argument("--db", default=os.environ.get("FLEET_DB"))
    add.add_argument("--display-name", default="")
    add.add_argument("--role", choices=["viewer", "operator", "admin"],
                     help="new operators: default operator; an existing one keeps its role unless given")
    add.add_argument("--disable", action="store_true", help="disable the account (its sessions end)")
    add.add_argument("--enable", action="store_true", help="enable a disabled account")
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
    from fleet.controller.rules import RuleConfig
    from fleet.controller.service import ControllerConfig, FleetController
    from fleet.signing import generate_keypair

    logging.config.dictConfig(LOG_CONFIG)  # type: ignore[attr-defined]
    logging.getLogger("fleet").setLevel(args.log_level.upper())
    if bool(args.tls_cert) != bool(args.tls_key):
        print("fleet-controller: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    refusal = _ensure_admin(args.db, args.demo)
    if refusal:
        print(f"fleet-controller: {refusal}", file=sys.stderr)
        return 2
    key = Path(args.signing_key)
    if not key.exists():
        generate_keypair(key.parent, key.stem)
        logging.getLogger("fleet.controller").warning(
            "created the command-signing key %s; give %s to every kiosk", key, key.with_suffix(".pub"))
    config = ControllerConfig(broker=args.broker, db=args.db, signing_key=key, controller_id=args.controller_id,
                              share_group=args.share_group, flush_interval_s=args.flush_interval,
                              retention_days=args.retention_days, command_timeout_s=args.command_timeout,
                              rules=RuleConfig(offline_after_s=args.offline_after, disk_low_pct=args.disk_low_pct,
                                               app_alarm_backlog_s=args.app_alarm_backlog))
    import gc

    # the ingest keeps per-kiosk caches (tens of thousands of small objects) and creates many short-lived ones:
    # collect the young generation less often, and leave what exists at start-up out of full collections
    gc.set_threshold(50_000, 20, 50)
    controller = FleetController(config)
    gc.freeze()
    if args.opening_hours:
        from fleet.controller import opening_hours

        try:
            opening_hours.save(controller.store, Path(args.opening_hours).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"fleet-controller: --opening-hours: {exc}", file=sys.stderr)
            return 2
    host, port = _hostport(args.http)
    try:
        sock = _listen(host, port)
    except OSError as exc:
        print(f"fleet-controller: cannot listen on {args.http}: {exc}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    tls = bool(args.tls_cert)
    from fleet.controller.metrics import load_token

    try:
        metrics_token = load_token(args.metrics_token_file)
    except (OSError, ValueError) as exc:
        print(f"fleet-controller: --metrics-token-file: {exc}", file=sys.stderr)
        return 2
    app = create_app(controller, cookie_secure=args.cookie_secure or tls, metrics_token=metrics_token)
    controller.start()
    # announce once subscribed, so that what kiosks publish from then on reaches us (or after 10 s without a broker)
    subscribed = controller.wait_connected(10.0)
    announce = json.dumps({"http": f"{shown}:{sock.getsockname()[1]}", "pid": os.getpid(),
                           "controller_id": controller.id, "broker_connected": subscribed,
                           "scheme": "https" if tls else "http"})

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                sys.stdout.write(announce + "\n")
                sys.stdout.flush()

    proxies = [a.strip() for a in args.trusted_proxy.split(",") if a.strip()]
    uv_config = uvicorn.Config(app, log_config=LOG_CONFIG, log_level=args.log_level, access_log=False,
                               lifespan="on", timeout_graceful_shutdown=3, proxy_headers=bool(proxies),
                               forwarded_allow_ips=proxies or None, ssl_certfile=args.tls_cert,
                               ssl_keyfile=args.tls_key)
    server = _Server(uv_config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # uvicorn installs its own; this keeps its re-raise harmless
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        controller.stop()
    return 0 if server.started else 1


def _ensure_admin(db: str | None, demo: bool) -> str | None:
    """None when the database has an enabled admin (in demo mode: after creating ``admin`` from
    $FLEET_ADMIN_PASSWORD), else why serve must not start."""
    from fleet.controller.auth import MIN_PASSWORD, hash_password
    from fleet.controller.store import Store
    from fleet.protocol import now_ms

    store = Store(db)
    try:
        store.create_schema()
        if store.active_admin_count() > 0:
            return None
        if not demo:
            return ("no admin operator in the database, so nobody could log in; create one first with "
                    "`fleet-controller add-operator --role admin NAME` (same --db), then start serve again")
        password = os.environ.get("FLEET_ADMIN_PASSWORD", "")
        if len(password) < MIN_PASSWORD:
            return (f"--demo creates the admin 'admin' from $FLEET_ADMIN_PASSWORD, which must be set "
                    f"(at least {MIN_PASSWORD} characters)")
        try:
            store.upsert_operator("admin", hash_password(password), "管理员", "admin", now_ms())
            store.set_operator("admin", now_ms(), disabled=False)
        except Exception:  # noqa: BLE001 - another controller starting on the same database created it first
            if store.active_admin_count() == 0:
                raise
            return None
        logging.getLogger("fleet.controller").warning("demo mode: created the admin 'admin' from "
                                                      "$FLEET_ADMIN_PASSWORD")
        return None
    finally:
        store.dispose()


def keygen(args: argparse.Namespace) -> int:
    from fleet.signing import generate_keypair

    key, pub = generate_keypair(args.dir, args.name)
    print(json.dumps({"key": str(key), "pub": str(pub)}))
    return 0


def sign_profile_command(args: argparse.Namespace) -> int:
    from fleet.profile_signing import parse_expiry, push_profile_args

    try:
        out = push_profile_args(args.key, Path(args.profile).read_text("utf-8"), args.kiosk,
                                parse_expiry(args.expires))
    except (OSError, ValueError) as exc:
        print(f"fleet-controller: sign-profile: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return 0


def add_operator(args: argparse.Namespace) -> int:
    from fleet.controller.auth import MIN_PASSWORD, hash_password
    from fleet.controller.store import Store
    from fleet.protocol import now_ms

    store = Store(args.db)
    try:
        store.create_schema()
        existing = store.operator(args.username)
        if existing is not None and (args.disable or args.enable) and not args.role:
            _found, revoked = store.set_operator(args.username, now_ms(), disabled=args.disable)
            print(json.dumps({"operator": args.username, "disabled": args.disable, "sessions_revoked": revoked}))
            return 0
        password = os.environ.get("FLEET_OPERATOR_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
        if len(password) < MIN_PASSWORD:
            print(f"fleet-controller: the password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
            return 2
        role = args.role or (existing.role if existing is not None else "operator")
        display = args.display_name or (existing.display_name if existing is not None else args.username)
        created = store.upsert_operator(args.username, hash_password(password), display, role, now_ms())
        if args.disable or args.enable:
            store.set_operator(args.username, now_ms(), disabled=args.disable)
        print(json.dumps({"operator": args.username, "role": role, "created": created}))
        return 0
    finally:
        store.dispose()


def openapi_spec() -> dict[str, Any]:
    from fleet.controller.api import create_app

    return create_app(None).openapi()


def openapi_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(openapi_spec(), ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    import logging.config  # noqa: F401 - used by serve

    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "keygen": keygen, "add-operator": add_operator, "openapi": openapi_command,
                "sign-profile": sign_profile_command}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
