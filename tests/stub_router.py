"""A router stand-in shared by the pipeline tests that are not about routing (the trained router
needs a model file built by its own step)."""

from __future__ import annotations

from types import SimpleNamespace

from assistant.dialogue.followup import FollowupRules
from assistant.types import RouteDecision


class AnswerRouter:
    """Sends everything to the answer skill. Its rules are the defaults: no follow-up rewriting."""

    def __init__(self):
        self.rules = SimpleNamespace(followup_rewrite=FollowupRules())

    def route(self, conversation, message, **_):
        return RouteDecision(intent="answer", confidence=1.0, reason="test")
