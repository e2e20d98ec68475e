"""Append-only, hash-chained audit log: one record per turn.

Each record carries the hash of the previous one; its own hash covers its sequence number, the
previous hash, its time and its body. `verify()` recomputes the chain, so an edited record (its
hash no longer matches), a deleted one (a gap in the sequence, a broken link) or an inserted one is
reported. Deleting the newest records leaves a valid shorter chain: keep the head hash that `verify`
prints somewhere else (a ticket, a daily e-mail) and pass it back with `expect_head`.

Appending is safe from several processes: the last hash is read and the new record inserted in one
write transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), and `seq` is unique.
Only redacted text is stored."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from sqlalchemy import Engine, Integer, String, Text, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from assistant.guard import pii
from assistant.config import Settings
from assistant.store.db import Base, make_engine
from assistant.types import Conversation, GuardVerdict, Reply, utcnow

GENESIS = "0" * 64
_LOCK_KEY = 0x6D656164  # PostgreSQL advisory lock id for appends ("mead")


class AuditRecord(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    trace_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # canonical JSON of the turn (redacted)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# On SQLite the table refuses UPDATE and DELETE: the application can only append.
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]


@event.listens_for(AuditRecord.__table__, "after_create")
def _append_only(target, connection, **_kw) -> None:
    if connection.dialect.name == "sqlite":
        for ddl in _SQLITE_TRIGGERS:
            connection.exec_driver_sql(ddl)


def record_hash(seq: int, prev_hash: str, conversation_id: str, trace_id: str, created_at: str, body: str) -> str:
    payload = json.dumps([seq, prev_hash, conversation_id, trace_id, created_at, body], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Problem:
    seq: int
    problem: str


@dataclass
class VerifyReport:
    ok: bool
    records: int
    head_seq: int | None
    head_hash: str | None
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def turn_body(conversation: Conversation, verdict: GuardVerdict, reply: Reply,
              redact: Callable[[str], str]) -> dict[str, Any]:
    """What a reviewer needs to replay one turn, with every text redacted."""
    route = reply.route
    return {
        "customer_id": conversation.customer_id,
        "input": verdict.redacted or redact(verdict.text),
        "reply": redact(reply.text),
        "path": reply.path,
        "route": route.model_dump() if route else None,
        "retrieved": [{"chunk_id": c.id, "doc_id": c.doc_id, "version": c.version,
                       "effective_date": c.effective_date, "score": round(c.score, 4)} for c in reply.chunks],
        "citations": [{"chunk_id": c.chunk_id, "doc_id": c.doc_id, "version": c.version,
                       "effective_date": c.effective_date} for c in reply.citations],
        "tool_calls": [pii.redact_value(c.model_dump()) for c in reply.tool_calls],
        "policy": {"allowed": verdict.allowed, "flags": sorted(set(verdict.flags) | set(reply.flags)),
                   "notices": len(verdict.notices)},
        "ticket": (reply.ticket or {}).get("id") if reply.ticket else None,
        "model": reply.meta.get("model"),
        "prompt_version": reply.meta.get("prompt_version"),
        "timings_ms": reply.timings_ms,
    }


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


class AuditLog:
    """`AuditLog(settings)` or `AuditLog(engine)`; `record_turn` is the pipeline's TurnRecorder."""

    def __init__(self, settings_or_engine: Settings | Engine, redact: Callable[[str], str] | None = None):
        if isinstance(settings_or_engine, Settings):
            self.engine = make_engine(settings_or_engine)
            allow = settings_or_engine.pii_allow
        else:
            self.engine = settings_or_engine
            allow = []
        self.redact = redact or (lambda s: pii.redact(s, allow))
        self._create_table()

    def _create_table(self) -> None:
        for attempt in range(5):  # several processes may start at once
            try:
                Base.metadata.create_all(self.engine, tables=[AuditRecord.__table__])
                return
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # --- write ---------------------------------------------------------------------------

    def record_turn(self, conversation: Conversation, verdict: GuardVerdict, reply: Reply) -> dict[str, Any]:
        body = turn_body(conversation, verdict, reply, self.redact)
        return self.append(conversation.id, reply.trace_id, body)

    def append(self, conversation_id: str, trace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        canonical = _canonical(body)
        for attempt in range(10):
            try:
                return self._append_once(conversation_id, trace_id, canonical)
            except (IntegrityError, OperationalError):  # a concurrent append won the race, or the db was busy
                if attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("unreachable")

    def _append_once(self, conversation_id: str, trace_id: str, canonical: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading the head
            elif conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            last = conn.execute(select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)).first()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            created = utcnow().isoformat()
            digest = record_hash(seq, prev, conversation_id, trace_id, created, canonical)
            row = {"seq": seq, "conversation_id": conversation_id, "trace_id": trace_id, "created_at": created,
                   "body": canonical, "prev_hash": prev, "hash": digest}
            conn.execute(insert(AuditRecord).values(**row))
            conn.commit()
        return row

    # --- read ----------------------------------------------------------------------------

    def _rows(self, where=None) -> Iterator[AuditRecord]:
        query = select(AuditRecord).order_by(AuditRecord.seq)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(query):
                yield row

    def verify(self, expect_head: str | None = None) -> VerifyReport:
        problems: list[Problem] = []
        prev_seq, prev_hash, count, seen_anchor = 0, GENESIS, 0, expect_head is None
        for row in self._rows():
            count += 1
            if row.seq != prev_seq + 1:
                problems.append(Problem(row.seq, f"records {prev_seq + 1}..{row.seq - 1} are missing (deleted)"))
            if row.prev_hash != prev_hash:
                problems.append(Problem(row.seq, "previous-hash link broken (a record before it was deleted, "
                                                 "inserted or edited)"))
            expected = record_hash(row.seq, row.prev_hash, row.conversation_id, row.trace_id, row.created_at, row.body)
            if row.hash != expected:
                problems.append(Problem(row.seq, "hash mismatch: the record was edited"))
            seen_anchor = seen_anchor or row.hash == expect_head
            prev_seq, prev_hash = row.seq, row.hash
        if not seen_anchor:
            problems.append(Problem(prev_seq, f"expected head {expect_head[:12]}... not found: records after it "
                                               "were deleted (or the chain was rewritten)"))
        return VerifyReport(ok=not problems, records=count, head_seq=prev_seq or None,
                            head_hash=prev_hash if count else None, problems=problems)

    def show(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's turns in order, as a reviewer reads them."""
        return [{"seq": r.seq, "created_at": r.created_at, "trace_id": r.trace_id, "hash": r.hash,
                 **json.loads(r.body)} for r in self._rows(AuditRecord.conversation_id == conversation_id)]
