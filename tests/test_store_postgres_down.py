"""A real PostgreSQL stopped mid-turn (pg_ctl stop), then started again: the ticket, the conversation
and the audit records of the turn are spooled with their references, a replay after the restart
commits them all, the spool is empty and the audit chain verifies. The cluster is this module's own
(started like tests/test_store_postgres.py does), so stopping it disturbs no other test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from assistant.config import Settings

pytestmark = pytest.mark.postgres

_spec = importlib.util.spec_from_file_location("pg_helpers", Path(__file__).with_name("test_store_postgres.py"))
pg_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pg_helpers)


class Cluster:
    def __init__(self):
        pytest.importorskip("psycopg", reason="psycopg not installed")
        self.bindir = pg_helpers._pg_bindir()
        if self.bindir is None:
            pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.base = Path(tempfile.mkdtemp(prefix="meadow-pgdown-"))
        if self.run_as:
            shutil.chown(self.base, "postgres", "postgres")
        self.data, self.port = self.base / "data", pg_helpers._free_port()
        self.pg("initdb", "-D", str(self.data), "-U", "meadow", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.url = f"postgresql+psycopg://meadow@127.0.0.1:{self.port}/postgres"

    def pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self.run_as, str(self.bindir / tool), *args], check=True, capture_output=True,
                       text=True, timeout=120)

    def start(self) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-t", "60", "-o",
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    c.start()
    try:
        yield c
    finally:
        subprocess.run([*c.run_as, str(c.bindir / "pg_ctl"), "-D", str(c.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(c.base, ignore_errors=True)


def test_postgres_stopped_mid_turn_loses_nothing(cluster, tmp_path):
    from assistant.store.audit import AuditLog
    from assistant.store.conversations import ConversationStore
    from assistant.store.spool import SpoolReplayer
    from assistant.store.tickets import TicketDraft, TicketService
    from assistant.types import Conversation, GuardVerdict, Message, Reply

    settings = Settings(data_dir=tmp_path / "data", database_url=cluster.url, _env_file=None)
    tickets, conversations, audit = TicketService(settings), ConversationStore(settings), AuditLog(settings)
    conversation = Conversation(customer_id="cust-pg")

    def turn(said: str, trace: str) -> dict:
        conversation.messages += [Message(role="user", content=said), Message(role="assistant", content="ok")]
        return audit.record_turn(conversation, GuardVerdict(text=said), Reply(text="ok", path="ticket", trace_id=trace))

    assert "seq" in turn("hello", "tr_0") and conversations.save(conversation) == "stored"
    cluster.stop()  # the database goes away between two turns
    try:
        receipt = tickets.create(TicketDraft(kind="complaint", customer_ref="cust-pg", conversation_id=conversation.id,
                                             text="charged twice", team="fees_billing"))
        record = turn("charged twice", "tr_1")
        saved = conversations.save(conversation)
        assert receipt.status == "spooled" and record["spooled"] and saved == "spooled"
        assert len(conversations.load(conversation.id, "cust-pg").messages) == 4  # from the spool
        failed = SpoolReplayer({"tickets": tickets.replay_spool, "audit": audit.replay_spool}, 0).run_once()
        assert all("error" in r for r in failed.values())  # still down: nothing lost, nothing set aside
        assert tickets.spool.count() == 1 and audit.spool.count() == 1
    finally:
        cluster.start()
    results = SpoolReplayer({"tickets": tickets.replay_spool, "conversations": conversations.replay_spool,
                             "audit": audit.replay_spool}, 0).run_once()
    assert results == {"tickets": {"replayed": 1}, "conversations": {"replayed": 1}, "audit": {"replayed": 1}}
    assert TicketService(settings).get(receipt.ticket.id).text == "charged twice"
    assert len(ConversationStore(settings).load(conversation.id, "cust-pg").messages) == 4
    report = AuditLog(settings).verify()
    assert report.ok and report.records == 2, report.problems
    assert tickets.spool.count() == conversations.spool.count() == audit.spool.count() == 0
