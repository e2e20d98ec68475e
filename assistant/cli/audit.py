"""`assistant audit verify` and `assistant audit show CONVERSATION_ID`.

Also runs alone: `python -m assistant.cli.audit verify --json`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from assistant.store.audit import AuditLog
from assistant.cli.common import emit_json, err, load_settings

app = typer.Typer(help="The append-only audit log: verify its hash chain, replay a conversation.",
                  no_args_is_help=True)


@app.command()
def verify(
    expect_head: str | None = typer.Option(None, "--expect-head", help="a head hash printed by an earlier "
                                           "verify: fails if records after it were deleted"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Recompute the hash chain; exit 1 if any record was edited, deleted or inserted."""
    report = AuditLog(load_settings()).verify(expect_head)
    if json_out:
        emit_json(report.to_dict())
    else:
        out = Console()
        state = "[green]intact[/green]" if report.ok else "[red]BROKEN[/red]"
        out.print(f"audit log {state}: {report.records} records, head seq {report.head_seq}, "
                  f"head hash {report.head_hash}")
        for p in report.problems:
            out.print(f"  record {p.seq}: {p.problem}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def show(
    conversation_id: str = typer.Argument(..., help="the conversation to replay"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Replay one conversation turn by turn (redacted input, reply, route, sources, tools, flags)."""
    records = AuditLog(load_settings()).show(conversation_id)
    if not records:
        err.print(f"no audit records for conversation {conversation_id!r}")
        if json_out:
            emit_json({"conversation_id": conversation_id, "records": []})
        raise typer.Exit(2)
    if json_out:
        emit_json({"conversation_id": conversation_id, "records": records})
        return
    table = Table(title=f"conversation {conversation_id}", show_lines=True)
    for column in ("seq", "time", "customer said", "assistant replied", "route / path", "sources", "flags"):
        table.add_column(column, overflow="fold")
    for r in records:
        route = r.get("route") or {}
        sources = ", ".join(f"{c['doc_id']} v{c['version']} ({c['effective_date']})" for c in r.get("citations", []))
        tools = ", ".join(t["name"] for t in r.get("tool_calls", []))
        table.add_row(str(r["seq"]), r["created_at"][:19], r["input"], r["reply"],
                      f"{route.get('intent', '-')} {route.get('confidence', '')} / {r['path']}",
                      sources + (f"\ntools: {tools}" if tools else ""), ", ".join(r["policy"]["flags"]))
    Console().print(table)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
