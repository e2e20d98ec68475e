"""Small talk, out-of-scope requests and clarifying questions: canned replies from
prompts/smalltalk.yaml, no LLM.

`SmalltalkSkill` answers greetings, thanks, "are you a robot?" and the like, and politely declines
out-of-scope requests (path "refused"). `ClarifySkill` asks which of the likeliest intents the
customer means when the router is unsure (RouteDecision.reason == "low_confidence"); the router
reads the answer from conversation.state["router"] on the next turn."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import yaml

from assistant.config import Settings
from assistant.routing.router import CLARIFY_STATE_KEY
from assistant.knowledge.terms import Terms, load_terms
from assistant.types import Delta, Reply, RouteDecision, Turn

CANNED = "smalltalk.yaml"
CLARIFY_INTENTS = ("answer", "eligibility", "complaint", "handoff")  # what a clarifying question offers
CLARIFY_OPTIONS = 2


class Canned:
    """prompts/smalltalk.yaml: `replies` (texts with {slots}) and `kinds` (patterns)."""

    def __init__(self, settings: Settings, terms: Terms | None = None):
        data = _load(Path(settings.prompts_dir) / CANNED)
        self.replies: dict[str, str] = {str(k): str(v) for k, v in data["replies"].items()}
        self.kinds: dict[str, list[re.Pattern[str]]] = {
            k: [re.compile(p, re.I) for p in ps] for k, ps in (data.get("kinds") or {}).items()}
        lender = (terms or load_terms(settings.terms_file)).lender
        self.values = {"hotline": lender.hotline, "hotline_hours": getattr(lender, "hotline_hours", "")}

    def kind_of(self, message: str) -> str:
        return next((k for k, ps in self.kinds.items() if any(p.search(message) for p in ps)), "default")

    def say(self, key: str, **values: Any) -> str:
        return " ".join(self.replies[key].format(**(self.values | values)).split())


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("replies"), dict):
        raise ValueError(f"{path}: expected `replies:` (a mapping) and `kinds:`")
    return data


class SmalltalkSkill:
    name = "smalltalk"

    def __init__(self, settings: Settings, terms: Terms | None = None):
        self.canned = Canned(settings, terms)

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield self.respond(turn)

    def respond(self, turn: Turn) -> Reply:
        if turn.route.reason == "low_confidence":  # the pipeline normally sends these to ClarifySkill
            return clarifying_reply(turn, self.canned)
        if turn.route.intent == "out_of_scope":
            return Reply(text=self.canned.say("out_of_scope"), path="refused", trace_id=turn.trace_id,
                         meta={"smalltalk": "out_of_scope"})
        kind = self.canned.kind_of(turn.message)
        return Reply(text=self.canned.say(kind), path="smalltalk", trace_id=turn.trace_id, meta={"smalltalk": kind})


class ClarifySkill:
    name = "clarify"

    def __init__(self, settings: Settings, terms: Terms | None = None):
        self.canned = Canned(settings, terms)

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield clarifying_reply(turn, self.canned)


def clarify_options(decision: RouteDecision, n: int = CLARIFY_OPTIONS) -> list[str]:
    """The likeliest intents a clarifying question offers, best first."""
    ranked = sorted(CLARIFY_INTENTS, key=lambda i: decision.scores.get(i, 0.0), reverse=True)
    return ranked[:n]


def clarifying_reply(turn: Turn, canned: Canned) -> Reply:
    """Ask which option the customer means; remember the options and the message for the router."""
    options = clarify_options(turn.route)
    # The router takes the message to act on from the conversation (the pipeline keeps it redacted).
    turn.conversation.state[CLARIFY_STATE_KEY] = {"clarify_options": options}
    listed = canned.replies["clarify_separator"].join(
        canned.say("clarify_option", number=i + 1, label=canned.say(f"clarify_label_{intent}"))
        for i, intent in enumerate(options))
    return Reply(text=canned.say("clarify", options=listed), path="clarify", trace_id=turn.trace_id,
                 meta={"clarify": {"options": options, "best": turn.route.intent,
                                   "confidence": turn.route.confidence}})
