"""Typed values passed between the pipeline's stages."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

Intent = Literal["answer", "eligibility", "complaint", "handoff", "smalltalk", "out_of_scope", "support"]
Path_ = Literal[
    "faq", "generated", "extractive", "no_answer", "tool", "form", "ticket", "handoff",
    "smalltalk", "refused", "clarify", "blocked", "error",
]


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Message(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str
    meta: dict[str, Any] = Field(default_factory=dict)


class Conversation(BaseModel):
    """One customer's conversation. `state` holds per-skill state (e.g. a half-filled form)
    so that no skill keeps anything in memory between turns."""

    id: str = Field(default_factory=lambda: new_id("conv_"))
    customer_id: str = "anonymous"
    messages: list[Message] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)

    def user_turns(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    def last_assistant(self) -> Message | None:
        return next((m for m in reversed(self.messages) if m.role == "assistant"), None)


class Chunk(BaseModel):
    id: str
    text: str
    doc_id: str
    title: str
    section: str = ""
    type: Literal["product", "rule", "faq"]
    product: str | None = None
    version: str = "1"
    effective_date: str = ""
    source: str = ""  # path relative to the knowledge base
    score: float = 0.0  # similarity in [0, 1]


class Citation(BaseModel):
    doc_id: str
    title: str
    section: str = ""
    chunk_id: str = ""
    source: str = ""
    version: str = ""
    effective_date: str = ""

    @classmethod
    def of(cls, chunk: Chunk) -> "Citation":
        return cls(
            doc_id=chunk.doc_id, title=chunk.title, section=chunk.section, chunk_id=chunk.id,
            source=chunk.source, version=chunk.version, effective_date=chunk.effective_date,
        )


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None


class RouteDecision(BaseModel):
    intent: Intent
    confidence: float = 1.0
    urgency: list[str] = Field(default_factory=list)  # fraud, self_harm, hardship, ...
    reason: str = ""
    scores: dict[str, float] = Field(default_factory=dict)  # the classifier's probability per intent
    message: str | None = None  # what the skill should act on, when not this turn's text (after a clarification)


class GuardVerdict(BaseModel):
    allowed: bool = True
    text: str = ""  # the message as the pipeline should use it
    redacted: str = ""  # the message as logs and stores may keep it
    flags: list[str] = Field(default_factory=list)
    reply: str | None = None  # set when the guard answers instead of a skill
    notices: list[str] = Field(default_factory=list)  # e.g. "never share verification codes"


class Reply(BaseModel):
    text: str
    path: Path_
    citations: list[Citation] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    route: RouteDecision | None = None
    ticket: dict[str, Any] | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    trace_id: str = Field(default_factory=lambda: new_id("tr_"))
    conversation_id: str = ""
    flags: list[str] = Field(default_factory=list)
    chunks: list[Chunk] = Field(default_factory=list, exclude=True)  # retrieved, for audit/evals
    meta: dict[str, Any] = Field(default_factory=dict)
    tokens: int = 0


class Delta(BaseModel):
    """A streamed piece of a reply; the final `Reply` may differ after verification."""

    text: str


class Turn(BaseModel):
    """What a skill gets: the conversation so far (without this message), the guarded message,
    the route taken and the trace id of this turn."""

    conversation: Conversation
    message: str
    route: RouteDecision
    trace_id: str = Field(default_factory=lambda: new_id("tr_"))
