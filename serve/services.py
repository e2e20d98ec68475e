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
            chat=ChatService(assistant, conversations, gate, metrics, form_fields=lambda: features.form_fields(),
                             clarify_labels=clarify_labels(settings)),
            staff=StaffAuth(settings.staff_api_keys, settings.staff_roles, settings.staff_default_roles),
            tokens=CustomerTokens(session_secret(settings)),
            limiter=ClientRateLimiter(settings.web_requests_per_minute), gate=gate, metrics=metrics,
            features=features,
        )

    @property
    def kb(self):
        return self.assistant.skills["answer"].kb

    def redact(self, text: str) -> str:
        return self.assistant.guard.redact(text)


def clarify_labels(settings: Settings) -> dict[str, str]:
    """intent -> the words a clarifying question uses for it (prompts/smalltalk.yaml), for buttons."""
    import yaml

    path = settings.prompts_dir / "smalltalk.yaml"
    try:
        replies = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    prefix = "clarify_label_"
    return {k[len(prefix):]: " ".join(str(v).split()) for k, v in replies.items() if k.startswith(prefix)}
