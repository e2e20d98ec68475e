"""The chat page's side of the inbox without a browser: the poll appends the team's answers once each
and shows the contact row only while a hand-off waits with no agent online; the contact form validates.
The staff Inbox tab's helpers render the claim, the contact and the messages. Real stores in a temp dir."""

from __future__ import annotations

import asyncio

import pytest

from serve import inbox
from serve.staff_inbox import conversation_html, queue_rows
from serve.ui import leave_contact, poll_agent_messages
from test_inbox import customer_with_handoff, light_app


@pytest.fixture
def s(tmp_path):
    return light_app(tmp_path)[1]


def run(coro):
    return asyncio.run(coro)


def page_state(s, token: str, conversation_id: str, ticket_id: str) -> dict:
    return {"customer_id": s.tokens.verify(token), "conversation_id": conversation_id, "traces": {},
            "ticket": ticket_id, "handoff": True}


def test_poll_appends_answers_once_and_offers_a_contact_while_nobody_is_online(s):
    token, conversation_id, ticket_id = customer_with_handoff(s)
    state = page_state(s, token, conversation_id, ticket_id)
    history = [{"role": "user", "content": "a person please"}, {"role": "assistant", "content": "ok"}]

    chat, new_state, row = run(poll_agent_messages(s, history, state))
    assert row["visible"] is True  # nobody online, no contact yet: ask for one

    inbox.claim(s, ticket_id, "staff:sam")  # not a heartbeat: the agent's page has not polled
    inbox.reply(s, ticket_id, "staff:sam", "Hello from Sam")
    chat, new_state, row = run(poll_agent_messages(s, history, state))
    assert chat[-1] == {"role": "assistant", "content": "**Meadow team:** Hello from Sam"}
    assert new_state["agent_seq"] >= 1
    again, _, _ = run(poll_agent_messages(s, chat, new_state))
    assert not isinstance(again, list)  # nothing new: the chat is left as it is (gr.skip)

    inbox.queue(s, "staff:sam")  # the agent's inbox refreshes: online now
    _, _, row = run(poll_agent_messages(s, chat, new_state))
    assert row["visible"] is False


def test_no_poll_before_a_ticket(s):
    token, conversation_id, ticket_id = customer_with_handoff(s)
    state = {**page_state(s, token, conversation_id, ticket_id), "ticket": None}
    assert all(not isinstance(part, (list, dict)) or "__type__" in part
               for part in run(poll_agent_messages(s, [], state)))


def test_contact_form(s):
    token, conversation_id, ticket_id = customer_with_handoff(s)
    state = page_state(s, token, conversation_id, ticket_id)
    _, _, note = run(leave_contact(s, "not a contact", state))
    assert "phone number or an e-mail" in note["value"]
    box, row, note = run(leave_contact(s, "jo@example.com", state))
    assert box == "" and row["visible"] is False and "by e-mail" in note["value"]
    assert "jo@example.com" in conversation_html(s, ticket_id)  # agents see it
    _, _, polled = run(poll_agent_messages(s, [], state))
    assert polled["visible"] is False  # contact left: the row stays hidden


def test_staff_inbox_helpers(s):
    _, _, ticket_id = customer_with_handoff(s)
    rows = queue_rows(s, "staff:kim")
    assert rows[0][0] == ticket_id and rows[0][5] == ""
    inbox.claim(s, ticket_id, "staff:kim")
    assert "claimed by staff:kim" in conversation_html(s, ticket_id)
    assert "not in the inbox" in conversation_html(s, "XX-000000-NOPE00") or "no ticket" in conversation_html(
        s, "XX-000000-NOPE00")
