"""Hand-off through the real pipeline (guard -> router -> skill -> audit-less reply) with the real
router, ticket store (SQLite in a temp dir) and complaint classifier.

The answer skill is a stand-in that never finds an answer (path "no_answer"): the real one needs
the LLM and the indexed knowledge base, and what is tested here is what happens after it fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest

from assistant.config import Settings
from assistant.knowledge.embeddings import load_embedder
from assistant.guard.core import Guard
from assistant.pipeline import Assistant
from assistant.routing.router import Router
from assistant.skills.complaints import ComplaintSkill
from assistant.skills.handoff import HandoffSkill
from assistant.skills.smalltalk import SmalltalkSkill
from assistant.store.tickets import TicketFilter, TicketService
from assistant.types import Conversation, Delta, Reply, Turn


class NeverKnows:
    name = "answer"

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield Reply(text="I don't know the answer to that.", path="no_answer")


@pytest.fixture
def tickets(tmp_path) -> TicketService:
    return TicketService(Settings(data_dir=tmp_path / "data", _env_file=None))


@pytest.fixture
def assistant(tickets) -> Assistant:
    settings = tickets.settings
    smalltalk = SmalltalkSkill(settings)
    skills = {"answer": NeverKnows(), "complaint": ComplaintSkill(settings, tickets),
              "handoff": HandoffSkill(settings, tickets), "smalltalk": smalltalk, "out_of_scope": smalltalk}
    return Assistant(settings, guard=Guard(settings), router=Router(settings, load_embedder(settings)), skills=skills)


def test_two_failed_answers_hand_off_with_the_conversation(assistant, tickets):
    conversation = Conversation(customer_id="cust-42")
    first = assistant.reply(conversation, "What is the fee for changing my repayment date?")
    second = assistant.reply(conversation, "Can I move my repayment date to the 20th?")
    assert first.path == second.path == "no_answer"
    third = assistant.reply(conversation, "And can I pay half this month and half next month?")
    assert third.path == "handoff" and third.route.reason == "two_failures"
    ticket = tickets.get(third.ticket["id"])
    assert ticket.kind == "handoff" and ticket.team == "customer_care" and ticket.customer_ref == "cust-42"
    assert ticket.conversation_id == conversation.id
    assert "repayment date to the 20th" in " ".join(m["content"] for m in ticket.excerpt)
    # what happens next and when: the ticket id and the time a person answers (4 service hours)
    assert ticket.id in third.text and "reply here or call you by" in third.text
    assert ticket.created_at < ticket.ack_due <= ticket.created_at + timedelta(hours=4 + 11)
    assert assistant.reply(conversation, "thanks").path == "smalltalk"


def test_asking_for_a_person(assistant, tickets):
    reply = assistant.reply(Conversation(customer_id="c1"), "I'd like to talk to a person, please.")
    assert reply.path == "handoff" and reply.text.startswith("Of course")
    assert [t.id for t in tickets.list(TicketFilter(kind="handoff"))] == [reply.ticket["id"]]


def test_self_harm_is_urgent_and_caring(assistant, tickets):
    reply = assistant.reply(Conversation(customer_id="c2"), "I can't pay and I don't want to live anymore")
    assert reply.path == "handoff" and reply.route.urgency[0] == "self_harm"
    assert "120" in reply.text and "12356" in reply.text
    assert "refusal to pay" not in reply.text  # the self-harm guidance alone, not a list of them
    ticket = tickets.get(reply.ticket["id"])
    assert ticket.severity == "urgent" and ticket.team == "customer_care"
    assert ticket.ack_due - ticket.created_at <= timedelta(hours=1 + 11)  # one service hour


def test_an_urgent_complaint_is_also_a_complaint_ticket(assistant, tickets):
    reply = assistant.reply(Conversation(customer_id="c3"),
                            "Your collector threatened to come to my house and hurt me if I don't pay today")
    assert reply.path == "handoff" and "collector_threat" in reply.route.urgency
    ticket = tickets.get(reply.ticket["id"])
    assert (ticket.kind, ticket.severity, ticket.team) == ("complaint", "urgent", "collections_conduct")
    assert "collection_harassment" in ticket.escalations
    assert ticket.resolve_due - ticket.created_at >= timedelta(days=15)  # the regulatory clock runs too
    assert "registered as a complaint" in reply.text


def test_store_down_still_answers_and_keeps_the_request(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{blocker}/x.db", _env_file=None)
    tickets = TicketService(settings)
    skills = {"answer": NeverKnows(), "handoff": HandoffSkill(settings, tickets)}
    assistant = Assistant(settings, guard=Guard(settings), router=Router(settings, load_embedder(settings)),
                          skills=skills)
    reply = assistant.reply(Conversation(), "Can I speak to a human?")
    assert reply.path == "handoff" and reply.ticket["stored"] is False
    assert "cannot be reached" in reply.text and reply.ticket["id"] in reply.text
    assert len(tickets.spool.pending()) == 1
