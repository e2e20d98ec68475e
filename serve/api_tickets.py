"""Complaints and tickets: a customer files a complaint and sees their own tickets (only theirs);
staff see the queue and change a ticket's status."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from assistant.guard.core import InputError
from assistant.types import Conversation, Message, Reply, RouteDecision, Turn
from serve.api import ERRORS, customer_id_of
from serve.auth import Caller
from serve.deps import customer_caller, services, staff_caller
from serve.schemas import ID, Strict, TicketPatch
from serve.services import Services

router = APIRouter(tags=["complaints"])


class ComplaintRequest(Strict):
    text: str = Field(min_length=1, max_length=8000, description="the complaint, in the customer's words")
    conversation_id: str | None = Field(None, pattern=ID, description="attach it to this conversation of yours")


def customer_view(ticket: Any) -> dict[str, Any]:
    """What a customer may see of their ticket: no internal notes; `deadline` is the resolution date."""
    return {**ticket.summary(), "deadline": ticket.resolve_due.isoformat()}


@router.post("/api/complaints", status_code=201, responses=ERRORS)
async def file_complaint(body: ComplaintRequest, who: Caller = Depends(customer_caller),
                         s: Services = Depends(services)) -> JSONResponse:
    """File a complaint: classified (product, issue, team, severity), stored durably with its
    regulatory deadlines; the answer is the ticket. 422 when it needs more detail."""
    owner = customer_id_of(who) or "anonymous"
    if owner == "anonymous" and body.conversation_id:
        raise HTTPException(404, "conversation not found")
    reply = await run_in_threadpool(_file, s, owner, body)
    if not reply.ticket:
        raise HTTPException(422, reply.text)
    return JSONResponse({**reply.ticket, "deadline": reply.ticket.get("resolve_due"), "message": reply.text,
                         "trace_id": reply.trace_id}, status_code=201)


def _file(s: Services, owner: str, body: ComplaintRequest) -> Reply:
    """The complaint skill on this message, through the guard, kept in the conversation and audited
    like a chat turn (the router is skipped: the caller said it is a complaint)."""
    skill = s.features.get("complaints")
    conversation = s.chat.conversation(owner, body.conversation_id) if body.conversation_id else \
        Conversation(customer_id=owner)
    try:
        verdict = s.assistant.guard.check_input(conversation, body.text)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from exc
    if not verdict.allowed:
        raise HTTPException(422, verdict.reply or "this message cannot be filed")
    route = RouteDecision(intent="complaint", reason="api:complaints")
    reply = skill.respond(Turn(conversation=conversation, message=verdict.text, route=route))
    reply.route = route
    conversation.messages += [Message(role="user", content=verdict.redacted or verdict.text),
                              Message(role="assistant", content=reply.text,
                                      meta={"path": reply.path, "trace_id": reply.trace_id, "intent": "complaint"})]
    s.conversations.save(conversation)
    if s.assistant.audit is not None:
        s.assistant.audit.record_turn(conversation, verdict, reply)
    s.metrics.observe_reply(reply, "api")
    return reply


@router.get("/api/tickets", responses=ERRORS)
def list_tickets(status: str | None = Query(None, max_length=40), team: str | None = Query(None, max_length=64),
                 severity: str | None = Query(None, max_length=16),
                 kind: Literal["complaint", "handoff"] | None = None, open_only: bool = False,
                 limit: int = Query(100, ge=1, le=1000), who: Caller = Depends(customer_caller),
                 s: Services = Depends(services)) -> JSONResponse:
    """Customers: their own tickets. Staff: the queue, with filters."""
    from assistant.store.tickets import TicketError, TicketFilter

    tickets = s.features.get("tickets")
    owner = None if who.is_staff else customer_id_of(who)
    if not who.is_staff and owner is None:
        return JSONResponse([])
    where = TicketFilter(status=status, team=team, severity=severity, kind=kind, open_only=open_only, limit=limit,
                         customer_ref=owner)
    try:
        found = tickets.list(where)
    except TicketError as exc:
        raise HTTPException(422, str(exc)) from exc
    view = (lambda t: t.model_dump(mode="json", exclude={"events"})) if who.is_staff else customer_view
    return JSONResponse([view(t) for t in found])


@router.get("/api/tickets/{ticket_id}", responses=ERRORS)
def get_ticket(ticket_id: str, who: Caller = Depends(customer_caller),
               s: Services = Depends(services)) -> JSONResponse:
    """One ticket: the customer's own (404 for anyone else's), or any for staff (with its history)."""
    ticket = _ticket_or_404(s, ticket_id)
    if who.is_staff:
        return JSONResponse(ticket.model_dump(mode="json"))
    if ticket.customer_ref != customer_id_of(who):
        raise HTTPException(404, "ticket not found")
    return JSONResponse(customer_view(ticket))


@router.patch("/api/tickets/{ticket_id}", responses=ERRORS)
def update_ticket(ticket_id: str, body: TicketPatch, who: Caller = Depends(staff_caller),
                  s: Services = Depends(services)) -> JSONResponse:
    """Change a ticket's status, extend its deadline (the note is the notice to the customer), or add a note."""
    from assistant.store.tickets import TicketError

    _ticket_or_404(s, ticket_id)
    try:
        ticket = s.features.get("tickets").update(ticket_id, status=body.status, note=body.note or "",
                                                  actor=who.client, extend=body.extend)
    except TicketError as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(ticket.model_dump(mode="json"))


def _ticket_or_404(s: Services, ticket_id: str) -> Any:
    from assistant.store.tickets import TicketError

    if len(ticket_id) > 40:
        raise HTTPException(404, "ticket not found")
    try:
        return s.features.get("tickets").get(ticket_id)
    except TicketError:
        raise HTTPException(404, "ticket not found") from None
