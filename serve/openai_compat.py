"""POST /v1/chat/completions: the assistant behind the OpenAI chat API, so any OpenAI client,
LangChain or an evaluation tool can talk to it. Stateless: the conversation is the `messages`
list. The reply's citations, path, ticket and trace id travel in the extra field `meadow`.

Streaming sends the role chunk at once and the verified answer after the turn: the assistant
may replace a generated draft after checking it, and OpenAI clients cannot un-receive text."""

from __future__ import annotations

import json
import re
import time
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.types import Conversation, Message, Reply
from serve.api import ERRORS, customer_id_of
from serve.auth import Caller
from serve.deps import customer_caller, services
from serve.limits import watching
from serve.schemas import ReplyOut
from serve.services import Services

router = APIRouter(prefix="/v1", tags=["openai"])
MODEL_ID = "meadow-assistant"
STREAM_PIECE_CHARS = 24


class TextPart(BaseModel):
    type: str = Field(max_length=40)
    text: str | None = Field(None, max_length=20000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, top_p, user, ... are accepted and ignored
    model: str = Field(MODEL_ID, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


@router.get("/models")
def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "meadow"}]}


@router.post("/chat/completions", responses=ERRORS)
async def chat_completions(body: ChatCompletionRequest, request: Request, who: Caller = Depends(customer_caller),
                           s: Services = Depends(services)):
    conversation, message = to_conversation(body, customer_id_of(who) or "api")
    async with watching(request) as abandon:  # a client that hangs up gives its turn slot back at once
        if not body.stream:
            reply = await s.chat.reply(conversation, message, channel="openai", persist=False, abandon=abandon)
            return JSONResponse(completion(reply, body.model))
        events = await s.chat.stream(conversation, message, channel="openai", persist=False, abandon=abandon)
    return StreamingResponse(_chunks(events, body.model), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def to_conversation(body: ChatCompletionRequest, customer_id: str) -> tuple[Conversation, str]:
    """Earlier user/assistant messages become the conversation; the last must be the user's."""
    *earlier, last = body.messages
    if last.role != "user" or not last.text().strip():
        raise HTTPException(422, "the last message must be a non-empty user message")
    history = [Message(role=m.role, content=m.text()) for m in earlier if m.role in ("user", "assistant")]
    return Conversation(customer_id=customer_id, messages=history), last.text()


def completion(reply: Reply, model: str) -> dict[str, Any]:
    prompt_tokens = 0
    return {
        "id": "chatcmpl-" + reply.trace_id, "object": "chat.completion", "created": int(time.time()),
        "model": model or MODEL_ID,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": reply.tokens,
                  "total_tokens": prompt_tokens + reply.tokens},
        "meadow": ReplyOut.of(reply).model_dump(mode="json"),
    }


async def _chunks(events: AsyncIterator, model: str) -> AsyncIterator[str]:
    created = int(time.time())
    chunk_id = "chatcmpl-" + str(created)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model or MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    reply: Reply | None = None
    try:
        async for event in events:
            if isinstance(event, Reply):
                reply = event
    except Exception:
        import logging

        logging.getLogger("serve.openai").exception("streamed completion failed")
        yield "data: " + json.dumps({"error": {"type": "internal_error",
                                               "message": "the assistant failed on this message"}}) + "\n\n"
        return
    if reply is not None:
        chunk_id = "chatcmpl-" + reply.trace_id
        for piece in pieces(reply.text):
            yield chunk({"content": piece})
        yield chunk({}, "stop", meadow=ReplyOut.of(reply).model_dump(mode="json"))
    yield "data: [DONE]\n\n"


def pieces(text: str, size: int = STREAM_PIECE_CHARS) -> list[str]:
    """Split after whitespace into pieces of about `size` characters; joined they give `text`."""
    out, current = [], ""
    for token in re.findall(r"\S+\s*|\s+", text):
        current += token
        if len(current) >= size:
            out.append(current)
            current = ""
    return out + [current] if current else out
