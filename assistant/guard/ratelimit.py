"""Per-session limits: messages per minute and conversation length.

The state lives in `conversation.state["guard"]`, which the app persists with the conversation,
so any worker serving the next message sees it (nothing is kept in process memory)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from assistant.config import Settings
from assistant.types import Conversation

WINDOW_S = 60.0


@dataclass(frozen=True)
class LimitExceeded:
    reason: str  # rate_limited | conversation_too_long
    limit: int
    retry_after_s: float = 0.0


def guard_state(conversation: Conversation) -> dict:
    return conversation.state.setdefault("guard", {})


class RateLimiter:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock

    def check(self, conversation: Conversation) -> LimitExceeded | None:
        """The limit this message would exceed, or None. Changes nothing."""
        state = guard_state(conversation)
        if int(state.get("turns", 0)) >= self.settings.max_turns:
            return LimitExceeded("conversation_too_long", self.settings.max_turns)
        recent = self._recent(state)
        if len(recent) >= self.settings.messages_per_minute:
            retry = max(0.0, recent[0] + WINDOW_S - self.clock())
            return LimitExceeded("rate_limited", self.settings.messages_per_minute, round(retry, 1))
        return None

    def record(self, conversation: Conversation) -> None:
        """Count one accepted message (into the window and the conversation length)."""
        state = guard_state(conversation)
        state["recent"] = [*self._recent(state), round(self.clock(), 3)]
        state["turns"] = int(state.get("turns", 0)) + 1

    def _recent(self, state: dict) -> list[float]:
        now = self.clock()
        return [t for t in state.get("recent", []) if now - float(t) < WINDOW_S]
