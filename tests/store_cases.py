"""Store tests run against every backend: tests/test_tickets_store.py (SQLite in a temp dir) and
tests/test_store_postgres.py (a real PostgreSQL server started for the session) import these
functions and give them a `store_settings` fixture pointing at their backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from assistant.store.conversations import ConversationOwnerError, ConversationStore
from assistant.store.tickets import TicketDraft, TicketError, TicketFilter, TicketService
from assistant.types import Conversation, Message

T0 = datetime(2026, 9, 15, 2, 0, tzinfo=timezone.utc)  # a Tuesday, 10:00 in Shanghai


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def draft(**overrides) -> TicketDraft:
    values = dict(kind="complaint", customer_ref="cust-1", conversation_id="conv_1",
                  text="The collector called my mother about my debt", team="collections_conduct",
                  product="collections", issue="collection_conduct", severity="high",
                  excerpt=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}])
    return TicketDraft(**(values | overrides))


def test_ticket_persisted_with_deadlines_and_trail(store_settings):
    clock = Clock()
    service = TicketService(store_settings, clock=clock, redact=lambda t: t.replace("mother", "[RELATIVE]"))
    receipt = service.create(draft())
    assert receipt.stored and receipt.ticket.id.startswith("CMP-260915-")
    fresh = TicketService(store_settings)  # another process: nothing cached
    ticket = fresh.get(receipt.ticket.id)
    assert ticket.text == "The collector called my [RELATIVE] about my debt"  # stored redacted
    assert ticket.ack_due == T0 + timedelta(hours=24)
    # 15 calendar days, to the end of the day in Shanghai: 2026-09-30 23:59:59 +08:00
    assert ticket.resolve_due == datetime(2026, 9, 30, 15, 59, 59, tzinfo=timezone.utc)
    assert ticket.status == "open" and [e.action for e in ticket.events] == ["created"]
    assert ticket.excerpt[0] == {"role": "user", "content": "hello"}
    assert not fresh.spool.pending()


def test_status_changes_are_audited(store_settings):
    clock = Clock()
    service = TicketService(store_settings, clock=clock)
    ticket_id = service.create(draft()).ticket.id
    clock.now = T0 + timedelta(hours=3)
    service.update(ticket_id, status="acknowledged", note="called back", actor="agent-7")
    clock.now = T0 + timedelta(days=2)
    service.update(ticket_id, status="in_progress", actor="agent-7")
    ticket = service.update(ticket_id, status="resolved", note="fee refunded", actor="agent-9")
    moves = [(e.actor, e.from_status, e.to_status) for e in ticket.events if e.action == "status"]
    assert moves == [("agent-7", "open", "acknowledged"), ("agent-7", "acknowledged", "in_progress"),
                     ("agent-9", "in_progress", "resolved")]
    assert ticket.acknowledged_at == T0 + timedelta(hours=3) and ticket.resolved_at == T0 + timedelta(days=2)
    with pytest.raises(TicketError, match="can move to"):
        service.update(ticket_id, status="open")
    with pytest.raises(TicketError, match="unknown status"):
        service.update(ticket_id, status="done")
    with pytest.raises(TicketError, match="no ticket"):
        service.update("CMP-000000-NOPE00", status="closed")


def test_extension_needs_a_notice_and_moves_the_deadline(store_settings):
    service = TicketService(store_settings, clock=Clock())
    ticket_id = service.create(draft()).ticket.id
    with pytest.raises(TicketError, match="notice"):
        service.update(ticket_id, extend=True)
    ticket = service.update(ticket_id, extend=True, note="We need the merchant's records.")
    assert ticket.extended and ticket.resolve_due == datetime(2026, 10, 15, 15, 59, 59, tzinfo=timezone.utc)
    assert ticket.events[-1].action == "extended" and "merchant" in ticket.events[-1].note
    with pytest.raises(TicketError, match="already extended"):
        service.update(ticket_id, extend=True, note="again")


def test_list_filters_and_breach_report(store_settings):
    clock = Clock()
    service = TicketService(store_settings, clock=clock)
    late = service.create(draft()).ticket.id
    clock.now = T0 + timedelta(days=10)
    other = service.create(draft(customer_ref="cust-2", team="fees_billing", severity="normal",
                                 issue="fees_interest")).ticket.id
    service.update(other, status="acknowledged")
    assert [t.id for t in service.list(TicketFilter(team="fees_billing"))] == [other]
    assert [t.id for t in service.list(TicketFilter(customer_ref="cust-1"))] == [late]
    assert {t.id for t in service.list(TicketFilter(open_only=True))} == {late, other}
    assert [t.id for t in service.list(TicketFilter(status="acknowledged"))] == [other]
    report = {(b.ticket.id, b.deadline): b.state for b in service.breaches(within_hours=24)}
    assert report[(late, "acknowledge")] == "breached"  # 10 days without an acknowledgement
    assert (other, "acknowledge") not in report
    clock.now = T0 + timedelta(days=15, hours=8)  # 2026-09-30 18:00 in Shanghai: the late one is due tonight
    report = {(b.ticket.id, b.deadline): b.state for b in service.breaches(within_hours=24)}
    assert report[(late, "resolve")] == "near" and report[(late, "extension_notice")] == "breached"
    assert service.recent_complaints("cust-1", 90)[0].id == late


def test_conversations_are_scoped_to_their_customer(store_settings):
    store = ConversationStore(store_settings)
    mine = Conversation(customer_id="alice", messages=[Message(role="user", content="hi")], state={"x": 1})
    store.save(mine)
    assert store.load(mine.id, "alice") == mine
    assert store.load(mine.id, "mallory") is None  # someone else's id: as if it did not exist
    assert store.load("conv_unknown", "alice") is None
    mine.messages.append(Message(role="assistant", content="hello", meta={"path": "smalltalk"}))
    store.save(mine)
    assert store.load(mine.id, "alice").messages[-1].meta == {"path": "smalltalk"}
    with pytest.raises(ConversationOwnerError):
        store.save(mine.model_copy(update={"customer_id": "mallory"}))
    assert store.list_ids("alice") == [mine.id] and store.list_ids("mallory") == []
    assert not store.delete(mine.id, "mallory") and store.delete(mine.id, "alice")
