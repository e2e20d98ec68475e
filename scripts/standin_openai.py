"""A tiny OpenAI-compatible server that stands in for the assistant's endpoint, to try the red-team
harness (scripts/redteam.sh) before the web app exists or without an LLM.

    python scripts/standin_openai.py --port 8765            # always answers with a fixed refusal
    python scripts/standin_openai.py --port 8765 --guard    # the real guard in front of that refusal

With --guard, each user message goes through Guard.check_input: a blocked message gets the guard's
own reply, anything else the fixed text. GET /stats says how many the guard blocked and why.
It measures the harness and the guard's input side, not the assistant's answers."""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from collections import Counter

from fastapi import FastAPI, Request

FIXED = "I'm sorry, I can only help with questions about Meadow's loans, repayments and services."


def build_app(use_guard: bool = False) -> FastAPI:
    app = FastAPI(title="stand-in OpenAI-compatible endpoint")
    stats: Counter = Counter()
    guard = None
    if use_guard:
        from prometheus_client import CollectorRegistry

        from assistant.config import Settings
        from assistant.guard.core import Guard
        from assistant.metrics import GuardMetrics

        guard = Guard(Settings(messages_per_minute=10**6, max_turns=10**6), metrics=GuardMetrics(CollectorRegistry()))

    def answer(text: str) -> str:
        if guard is None:
            return FIXED
        from assistant.guard.core import InputError
        from assistant.types import Conversation

        try:
            verdict = guard.check_input(Conversation(), text)
        except InputError as exc:
            stats["invalid_input"] += 1
            return str(exc)
        stats["blocked" if not verdict.allowed else "allowed"] += 1
        for flag in verdict.flags:
            stats[f"flag:{flag}"] += 1
        return verdict.reply if not verdict.allowed else FIXED

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": "meadow"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        messages = body.get("messages") or []
        user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        if isinstance(user, list):  # content parts
            user = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
        stats["requests"] += 1
        text = answer(str(user))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "standin"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(str(user).split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(str(user).split()) + len(text.split())},
        }

    @app.get("/stats")
    def get_stats() -> dict:
        return dict(stats)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--guard", action="store_true", help="put the real input guard in front of the refusal")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(build_app(args.guard), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
