"""The Complaints tab: the ticket queue with filters, an SLA countdown per ticket (refreshed every
30 s), and status changes (each one kept in the ticket's history by the ticket store)."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from assistant.timefmt import countdown
from serve.services import Services

ALL = "(all)"
COLUMNS = ["id", "kind", "status", "severity", "team", "product", "issue", "created", "next deadline", "time left"]
SEVERITIES = ["urgent", "high", "normal"]


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
    note = gr.Textbox(label="Note", lines=2, max_length=2000)
    apply = gr.Button("Apply", variant="primary")
    detail = gr.HTML()
    timer = gr.Timer(30)

    filters = [status, severity, kind, team, open_only]

    def load(status_v, severity_v, kind_v, team_v, open_v):
        return queue_rows(s, status_v, severity_v, kind_v, team_v, open_v)

    def pick(rows, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        chosen = rows.iloc[row]["id"] if hasattr(rows, "iloc") else rows[row][0]
        return chosen, ticket_html(s, chosen)

    def change(chosen, status_v, extend_v, note_v, status_f, severity_f, kind_f, team_f, open_f,
               request: gr.Request):
        actor = f"staff:{getattr(request, 'username', None) or 'ui'}"
        message = update_ticket(s, chosen, status_v, extend_v, note_v, actor)
        return message, load(status_f, severity_f, kind_f, team_f, open_f)

    for trigger in (refresh.click, timer.tick, *(f.change for f in filters)):
        trigger(load, filters, table, api_visibility="private")
    table.select(pick, [table], [ticket_id, detail], api_visibility="private")
    apply.click(change, [ticket_id, new_status, extend, note, *filters], [detail, table], api_visibility="private")


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
    excerpt = "".join(f"<li><b>{esc(m.get('role', ''))}</b>: {esc(m.get('content', ''))}</li>" for m in t.excerpt)
    return (f"<h4>{esc(t.id)} · {esc(t.kind)} · {esc(t.status)} · {esc(t.severity)}</h4>"
            f"<p>{esc(t.text)}</p><p>Acknowledge by {t.ack_due:%Y-%m-%d %H:%M} UTC · resolve by "
            f"{t.resolve_due:%Y-%m-%d %H:%M} UTC</p><h5>Conversation</h5><ul>{excerpt}</ul>"
            f"<h5>History</h5><ul>{events}</ul>")


def update_ticket(s: Services, ticket_id: str, status: str | None, extend: bool, note: str,
                  actor: str = "staff:ui") -> str:
    from assistant.store.tickets import TicketError

    if not (ticket_id or "").strip():
        return "<p>Pick a ticket first.</p>"
    try:
        s.features.get("tickets").update(ticket_id.strip(), status=status or None, note=note or "",
                                         actor=actor, extend=bool(extend))
    except TicketError as exc:
        return f"<p class='error'>{html.escape(str(exc))}</p>"
    return ticket_html(s, ticket_id.strip())
