"""The Complaints tab: the ticket queue with filters, an SLA countdown per ticket (refreshed every
30 s), and status changes (each one kept in the ticket's history by the ticket store).

A move that ends a ticket (resolved, closed) needs a note and a ticked confirmation; reopening an
ended ticket is for complaints officers; the form's fields reset when another ticket is picked; the
view of a complaint shows the complaint, not the rest of the customer's conversation (loan-form
answers stay out). The same rules serve `POST /api/staff/tickets/{id}/move` and `.../reopen`."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import gradio as gr
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from assistant.timefmt import countdown
from serve.auth import Caller, has_any_role
from serve.deps import services, staff_caller
from serve.services import Services

ALL = "(all)"
COLUMNS = ["id", "kind", "status", "severity", "team", "product", "issue", "created", "next deadline", "time left"]
SEVERITIES = ["urgent", "high", "normal"]
ENDING = ("resolved", "closed")
REOPEN_TO = "in_progress"


class MoveRefused(ValueError):
    """A ticket move the staff rules refuse (no note, no confirmation, wrong role)."""


def build_tab(s: Services) -> None:
    if not s.features.available("tickets"):
        gr.Markdown("Complaint tickets are not available in this installation.")
        return
    tickets = s.features.get("tickets")
    statuses = list(tickets.rules.statuses)
    with gr.Row():
        status = gr.Dropdown([ALL, *statuses], value=ALL, label="Status")
        severity = gr.Dropdown([ALL, *SEVERITIES], value=ALL, label="Severity")
        kind = gr.Dropdown([ALL, "complaint", "handoff"], value=ALL, label="Kind")
        team = gr.Dropdown([ALL, *teams(s)], value=ALL, label="Team")
        open_only = gr.Checkbox(True, label="Open only")
    refresh = gr.Button("Refresh", size="sm")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="ticket-queue")
    gr.Markdown("#### Change a ticket")
    with gr.Row():
        ticket_id = gr.Textbox(label="Ticket id", placeholder="click a row", max_length=40)
        new_status = gr.Dropdown(statuses, label="New status")
        extend = gr.Checkbox(False, label="Extend the deadline (the note is the notice to the customer)")
    note = gr.Textbox(label="Note", lines=2, max_length=2000, elem_id="ticket-note")
    confirm = gr.Checkbox(False, label="I confirm: resolving or closing ends this ticket", elem_id="ticket-confirm")
    with gr.Row():
        apply = gr.Button("Apply", variant="primary", elem_id="ticket-apply")
        reopen = gr.Button("Reopen (complaints officers)", elem_id="ticket-reopen")
    detail = gr.HTML(elem_id="ticket-detail")
    timer = gr.Timer(30)

    filters = [status, severity, kind, team, open_only]

    def load(status_v, severity_v, kind_v, team_v, open_v):
        return queue_rows(s, status_v, severity_v, kind_v, team_v, open_v)

    def pick(rows, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        chosen = rows.iloc[row]["id"] if hasattr(rows, "iloc") else rows[row][0]
        # Another ticket: nothing of the previous one's form carries over.
        return chosen, ticket_html(s, chosen), None, False, "", False

    def change(chosen, status_v, extend_v, note_v, confirm_v, status_f, severity_f, kind_f, team_f, open_f,
               request: gr.Request):
        username = getattr(request, "username", None)
        message = update_ticket(s, chosen, status_v, extend_v, note_v, f"staff:{username or 'ui'}",
                                confirmed=bool(confirm_v), roles=s.staff.page_roles(username))
        return message, load(status_f, severity_f, kind_f, team_f, open_f)

    def reopen_ticket(chosen, note_v, status_f, severity_f, kind_f, team_f, open_f, request: gr.Request):
        username = getattr(request, "username", None)
        message = reopen_html(s, chosen, note_v, f"staff:{username or 'ui'}", s.staff.page_roles(username))
        return message, load(status_f, severity_f, kind_f, team_f, open_f)

    for trigger in (refresh.click, timer.tick, *(f.change for f in filters)):
        trigger(load, filters, table, api_visibility="private")
    table.select(pick, [table], [ticket_id, detail, new_status, extend, note, confirm], api_visibility="private")
    apply.click(change, [ticket_id, new_status, extend, note, confirm, *filters], [detail, table],
                api_visibility="private")
    reopen.click(reopen_ticket, [ticket_id, note, *filters], [detail, table], api_visibility="private")


def teams(s: Services) -> list[str]:
    try:
        from assistant.complaints.classifier import load_taxonomy, taxonomy_file

        return sorted(load_taxonomy(taxonomy_file(s.settings)).teams)
    except Exception:  # the filter still works on any team typed by the store
        return []


def queue_rows(s: Services, status: str, severity: str, kind: str, team: str, open_only: bool) -> list[list[str]]:
    from assistant.store.tickets import TicketFilter

    pick = lambda v: None if v in (None, ALL) else v  # noqa: E731
    where = TicketFilter(status=pick(status), severity=pick(severity), kind=pick(kind), team=pick(team),
                         open_only=bool(open_only), limit=500)
    rows = []
    for t in s.features.get("tickets").list(where):
        due = next_deadline(t)
        rows.append([t.id, t.kind, t.status, t.severity, t.team, t.product or "", t.issue or "",
                     f"{t.created_at:%Y-%m-%d %H:%M}", f"{due:%Y-%m-%d %H:%M} UTC" if due else "",
                     countdown(due) if due else ""])
    rows.sort(key=lambda r: r[8] or "9999")  # the most urgent deadline first
    return rows


def next_deadline(ticket: Any) -> datetime | None:
    """The deadline that matters now: acknowledge while open, then resolve; none once closed."""
    if ticket.status in ("resolved", "closed"):
        return None
    due = ticket.ack_due if ticket.status == "open" else ticket.resolve_due
    return due if due.tzinfo else due.replace(tzinfo=timezone.utc)


def ticket_html(s: Services, ticket_id: str) -> str:
    from assistant.store.tickets import TicketError

    try:
        t = s.features.get("tickets").get(ticket_id)
    except TicketError as exc:
        return f"<p>{html.escape(str(exc))}</p>"
    esc = html.escape
    events = "".join(f"<li>{e.at:%Y-%m-%d %H:%M} {esc(e.actor)}: {esc(e.action)} "
                     f"{esc(e.from_status or '')}→{esc(e.to_status or '')} {esc(e.note)}</li>" for e in t.events)
    facts = " · ".join(esc(str(v)) for v in (t.product, t.issue, t.team) if v)
    conversation = ""
    if t.kind != "complaint":  # a complaint needs its own words, not the customer's loan-form answers
        excerpt = "".join(f"<li><b>{esc(m.get('role', ''))}</b>: {esc(m.get('content', ''))}</li>" for m in t.excerpt)
        conversation = f"<h5>Conversation</h5><ul>{excerpt}</ul>"
    return (f"<h4>{esc(t.id)} · {esc(t.kind)} · {esc(t.status)} · {esc(t.severity)}</h4>"
            f"<p>{facts}</p><p class='complaint-text'>{esc(t.text)}</p><p>Acknowledge by "
            f"{t.ack_due:%Y-%m-%d %H:%M} UTC · resolve by {t.resolve_due:%Y-%m-%d %H:%M} UTC</p>{conversation}"
            f"<h5>History</h5><ul>{events}</ul>")


def update_ticket(s: Services, ticket_id: str, status: str | None, extend: bool, note: str,
                  actor: str = "staff:ui", confirmed: bool = False, roles: frozenset[str] = frozenset({"admin"})) -> str:
    from assistant.store.tickets import TicketError

    if not (ticket_id or "").strip():
        return "<p>Pick a ticket first.</p>"
    try:
        move_ticket(s, ticket_id.strip(), status or None, note or "", actor, confirmed, roles, extend=bool(extend))
    except (TicketError, MoveRefused) as exc:
        return f"<p class='error'>{html.escape(str(exc))}</p>"
    return ticket_html(s, ticket_id.strip())


def reopen_html(s: Services, ticket_id: str, note: str, actor: str, roles: frozenset[str]) -> str:
    from assistant.store.tickets import TicketError

    if not (ticket_id or "").strip():
        return "<p>Pick a ticket first.</p>"
    try:
        reopen(s, ticket_id.strip(), note or "", actor, roles)
    except (TicketError, MoveRefused) as exc:
        return f"<p class='error'>{html.escape(str(exc))}</p>"
    return ticket_html(s, ticket_id.strip())


def move_ticket(s: Services, ticket_id: str, status: str | None, note: str, actor: str, confirmed: bool,
                roles: frozenset[str], extend: bool = False) -> Any:
    """A staff move under the house rules: only complaints officers change tickets here; a move that
    ends a ticket needs a note and a confirmation; leaving an ended status is a reopen."""
    tickets = s.features.get("tickets")
    if not has_any_role(roles, "complaints"):
        raise MoveRefused("only complaints officers change tickets here")
    current = tickets.get(ticket_id)
    if status in ENDING and status != current.status:
        if not note.strip():
            raise MoveRefused(f"a note is needed to mark {ticket_id} {status}: what was done, for the record")
        if not confirmed:
            raise MoveRefused(f"tick the confirmation: {status} ends ticket {ticket_id}")
    if current.status in ENDING and status and status not in ENDING:
        return reopen(s, ticket_id, note, actor, roles, to=status)
    return tickets.update(ticket_id, status=status, note=note, actor=actor, extend=extend)


def reopen(s: Services, ticket_id: str, note: str, actor: str, roles: frozenset[str], to: str = REOPEN_TO) -> Any:
    """Back to work on an ended ticket (complaints officers, with a note saying why)."""
    tickets = s.features.get("tickets")
    if not has_any_role(roles, "complaints"):
        raise MoveRefused("only complaints officers reopen tickets")
    current = tickets.get(ticket_id)
    if current.status not in ENDING:
        raise MoveRefused(f"ticket {ticket_id} is {current.status}, not ended: nothing to reopen")
    if not note.strip():
        raise MoveRefused(f"a note is needed to reopen {ticket_id}: why it is reopened")
    return tickets.update(ticket_id, status=to, note=note, actor=actor)


# --- the same moves over the API (complaints officers; the role gate checks the key) -------------

router = APIRouter(tags=["complaints"])


class MoveRequest(BaseModel):
    status: str = Field(min_length=1, max_length=40)
    note: str = Field("", max_length=2000)
    confirm: bool = Field(False, description="must be true for a move that ends the ticket (resolved, closed)")


class ReopenRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


def _apply(fn, *args) -> dict[str, Any]:
    from assistant.store.tickets import TicketError

    try:
        ticket = fn(*args)
    except MoveRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except TicketError as exc:
        raise HTTPException(404 if str(exc).startswith("no ticket") else 422, str(exc)) from None
    return ticket.model_dump(mode="json", exclude={"excerpt"} if ticket.kind == "complaint" else set())


@router.post("/api/staff/tickets/{ticket_id}/move")
def api_move(ticket_id: str, body: MoveRequest, who: Caller = Depends(staff_caller),
             s: Services = Depends(services)) -> dict[str, Any]:
    """Move a ticket; resolved/closed need a note and `confirm: true`; from an ended status it is a reopen."""
    return _apply(move_ticket, s, ticket_id[:40], body.status, body.note, who.client, body.confirm, who.roles)


@router.post("/api/staff/tickets/{ticket_id}/reopen")
def api_reopen(ticket_id: str, body: ReopenRequest, who: Caller = Depends(staff_caller),
               s: Services = Depends(services)) -> dict[str, Any]:
    """Reopen a resolved ticket (back to in_progress), with a note saying why."""
    return _apply(reopen, s, ticket_id[:40], body.note, who.client, who.roles)
