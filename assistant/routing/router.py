"""Intent routing: which skill answers a customer message.

A trained classifier on sentence embeddings (assistant/routing/textclf.py) decides between the six
intents; explicit rules from knowledge_base/rules/routing.yaml come first where a pattern is more
reliable ("speak to a human", "how do I complain?"), urgency flags (fraud, self-harm, threats by
collectors, ...) send the conversation to a person, and the conversation decides the rest:
a question about what a skill already did (the complaint ticket opened earlier, in this
conversation or another) goes back to that skill as a follow-up, an active form keeps its answers,
two failed answers in a row hand off, a reply to a clarifying question picks its option. Below
`settings.router_threshold` the decision carries reason="low_confidence": the pipeline then asks a
clarifying question instead of guessing.

Before all of that, the dialogue comes first: a customer in distress (knowledge_base/rules/
vulnerability.yaml, which also names the fraud, self-harm, bereavement and hardship urgency flags)
goes to the "support" skill (hand-off where it is not installed), and a turn
during an active form is checked for interruptions (assistant/dialogue/interrupts.py): cancel
ends the form, a question is answered (the pipeline then re-asks the form's question), a question
about a complaint already made gets its status, a hand-off request a person; the rest (answers,
corrections, a product switch) stays with the form."""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field

from assistant.config import Settings
from assistant.guard.vulnerability import (VulnerabilityRules, VulnerabilitySignal, detect_vulnerability,
                                           load_vulnerability_rules, vulnerability_rules_file)
from assistant.dialogue.followup import FollowupRules
from assistant.dialogue.interrupts import Interrupt, InterruptRules, PatternSet, classify_interrupt
from assistant.routing.textclf import EmbeddingClassifier
from assistant.types import Conversation, Intent, RouteDecision

INTENTS: tuple[str, ...] = get_args(Intent)
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "router_intents.npz"
# Skills that keep a form in conversation.state[<key>] with "active": True while they collect answers.
FORM_STATE_KEYS = {"eligibility": "eligibility", "complaint": "complaint"}
CLARIFY_STATE_KEY = "router"
FOLLOWUP_REASON = "followup:"  # + the follow-up rule's name: answer about what was done, do not redo it
INTERRUPT_REASON = "interrupt:"  # + the kind: a turn that interrupted an active form
CANCEL_REASON = "form:cancel"
VULNERABLE_REASON = "vulnerable:"  # + the signal's kind
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|i'll|me|my|mine|myself|we|we're|our|us)\b", re.I)


class Rule(BaseModel):
    name: str
    intent: Intent
    patterns: list[str]
    unless: list[str] = Field(default_factory=list)

    def matches(self, text: str) -> bool:
        return _any(self.patterns, text) and not _any(self.unless, text)


class FollowupRule(Rule):
    """Fires only while conversation.state holds `state` (a dotted path such as "complaint.tickets";
    without one, in any conversation: a question about something done in an earlier one) and no
    form is active; with `right_after`, only when the last reply came from this intent's skill."""

    state: str | None = None
    right_after: bool = False

    def applies(self, conversation: Conversation, text: str) -> bool:
        if (self.state and not _state_at(conversation.state, self.state)) or _active_form(conversation):
            return False
        if self.right_after:
            last = conversation.last_assistant()
            if last is None or last.meta.get("intent") != self.intent:
                return False
        return self.matches(text)


class UrgencyRules(BaseModel):
    requires_first_person: bool = True
    unless: list[str] = Field(default_factory=list)
    flags: dict[str, list[str]]


class RoutingRules(BaseModel):
    rules: list[Rule] = Field(default_factory=list)
    followups: list[FollowupRule] = Field(default_factory=list)
    urgency: UrgencyRules
    handoff_on: list[str] = Field(default_factory=list)
    failure_paths: list[str] = Field(default_factory=lambda: ["no_answer"])
    failures_before_handoff: int = Field(2, ge=1)
    failure_exempt_intents: list[str] = Field(default_factory=lambda: ["smalltalk", "out_of_scope"])
    form_break_confidence: float = Field(0.85, ge=0, le=1)
    clarify_keywords: dict[str, list[str]] = Field(default_factory=dict)
    interrupts: dict[str, PatternSet] = Field(default_factory=dict)
    followup_rewrite: FollowupRules = Field(default_factory=FollowupRules)

    @cached_property
    def interrupt_rules(self) -> InterruptRules:
        """The interrupt patterns, with the hand-off rule's and the complaint follow-ups' joined in."""
        rules = InterruptRules(kinds=dict(self.interrupts))
        for rule in self.rules:
            if rule.intent == "handoff":
                rules = rules.with_kind("handoff", PatternSet(patterns=rule.patterns, unless=rule.unless))
        for followup in self.followups:
            if followup.intent == "complaint" and not followup.right_after:
                rules = rules.with_kind("complaint_status", PatternSet(patterns=followup.patterns,
                                                                       unless=followup.unless))
        return rules

    def detect_urgency(self, text: str) -> list[str]:
        if self.urgency.requires_first_person and not _FIRST_PERSON.search(text):
            return []
        if _any(self.urgency.unless, text):
            return []
        return [flag for flag, patterns in self.urgency.flags.items() if _any(patterns, text)]

    def first_rule(self, text: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(text)), None)

    def first_followup(self, conversation: Conversation, text: str) -> FollowupRule | None:
        return next((rule for rule in self.followups if rule.applies(conversation, text)), None)


def load_routing_rules(path: Path) -> RoutingRules:
    return _load_rules(Path(path).resolve())


@lru_cache(maxsize=8)
def _load_rules(path: Path) -> RoutingRules:
    rules = RoutingRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    for pattern in _all_patterns(rules):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{path}: bad pattern {pattern!r}: {exc}") from exc
    return rules


def routing_rules_file(settings: Settings) -> Path:
    return settings.knowledge_dir / "rules" / "routing.yaml"


def router_model_file(settings: Settings) -> Path:
    return settings.router_model or DEFAULT_MODEL


class Router:
    """`route(conversation, message)` -> RouteDecision. The embedder is the project's
    sentence-transformers model (assistant.knowledge.embeddings.load_embedder); loaded on first use."""

    def __init__(self, settings: Settings, embedder: Any = None, model: EmbeddingClassifier | None = None,
                 rules: RoutingRules | None = None):
        self.settings = settings
        self._embedder = embedder
        self._model = model
        self.rules = rules or load_routing_rules(routing_rules_file(settings))

    @cached_property
    def model(self) -> EmbeddingClassifier:
        model = self._model or EmbeddingClassifier.load(router_model_file(self.settings))
        unknown = set(model.labels) - set(INTENTS)
        if unknown:
            raise ValueError(f"router model labels {sorted(unknown)} are not intents {INTENTS}")
        trained_on = model.meta.get("embedding_model")
        if trained_on and trained_on != self.settings.embedding_model:
            raise ValueError(f"router model was trained on embeddings of {trained_on!r}, "
                             f"settings.embedding_model is {self.settings.embedding_model!r}: retrain it")
        return model

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from assistant.knowledge.embeddings import load_embedder

            self._embedder = load_embedder(self.settings)
        return self._embedder

    def classify(self, message: str) -> dict[str, float]:
        return self.classify_many([message])[0]

    def classify_many(self, messages: list[str]) -> list[dict[str, float]]:
        from assistant.knowledge.embeddings import embed

        probs = self.model.proba(embed(self.embedder, messages))
        return [{intent: round(float(row[self.model.labels.index(intent)]), 4) if intent in self.model.labels else 0.0
                 for intent in INTENTS} for row in probs]

    def route(self, conversation: Conversation, message: str) -> RouteDecision:
        return self.decide(conversation, message, self.classify(message))

    def decide(self, conversation: Conversation, message: str, scores: dict[str, float]) -> RouteDecision:
        """The decision for a message whose classifier scores are known. The vulnerability rules read
        the message itself (the guard's flags come from the same file)."""
        best = max(scores, key=scores.get)
        signal = detect_vulnerability(message, self.vulnerability_rules)
        urgency = self.urgency(message, signal)

        def decide(intent: str, reason: str, confidence: float = 1.0, **extra: Any) -> RouteDecision:
            return RouteDecision(intent=intent, confidence=round(confidence, 4), urgency=urgency, reason=reason,
                                 scores=scores, **extra)

        kind = signal.kind if signal is not None else None
        if kind is not None:  # never a form or an offer of credit: care first, then a person
            urgency = list(dict.fromkeys([*urgency, kind]))
            return decide("support" if "support" in INTENTS else "handoff", VULNERABLE_REASON + kind)
        form = _active_form(conversation)
        rule = self.rules.first_rule(message)
        if rule is not None and rule.intent == "handoff":
            return decide("handoff", f"rule:{rule.name}")
        if set(urgency) & set(self.rules.handoff_on):
            return decide("handoff", "urgent:" + ",".join(urgency))
        if form:
            interrupted = self._interrupted(message, form, decide)
            if interrupted is not None:
                return interrupted
        picked = self._clarified(conversation, message)
        if picked is not None:
            intent, original = picked
            return decide(intent, "clarified", message=original)
        followup = self.rules.first_followup(conversation, message)
        if followup is not None:
            return decide(followup.intent, FOLLOWUP_REASON + followup.name)
        if rule is not None and rule.intent == "answer" and self._failed_twice(conversation):
            return decide("handoff", "two_failures", scores.get("handoff", 0.0))  # a third try would fail too
        if rule is not None:
            return decide(rule.intent, f"rule:{rule.name}")
        if form and not (best in ("complaint", "handoff") and best != form
                         and scores[best] >= self.rules.form_break_confidence):
            return decide(form, f"form:{form}", scores.get(form, 0.0))
        if self._failed_twice(conversation) and best not in self.rules.failure_exempt_intents:
            return decide("handoff", "two_failures", scores["handoff"])
        if scores[best] < self.settings.router_threshold:
            return decide(best, "low_confidence", scores[best])
        return decide(best, "classifier", scores[best])

    # --- dialogue --------------------------------------------------------------------------------
    def interrupt(self, message: str) -> Interrupt | None:
        return classify_interrupt(message, self.rules.interrupt_rules)

    def _interrupted(self, message: str, form: str, decide: Any) -> RouteDecision | None:
        """A turn during an active form: the route its interruption takes, None to stay with the form
        (an answer, a correction, a product switch). Hand-off requests and urgency come before."""
        found = self.interrupt(message)
        if found is None or found.kind in ("correction", "handoff"):
            return None
        if found.kind == "cancel":
            return decide(form, CANCEL_REASON)
        if found.kind == "complaint_status":
            return decide("complaint", FOLLOWUP_REASON + "complaint_lookup")
        if found.kind == "complaint":
            return decide("complaint", INTERRUPT_REASON + "complaint")
        if found.kind == "question":
            return decide("answer", INTERRUPT_REASON + "question")
        return None

    @cached_property
    def vulnerability_rules(self) -> VulnerabilityRules:
        return load_vulnerability_rules(vulnerability_rules_file(self.settings))

    def urgency(self, message: str, signal: VulnerabilitySignal | None) -> list[str]:
        """The urgency flags of a message: routing.yaml's own (a collector's threat) and, named as
        flags (scam -> fraud), the kinds the vulnerability rules found: one file holds those lists."""
        as_flag = {kind: flag for flag, kind in self.vulnerability_rules.flag_kinds.items()}
        found = [as_flag[k] for k in (signal.kinds if signal else []) if k in as_flag]
        return list(dict.fromkeys([*self.rules.detect_urgency(message), *found]))

    # --- context ---------------------------------------------------------------------------------
    def _failed_twice(self, conversation: Conversation) -> bool:
        replies = [m for m in conversation.messages if m.role == "assistant"]
        recent = replies[-self.rules.failures_before_handoff:]
        return (len(recent) == self.rules.failures_before_handoff
                and all(m.meta.get("path") in self.rules.failure_paths for m in recent))

    def _clarified(self, conversation: Conversation, message: str) -> tuple[str, str | None] | None:
        """After a clarifying question: the option the reply picks, and the message to act on."""
        last = conversation.last_assistant()
        state = conversation.state.get(CLARIFY_STATE_KEY) or {}
        options = state.get("clarify_options") or []
        if last is None or last.meta.get("path") != "clarify" or not options:
            return None
        text = message.strip().lower()
        number = re.fullmatch(r"\(?([1-9])[).]?|option\s+([1-9])", text)
        if number:
            index = int(number.group(1) or number.group(2)) - 1
            chosen = options[index] if index < len(options) else None
        else:
            hits = [i for i in options if _any(self.rules.clarify_keywords.get(i, []), text)]
            chosen = hits[0] if len(hits) == 1 else None
        if chosen is None:
            return None
        short = len(text.split()) <= 4  # "the second one", "a complaint": act on the message before
        before = next((m.content for m in reversed(conversation.messages) if m.role == "user"), None)
        return chosen, (before if short else None)


def _active_form(conversation: Conversation) -> str | None:
    for key, intent in FORM_STATE_KEYS.items():
        state = conversation.state.get(key)
        if isinstance(state, dict) and state.get("active"):
            return intent
    return None


def is_followup(route: RouteDecision) -> bool:
    return route.reason.startswith(FOLLOWUP_REASON)


def _state_at(state: dict[str, Any], dotted: str) -> Any:
    value: Any = state
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _any(patterns: list[str], text: str) -> bool:
    return any(_compiled(p).search(text) for p in patterns)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


def _all_patterns(rules: RoutingRules) -> list[str]:
    found = [p for r in [*rules.rules, *rules.followups] for p in r.patterns + r.unless] + rules.urgency.unless
    found += [p for ps in rules.urgency.flags.values() for p in ps]
    found += rules.followup_rewrite.cues + [p for ps in rules.interrupts.values() for p in ps.patterns + ps.unless]
    return found + [p for ps in rules.clarify_keywords.values() for p in ps]
