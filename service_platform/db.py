"""Database plumbing: URL normalisation, engine (SQLite-friendly), declarative base, UTC timestamps."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker, Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

DEFAULT_DB_PATH = Path("var") / "platform.db"

# Timestamps are stored as naive UTC and shown to people in China Standard Time (no DST, so a fixed offset is exact).
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


def utcnow() -> dt.datetime:
    """Now, aware UTC, whole seconds (timestamps in the API are shown to the second)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def normalize_db_url(db: str | Path | None) -> str:
    """Accept a SQLAlchemy URL or a plain file path (→ SQLite); ``None`` → ``./var/platform.db``.

    ``postgresql://`` and ``postgres://`` URLs use the psycopg (3) driver."""
    if db is None:
        db = DEFAULT_DB_PATH
    text = str(db)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    pass


def make_engine(db_url: str) -> Engine:
    url = normalize_db_url(db_url)
    # hide_parameters: SQL errors never carry the bound values (ID numbers, names) into logs.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    is_sqlite = url.startswith("sqlite")
    if url.startswith("postgresql"):
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool  # one shared in-memory database for all threads
        else:
            path = url.split("sqlite:///", 1)[-1].split("?", 1)[0]
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.close()
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def create_tables(engine: Engine) -> None:
    from service_platform import models, proof_models, technicians  # noqa: F401  (registers the tables on Base.metadata)

    Base.metadata.create_all(engine)


def insert_ignore(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL (concurrent creators of the same row both
    succeed; on PostgreSQL the second waits for the first to commit)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing())
