"""The system under test, built once per run and shared by the suites.

Embedded: the assistant in this process (same KnowledgeBase and chat model for the baseline
chain). Endpoint: any OpenAI-compatible /v1/chat/completions, the assistant's own included.
Both answer through a `Session`, which keeps one conversation and returns `TargetReply`s."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import yaml

from assistant.config import Settings, apply_offline_env

log = logging.getLogger(__name__)

EARLIER_ANSWER = "(earlier answer)"  # stands in for the assistant's turns of a replayed history


@dataclass
class TargetReply:
    text: str
    path: str | None = None  # None when the target does not say (a foreign endpoint)
    citations: list[dict[str, Any]] = field(default_factory=list)  # doc_id, chunk_id, title, section
    cited_texts: list[str] | None = None  # None: the cited passages are unknown
    retrieved: list[str] = field(default_factory=list)  # doc ids, best first
    retrieved_texts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # name, arguments, result, error
    ticket: dict[str, Any] | None = None
    flags: list[str] = field(default_factory=list)
    intent: str | None = None
    urgency: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    error: str | None = None

    @property
    def cited_doc_ids(self) -> list[str]:
        return [c.get("doc_id", "") for c in self.citations if c.get("doc_id")]


class Session(Protocol):
    def send(self, message: str) -> TargetReply: ...

    def stored(self, value: str) -> bool | None:
        """Whether `value` was written to the conversation record or the database; None: cannot tell."""
        ...


# --- embedded --------------------------------------------------------------------------------


class System:
    """Lazily built parts: nothing loads until a suite asks for it."""

    def __init__(self, settings: Settings, endpoint: str | None = None, endpoint_model: str = "meadow",
                 endpoint_key: str | None = None, owns_data_dir: bool = False):
        self.settings = settings
        self.endpoint = endpoint
        self.endpoint_model = endpoint_model
        self.endpoint_key = endpoint_key
        self.owns_data_dir = owns_data_dir

    @classmethod
    def build(cls, backend: str = "embedded", data_dir: Path | None = None, endpoint: str | None = None,
              endpoint_model: str = "meadow", endpoint_key: str | None = None,
              **overrides: Any) -> "System":
        """`data_dir` None: a fresh temporary data dir (the index is built from knowledge_base/,
        the converted model is shared with the default data dir so it is converted only once)."""
        apply_offline_env()
        default = Settings()
        owns = data_dir is None
        if owns:
            data_dir = Path(tempfile.mkdtemp(prefix="meadow-evals-"))
            default.model_cache_dir.mkdir(parents=True, exist_ok=True)
            (data_dir / "models").symlink_to(default.model_cache_dir.resolve(), target_is_directory=True)
        settings = default.model_copy(update={"data_dir": Path(data_dir), "llm_backend": backend,
                                              "chroma_path": None if owns else default.chroma_path,
                                              "chroma_host": None if owns else default.chroma_host,
                                              "database_url": None if owns else default.database_url,
                                              **overrides})
        return cls(settings, endpoint=endpoint, endpoint_model=endpoint_model, endpoint_key=endpoint_key,
                   owns_data_dir=owns)

    def close(self) -> None:
        if self.owns_data_dir:
            shutil.rmtree(self.settings.data_dir, ignore_errors=True)

    @property
    def name(self) -> str:
        if self.endpoint:
            return f"endpoint:{self.endpoint}"
        return f"{self.settings.llm_backend}:{self.settings.llm_served_model if self.settings.llm_backend == 'openai' else self.settings.llm_model}"

    @cached_property
    def kb(self):
        from assistant.components import build_knowledge

        kb = build_knowledge(self.settings)
        report = kb.ingest()  # incremental: unchanged documents are skipped
        log.info("knowledge base: %s chunks (%s added)", report.chunks, len(report.added))
        return kb

    @cached_property
    def chat_model(self):
        from assistant.llm.chat_models import make_chat_model

        return make_chat_model(self.settings)

    @cached_property
    def assistant(self):
        from assistant.components import build_assistant

        return build_assistant(self.settings, kb=self.kb, chat_model=self.chat_model)

    @cached_property
    def terms(self):
        from assistant.knowledge.terms import load_terms

        return load_terms(self.settings.terms_file)

    @cached_property
    def fixed_texts(self) -> list[str]:
        """Every fixed reply under prompts/ (*.yaml): figures in them (the hotline, its hours)
        are the assistant's own, not invented."""
        texts: list[str] = []
        for path in sorted(Path(self.settings.prompts_dir).glob("*.yaml")):
            texts += list(_strings(yaml.safe_load(path.read_text(encoding="utf-8"))))
        return texts

    @cached_property
    def terms_text(self) -> str:
        """terms.yaml as text: the figures a form, a ticket or a hand-off may quote from it."""
        return Path(self.settings.terms_file).read_text(encoding="utf-8")

    def session(self, history: list[str] | None = None) -> Session:
        if self.endpoint:
            return EndpointSession(self, history or [])
        return EmbeddedSession(self, history or [])

    def chunk_text(self, chunk_id: str) -> str | None:
        try:
            chunk = self.kb.chunk(chunk_id)
        except Exception:  # no local index (endpoint runs): the passage stays unknown
            return None
        return chunk.text if chunk else None


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class EmbeddedSession:
    def __init__(self, system: System, history: list[str]):
        from assistant.types import Conversation, Message

        self.system = system
        self.conversation = Conversation(customer_id="evals")
        # A follow-up's history is replayed as messages, not re-answered: the skills read the
        # customer's earlier turns; re-generating them would only cost time.
        for earlier in history:
            self.conversation.messages += [Message(role="user", content=earlier),
                                           Message(role="assistant", content=EARLIER_ANSWER)]

    def send(self, message: str) -> TargetReply:
        started = time.perf_counter()
        try:
            reply = self.system.assistant.reply(self.conversation, message)
        except Exception as exc:  # one failing turn must not end the run: it is a failed row
            log.exception("assistant failed on %r", message[:80])
            return TargetReply(text="", path="error", error=f"{type(exc).__name__}: {exc}",
                               latency_ms=_ms(started))
        return from_reply(reply, _ms(started))

    def stored(self, value: str) -> bool | None:
        record = "\n".join(m.content + " " + str(m.meta) for m in self.conversation.messages
                           if m.content != EARLIER_ANSWER)
        if value in record:
            return True
        return _in_database(self.system.settings, value)


def from_reply(reply: Any, latency_ms: float) -> TargetReply:
    by_id = {c.id: c for c in reply.chunks}
    cited_texts = []
    for c in reply.citations:
        chunk = by_id.get(c.chunk_id)
        cited_texts.append(chunk.text if chunk else "")
    return TargetReply(
        text=reply.text, path=reply.path,
        citations=[c.model_dump() for c in reply.citations],
        cited_texts=cited_texts,
        retrieved=[c.doc_id for c in reply.chunks],
        retrieved_texts=[c.text for c in reply.chunks],
        tool_calls=[t.model_dump() for t in reply.tool_calls],
        ticket=reply.ticket, flags=list(reply.flags),
        intent=reply.route.intent if reply.route else None,
        urgency=list(reply.route.urgency) if reply.route else [],
        latency_ms=latency_ms,
    )


def _in_database(settings: Settings, value: str) -> bool | None:
    """Search the SQLite file (and its WAL) for the value: tickets, audit and conversations are
    stored there, so a PII value found anywhere in it was stored unmasked."""
    url = settings.db_url
    if not url.startswith("sqlite:///"):
        return None
    db = Path(url.removeprefix("sqlite:///"))
    needle = value.encode("utf-8")
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists() and needle in path.read_bytes():
            return True
    return False


# --- OpenAI-compatible endpoint ----------------------------------------------------------------

_EXTRA_KEYS = ("meadow", "assistant", "x_meadow", "x_assistant", "metadata", "reply")


def completions_url(endpoint: str) -> str:
    url = endpoint.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


class EndpointSession:
    def __init__(self, system: System, history: list[str]):
        self.system = system
        self.messages: list[dict[str, str]] = []
        for earlier in history:
            self.messages += [{"role": "user", "content": earlier}, {"role": "assistant", "content": EARLIER_ANSWER}]
        self.replies: list[str] = []

    def send(self, message: str) -> TargetReply:
        self.messages.append({"role": "user", "content": message})
        headers = {"Authorization": f"Bearer {self.system.endpoint_key}"} if self.system.endpoint_key else {}
        body = {"model": self.system.endpoint_model, "messages": self.messages, "stream": False}
        started = time.perf_counter()
        try:
            response = _post(completions_url(self.system.endpoint), body, headers, self.system.settings.llm_timeout_s)
            reply = parse_completion(response.json())
        except Exception as exc:
            return TargetReply(text="", path="error", error=f"{type(exc).__name__}: {exc}", latency_ms=_ms(started))
        reply.latency_ms = _ms(started)
        self.messages.append({"role": "assistant", "content": reply.text})
        if reply.cited_texts is None and reply.citations:
            texts = [c.get("text") or (self.system.chunk_text(c.get("chunk_id", "")) if c.get("chunk_id") else None)
                     for c in reply.citations]
            reply.cited_texts = None if any(t is None for t in texts) else texts
        return reply

    def stored(self, value: str) -> bool | None:
        return None  # a remote store cannot be read from here


RATE_LIMIT_TRIES = 4
MAX_RETRY_WAIT_S = 30.0


def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> Any:
    """POST, waiting out a 429 (Retry-After) a few times: an eval sends faster than a customer."""
    import httpx

    for attempt in range(RATE_LIMIT_TRIES):
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        if response.status_code != 429 or attempt == RATE_LIMIT_TRIES - 1:
            response.raise_for_status()
            return response
        try:
            wait = float(response.headers.get("Retry-After", 2 ** attempt))
        except ValueError:
            wait = 2.0 ** attempt
        time.sleep(min(wait, MAX_RETRY_WAIT_S))
    raise RuntimeError("unreachable")


def parse_completion(data: dict[str, Any]) -> TargetReply:
    """The text of choices[0], plus the assistant's own fields when the server adds them (under
    one of _EXTRA_KEYS, at the top level or in the message): path, citations, tool calls, ticket."""
    message = (data.get("choices") or [{}])[0].get("message") or {}
    extra: dict[str, Any] = {}
    for holder in (data, message):
        for key in _EXTRA_KEYS:
            if isinstance(holder.get(key), dict):
                extra.update(holder[key])
        for key in ("path", "citations", "ticket", "flags", "route", "chunks"):
            if key in holder and key not in extra:
                extra[key] = holder[key]
    citations = [_citation(c) for c in extra.get("citations") or []]
    texts = [c.pop("text", None) for c in citations]
    route = extra.get("route") if isinstance(extra.get("route"), dict) else {}
    chunks = extra.get("chunks") or []
    return TargetReply(
        text=message.get("content") or "",
        path=extra.get("path"),
        citations=citations,
        cited_texts=texts if citations and all(t is not None for t in texts) else None,
        retrieved=[c.get("doc_id", "") for c in chunks if isinstance(c, dict)],
        retrieved_texts=[c.get("text", "") for c in chunks if isinstance(c, dict)],
        tool_calls=[_tool_call(t) for t in (extra.get("tool_calls") or message.get("tool_calls") or [])],
        ticket=extra.get("ticket"),
        flags=list(extra.get("flags") or []),
        intent=route.get("intent") or extra.get("intent"),
        urgency=list(route.get("urgency") or []),
    )


def _citation(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"doc_id": value}
    return dict(value)


def _tool_call(value: dict[str, Any]) -> dict[str, Any]:
    """Our ToolCall shape, or OpenAI's {function: {name, arguments: "json"}}."""
    import json

    if "function" in value:
        fn = value["function"] or {}
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {"raw": args}
        return {"name": fn.get("name", ""), "arguments": args, "result": None, "error": None}
    return {"name": value.get("name", ""), "arguments": value.get("arguments") or {},
            "result": value.get("result"), "error": value.get("error")}


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
