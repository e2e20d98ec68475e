"""Idempotency keys: a retried request (same `Idempotency-Key`, same body, same caller) gets the first
result instead of running again, so a caller cut off after a ticket was filed does not file a second.

A key is claimed (`pending`) before the work starts and completed with the response; a failed attempt
releases it so the retry can run. When the database is down the worker keeps keys in memory (bounded):
a retry to the same worker is still answered once."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from assistant.config import Settings
from assistant.store.db import Base, StoreUnavailable
from assistant.store.tickets import LazySessions, UTCDateTime
from assistant.types import utcnow

log = logging.getLogger(__name__)
KEEP_FOR = timedelta(hours=24)
PENDING_STALE = timedelta(minutes=10)  # longer than any turn: the attempt that claimed it is gone
MEMORY_KEYS = 10_000


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of scope, caller and key
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # pending | done
    status: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[str] = mapped_column(Text, default="")  # the JSON body returned the first time
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class KeyReused(ValueError):
    """The key was used before with a different request body (-> 422)."""


@dataclass
class Claim:
    """What `begin` found: `new` (run the request, then `finish`), `pending` (the first attempt is still
    running) or `done` (replay `status` and `response`)."""

    id: str
    request_hash: str
    state: Literal["new", "pending", "done"]
    status: int = 0
    response: Any = None


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def key_id(scope: str, caller: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\x00{caller}\x00{key}".encode()).hexdigest()


class IdempotencyStore(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None):
        self.settings = settings
        self._sessions = sessions
        self._memory: OrderedDict[str, Claim] = OrderedDict()

    def begin(self, scope: str, caller: str, key: str, body: Any) -> Claim:
        """Claim the key for this request, or say what an earlier request with it left.
        KeyReused when the same key came with another body."""
        claim = Claim(id=key_id(scope, caller, key), request_hash=request_hash(body), state="new")
        try:
            found = self._claim(claim)
        except (SQLAlchemyError, OSError, StoreUnavailable):
            log.warning("idempotency store unreachable: keeping key in memory")
            found = self._memory.setdefault(claim.id, claim)
            self._trim()
            if found is claim:
                return claim
            if found.state == "new":  # claimed in memory by an attempt still running
                found = Claim(id=found.id, request_hash=found.request_hash, state="pending")
        if found.request_hash != claim.request_hash:
            raise KeyReused("this Idempotency-Key was used with a different request")
        return found

    def _claim(self, claim: Claim) -> Claim:
        remembered = self._memory.get(claim.id)
        if remembered is not None and remembered.state == "done":
            return remembered
        with self.sessions() as session:
            row = session.get(IdempotencyRow, claim.id)
            if row is not None and (row.created_at < utcnow() - KEEP_FOR or (
                    row.state == "pending" and row.created_at < utcnow() - PENDING_STALE)):  # a worker died
                session.delete(row)
                session.flush()
                row = None
            if row is None:
                session.add(IdempotencyRow(id=claim.id, request_hash=claim.request_hash, state="pending",
                                           status=0, response="", created_at=utcnow()))
                try:
                    session.commit()
                except IntegrityError:  # another worker claimed it at the same moment
                    session.rollback()
                    row = session.get(IdempotencyRow, claim.id)
                    return _claim_of(row) if row is not None else claim
                return claim
            return _claim_of(row)

    def finish(self, claim: Claim, status: int, response: Any) -> None:
        """Keep the first result for the retries."""
        done = Claim(id=claim.id, request_hash=claim.request_hash, state="done", status=status, response=response)
        try:
            with self.sessions() as session:
                row = session.get(IdempotencyRow, claim.id)
                if row is None:
                    row = IdempotencyRow(id=claim.id, request_hash=claim.request_hash, created_at=utcnow())
                    session.add(row)
                row.state, row.status, row.response = "done", status, json.dumps(response, ensure_ascii=False)
                session.commit()
            self._memory.pop(claim.id, None)
        except (SQLAlchemyError, OSError, StoreUnavailable):
            log.warning("idempotency store unreachable: result kept in memory")
            self._memory[claim.id] = done
            self._trim()

    def release(self, claim: Claim) -> None:
        """The attempt failed: let a retry run it again."""
        self._memory.pop(claim.id, None)
        try:
            with self.sessions() as session:
                session.execute(delete(IdempotencyRow).where(IdempotencyRow.id == claim.id,
                                                             IdempotencyRow.state == "pending"))
                session.commit()
        except (SQLAlchemyError, OSError, StoreUnavailable):
            log.warning("could not release idempotency key")

    def _trim(self) -> None:
        while len(self._memory) > MEMORY_KEYS:
            self._memory.popitem(last=False)


def _claim_of(row: IdempotencyRow) -> Claim:
    response = json.loads(row.response) if row.state == "done" and row.response else None
    return Claim(id=row.id, request_hash=row.request_hash, state=row.state, status=row.status, response=response)
