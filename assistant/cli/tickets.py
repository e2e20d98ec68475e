"""`assistant tickets list | show | update | breaches | replay-spool`: the staff side of tickets.

    assistant tickets list --team collections_conduct --status open
    assistant tickets show CMP-261128-ABC234
    assistant tickets update CMP-261128-ABC234 --status acknowledged --note "called the customer"
    assistant tickets update CMP-261128-ABC234 --extend --note "We need the merchant's records; answer by 30 days"
    assistant tickets breaches --within-hours 24
    assistant tickets replay-spool"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from assistant.cli.common import emit_json, fail, load_settings

app = typer.Typer(help="Complaint and hand-off tickets: list, filter, update, SLA breaches.", no_args_is_help=True)


def _service(as_json: bool):
    from assistant.store.tickets import TicketService

    settings = load_settings(as_json=as_json)
    try:
        return TicketService(settings)
    except (OSError, ValueError) as exc:
        fail(f"cannot open the ticket service: {exc}", as_json=as_json, code=1)


def _run(as_json: bool, action):
    from assistant.store.tickets import TicketError

    try:
        return action()
    except TicketError as exc:
        fail(str(exc), as_json=as_json, code=2)
    except (SQLAlchemyError, OSError) as exc:
        fail(f"the ticket store is unavailable: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
             as_json=as_json, code=1)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


@app.command("list")
def list_tickets(
    status: Optional[str] = typer.Option(None, help="open | acknowledged | in_progress | resolved | closed"),
    team: Optional[str] = typer.Option(None, help="e.g. collections_conduct, fees_billing, customer_care"),
    severity: Optional[str] = typer.Option(None, help="urgent | high | normal"),
    kind: Optional[str] = typer.Option(None, help="complaint | handoff"),
    customer: Optional[str] = typer.Option(None, help="customer reference"),
    open_only: bool = typer.Option(False, "--open", help="only tickets not resolved or closed"),
    limit: int = typer.Option(100, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Tickets, newest first, filtered."""
    from assistant.store.tickets import TicketFilter

    if severity and severity not in ("urgent", "high", "normal"):
        fail(f"unknown severity {severity!r}; one of urgent, high, normal", as_json=as_json)
    if kind and kind not in ("complaint", "handoff"):
        fail(f"unknown kind {kind!r}; one of complaint, handoff", as_json=as_json)
    service = _service(as_json)
    where = TicketFilter(status=status, team=team, severity=severity, kind=kind, customer_ref=customer,
                         open_only=open_only, limit=limit)
    tickets = _run(as_json, lambda: service.list(where))
    if as_json:
        emit_json({"tickets": [t.model_dump(mode="json", exclude={"events", "excerpt"}) for t in tickets]})
        return
    table = Table(title=f"{len(tickets)} tickets (times UTC)")
    table.add_column("id", no_wrap=True, min_width=17)
    for column in ("kind", "status", "severity", "team", "product / issue", "created", "ack due", "resolve due"):
        table.add_column(column, overflow="fold")
    for t in tickets:
        table.add_row(t.id, t.kind, t.status, t.severity, t.team, f"{t.product or '-'} / {t.issue or '-'}",
                      _when(t.created_at), _when(t.ack_due), _when(t.resolve_due) + (" (extended)" if t.extended else ""))
    Console().print(table)


@app.command()
def show(
    ticket_id: str = typer.Argument(..., help="the ticket id"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """One ticket with its conversation excerpt and its audit trail."""
    service = _service(as_json)
    ticket = _run(as_json, lambda: service.get(ticket_id))
    if as_json:
        emit_json(ticket.model_dump(mode="json"))
        return
    out = Console()
    out.print(f"[bold]{ticket.id}[/bold] {ticket.kind}, {ticket.status}, {ticket.severity}, team {ticket.team}")
    out.print(f"customer {ticket.customer_ref}, conversation {ticket.conversation_id or '-'}")
    out.print(f"product {ticket.product or '-'}, issue {ticket.issue or '-'}, escalations "
              f"{', '.join(ticket.escalations) or '-'}, urgency {', '.join(ticket.urgency) or '-'}")
    out.print(f"created {_when(ticket.created_at)} UTC; acknowledge by {_when(ticket.ack_due)}; "
              f"resolve by {_when(ticket.resolve_due)}{' (extended)' if ticket.extended else ''}")
    out.print(f"\n{ticket.text}\n")
    for m in ticket.excerpt:
        out.print(f"  {m['role']}: {m['content']}")
    out.print("\naudit trail:")
    for e in ticket.events:
        move = f"{e.from_status or ''} -> {e.to_status}" if e.to_status else ""
        out.print(f"  {_when(e.at)} {e.actor}: {e.action} {move} {e.note}")


@app.command()
def update(
    ticket_id: str = typer.Argument(..., help="the ticket id"),
    status: Optional[str] = typer.Option(None, help="the new status"),
    note: str = typer.Option("", help="a note for the audit trail (with --extend: the notice sent to the customer)"),
    extend: bool = typer.Option(False, "--extend", help="extend the resolution deadline (complex case)"),
    actor: str = typer.Option("staff", help="who makes the change"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Change a ticket's status, extend its deadline or add a note; every change is audited."""
    service = _service(as_json)
    ticket = _run(as_json, lambda: service.update(ticket_id, status=status, note=note, actor=actor, extend=extend))
    if as_json:
        emit_json(ticket.model_dump(mode="json", exclude={"excerpt"}))
        return
    Console().print(f"{ticket.id}: {ticket.status}, resolve by {_when(ticket.resolve_due)} UTC"
                    f"{' (extended)' if ticket.extended else ''}")


@app.command()
def breaches(
    within_hours: Optional[float] = typer.Option(None, min=0, help="also list deadlines this close "
                                                 "(default: near_breach_hours in the rules)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """The SLA report: open tickets past a deadline or near one."""
    service = _service(as_json)
    found = _run(as_json, lambda: service.breaches(within_hours))
    if as_json:
        emit_json({"breaches": [{"ticket_id": b.ticket.id, "team": b.ticket.team, "severity": b.ticket.severity,
                             "status": b.ticket.status, "deadline": b.deadline, "due": b.due.isoformat(),
                             "state": b.state, "hours_left": b.hours_left} for b in found],
               "breached": sum(b.state == "breached" for b in found), "near": sum(b.state == "near" for b in found)})
        return
    table = Table(title=f"{sum(b.state == 'breached' for b in found)} breached, {sum(b.state == 'near' for b in found)} near")
    for column in ("ticket", "team", "severity", "status", "deadline", "due (UTC)", "state", "hours left"):
        table.add_column(column)
    for b in found:
        table.add_row(b.ticket.id, b.ticket.team, b.ticket.severity, b.ticket.status, b.deadline, _when(b.due),
                      b.state, str(b.hours_left))
    Console().print(table)


@app.command("replay-spool")
def replay_spool(as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout")) -> None:
    """Commit tickets kept in the local spool while the store was down (safe to run any time)."""
    service = _service(as_json)
    done = _run(as_json, service.replay_spool)
    left = len(service.spool.pending())
    if as_json:
        emit_json({"replayed": done, "pending": left})
        return
    Console().print(f"replayed {len(done)} tickets; {left} still waiting")
