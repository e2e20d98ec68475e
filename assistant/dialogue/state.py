"""Typed dialogue state, kept in conversation.state["dialogue"] as a plain dict (JSON-safe, so the
conversation store keeps it as it keeps any other skill's state).

A skill that changes something the rest of the conversation must know (a ticket opened, a form
cancelled, a vulnerability signal) appends an event with `record_event`, as a tracker would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from assistant.types import Conversation, utcnow

STATE_KEY = "dialogue"
MAX_EVENTS = 50  # the state travels with every turn: keep it small


class Topic(BaseModel):
    """What the customer is talking about: the last product, term and amount named."""

    product: str | None = None  # a key of terms.yaml's products (cash, flex, mall, business)
    term_months: int | None = None
    amount: float | None = None
    question: str | None = None  # the last stand-alone question, what a follow-up is rewritten against


class DialogueEvent(BaseModel):
    kind: str  # e.g. form_cancelled, interrupted, ticket_opened, vulnerability, followup_rewritten
    skill: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


class DialogueState(BaseModel):
    topic: Topic = Field(default_factory=Topic)
    tickets: list[str] = Field(default_factory=list)  # references opened or linked in this conversation
    vulnerability: str | None = None  # kind of the last signal (hardship, distress, self_harm, ...)
    events: list[DialogueEvent] = Field(default_factory=list)

    def last_event(self, kind: str) -> DialogueEvent | None:
        return next((e for e in reversed(self.events) if e.kind == kind), None)


def load_state(conversation: Conversation) -> DialogueState:
    """The conversation's dialogue state; a missing or unreadable one starts afresh."""
    raw = conversation.state.get(STATE_KEY)
    if not isinstance(raw, dict):
        return DialogueState()
    try:
        return DialogueState.model_validate(raw)
    except ValueError:
        return DialogueState()


def save_state(conversation: Conversation, state: DialogueState) -> None:
    state.events = state.events[-MAX_EVENTS:]
    conversation.state[STATE_KEY] = state.model_dump(mode="json")


def record_event(conversation: Conversation, kind: str, /, skill: str | None = None, **data: Any) -> DialogueEvent:
    """Append an event to the conversation's dialogue state (and keep a ticket reference it names)."""
    state = load_state(conversation)
    event = DialogueEvent(kind=kind, skill=skill, data=data)
    state.events.append(event)
    reference = data.get("ticket") or data.get("reference")
    if isinstance(reference, str) and reference and reference not in state.tickets:
        state.tickets.append(reference)
    if kind == "vulnerability" and data.get("kind"):
        state.vulnerability = str(data["kind"])
    save_state(conversation, state)
    return event
