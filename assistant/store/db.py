"""Durable storage (SQLAlchemy): SQLite file with WAL by default, PostgreSQL by URL.
Tables are declared on `Base` by the modules that own them (tickets, conversations, audit)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from assistant.config import Settings


PG_CONNECT_TIMEOUT_S = 5


class Base(DeclarativeBase):
    pass


def make_engine(settings: Settings) -> Engine:
    url = database_url(settings)
    if url.startswith("sqlite:///"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A store that is down must fail fast: a ticket then goes to the spool, not into a hang.
    connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def database_url(settings: Settings) -> str:
    """settings.db_url, with a bare postgres:// or postgresql:// URL pointed at psycopg 3 (the driver we ship)."""
    url = settings.db_url
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a ticket is durable once committed
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker:
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


class StoreUnavailable(RuntimeError):
    """A write could not reach the database. `reference` is what the customer can quote when the
    record was kept elsewhere (the spool); None when nothing could be kept."""

    def __init__(self, message: str, reference: str | None = None, retry_after_s: int = 30):
        super().__init__(message)
        self.reference = reference
        self.retry_after_s = retry_after_s
