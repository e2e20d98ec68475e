"""The store stopped mid-turn on SQLite: another connection holds the write lock (BEGIN EXCLUSIVE), so
every write of the turn (ticket, conversation, audit) times out. Nothing is lost: each record goes to
the spool, the caller gets its reference, and once the lock is gone a replay commits everything, the
spool is empty and the audit chain verifies. Also: replay by several replayers at once while new
records are spooled (no double insert, no false "unreadable" file), and the heartbeat write check.

Real SQLite files in a temp dir; a short busy timeout so that a locked store fails in 0.3 s."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from assistant.config import Settings
from assistant.store.audit import AuditLog
from assistant.store.conversations import ConversationRow, ConversationStore
from assistant.store.db import StoreUnavailable, check_write, make_engine
from assistant.store.spool import Spool, SpoolReplayer
from assistant.store.tickets import TicketDraft, TicketFilter, TicketService
from assistant.types import Conversation, GuardVerdict, Message, Reply


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", store_busy_timeout_s=0.3, _env_file=None)


@contextmanager
def write_locked(settings: Settings):
    """Another connection holds SQLite's write lock for the duration (what a stuck migration or a
    backup tool does)."""
    db = settings.db_url.removeprefix("sqlite:///")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def stores(settings: Settings):
    tickets, conversations, audit = TicketService(settings), ConversationStore(settings), AuditLog(settings)
    tickets.sessions, conversations.sessions  # the store is up: open it (tables created) before the lock
    return tickets, conversations, audit


def turn(audit: AuditLog, conversation: Conversation, said: str, trace: str) -> dict:
    conversation.messages += [Message(role="user", content=said), Message(role="assistant", content="noted")]
    return audit.record_turn(conversation, GuardVerdict(text=said), Reply(text="noted", path="ticket", trace_id=trace))


def draft(conversation: Conversation, text: str = "I was charged twice") -> TicketDraft:
    return TicketDraft(kind="complaint", customer_ref=conversation.customer_id, conversation_id=conversation.id,
                       text=text, team="fees_billing")


def test_a_turn_while_the_store_is_write_locked_loses_nothing(settings):
    tickets, conversations, audit = stores(settings)
    conversation = Conversation(customer_id="cust-1")
    turn(audit, conversation, "hello", "tr_0")  # one record before the lock: the chain continues from it
    assert conversations.save(conversation) == "stored"

    with write_locked(settings):
        started = time.perf_counter()
        receipt = tickets.create(draft(conversation))
        record = turn(audit, conversation, "I was charged twice", "tr_1")
        saved = conversations.save(conversation)
        turn(audit, conversation, "and again", "tr_2")  # queued behind the first spooled record
        elapsed = time.perf_counter() - started
        # the caller has a reference for everything, and is told it was spooled
        assert receipt.status == "spooled" and receipt.ticket.id.startswith("CMP-")
        assert record["spooled"] is True and record["reference"]
        assert saved == "spooled"
        # the next turn goes on from the spooled copy, although the store cannot be written
        assert len(conversations.load(conversation.id, "cust-1").messages) == 4
        assert elapsed < 5, f"a locked store must fail fast, took {elapsed:.1f} s"

    # the lock is gone: one replay (what start-up and the schedule run) commits everything
    results = SpoolReplayer({"tickets": tickets.replay_spool, "conversations": conversations.replay_spool,
                             "audit": audit.replay_spool}, every_s=0).run_once()
    assert results == {"tickets": {"replayed": 1}, "conversations": {"replayed": 1}, "audit": {"replayed": 2}}
    fresh = TicketService(settings)  # another process
    assert fresh.get(receipt.ticket.id).text == "I was charged twice"
    assert len(ConversationStore(settings).load(conversation.id, "cust-1").messages) == 4
    report = AuditLog(settings).verify()
    assert report.ok and report.records == 3, report.problems
    assert [r["trace_id"] for r in AuditLog(settings).show(conversation.id)] == ["tr_0", "tr_1", "tr_2"]
    assert all(Spool(settings.data_dir / "spool" / name).count() == 0
               for name in ("tickets", "conversations", "audit"))


def test_records_written_while_spooled_ones_wait_keep_their_order(settings):
    _, _, audit = stores(settings)
    conversation = Conversation(customer_id="cust-2")
    with write_locked(settings):
        turn(audit, conversation, "first", "tr_1")
    # the store is back, but the spooled record has not been replayed: the next one goes behind it
    record = turn(audit, conversation, "second", "tr_2")
    assert record.get("spooled")  # appended by the replay the append triggers
    audit.replay_spool()
    assert [r["trace_id"] for r in audit.show(conversation.id)] == ["tr_1", "tr_2"]
    assert audit.verify().ok and audit.spool.count() == 0
    assert turn(audit, conversation, "third", "tr_3")["seq"] == 3  # straight to the store again


def test_a_replay_that_died_after_its_commit_does_not_append_twice(settings):
    _, _, audit = stores(settings)
    conversation = Conversation(customer_id="cust-3")
    with write_locked(settings):
        turn(audit, conversation, "once", "tr_1")
    [path] = audit.spool.pending()
    record = json.loads(path.read_text())
    # the crash: the record reached the chain but the spool file was not removed
    audit._append_retrying(record["conversation_id"], record["trace_id"], record["body"], record["created_at"])
    assert audit.replay_spool() == 1  # the file is consumed ...
    assert audit.verify().records == 1 and audit.spool.count() == 0  # ... and the record is there once


def test_a_conversation_replay_never_undoes_a_later_turn(settings):
    _, conversations, _ = stores(settings)
    conversation = Conversation(customer_id="cust-4", messages=[Message(role="user", content="one")])
    with write_locked(settings):
        assert conversations.save(conversation) == "spooled"
    later = conversations.load(conversation.id, "cust-4")  # the spooled copy
    later.messages.append(Message(role="user", content="two"))
    with conversations.sessions() as session:  # a later turn stored straight away
        session.add(ConversationRow(id=later.id, customer_id="cust-4", data=later.model_dump_json(),
                                    created_at=_now(), updated_at=_now()))
        session.commit()
    assert conversations.replay_spool() == []  # the spooled copy is older: dropped, not written
    assert [m.content for m in conversations.load(conversation.id, "cust-4").messages] == ["one", "two"]
    assert conversations.spool.pending() == []
    assert conversations.load(conversation.id, "someone-else") is None  # a spooled copy is still owned


def test_store_down_and_spool_unwritable_raises_store_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # neither the database nor the spool can be created under it
    settings = Settings(data_dir=blocker / "data", database_url=f"sqlite:///{blocker}/x.db", _env_file=None)
    conversation = Conversation(customer_id="cust-5")
    for write in (lambda: TicketService(settings).create(draft(conversation)),
                  lambda: ConversationStore(settings).save(conversation),
                  lambda: turn(AuditLog(settings), conversation, "hi", "tr_1")):
        with pytest.raises(StoreUnavailable) as caught:
            write()
        assert caught.value.reference is None and caught.value.retry_after_s > 0
    with pytest.raises(StoreUnavailable):  # a read that cannot be served from the spool either
        ConversationStore(settings).load(conversation.id, "cust-5")


def test_concurrent_replayers_while_new_records_are_spooled(settings, caplog):
    """Three replayers (threads: the claim is a rename, the audit lock a file lock, both per open file)
    race over 60 tickets, 30 conversations and 60 audit records while a writer keeps spooling more."""
    tickets, conversations, audit = stores(settings)
    with write_locked(settings):
        ids = [tickets.create(draft(Conversation(customer_id=f"c{i}"), f"complaint {i}")).ticket.id for i in range(20)]
        for i in range(10):
            c = Conversation(customer_id=f"c{i}")
            turn(audit, c, "hello", f"tr_{i}")
            assert conversations.save(c) == "spooled"
    assert tickets.spool.count() == 20
    errors: list[BaseException] = []

    def replay_all() -> None:
        try:
            for _ in range(5):
                tickets.replay_spool()
                conversations.replay_spool()
                audit.replay_spool()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    late = [Conversation(customer_id=f"w{i}") for i in range(20)]

    def write_more() -> None:  # spooled directly, as a worker whose store call just failed would
        for i in range(40):
            ticket = tickets.new_ticket(draft(Conversation(customer_id="w"), f"late {i}"))
            tickets.spool.write(ticket)
            ids.append(ticket.id)
            c = late[i % 20]
            conversations.spool.write(c, _now())
            audit._spool_record(c.id, f"late_{i}", _now().isoformat(), json.dumps({"i": i}), None)

    caplog.set_level(logging.ERROR)
    threads = [threading.Thread(target=replay_all) for _ in range(3)] + [threading.Thread(target=write_more)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    tickets.replay_spool(), conversations.replay_spool(), audit.replay_spool()  # what the next schedule does
    assert "unreadable" not in caplog.text
    stored = [t.id for t in TicketService(settings).list(TicketFilter(limit=1000))]
    assert sorted(stored) == sorted(ids) and len(set(stored)) == 60  # every ticket, once
    report = audit.verify()
    assert report.ok and report.records == 50, report.problems
    with conversations.sessions() as session:
        assert len(session.scalars(select(ConversationRow.id)).all()) == 30
    folders = [tickets.spool.folder, conversations.spool.folder, audit.spool.folder]
    assert [p.name for f in folders for p in f.iterdir() if p.name != ".lock"] == []  # no .bad, no claim left


def test_a_claim_left_by_a_dead_replayer_is_given_back(settings):
    tickets, _, _ = stores(settings)
    with write_locked(settings):
        ticket_id = tickets.create(draft(Conversation(customer_id="c"))).ticket.id
    [path] = tickets.spool.pending()
    dead = _dead_pid()
    os.rename(path, path.with_name(f"{path.name}.claim-{socket.gethostname()}-{dead}-abcd"))
    assert tickets.spool.pending() == []
    assert tickets.replay_spool() == [ticket_id] and tickets.spool.count() == 0


def test_heartbeat_write_check_fails_fast_when_the_store_is_locked(settings):
    engine = make_engine(settings)
    assert check_write(engine)["dialect"] == "sqlite"
    with write_locked(settings):
        started = time.perf_counter()
        with pytest.raises(Exception, match="locked"):
            check_write(engine, timeout_s=0.2)
        assert time.perf_counter() - started < 2
    assert check_write(engine)["write_ms"] >= 0


def _now():
    from assistant.types import utcnow

    return utcnow()


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
