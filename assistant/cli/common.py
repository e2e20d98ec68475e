"""What every `assistant` CLI shares: the stderr console, JSON on stdout, failing with an exit code, settings.

Lives apart from assistant/cli/main.py because that module imports and registers the sub-CLIs.
The contract: results go to stdout (with --json: exactly one JSON object), logs and errors to stderr;
with --json a failure is also one JSON object, {"error": message}, on stdout."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from assistant.config import Settings, apply_offline_env

err = Console(stderr=True)


def emit_json(payload: Any) -> None:
    """One JSON object on stdout; everything else goes to stderr."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def fail(message: str, *, as_json: bool = False, code: int = 2) -> NoReturn:
    """Report an error and exit: {"error": message} on stdout with as_json, else `error: message` on stderr.
    The message is printed as it is (no console markup) and not wrapped."""
    if as_json:
        emit_json({"error": message})
    else:
        err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


def load_settings(*, as_json: bool = False, code: int = 1, quiet_embeddings: bool = False) -> Settings:
    """Settings from the environment (offline model hub), or a clear `invalid settings: ...` error and exit `code`.
    quiet_embeddings: keep sentence_transformers' info logs off stderr, even with --verbose."""
    apply_offline_env()
    if quiet_embeddings:
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable; a bad .env fails here too
        fail(f"invalid settings: {exc}", as_json=as_json, code=code)
