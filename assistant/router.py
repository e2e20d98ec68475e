"""Intent routing. Foundation version: every message goes to the answer skill."""

from __future__ import annotations

from assistant.config import Settings
from assistant.types import Conversation, RouteDecision


class Router:
    def __init__(self, settings: Settings):
        self.settings = settings

    def route(self, conversation: Conversation, message: str) -> RouteDecision:
        return RouteDecision(intent="answer", confidence=1.0, reason="default")
