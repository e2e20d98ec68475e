"""Structured JSON logs: one object per line, with the trace id of the turn or request.

Message text is passed through the guard's `redact` before it is logged; credentials
(API keys, customer tokens) are never put in a log record."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Callable

trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")

_DROPPED = {"trace_id", "color_message"}  # uvicorn adds an ANSI-coloured copy of its message
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Callable[[str], str] | None = None):
        super().__init__()
        self.redact = redact or (lambda text: text)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.redact(record.getMessage()),
        }
        trace_id = getattr(record, "trace_id", None) or trace_id_var.get()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and not key.startswith("_"):
                entry[key] = self.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(redact: Callable[[str], str] | None = None, level: int = logging.INFO) -> None:
    """JSON on stderr for our loggers and uvicorn's; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    handler.set_name("serve-json")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "serve-json"] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # uvicorn's access log would print query strings unredacted; our middleware logs requests.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "chromadb", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
