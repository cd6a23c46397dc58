"""``service-platform serve|seed|kiosk|openapi`` — run, seed, enrol kiosks of, or describe the reference platform.

``serve`` refuses to start (exit 2) when no kiosk could authenticate (no active key of an active kiosk), unless
``--demo`` (demo data, and the demo kiosk's public key from ``--demo-kiosk-public-key FILE`` or env
``PLATFORM_DEMO_KIOSK_PUBLIC_KEY``). Kiosks are enrolled with ``service-platform kiosk add --id KSK-… --name …
--public-key FILE`` (the public key ``kiosk keygen`` printed or wrote), keys revoked with ``kiosk revoke``.

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
    # phone upload links carry their secret in the path: redacted from access lines (routes/phone_uploads.py)
    "filters": {"upload_secrets": {"()": "service_platform.routes.phone_uploads.RedactUploadSecrets"}},
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                   "filters": ["upload_secrets"]},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "service_platform": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


DB_HELP = "SQLAlchemy URL or SQLite file path (default ./var/platform.db)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service-platform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="create tables, seed an empty database, serve HTTP")
    serve.add_argument("--db", default=None, help=DB_HELP)
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--session-minutes", type=float, default=15.0,
                       help="citizen session lifetime in minutes (default 15)")
    serve.add_argument("--photos", default=None, metavar="FILE",
                       help="YAML photo map: registered photos per ID number (default: env PLATFORM_PHOTOS, else "
                            "drawn placeholders); see service_platform/photos.py")
    serve.add_argument("--payment-provider-key", default=None, metavar="FILE",
                       help="the unified-payment provider's Ed25519 PUBLIC key (PEM) that signs wallet payment "
                            "notifications (default: env PLATFORM_PAYMENT_PROVIDER_PUBLIC_KEY; without one the cashier "
                            "answers 503)")
    serve.add_argument("--max-citizens-per-hour", type=int, default=None, metavar="N",
                       help="distinct citizens one kiosk may ask about per rolling hour (citizen sessions and "
                            "registered photos), then 429 rate_limited (default: env PLATFORM_MAX_CITIZENS_PER_HOUR, "
                            "else 60)")
    serve.add_argument("--metrics-token-file", default=None, metavar="FILE",
                       help="enable GET /metrics (Prometheus) for scrapers sending Authorization: Bearer <the token "
                            "in FILE, ≥ 16 characters> (default: env PLATFORM_METRICS_TOKEN_FILE; without one "
                            "/metrics answers 404)")
    serve.add_argument("--public-url", default=None, metavar="URL",
                       help="the platform's PUBLIC base URL (what citizens' phones open) used in every QR code it "
                            "makes and handed to kiosks by GET /api/v1/kiosk/config (default: env "
                            "PLATFORM_PUBLIC_URL, else the URL it listens on)")
    serve.add_argument("--seal-dir", default=None, metavar="DIR",
                       help="the seal CA directory (service-platform ca init) whose department seals sign every "
                            "proof and e-certificate PDF (default: env PLATFORM_SEAL_DIR; with --demo a missing CA "
                            "is created there, or in a temporary folder)")
    serve.add_argument("--demo", action="store_true",
                       help="also seed the demo data (demo citizens, applications, the demo kiosk): development only")
    serve.add_argument("--demo-kiosk-public-key", default=None, metavar="FILE",
                       help="with --demo: enrol this Ed25519 public key (PEM or base64) for the demo kiosk (default: "
                            "env PLATFORM_DEMO_KIOSK_PUBLIC_KEY, a file path)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    seed = sub.add_parser("seed", help="create tables and load the catalogue (and with --demo the demo data) into "
                                       "the tables still empty")
    seed.add_argument("--db", default=None, help=DB_HELP)
    seed.add_argument("--demo", action="store_true", help="also the demo data (development only)")
    seed.add_argument("--demo-kiosk-public-key", default=None, metavar="FILE",
                      help="with --demo: enrol this Ed25519 public key for the demo kiosk")
    kiosk = sub.add_parser("kiosk", help="enrol kiosks and manage their signing keys",
                           description="Kiosks sign every request with their own Ed25519 key (KIOSK-ED25519-V1); "
                                       "the platform keeps their public keys. Rotation: add the new key, then revoke "
                                       "the old one.")
    ksub = kiosk.add_subparsers(dest="kiosk_command", required=True)
    add = ksub.add_parser("add", help="enrol a public key for a kiosk (creating the kiosk if missing); prints the "
                                      "key id")
    add.add_argument("--id", required=True, help="kiosk id, e.g. KSK-340302-0002")
    add.add_argument("--name", default=None, help="kiosk name (for a new kiosk; default its id)")
    add.add_argument("--location", default="", help="where it stands (for a new kiosk)")
    add.add_argument("--public-key", required=True, metavar="FILE",
                     help="the kiosk's Ed25519 public key: PEM, or the raw key in base64 (what `kiosk keygen` "
                          "prints)")
    revoke = ksub.add_parser("revoke", help="revoke a kiosk's key (refused from the next request on)")
    revoke.add_argument("--id", required=True)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--key-id", default=None, help="the key to revoke")
    which.add_argument("--all", action="store_true", help="every active key of the kiosk")
    ksub.add_parser("list", help="kiosks and their keys, as JSON lines")
    for name, text in (("disable", "refuse the kiosk (403 kiosk_disabled) whatever its keys"),
                       ("enable", "accept the kiosk again")):
        p = ksub.add_parser(name, help=text)
        p.add_argument("--id", required=True)
    for p in (add, revoke, *[ksub.choices[n] for n in ("list", "disable", "enable")]):
        p.add_argument("--db", default=None, help=DB_HELP)
    staff = sub.add_parser("staff", help="department staff who follow up bad ratings (差评整改)",
                           description="A staff member authenticates on /api/v1/staff/… with a random API token "
                                       "(Authorization: Bearer), printed once; the platform keeps its SHA-256. "
                                       "They see only their own department's items.")
    ssub = staff.add_subparsers(dest="staff_command", required=True)
    sadd = ssub.add_parser("add", help="create a staff member (or give an existing one a new token); prints the "
                                       "token once, as JSON")
    sadd.add_argument("--name", required=True, help="login name, e.g. wang.fang")
    sadd.add_argument("--department", required=True,
                      help="exactly the department of the services, e.g. 蚌埠市公安局龙子湖分局")
    sdis = ssub.add_parser("disable", help="refuse the staff member's token from the next request on")
    sdis.add_argument("--name", required=True)
    ssub.add_parser("list", help="staff members, as JSON lines (no tokens)")
    for p in ssub.choices.values():
        p.add_argument("--db", default=None, help=DB_HELP)
    from service_platform import technicians

    technicians.add_cli(sub, DB_HELP)
    from service_platform import supplement_fields

    supplement_fields.add_cli(sub, DB_HELP)
    ca = sub.add_parser("ca", help="the platform's seal CA: department seals that sign issued PDFs (电子印章)",
                        description="Run at set-up time; the directory holds private keys (mode 0600) and is never "
                                    "committed. serve --seal-dir DIR uses it.")
    casub = ca.add_subparsers(dest="ca_command", required=True)
    cainit = casub.add_parser("init", help="create the root key and certificate (refuses to overwrite)")
    caissue = casub.add_parser("issue", help="issue (or renew) the seal of a department")
    caissue.add_argument("--department", required=True, help="exactly as it issues documents, e.g. 蚌埠市医疗保障局")
    for p in (cainit, caissue):
        p.add_argument("--dir", required=True, help="the seal directory")
    proof = sub.add_parser("document", help="issued documents (proofs, sealed e-certificate PDFs)")
    psub = proof.add_subparsers(dest="document_command", required=True)
    prev = psub.add_parser("revoke", help="revoke an issued document: its verify page then says revoked")
    prev.add_argument("--code", required=True, help="the verification code")
    prev.add_argument("--reason", required=True)
    prev.add_argument("--db", default=None, help=DB_HELP)
    sub.add_parser("openapi", help="print the OpenAPI spec as JSON")
    return parser


def ca_command(args: argparse.Namespace) -> int:
    from service_platform.seal import SealUnavailable, init_ca, issue_seal

    try:
        if args.ca_command == "init":
            path = init_ca(args.dir)
        else:
            path = issue_seal(args.dir, args.department.strip())
    except (FileExistsError, SealUnavailable, OSError) as exc:
        print(f"service-platform: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"certificate": str(path)}, ensure_ascii=False))
    return 0


def document_command(args: argparse.Namespace) -> int:
    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow
    from service_platform.sealed_documents import revoke
    from service_platform.verification_codes import normalize

    code = normalize(args.code)
    if code is None:
        print("service-platform: --code is not a verification code", file=sys.stderr)
        return 2
    engine = make_engine(normalize_db_url(args.db))
    try:
        create_tables(engine)
        with make_sessionmaker(engine)() as db:
            row = revoke(db, code, args.reason.strip(), "operator", utcnow())
            if row is None:
                print(f"service-platform: no document {code}", file=sys.stderr)
                return 1
            assert row.revoked_at is not None
            print(json.dumps({"code": code, "revoked_at": row.revoked_at.isoformat()}))
            return 0
    finally:
        engine.dispose()


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
    from service_platform.payment_provider import load_public_key

    try:
        provider_key = load_public_key(args.payment_provider_key) if args.payment_provider_key else None
    except (OSError, ValueError) as exc:
        print(f"service-platform: --payment-provider-key: {exc}", file=sys.stderr)
        return 2
    demo_key: bytes | None = None
    demo_key_file = args.demo_kiosk_public_key or (
        os.environ.get("PLATFORM_DEMO_KIOSK_PUBLIC_KEY", "").strip() if args.demo else None) or None
    if demo_key_file and not args.demo:
        print("service-platform: --demo-kiosk-public-key needs --demo", file=sys.stderr)
        return 2
    if demo_key_file:
        demo_key = _read_public_key(demo_key_file, "--demo-kiosk-public-key")
        if demo_key is None:
            return 2
    from service_platform.metrics import load_token

    try:
        metrics_token = load_token(args.metrics_token_file or os.environ.get("PLATFORM_METRICS_TOKEN_FILE", "").strip())
    except (OSError, ValueError) as exc:
        print(f"service-platform: --metrics-token-file: {exc}", file=sys.stderr)
        return 2
    app = create_app(args.db, session_ttl=dt.timedelta(minutes=args.session_minutes), photo_source=photos, demo=args.demo, demo_kiosk_public_key=demo_key,
                     payment_provider_key=provider_key, max_citizens_per_hour=args.max_citizens_per_hour,
                     metrics_token=metrics_token, public_base_url=args.public_url, seal_dir=args.seal_dir)
    from service_platform.kiosk_keys import active_key_count

    with app.state.sessionmaker() as db:
        usable = active_key_count(db)
    if not usable and not args.demo:
        app.state.engine.dispose()
        print(ENROL_HINT, file=sys.stderr)
        return 2
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(f"service-platform: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    if app.state.public_base_url is None:  # QR codes point at where this server listens (no --public-url)
        app.state.public_base_url = _url(args.host, port)
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


ENROL_HINT = """\
service-platform: no kiosk can authenticate: the database has no active key of an active kiosk.
Enrol each kiosk's public key first:
  1. on the kiosk:   kiosk keygen --out /etc/kiosk/platform-signing.key    (prints the public key and its key id)
  2. here:           service-platform kiosk add --db <same --db> --id KSK-XXXXXX-NNNN --name "<name>" \\
                         --public-key <file with the printed public key, PEM or base64>
  3. in the kiosk's profile: platform.key_file: /etc/kiosk/platform-signing.key
(For development only: service-platform serve --demo --demo-kiosk-public-key FILE.)"""


def _read_public_key(path: str, what: str) -> bytes | None:
    from service_platform.kiosk_keys import InvalidPublicKey, parse_public_key

    try:
        with open(path, "rb") as fh:
            return parse_public_key(fh.read())
    except OSError as exc:
        print(f"service-platform: {what}: cannot read {path}: {exc.strerror}", file=sys.stderr)
    except InvalidPublicKey as exc:
        print(f"service-platform: {what}: {path}: {exc}", file=sys.stderr)
    return None


def seed_command(args: argparse.Namespace) -> int:
    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url
    from service_platform.seed.loader import seed_if_empty

    demo_key = None
    if args.demo_kiosk_public_key:
        if not args.demo:
            print("service-platform: --demo-kiosk-public-key needs --demo", file=sys.stderr)
            return 2
        demo_key = _read_public_key(args.demo_kiosk_public_key, "--demo-kiosk-public-key")
        if demo_key is None:
            return 2
    url = normalize_db_url(args.db)
    engine = make_engine(url)
    create_tables(engine)
    with make_sessionmaker(engine)() as db:
        summary = seed_if_empty(db, demo=args.demo, demo_kiosk_public_key=demo_key)
    engine.dispose()
    print(json.dumps({"db": url, **dataclasses.asdict(summary)}, ensure_ascii=False))
    return 0


def kiosk_command(args: argparse.Namespace) -> int:
    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url
    from service_platform.kiosk_keys import add_key, list_keys, revoke_keys
    from service_platform.models import Kiosk

    raw = None
    if args.kiosk_command == "add":
        raw = _read_public_key(args.public_key, "--public-key")
        if raw is None:
            return 2
    engine = make_engine(normalize_db_url(args.db))
    create_tables(engine)
    try:
        with make_sessionmaker(engine)() as db:
            if args.kiosk_command == "add":
                assert raw is not None
                try:
                    key_id, added = add_key(db, args.id, raw, name=args.name, location=args.location)
                except ValueError as exc:
                    print(f"service-platform: {exc}", file=sys.stderr)
                    return 1
                db.commit()
                print(json.dumps({"kiosk_id": args.id, "key_id": key_id, "added": added}))
                return 0
            if args.kiosk_command == "list":
                for kiosk, keys in list_keys(db):
                    print(json.dumps({"kiosk_id": kiosk.id, "name": kiosk.name, "active": kiosk.active,
                                      "keys": [{"key_id": k.key_id, "created_at": k.created_at.isoformat(),
                                                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                                               for k in keys]}, ensure_ascii=False))
                return 0
            kiosk = db.get(Kiosk, args.id)
            if kiosk is None:
                print(f"service-platform: no kiosk {args.id}", file=sys.stderr)
                return 1
            if args.kiosk_command == "revoke":
                revoked = revoke_keys(db, args.id, None if args.all else args.key_id)
                db.commit()
                if not revoked and not args.all:
                    print(f"service-platform: kiosk {args.id} has no active key {args.key_id}", file=sys.stderr)
                    return 1
                print(json.dumps({"kiosk_id": args.id, "revoked": revoked}))
                return 0
            kiosk.active = args.kiosk_command == "enable"
            db.commit()
            print(json.dumps({"kiosk_id": args.id, "active": kiosk.active}))
            return 0
    finally:
        engine.dispose()


def staff_command(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from service_platform.db import create_tables, make_engine, make_sessionmaker, normalize_db_url, utcnow
    from service_platform.models import StaffMember
    from service_platform.routes.staff import add_staff

    engine = make_engine(normalize_db_url(args.db))
    try:
        create_tables(engine)
        with make_sessionmaker(engine)() as db:
            if args.staff_command == "add":
                name, department = args.name.strip(), args.department.strip()
                if not name or not department or len(name) > 80 or len(department) > 120:
                    print("service-platform: --name (≤ 80) and --department (≤ 120) must not be empty",
                          file=sys.stderr)
                    return 2
                token = add_staff(db, name, department, utcnow())
                db.commit()
                print(json.dumps({"name": name, "department": department, "token": token}, ensure_ascii=False))
                return 0
            if args.staff_command == "list":
                for m in db.scalars(select(StaffMember).order_by(StaffMember.name)):
                    print(json.dumps({"name": m.name, "department": m.department, "active": m.active},
                                     ensure_ascii=False))
                return 0
            member = db.scalar(select(StaffMember).where(StaffMember.name == args.name))
            if member is None:
                print(f"service-platform: no staff member {args.name}", file=sys.stderr)
                return 1
            member.active = False
            db.commit()
            print(json.dumps({"name": member.name, "active": False}, ensure_ascii=False))
            return 0
    finally:
        engine.dispose()


def _technician_command(args: argparse.Namespace) -> int:
    from service_platform.technicians import cli_command

    return cli_command(args)


def _application_command(args: argparse.Namespace) -> int:
    from service_platform.supplement_fields import cli_command

    return cli_command(args)


def openapi_spec() -> dict[str, Any]:
    from service_platform.app import create_app

    return create_app("sqlite://", init_db=False).openapi()


def openapi_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(openapi_spec(), ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "seed": seed_command, "kiosk": kiosk_command, "staff": staff_command,
                "openapi": openapi_command, "ca": ca_command, "document": document_command,
                "technician": _technician_command, "application": _application_command}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
