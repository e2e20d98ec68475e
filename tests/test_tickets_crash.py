"""A ticket is never lost: a process killed while it writes one, or a store that is down, leaves
the ticket in the spool, and the next process commits it under the same id.

The child processes are real `TicketService`s on a real SQLite file; the first one dies inside
the database commit (os._exit, the same as a kill -9 at that instant), the second is killed with
SIGKILL at random moments while it writes tickets as fast as it can."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import text

from assistant.config import Settings
from assistant.store.tickets import TicketDraft, TicketFilter, TicketService

CHILD = textwrap.dedent("""
    import os, sys
    from sqlalchemy.orm import Session
    from assistant.config import Settings
    from assistant.store.tickets import TicketDraft, TicketService

    settings = Settings(data_dir=sys.argv[1], _env_file=None)
    service = TicketService(settings)
    service.sessions  # the store is up: open it before the crash point
    draft = dict(kind="complaint", customer_ref="cust-9", text="charged twice", team="fees_billing")
    if sys.argv[2] == "die-in-commit":
        Session.commit = lambda self: os._exit(9)
        service.create(TicketDraft(**draft))
        print("not reached", flush=True)
    else:
        for i in range(100000):
            receipt = service.create(TicketDraft(**(draft | {"text": f"complaint number {i}"})))
            print(receipt.ticket.id, receipt.stored, flush=True)
""")


def _child(data_dir: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, _env_file=None)


def test_killed_inside_the_commit_then_replayed_on_restart(tmp_path):
    data = tmp_path / "data"
    child = _child(data, "die-in-commit")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 9, err
    assert "not reached" not in out
    restarted = TicketService(_settings(data))
    spooled = restarted.spool.pending()
    assert len(spooled) == 1  # the ticket survived the crash on disk
    ticket_id = spooled[0].stem
    assert restarted.list() == []  # and never reached the database
    assert restarted.replay_spool() == [ticket_id]
    ticket = restarted.get(ticket_id)
    assert ticket.text == "charged twice" and ticket.ack_due and ticket.events[0].action == "created"
    assert restarted.replay_spool() == [] and not restarted.spool.pending()


def test_sigkill_at_random_moments_loses_no_acknowledged_ticket(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(7)
    acknowledged: list[str] = []
    for _ in range(3):
        child = _child(data, "loop")
        first = child.stdout.readline()  # it is writing tickets now
        time.sleep(rng.uniform(0.05, 0.5))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
        acknowledged += [line.split()[0] for line in (first + out).splitlines() if line.endswith("True")]
        service = TicketService(_settings(data))
        service.replay_spool()  # what every restart does
        stored = {t.id for t in service.list(TicketFilter(limit=10_000))}
        assert set(acknowledged) <= stored
        assert not service.spool.pending()
    assert len(acknowledged) > 0
    with service.sessions() as session:
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        events = session.execute(text("select count(*) from ticket_events")).scalar()
    assert events == len(stored)  # one "created" event per ticket: no half-written ticket


def test_store_down_keeps_the_ticket_in_the_spool_until_it_is_back(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    down = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{blocker}/assistant.db", _env_file=None)
    receipt = TicketService(down).create(TicketDraft(kind="handoff", customer_ref="c", text="help", team="customer_care"))
    assert not receipt.stored
    assert (tmp_path / "data" / "spool" / "tickets" / f"{receipt.ticket.id}.json").is_file()
    up = TicketService(_settings(tmp_path / "data"))
    second = up.create(TicketDraft(kind="handoff", customer_ref="c", text="still there?", team="customer_care"))
    assert second.stored
    assert up.get(receipt.ticket.id).created_at == receipt.ticket.created_at  # replayed after a good commit
    assert not up.spool.pending()


def test_an_unreadable_spool_file_is_set_aside_not_fatal(tmp_path):
    service = TicketService(_settings(tmp_path / "data"))
    service.spool.folder.mkdir(parents=True)
    (service.spool.folder / "CMP-000000-BROKEN.json").write_text('{"id": "CMP-000000-BROKEN", "kind"')
    good = service.new_ticket(TicketDraft(kind="complaint", customer_ref="c", text="late fee", team="fees_billing"))
    service.spool.write(good)
    assert service.replay_spool() == [good.id]
    assert (service.spool.folder / "CMP-000000-BROKEN.bad").is_file() and not service.spool.pending()
