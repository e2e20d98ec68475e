"""Request and response bodies of the REST API (what /docs shows)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from assistant.types import Citation, Reply

ID = r"^[A-Za-z0-9_\-:.]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    type: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody
    request_id: str = Field("", description="this request's id (also in X-Request-Id): quote it to support")
    reference: str | None = Field(None, description="503 store_unavailable only: the reference of what was "
                                  "kept anyway (e.g. a spooled complaint), else null")


class SessionOut(BaseModel):
    customer_id: str
    customer_token: str = Field(description="send as `Authorization: Bearer <token>` on later calls")
    conversation_id: str


class ChatRequest(Strict):
    message: str = Field(min_length=1, max_length=8000)
    conversation_id: str | None = Field(None, pattern=ID, description="omit to start a new conversation")
    stream: bool = Field(False, description="answer as Server-Sent Events: session, delta..., reply, done")
    lang: str | None = Field(None, pattern=r"^[a-zA-Z\-]{2,12}$", description="the page's language (hint)")


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    section: str = ""
    chunk_id: str = ""
    url: str = Field("", description="opens the cited passage")
    version: str = ""
    effective_date: str = ""

    @classmethod
    def of(cls, n: int, c: Citation) -> "CitationOut":
        return cls(n=n, doc_id=c.doc_id, title=c.title, section=c.section, chunk_id=c.chunk_id,
                   url=passage_url(c.chunk_id) if c.chunk_id else "", version=c.version,
                   effective_date=c.effective_date)


def passage_url(chunk_id: str) -> str:
    return "/kb/chunks/" + quote(chunk_id, safe="")


class ReplyOut(BaseModel):
    text: str
    path: str = Field(description="how the answer was made: faq, generated, extractive, tool, ticket, ...")
    intent: str | None = None
    citations: list[CitationOut] = Field(default_factory=list)
    ticket: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    form: dict[str, Any] | None = Field(None, description="the eligibility form's open question: stage, field, "
                                        "label, kind, unit and choices (for quick-reply buttons)")
    trace_id: str
    conversation_id: str = ""
    flags: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def of(cls, reply: Reply) -> "ReplyOut":
        return cls(
            text=reply.text, path=reply.path, intent=reply.route.intent if reply.route else None,
            citations=[CitationOut.of(i, c) for i, c in enumerate(reply.citations, 1)],
            ticket=reply.ticket, tool_calls=[t.model_dump(mode="json") for t in reply.tool_calls],
            form=reply.meta.get("form") if isinstance(reply.meta.get("form"), dict) else None,
            trace_id=reply.trace_id, conversation_id=reply.conversation_id, flags=reply.flags,
            timings_ms=reply.timings_ms,
        )


class ChatResponse(BaseModel):
    conversation_id: str
    reply: ReplyOut
    session: SessionOut | None = Field(None, description="set when this call started a new session")


class MessageOut(BaseModel):
    role: str
    content: str
    trace_id: str | None = None
    path: str | None = None
    feedback: str | None = None


class ConversationOut(BaseModel):
    id: str
    messages: list[MessageOut]


class FeedbackRequest(Strict):
    conversation_id: str = Field(pattern=ID)
    trace_id: str = Field(pattern=ID)
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=1000)


class PassageOut(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    section: str
    text: str
    type: str
    product: str | None = None
    version: str
    effective_date: str
    source: str


class ComplianceRequest(Strict):
    text: str = Field(min_length=1, max_length=20000)
    product: str | None = Field(None, max_length=40)
    channel: Literal["sms", "push", "email", "banner", "social"] | None = None


class TicketPatch(Strict):
    status: str | None = Field(None, min_length=1, max_length=40, description="e.g. acknowledged, resolved")
    note: str | None = Field(None, max_length=2000, description="kept in the ticket's history")
    extend: bool = Field(False, description="extend the resolution deadline; the note is the notice to the customer")
    confirm: bool = Field(False, description="must be true for a move that ends the ticket (resolved, closed)")
