"""Durable storage (SQLAlchemy): SQLite file with WAL by default, PostgreSQL by URL.
Tables are declared on `Base` by the modules that own them (tickets, conversations, audit)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from assistant.config import Settings


PG_CONNECT_TIMEOUT_S = 5


class Base(DeclarativeBase):
    pass


def make_engine(settings: Settings) -> Engine:
    url = database_url(settings)
    if url.startswith("sqlite:///"):
        database = make_url(url).database
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError:  # reported by the first query (a write is then spooled), not at construction
                pass
        # A locked store (another process holding a write lock) is waited for this long, then the write is spooled.
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": settings.store_busy_timeout_s})
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


class HeartbeatRow(Base):
    """One row per worker, rewritten by /healthz: proof that the store takes a committed write."""

    __tablename__ = "store_heartbeat"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[str] = mapped_column(String(40))


def check_write(engine: Engine, timeout_s: float = 1.0) -> dict[str, Any]:
    """Upsert this worker's heartbeat row and commit, waiting at most `timeout_s` for a lock (so a
    write-locked store fails the check quickly). Raises the store's error when the write fails."""
    worker = f"{socket.gethostname()}:{os.getpid()}"[:128]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = time.perf_counter()
    HeartbeatRow.__table__.create(engine, checkfirst=True)
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        try:
            if dialect == "postgresql":
                conn.execute(text("SELECT set_config('lock_timeout', :t, true), set_config('statement_timeout', :s, true)"),
                             {"t": f"{int(timeout_s * 1000)}ms", "s": f"{int(timeout_s * 2000)}ms"})
            table = HeartbeatRow.__table__
            updated = conn.execute(table.update().where(table.c.worker == worker).values(at=now)).rowcount
            if not updated:
                conn.execute(table.insert().values(worker=worker, at=now))
            conn.commit()
        except IntegrityError:  # a concurrent check of this worker inserted the row first: the write worked
            conn.rollback()
        finally:
            if dialect == "sqlite":
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous)}")
    return {"dialect": dialect, "write_ms": round((time.perf_counter() - started) * 1000, 1)}
