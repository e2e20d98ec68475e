"""One customer turn for every channel (REST, OpenAI-compatible, Gradio, widget): load the
customer's conversation, run the assistant off the event loop under the turn gate, save."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from assistant.pipeline import Assistant
from assistant.types import Conversation, Delta, Reply, utcnow
from serve.conversations import ConversationStoreLike
from serve.forms import form_hint
from serve.limits import TurnGate
from serve.logging import trace_id_var
from serve.metrics import WebMetrics

log = logging.getLogger("serve.chat")


class NotFound(LookupError):
    """No such conversation or reply for this customer (whether it exists for another is not said)."""


@dataclass
class Session:
    customer_id: str
    customer_token: str
    conversation_id: str


class ChatService:
    def __init__(self, assistant: Assistant, store: ConversationStoreLike, gate: TurnGate, metrics: WebMetrics,
                 form_fields: Callable[[], list[Any]] = list, clarify_labels: dict[str, str] | None = None):
        self.assistant = assistant
        self.store = store
        self.gate = gate
        self.metrics = metrics
        self.form_fields = form_fields  # the scorecard's applicant fields, for the form's quick replies
        self.clarify_labels = clarify_labels or {}  # intent -> what a clarifying question calls it

    # --- conversations ------------------------------------------------------------------------

    def new_conversation(self, customer_id: str) -> Conversation:
        conversation = Conversation(customer_id=customer_id)
        self.store.save(conversation)
        return conversation

    def conversation(self, customer_id: str, conversation_id: str | None) -> Conversation:
        """The customer's conversation; without an id a new one, stored with its first turn
        (one write fewer per new conversation). NotFound for an id the customer does not own."""
        if not conversation_id:
            return Conversation(customer_id=customer_id)
        conversation = self.store.load(conversation_id, customer_id)
        if conversation is None:
            raise NotFound("conversation not found")
        return conversation

    # --- turns --------------------------------------------------------------------------------

    async def reply(self, conversation: Conversation, message: str, channel: str, persist: bool = True) -> Reply:
        lease, waited = await self._acquire()
        try:
            return await run_in_threadpool(self._reply_sync, conversation, message, channel, persist, waited)
        finally:
            lease.release()

    async def stream(self, conversation: Conversation, message: str, channel: str,
                     persist: bool = True) -> AsyncIterator[Delta | Reply]:
        """Acquire the slot now (Busy is raised here, before any response starts), then stream."""
        lease, waited = await self._acquire()
        return self._stream_events(lease, conversation, message, channel, persist, waited)

    async def _acquire(self):
        started = time.perf_counter()
        lease = await self.gate.acquire()
        return lease, _ms(started)

    async def _stream_events(self, lease, conversation: Conversation, message: str, channel: str,
                             persist: bool, waited: float) -> AsyncIterator[Delta | Reply]:
        try:
            events = self._events_sync(conversation, message, channel, persist, waited)
            async for event in iterate_in_threadpool(events):
                yield event
        finally:
            lease.release()

    def _reply_sync(self, conversation: Conversation, message: str, channel: str, persist: bool,
                    waited: float) -> Reply:
        reply: Reply | None = None
        for event in self._events_sync(conversation, message, channel, persist, waited):
            if isinstance(event, Reply):
                reply = event
        assert reply is not None
        return reply

    def _events_sync(self, conversation: Conversation, message: str, channel: str, persist: bool,
                     waited: float = 0.0) -> Iterator[Delta | Reply]:
        """The turn, with the web's own stages timed too: queue (waiting for a slot), turn_wall (the
        pipeline including its audit write) and save (the conversation)."""
        self.metrics.turns_active.inc()
        started = time.perf_counter()
        try:
            for event in self.assistant.stream(conversation, message):
                if isinstance(event, Reply):
                    trace_id_var.set(event.trace_id)
                    event.meta["form"] = form_hint(event, self.form_fields, self.clarify_labels)
                    event.timings_ms.update(queue=waited, turn_wall=_ms(started))
                    if persist:
                        saving = time.perf_counter()
                        self.store.save(conversation)
                        event.timings_ms["save"] = _ms(saving)
                    self._observe(event, conversation, channel)
                yield event
        finally:
            self.metrics.turns_active.dec()

    def _observe(self, reply: Reply, conversation: Conversation, channel: str) -> None:
        self.metrics.observe_reply(reply, channel)
        said = next((m.content for m in reversed(conversation.messages) if m.role == "user"), "")
        log.info("turn", extra={
            "trace_id": reply.trace_id, "said": said[:300], "conversation_id": conversation.id, "channel": channel,
            "path": reply.path, "intent": reply.route.intent if reply.route else None,
            "citations": [c.chunk_id for c in reply.citations], "flags": reply.flags,
            "ticket": (reply.ticket or {}).get("id"), "timings_ms": reply.timings_ms, "tokens": reply.tokens,
        })

    # --- feedback -----------------------------------------------------------------------------

    def feedback(self, customer_id: str, conversation_id: str, trace_id: str, rating: str,
                 comment: str = "") -> None:
        """Store a thumbs up/down on one reply, in the conversation itself (so it is scoped the same)."""
        conversation = self.store.load(conversation_id, customer_id)
        if conversation is None:
            raise NotFound("conversation not found")
        for message in conversation.messages:
            if message.role == "assistant" and message.meta.get("trace_id") == trace_id:
                message.meta["feedback"] = {"rating": rating, "comment": comment, "at": utcnow().isoformat()}
                self.store.save(conversation)
                self.metrics.feedback.labels(rating=rating).inc()
                log.info("feedback", extra={"trace_id": trace_id, "rating": rating})
                return
        raise NotFound("reply not found in this conversation")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
