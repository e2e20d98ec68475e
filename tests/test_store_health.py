"""The web side of the spool, without a model: attach_spool_replay replays at app start-up (before the
first request) and stops its schedule at shutdown; /healthz's store_write check fails while SQLite is
write-locked and the spool backlog is reported. Real stores on SQLite; Services is a stand-in holding
only what these two functions read (building the real one loads the LLM)."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.config import Settings
from assistant.store.audit import AuditLog
from assistant.store.conversations import ConversationStore
from assistant.store.tickets import TicketDraft, TicketService
from serve.health import _store_write, _timed, attach_spool_replay, spool_backlog


def _services(settings: Settings, tickets: TicketService) -> SimpleNamespace:
    return SimpleNamespace(settings=settings, conversations=ConversationStore(settings),
                           assistant=SimpleNamespace(audit=AuditLog(settings)), extras={},
                           features=SimpleNamespace(get=lambda name: tickets))


def test_spool_replayed_at_start_up_and_health_reports_a_locked_store(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", store_busy_timeout_s=0.3, store_replay_every_s=0.2,
                        _env_file=None)
    tickets = TicketService(settings)
    tickets.sessions
    services = _services(settings, tickets)
    locker = sqlite3.connect(settings.db_url.removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    receipt = tickets.create(TicketDraft(kind="complaint", customer_ref="c", text="charged twice", team="fees_billing"))
    check = _timed(lambda: _store_write(services))
    assert not check["ok"] and "locked" in check["error"] and check["ms"] < 3000
    assert spool_backlog(settings)["tickets"] == 1
    locker.execute("ROLLBACK")
    locker.close()

    app = FastAPI()
    attach_spool_replay(app, services)
    with TestClient(app):  # start-up: the replay has run before the first request
        assert TicketService(settings).get(receipt.ticket.id).status == "open"
        assert spool_backlog(settings) == {"tickets": 0, "conversations": 0, "audit": 0}
        assert services.extras["spool_replayer"].last["tickets"] == {"replayed": 1}
    assert services.extras["spool_replayer"]._thread is None  # the schedule stopped with the app
    assert _timed(lambda: _store_write(services))["ok"]
