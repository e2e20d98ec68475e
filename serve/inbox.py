"""The live-agent inbox: hand-offs and urgent tickets wait in a queue; an agent claims one, reads the
conversation (redacted, as the store keeps it) and answers in it. The customer's page and the widget
poll `GET /api/conversations/{id}/messages?after=<seq>` for the answers; with no agent online the
customer can leave a phone number or an e-mail address, which only agents see.

Every agent message and every contact left is written to the audit log (contacts masked)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from assistant.store.inbox import (AgentMessage, InboxError, InboxStore, mask_contact, merge_agent_messages,
                                   parse_contact)
from assistant.types import new_id
from serve.auth import Caller
from serve.deps import caller, customer_caller, services, staff_caller
from serve.services import Services

log = logging.getLogger("serve.inbox")
router = APIRouter(tags=["inbox"])
TEAM_NAME = "Meadow team"  # what the customer sees as the author of an agent's message
ENDED = ("resolved", "closed")


class ReplyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ContactRequest(BaseModel):
    contact: str = Field(min_length=3, max_length=254, description="a phone number or an e-mail address")


def inbox_store(s: Services) -> InboxStore:
    """One InboxStore per worker, sharing the ticket store's engine when it has one."""
    store = s.extras.get("inbox")
    if store is None:
        store = s.extras["inbox"] = InboxStore(s.settings)
    return store


# --- the agent's side -------------------------------------------------------------------------


def in_inbox(ticket: Any) -> bool:
    return ticket.kind == "handoff" or ticket.severity == "urgent"


def queue(s: Services, agent: str | None = None) -> list[dict[str, Any]]:
    """Open hand-offs and urgent tickets: urgent first, newest first within each."""
    from assistant.store.tickets import TicketFilter

    store = inbox_store(s)
    if agent:
        store.heartbeat(agent)
    found = [t for t in s.features.get("tickets").list(TicketFilter(open_only=True, limit=1000)) if in_inbox(t)]
    found.sort(key=lambda t: (t.severity != "urgent", -t.created_at.timestamp()))
    claims = store.claims([t.id for t in found])
    return [{"id": t.id, "kind": t.kind, "severity": t.severity, "status": t.status, "team": t.team,
             "created_at": t.created_at.isoformat(), "respond_by": t.ack_due.isoformat(),
             "conversation_id": t.conversation_id, "claimed_by": claims.get(t.id), "text": t.text[:200]}
            for t in found]


def _ticket(s: Services, ticket_id: str) -> Any:
    from assistant.store.tickets import TicketError

    if len(ticket_id) > 40:
        raise LookupError("ticket not found")
    try:
        ticket = s.features.get("tickets").get(ticket_id)
    except TicketError:
        raise LookupError(f"no ticket {ticket_id}") from None
    if not in_inbox(ticket):
        raise LookupError(f"ticket {ticket_id} is not in the inbox (neither a hand-off nor urgent)")
    return ticket


def detail(s: Services, ticket_id: str) -> dict[str, Any]:
    """The ticket, its conversation with the agents' messages merged in, the claim and any contact."""
    ticket = _ticket(s, ticket_id)
    store = inbox_store(s)
    messages = conversation_messages(s, ticket.customer_ref, ticket.conversation_id) if ticket.conversation_id \
        else [dict(m) for m in ticket.excerpt]
    contact = store.contact(ticket.conversation_id) if ticket.conversation_id else None
    return {"ticket": {"id": ticket.id, "kind": ticket.kind, "severity": ticket.severity, "status": ticket.status,
                       "text": ticket.text, "created_at": ticket.created_at.isoformat(),
                       "respond_by": ticket.ack_due.isoformat(), "conversation_id": ticket.conversation_id},
            "claimed_by": store.claimed_by(ticket.id), "messages": messages,
            "contact": {"kind": contact.kind, "value": contact.value} if contact else None}


def conversation_messages(s: Services, customer_id: str, conversation_id: str) -> list[dict[str, Any]]:
    conversation = s.conversations.load(conversation_id, customer_id)
    stored = [{"role": m.role, "content": m.content} for m in (conversation.messages if conversation else [])
              if m.role != "system"]
    return merge_agent_messages(stored, inbox_store(s).messages(conversation_id))


def claim(s: Services, ticket_id: str, agent: str) -> dict[str, Any]:
    """Claim a ticket (InboxError, 409, when another agent has it); an open hand-off is acknowledged."""
    from assistant.store.tickets import TicketError

    ticket = _ticket(s, ticket_id)
    if ticket.status in ENDED:
        raise InboxError(f"ticket {ticket.id} is {ticket.status}")
    inbox_store(s).claim(ticket.id, agent)
    if ticket.status == "open" and ticket.kind == "handoff":  # a complaint's acknowledgement is the officer's
        try:
            s.features.get("tickets").update(ticket.id, status="acknowledged", note="claimed in the inbox", actor=agent)
        except TicketError:  # acknowledged meanwhile by someone else: the claim stands
            pass
    return detail(s, ticket.id)


def reply(s: Services, ticket_id: str, agent: str, text: str) -> dict[str, Any]:
    """The claimant's message into the customer's conversation, audited (redacted)."""
    ticket = _ticket(s, ticket_id)
    store = inbox_store(s)
    holder = store.claimed_by(ticket.id)
    if holder != agent:
        raise InboxError(f"claim ticket {ticket.id} first" if holder is None else
                         f"ticket {ticket.id} is claimed by {holder}")
    if not ticket.conversation_id:
        raise InboxError(f"ticket {ticket.id} has no conversation to answer in")
    text = text.strip()
    if not text:
        raise InboxError("write a message first")
    conversation = s.conversations.load(ticket.conversation_id, ticket.customer_ref)
    if conversation is None:
        raise InboxError(f"the conversation of ticket {ticket.id} is no longer kept")
    message = store.add_message(ticket.conversation_id, ticket.id, agent, text, len(conversation.messages))
    audit_agent_message(s, message, ticket.customer_ref)
    return {"seq": message.seq, "conversation_id": message.conversation_id, "at": message.at.isoformat()}


def audit_agent_message(s: Services, message: AgentMessage, customer_id: str) -> None:
    body = {"kind": "agent_message", "customer_id": customer_id, "ticket": message.ticket_id, "agent": message.agent,
            "reply": s.redact(message.content), "seq": message.seq}
    _audit(s, message.conversation_id, body)


def _audit(s: Services, conversation_id: str, body: dict[str, Any]) -> None:
    audit = s.assistant.audit
    if audit is None:
        return
    append = getattr(audit, "append", None)
    if append is None:
        log.warning("the audit log takes no free records; %s not audited", body.get("kind"))
        return
    append(conversation_id, new_id("agt_"), body)


# --- the customer's side ----------------------------------------------------------------------


def customer_messages(s: Services, customer_id: str, conversation_id: str, after: int = 0) -> dict[str, Any]:
    """Agents' messages after `after` in the customer's own conversation, and whether anyone is online."""
    if s.conversations.load(conversation_id, customer_id) is None:
        raise LookupError("conversation not found")
    store = inbox_store(s)
    new = store.messages(conversation_id, after=after)
    return {"messages": [customer_view(m) for m in new],
            "last_seq": new[-1].seq if new else after,
            "agents_online": store.agents_online(s.settings.inbox_presence_s) > 0,
            "contact_left": store.contact(conversation_id) is not None}


def customer_view(message: AgentMessage) -> dict[str, Any]:
    """No agent id for the customer: the team's name."""
    return {"role": "agent", "name": TEAM_NAME, "content": message.content, "seq": message.seq,
            "at": message.at.isoformat()}


def with_agent_messages(s: Services, conversation_id: str, messages: list[Any]) -> list[Any]:
    """GET /api/conversations/{id}: the stored messages (MessageOut) with the team's answers in place."""
    from serve.schemas import MessageOut

    agent = inbox_store(s).messages(conversation_id)
    if not agent:
        return messages
    merged = merge_agent_messages([{"out": m} for m in messages], agent)
    return [m["out"] if "out" in m else MessageOut(role="agent", content=m["content"]) for m in merged]


def leave_contact(s: Services, customer_id: str, conversation_id: str, text: str) -> dict[str, Any]:
    if s.conversations.load(conversation_id, customer_id) is None:
        raise LookupError("conversation not found")
    contact = parse_contact(text)
    inbox_store(s).save_contact(conversation_id, customer_id, contact)
    masked = mask_contact(contact)
    log.info("contact left", extra={"conversation_id": conversation_id, "contact": masked})
    _audit(s, conversation_id, {"kind": "contact_left", "customer_id": customer_id, "contact": masked})
    return {"kind": contact.kind, "saved": True}


# --- routes -----------------------------------------------------------------------------------


def _agent(who: Caller) -> str:
    return who.client  # "staff:<key hash prefix>": names the key, never reveals it


def _call(fn, *args):
    try:
        return fn(*args)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except InboxError as exc:
        status = 409 if "claimed by" in str(exc) else 422
        raise HTTPException(status, str(exc)) from None


@router.get("/api/inbox")
async def inbox_queue(who: Caller = Depends(staff_caller), s: Services = Depends(services)) -> list[dict[str, Any]]:
    """Open hand-offs and urgent tickets, urgent first then newest (agents). Calling it marks the agent online."""
    return await run_in_threadpool(_call, queue, s, _agent(who))


@router.get("/api/inbox/{ticket_id}")
async def inbox_ticket(ticket_id: str, who: Caller = Depends(staff_caller),
                       s: Services = Depends(services)) -> dict[str, Any]:
    """One inbox ticket with its conversation (redacted), the agents' messages, the claim and any contact."""
    return await run_in_threadpool(_call, detail, s, ticket_id)


@router.post("/api/inbox/{ticket_id}/claim")
async def inbox_claim(ticket_id: str, who: Caller = Depends(staff_caller),
                      s: Services = Depends(services)) -> dict[str, Any]:
    """Claim a ticket: 409 when another agent has it."""
    return await run_in_threadpool(_call, claim, s, ticket_id, _agent(who))


@router.post("/api/inbox/{ticket_id}/reply", status_code=201)
async def inbox_reply(ticket_id: str, body: ReplyRequest, who: Caller = Depends(staff_caller),
                      s: Services = Depends(services)) -> dict[str, Any]:
    """Write into the customer's conversation (the claimant only)."""
    return await run_in_threadpool(_call, reply, s, ticket_id, _agent(who), body.text)


POLLS_PER_MINUTE = 60  # a bucket of its own: polling every few seconds must not use up the chat's limit


@router.get("/api/conversations/{conversation_id}/messages")
async def new_agent_messages(conversation_id: str, after: int = Query(0, ge=0), who: Caller = Depends(caller),
                             s: Services = Depends(services)) -> dict[str, Any]:
    """The team's messages in the caller's own conversation after `after` (a seq), for polling."""
    s.limiter.hit("poll:" + who.client, POLLS_PER_MINUTE)
    if not who.customer_id:
        raise HTTPException(404, "conversation not found")
    return await run_in_threadpool(_call, customer_messages, s, who.customer_id, conversation_id, after)


@router.post("/api/conversations/{conversation_id}/contact", status_code=201)
async def contact(conversation_id: str, body: ContactRequest, who: Caller = Depends(customer_caller),
                  s: Services = Depends(services)) -> dict[str, Any]:
    """Leave a phone number or an e-mail address for the team (seen by agents only)."""
    if not who.customer_id:
        raise HTTPException(404, "conversation not found")
    return await run_in_threadpool(_call, leave_contact, s, who.customer_id, conversation_id, body.contact)
