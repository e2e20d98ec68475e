"""The live-agent inbox over the API: a hand-off waits in the queue (urgent first), an agent claims it
(no double claim), reads the conversation (redacted), answers; the customer reads the answer by
polling and in GET /api/conversations/{id}; a contact left when no agent is online is validated,
seen by agents only and masked in the audit; every agent message is audited.

Real parts: the SQLite ticket, conversation, inbox and audit stores in a temp dir, the real routers,
auth and role gate. No model: the routes here run no turn, so the app is assembled from its
routers with the services they use (create_app would load the LLM and the index)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from assistant.config import Settings
from assistant.guard import pii
from assistant.store.audit import AuditLog
from assistant.store.conversations import ConversationStore
from assistant.store.inbox import InboxError, merge_agent_messages, parse_contact
from assistant.store.tickets import TicketDraft, TicketService
from assistant.types import Conversation, Message
from serve import api, api_tickets, inbox, staff_tickets
from serve.auth import CustomerTokens, RoleGate, StaffAuth, key_digest
from serve.limits import ClientRateLimiter
from serve.metrics import WebMetrics

KEYS = {"agent": "key-agent-0123456789", "agent2": "key-agent2-0123456789", "complaints": "key-complaints-0123",
        "marketer": "key-marketer-0123456", "qa": "key-qa-0123456789012", "admin": "key-admin-0123456789"}
ROLES = {"agent": "agent", "agent2": "agent", "complaints": "complaints", "marketer": "marketer", "qa": "qa",
         "admin": "admin"}


@dataclass
class _Guard:
    allow: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        return pii.redact(text, self.allow)


@dataclass
class _Assistant:
    audit: Any
    guard: _Guard = field(default_factory=_Guard)
    skills: dict = field(default_factory=dict)


class _Features:
    def __init__(self, tickets: TicketService):
        self.tickets = tickets

    def get(self, name: str) -> Any:
        assert name == "tickets", name
        return self.tickets

    def available(self, name: str) -> bool:
        return name == "tickets"


@dataclass
class LightServices:
    """What the inbox, ticket and role routes use of serve.services.Services."""

    settings: Settings
    assistant: _Assistant
    conversations: ConversationStore
    staff: StaffAuth
    tokens: CustomerTokens
    limiter: ClientRateLimiter
    metrics: WebMetrics
    features: _Features
    extras: dict = field(default_factory=dict)

    def redact(self, text: str) -> str:
        return self.assistant.guard.redact(text)


def light_app(tmp_path, **overrides) -> tuple[FastAPI, LightServices]:
    settings = Settings(data_dir=tmp_path, staff_api_keys=[SecretStr(k) for k in KEYS.values()],
                        staff_roles={key_digest(KEYS[n]): r for n, r in ROLES.items()}, **overrides)
    tickets = TicketService(settings, redact=lambda t: pii.redact(t))
    s = LightServices(settings=settings, assistant=_Assistant(audit=AuditLog(settings)),
                      conversations=ConversationStore(settings),
                      staff=StaffAuth(settings.staff_api_keys, settings.staff_roles, settings.staff_default_roles),
                      tokens=CustomerTokens(b"test-secret"), limiter=ClientRateLimiter(1000), metrics=_metrics(),
                      features=_Features(tickets))
    app = FastAPI()
    app.state.services = s
    for module in (inbox, staff_tickets, api, api_tickets):
        app.include_router(module.router)
    app.add_middleware(RoleGate, staff=lambda: s.staff)
    return app, s


_METRICS: list[WebMetrics] = []


def _metrics() -> WebMetrics:
    if not _METRICS:  # prometheus registers each metric name once per process
        _METRICS.append(WebMetrics())
    return _METRICS[0]


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


def customer_with_handoff(s: LightServices, severity: str = "normal", kind: str = "handoff",
                          text: str = "I'd like to talk to a person, please. My e-mail is jo@example.com"):
    """A customer session with a conversation and a ticket on it, as the hand-off skill leaves them."""
    customer_id, token = s.tokens.issue()
    conversation = Conversation(customer_id=customer_id, messages=[
        Message(role="user", content=pii.redact(text)),
        Message(role="assistant", content="A member of the team will reply here."),
    ])
    s.conversations.save(conversation)
    receipt = s.features.get("tickets").create(TicketDraft(
        kind=kind, customer_ref=customer_id, conversation_id=conversation.id, text=text, team="customer_care",
        severity=severity, excerpt=[m.model_dump(include={"role", "content"}) for m in conversation.messages]))
    return token, conversation.id, receipt.ticket.id


@pytest.fixture
def app_and_services(tmp_path):
    return light_app(tmp_path)


@pytest.fixture
def client(app_and_services):
    with TestClient(app_and_services[0]) as c:
        yield c


def test_queue_claim_reply_round_trip(client, app_and_services):
    _, s = app_and_services
    token, conversation_id, ticket_id = customer_with_handoff(s)
    customer = {"Authorization": f"Bearer {token}"}

    queue = client.get("/api/inbox", headers=bearer("agent")).json()
    assert [t["id"] for t in queue] == [ticket_id] and queue[0]["claimed_by"] is None

    seen = client.get(f"/api/inbox/{ticket_id}", headers=bearer("agent")).json()
    assert "jo@example.com" not in json.dumps(seen)  # PII stays redacted for staff too
    assert seen["messages"][0]["role"] == "user"

    # the customer polls: nothing yet, and an agent is online (the queue call was a heartbeat)
    first = client.get(f"/api/conversations/{conversation_id}/messages", headers=customer).json()
    assert first["messages"] == [] and first["agents_online"] is True

    assert client.post(f"/api/inbox/{ticket_id}/reply", json={"text": "hi"}, headers=bearer("agent")).status_code == 422
    claimed = client.post(f"/api/inbox/{ticket_id}/claim", headers=bearer("agent"))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"].startswith("staff:")
    assert client.post(f"/api/inbox/{ticket_id}/claim", headers=bearer("agent")).status_code == 200  # own claim
    other = client.post(f"/api/inbox/{ticket_id}/claim", headers=bearer("agent2"))
    assert other.status_code == 409 and "claimed by" in other.json()["detail"]
    assert client.post(f"/api/inbox/{ticket_id}/reply", json={"text": "me too"},
                       headers=bearer("agent2")).status_code == 409
    assert s.features.get("tickets").get(ticket_id).status == "acknowledged"  # claiming acknowledges

    answer = "Hello, this is Sam from Meadow. I can help with your repayment date."
    sent = client.post(f"/api/inbox/{ticket_id}/reply", json={"text": answer}, headers=bearer("agent"))
    assert sent.status_code == 201
    seq = sent.json()["seq"]

    polled = client.get(f"/api/conversations/{conversation_id}/messages", params={"after": 0},
                        headers=customer).json()
    assert [m["content"] for m in polled["messages"]] == [answer]
    assert polled["messages"][0]["role"] == "agent" and "staff:" not in json.dumps(polled)  # no agent id
    assert polled["last_seq"] == seq
    assert client.get(f"/api/conversations/{conversation_id}/messages", params={"after": seq},
                      headers=customer).json()["messages"] == []

    # the agent's view merges the reply after the messages it answered
    roles = [m["role"] for m in client.get(f"/api/inbox/{ticket_id}", headers=bearer("agent")).json()["messages"]]
    assert roles == ["user", "assistant", "agent"]

    # audited, redacted, and the chain still verifies
    records = [r for r in s.assistant.audit.show(conversation_id) if r.get("kind") == "agent_message"]
    assert len(records) == 1 and records[0]["reply"] == answer and records[0]["ticket"] == ticket_id
    assert s.assistant.audit.verify().ok


def test_conversation_endpoint_includes_agent_messages(client, app_and_services):
    _, s = app_and_services
    token, conversation_id, ticket_id = customer_with_handoff(s)
    client.post(f"/api/inbox/{ticket_id}/claim", headers=bearer("agent"))
    client.post(f"/api/inbox/{ticket_id}/reply", json={"text": "We are on it."}, headers=bearer("agent"))
    body = client.get(f"/api/conversations/{conversation_id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "agent"]
    assert body["messages"][-1]["content"] == "We are on it."


def test_customers_see_only_their_own_conversation(client, app_and_services):
    _, s = app_and_services
    _, conversation_id, _ = customer_with_handoff(s)
    _, stranger = s.tokens.issue()
    headers = {"Authorization": f"Bearer {stranger}"}
    assert client.get(f"/api/conversations/{conversation_id}/messages", headers=headers).status_code == 404
    assert client.post(f"/api/conversations/{conversation_id}/contact", json={"contact": "jo@example.com"},
                       headers=headers).status_code == 404
    assert client.get(f"/api/conversations/{conversation_id}/messages").status_code == 404  # anonymous


def test_urgent_tickets_first_newest_first(client, app_and_services):
    _, s = app_and_services
    _, _, older_handoff = customer_with_handoff(s)
    _, _, urgent_old = customer_with_handoff(s, severity="urgent", kind="complaint", text="Fraud on my account")
    _, _, urgent_new = customer_with_handoff(s, severity="urgent", kind="complaint", text="Someone took my money")
    customer_with_handoff(s, severity="normal", kind="complaint", text="Fee too high")  # not in the inbox
    ids = [t["id"] for t in client.get("/api/inbox", headers=bearer("agent")).json()]
    assert ids == [urgent_new, urgent_old, older_handoff]


def test_contact_when_no_agent_is_online(client, app_and_services, caplog):
    _, s = app_and_services
    token, conversation_id, ticket_id = customer_with_handoff(s)
    customer = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/conversations/{conversation_id}/messages",
                      headers=customer).json()["agents_online"] is False
    bad = client.post(f"/api/conversations/{conversation_id}/contact", json={"contact": "call me maybe"},
                      headers=customer)
    assert bad.status_code == 422
    with caplog.at_level("INFO"):
        ok = client.post(f"/api/conversations/{conversation_id}/contact", json={"contact": "+44 7700 900123"},
                         headers=customer)
    assert ok.status_code == 201 and ok.json()["kind"] == "phone"
    assert "7700900123" not in caplog.text and "7700 900123" not in caplog.text
    assert client.get(f"/api/conversations/{conversation_id}/messages", headers=customer).json()["contact_left"]
    seen = client.get(f"/api/inbox/{ticket_id}", headers=bearer("agent")).json()
    assert seen["contact"] == {"kind": "phone", "value": "+447700900123"}  # agents see it
    audit = json.dumps(s.assistant.audit.show(conversation_id))
    assert "contact_left" in audit and "7700900123" not in audit  # masked in the audit


def test_parse_contact_and_merge():
    assert parse_contact(" Jo.Smith@Example.co.uk ").value == "jo.smith@example.co.uk"
    assert parse_contact("(020) 7946-0958").kind == "phone"
    for junk in ("", "12345", "jo@", "a@b", "x" * 30, "jo..x@example.com", "+1 800 CALL NOW"):
        with pytest.raises(InboxError):
            parse_contact(junk)
    assert merge_agent_messages([{"role": "user"}], []) == [{"role": "user"}]
