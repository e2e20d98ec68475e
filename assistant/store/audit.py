"""Append-only, hash-chained audit log: one record per turn.

Each record carries the hash of the previous one; its own hash covers its sequence number, the
previous hash, its time and its body. `verify()` recomputes the chain, so an edited record (its
hash no longer matches), a deleted one (a gap in the sequence, a broken link) or an inserted one is
reported. Deleting the newest records leaves a valid shorter chain: keep the head hash that `verify`
prints somewhere else (a ticket, a daily e-mail) and pass it back with `expect_head`.

Appending is safe from several processes: the last hash is read and the new record inserted in one
write transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), and `seq` is unique.
Only redacted text is stored.

When the store is down, a record is spooled (`<data_dir>/spool/audit`, one file each, named so they sort
in the order they were written) with its own time, and appended to the chain by `replay_spool`, in that
order, under a lock file: one replayer at a time. While spooled records wait, new records queue behind
them in the spool, so the chain keeps the order the turns happened in. A replay after a crash does not
append a record twice (it looks for the same conversation, trace and time first)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Engine, Integer, String, Text, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from assistant.guard import pii
from assistant.config import Settings
from assistant.store.db import Base, StoreUnavailable, make_engine
from assistant.store.spool import Spool
from assistant.types import Conversation, GuardVerdict, Reply, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
QUICK_BUSY_S = 0.1  # a busy error faster than this was not a wait for a held lock: retried
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
    """`AuditLog(settings)` or `AuditLog(engine)`; `record_turn` is the pipeline's TurnRecorder. With settings
    (or a `spool_dir`) records the store cannot take are spooled; without, the store's error becomes
    StoreUnavailable."""

    def __init__(self, settings_or_engine: Settings | Engine, redact: Callable[[str], str] | None = None,
                 spool_dir: Path | None = None):
        if isinstance(settings_or_engine, Settings):
            self.engine = make_engine(settings_or_engine)
            allow = settings_or_engine.pii_allow
            spool_dir = spool_dir or settings_or_engine.data_dir / "spool" / "audit"
        else:
            self.engine = settings_or_engine
            allow = []
        self.redact = redact or (lambda s: pii.redact(s, allow))
        self.spool = Spool(spool_dir) if spool_dir else None
        self._table_ready = False
        try:
            self._create_table()
        except SQLAlchemyError:  # the store is down at start: records are spooled until it is back
            log.warning("audit table not reachable at start; records will be spooled until the store is back",
                        exc_info=True)

    def _create_table(self) -> None:
        if self._table_ready:
            return
        for attempt in range(5):  # several processes may start at once
            try:
                Base.metadata.create_all(self.engine, tables=[AuditRecord.__table__])
                self._table_ready = True
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
        """The stored record, or {"spooled": True, "reference": ...} when it waits in the spool.
        StoreUnavailable when it could be neither stored nor spooled."""
        canonical = _canonical(body)
        created = utcnow().isoformat()
        if self.spool is not None and self.spool.count():  # earlier records wait: queue behind them
            row = self._spool_record(conversation_id, trace_id, created, canonical, None)
            self._replay_quietly()
            return row
        try:
            self._create_table()
            return self._append_retrying(conversation_id, trace_id, canonical, created)
        except SQLAlchemyError as exc:
            return self._spool_record(conversation_id, trace_id, created, canonical, exc)

    def _append_retrying(self, conversation_id: str, trace_id: str, canonical: str, created: str,
                         once: bool = False) -> dict[str, Any]:
        busy = 0
        for attempt in range(10):
            started = time.perf_counter()
            try:
                return self._append_once(conversation_id, trace_id, canonical, created, once)
            except IntegrityError:  # a concurrent append won the race for this seq
                if attempt == 9:
                    raise
            except OperationalError:
                # A quick "busy" is worth another try; a timed-out lock or a server that is down is not.
                busy += 1
                if busy > 3 or time.perf_counter() - started > QUICK_BUSY_S:
                    raise
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("unreachable")

    def _append_once(self, conversation_id: str, trace_id: str, canonical: str, created: str,
                     once: bool = False) -> dict[str, Any]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading the head
            elif conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            if once:  # a replayed record: appended already before a crash?
                found = conn.execute(select(AuditRecord).where(
                    AuditRecord.conversation_id == conversation_id, AuditRecord.trace_id == trace_id,
                    AuditRecord.created_at == created, AuditRecord.body == canonical)).first()
                if found is not None:
                    conn.rollback()
                    return dict(found._mapping)
            last = conn.execute(select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)).first()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            digest = record_hash(seq, prev, conversation_id, trace_id, created, canonical)
            row = {"seq": seq, "conversation_id": conversation_id, "trace_id": trace_id, "created_at": created,
                   "body": canonical, "prev_hash": prev, "hash": digest}
            conn.execute(insert(AuditRecord).values(**row))
            conn.commit()
        return row

    # --- spool ---------------------------------------------------------------------------

    def _spool_record(self, conversation_id: str, trace_id: str, created: str, canonical: str,
                      cause: Exception | None) -> dict[str, Any]:
        if self.spool is None:
            raise StoreUnavailable("the audit record could not be written: the store is unavailable") from cause
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        record = {"conversation_id": conversation_id, "trace_id": trace_id, "created_at": created, "body": canonical}
        try:
            self.spool.write_text(name, json.dumps(record, ensure_ascii=False))
        except OSError as exc:
            raise StoreUnavailable("the audit record could not be written: the store and the spool are both "
                                   "unavailable") from (cause or exc)
        if cause is not None:
            log.error("audit store unavailable, record for trace %s spooled as %s: %s", trace_id, name, cause)
        return {"spooled": True, "reference": name[:-5], **record}

    def replay_spool(self, wait: bool = True) -> int:
        """Append spooled records to the chain in the order they were spooled; returns how many.
        One replayer at a time (a lock file); with wait=False, returns 0 at once when another holds it.
        Raises the store's error while it is still down (the records stay, in order)."""
        if self.spool is None:
            return 0
        appended = 0
        with self.spool.exclusive(wait=wait) as mine:
            if not mine:
                return 0
            self.spool.recover_stale(max_age_s=0)  # we hold the lock: any claim left is a dead replayer's
            self._create_table()
            while paths := self.spool.pending():
                for path in paths:
                    appended += self._replay_file(path)
        return appended

    def _replay_file(self, path: Path) -> int:
        claim = self.spool.claim(path)
        if claim is None:
            return 0
        try:
            record = json.loads(claim.text())
            conversation_id, trace_id, created, body = (record[k] for k in ("conversation_id", "trace_id",
                                                                             "created_at", "body"))
            if not all(isinstance(v, str) for v in (conversation_id, trace_id, created, body)):
                raise ValueError("fields must be strings")
        except (ValueError, KeyError, TypeError, OSError):
            log.error("unreadable audit spool file %s set aside as .bad for a person to look at", path)
            claim.set_aside()
            return 0
        try:
            self._append_retrying(conversation_id, trace_id, body, created, once=True)
        except BaseException:
            claim.release()
            raise
        claim.done()
        return 1

    def _replay_quietly(self) -> None:
        try:
            replayed = self.replay_spool(wait=False)
            if replayed:
                log.info("replayed %d spooled audit records", replayed)
        except (SQLAlchemyError, OSError):
            log.warning("audit spool replay failed; it will be retried", exc_info=True)

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
