"""Complaints and tickets: a customer files a complaint and sees their own tickets (only theirs);
staff see the queue and change a ticket's status."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from assistant.types import RouteDecision
from serve.api import ERRORS, IDEMPOTENCY_DOC, REPLAYED, claim_key, customer_id_of, idempotency, request_id
from serve.auth import Caller
from serve.deps import customer_caller, services, staff_caller
from serve.limits import watching
from serve.schemas import ID, Strict, TicketPatch
from serve.services import Services

router = APIRouter(tags=["complaints"])


class ComplaintRequest(Strict):
    text: str = Field(min_length=1, max_length=8000, description="the complaint, in the customer's words")
    conversation_id: str | None = Field(None, pattern=ID, description="attach it to this conversation of yours")


def customer_view(ticket: Any) -> dict[str, Any]:
    """What a customer may see of their ticket: no internal notes; `deadline` is the resolution date."""
    return {**ticket.summary(), "deadline": ticket.resolve_due.isoformat()}


@router.post("/api/complaints", status_code=201, responses={**ERRORS, 202: {
    "description": "the store is down: the complaint was kept in the spool under its reference (`stored`: false)"}})
async def file_complaint(body: ComplaintRequest, request: Request, who: Caller = Depends(customer_caller),
                         s: Services = Depends(services),
                         idempotency_key: str | None = Header(None, max_length=200, description=IDEMPOTENCY_DOC)
                         ) -> JSONResponse:
    """File a complaint: classified (product, issue, team, severity), stored durably with its
    regulatory deadlines; the answer is the ticket. 422 when it needs more detail. It runs through the
    same pipeline as a chat turn (input guard, complaint skill, output guard, audit), the route fixed.
    With an `Idempotency-Key`, a retry gets the first ticket instead of filing a second."""
    owner = customer_id_of(who) or "anonymous"
    if owner == "anonymous" and body.conversation_id:
        raise HTTPException(404, "conversation not found")
    if not idempotency_key:
        status, result = await _file(s, owner, body, request)
        return JSONResponse(result, status_code=status)
    claim = await claim_key(s, "complaints", who, idempotency_key, body.model_dump(mode="json"))
    if claim.state == "done":
        return JSONResponse(claim.response, status_code=claim.status, headers=REPLAYED)
    try:
        status, result = await _file(s, owner, body, request)
    except BaseException:
        await run_in_threadpool(idempotency(s).release, claim)
        raise
    await run_in_threadpool(idempotency(s).finish, claim, status, result)
    return JSONResponse(result, status_code=status)


async def _file(s: Services, owner: str, body: ComplaintRequest, request: Request) -> tuple[int, dict[str, Any]]:
    """The complaint as a chat turn routed to the complaint skill: 201 and the ticket (202 when it could
    only be spooled), or 422 with the skill's or the guard's words (blocked, or more detail needed)."""
    skill = s.features.get("complaints")  # 404 feature_not_available when the skill is not built
    conversation = await run_in_threadpool(s.chat.conversation, owner, body.conversation_id)
    route = RouteDecision(intent="complaint", reason="api:complaints")
    async with watching(request) as abandon:
        reply = await s.chat.reply(conversation, body.text, channel="api", abandon=abandon, route=route,
                                   skill=skill)
    if not reply.ticket:
        return 422, {"error": {"type": "invalid_request", "message": reply.text}, "request_id": request_id(),
                     "trace_id": reply.trace_id}
    status = 201 if reply.ticket.get("stored", True) else 202
    return status, {**reply.ticket, "deadline": reply.ticket.get("resolve_due"), "message": reply.text,
                    "trace_id": reply.trace_id, "conversation_id": conversation.id}


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
    view = (lambda t: staff_view(t, exclude={"events"})) if who.is_staff else customer_view
    return JSONResponse([view(t) for t in found])


@router.get("/api/tickets/{ticket_id}", responses=ERRORS)
def get_ticket(ticket_id: str, who: Caller = Depends(customer_caller),
               s: Services = Depends(services)) -> JSONResponse:
    """One ticket: the customer's own (404 for anyone else's), or any for staff (with its history)."""
    ticket = _ticket_or_404(s, ticket_id)
    if who.is_staff:
        return JSONResponse(staff_view(ticket))
    if ticket.customer_ref != customer_id_of(who):
        raise HTTPException(404, "ticket not found")
    return JSONResponse(customer_view(ticket))


@router.patch("/api/tickets/{ticket_id}", responses=ERRORS)
def update_ticket(ticket_id: str, body: TicketPatch, who: Caller = Depends(staff_caller),
                  s: Services = Depends(services)) -> JSONResponse:
    """Change a ticket's status, extend its deadline (the note is the notice to the customer), or add a note.
    The house rules of the staff pages apply: resolving or closing needs a note and `confirm: true`, and
    moving an ended ticket back is a reopen (complaints officers)."""
    from assistant.store.tickets import TicketError
    from serve.staff_tickets import MoveRefused, move_ticket

    _ticket_or_404(s, ticket_id)
    try:
        ticket = move_ticket(s, ticket_id, body.status, body.note or "", who.client, body.confirm, who.roles,
                             extend=body.extend)
    except MoveRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    except TicketError as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(staff_view(ticket))


def staff_view(ticket: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    """A complaint shows what the complaint needs: not the conversation excerpt (loan-form answers
    stay with the conversation); a hand-off keeps it, an agent needs the context."""
    hidden = set(exclude or ()) | ({"excerpt"} if ticket.kind == "complaint" else set())
    return ticket.model_dump(mode="json", exclude=hidden)


def _ticket_or_404(s: Services, ticket_id: str) -> Any:
    from assistant.store.tickets import TicketError

    if len(ticket_id) > 40:
        raise HTTPException(404, "ticket not found")
    try:
        return s.features.get("tickets").get(ticket_id)
    except TicketError:
        raise HTTPException(404, "ticket not found") from None
