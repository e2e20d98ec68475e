"""Everything the routes and pages use, built once per worker from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from assistant.config import Settings
from assistant.pipeline import Assistant
from serve.auth import CustomerTokens, StaffAuth, session_secret
from serve.chat import ChatService
from serve.conversations import ConversationStoreLike, make_conversation_store
from serve.features import Features
from serve.limits import ClientRateLimiter, TurnGate
from serve.metrics import WebMetrics

log = logging.getLogger("serve")


@dataclass
class Services:
    settings: Settings
    assistant: Assistant
    conversations: ConversationStoreLike
    chat: ChatService
    staff: StaffAuth
    tokens: CustomerTokens
    limiter: ClientRateLimiter
    gate: TurnGate
    metrics: WebMetrics
    features: Features
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, assistant: Assistant | None = None) -> "Services":
        if assistant is None:
            from assistant.components import build_assistant

            assistant = build_assistant(settings)
        conversations = make_conversation_store(settings)
        gate = TurnGate(settings.web_turn_slots, settings.web_turn_queue, settings.web_queue_timeout_s)
        metrics = WebMetrics()
        features = Features.build(settings, assistant)
        return cls(
            settings=settings, assistant=assistant, conversations=conversations,
            chat=ChatService(assistant, conversations, gate, metrics, form_fields=lambda: features.form_fields()),
            staff=StaffAuth(settings.staff_api_keys), tokens=CustomerTokens(session_secret(settings)),
            limiter=ClientRateLimiter(settings.web_requests_per_minute), gate=gate, metrics=metrics,
            features=features,
        )

    @property
    def kb(self):
        return self.assistant.skills["answer"].kb

    def redact(self, text: str) -> str:
        return self.assistant.guard.redact(text)
