"""One customer turn for every channel (REST, OpenAI-compatible, Gradio, widget): load the
customer's conversation, run the assistant off the event loop under the turn gate, save."""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from assistant.pipeline import Assistant
from assistant.store.db import StoreUnavailable
from assistant.types import Conversation, Delta, Reply, RouteDecision, utcnow
from serve.conversations import ConversationStoreLike
from serve.forms import form_hint
from serve.limits import Abandon, ClientGone, ConversationLocks, TurnGate
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
                 form_fields: Callable[[], list[Any]] = list, clarify_labels: dict[str, str] | None = None,
                 locks: ConversationLocks | None = None):
        self.assistant = assistant
        self.store = store
        self.gate = gate
        self.metrics = metrics
        self.form_fields = form_fields  # the scorecard's applicant fields, for the form's quick replies
        self.clarify_labels = clarify_labels or {}  # intent -> what a clarifying question calls it
        self.locks = locks or ConversationLocks(gate.timeout_s, gate.retry_after_s)

    # --- conversations ------------------------------------------------------------------------

    def new_conversation(self, customer_id: str) -> Conversation:
        conversation = Conversation(customer_id=customer_id)
        with store_errors():
            self.store.save(conversation)
        return conversation

    def conversation(self, customer_id: str, conversation_id: str | None) -> Conversation:
        """The customer's conversation; without an id a new one, stored with its first turn
        (one write fewer per new conversation). NotFound for an id the customer does not own."""
        if not conversation_id:
            return Conversation(customer_id=customer_id)
        with store_errors():
            conversation = self.store.load(conversation_id, customer_id)
        if conversation is None:
            raise NotFound("conversation not found")
        return conversation

    # --- turns --------------------------------------------------------------------------------

    async def reply(self, conversation: Conversation, message: str, channel: str, persist: bool = True,
                    abandon: Abandon | None = None, route: RouteDecision | None = None, skill: Any = None) -> Reply:
        """One turn, one at a time per conversation (in arrival order). `abandon`: the client hung up,
        so the turn leaves the queue or stops at its next piece. `route`: skip the router (the caller
        said what the message is, e.g. POST /api/complaints); the guards and the audit still run."""
        async with self.locks.hold(conversation.id if persist else None, abandon):
            lease, waited = await self._acquire(abandon)
            try:
                return await run_in_threadpool(self._reply_sync, conversation, message, channel, persist, waited,
                                               abandon, route, skill)
            finally:
                lease.release()

    async def stream(self, conversation: Conversation, message: str, channel: str, persist: bool = True,
                     abandon: Abandon | None = None, route: RouteDecision | None = None
                     ) -> AsyncIterator[Delta | Reply]:
        """Take the conversation and a slot now (Busy is raised here, before any response starts), then stream."""
        held = await self.locks.acquire(conversation.id if persist else None, abandon)
        try:
            lease, waited = await self._acquire(abandon)
        except BaseException:
            held.release()
            raise
        return self._stream_events(lease, held, conversation, message, channel, persist, waited, abandon, route)

    async def _acquire(self, abandon: Abandon | None = None):
        started = time.perf_counter()
        lease = await self.gate.acquire(abandon)
        return lease, _ms(started)

    async def _stream_events(self, lease, held, conversation: Conversation, message: str, channel: str,
                             persist: bool, waited: float, abandon: Abandon | None,
                             route: RouteDecision | None) -> AsyncIterator[Delta | Reply]:
        abandon = abandon or Abandon()
        try:
            events = self._events_sync(conversation, message, channel, persist, waited, abandon, route)
            async for event in iterate_in_threadpool(events):
                yield event
        finally:  # also when the client hangs up mid-stream (the response task is cancelled)
            abandon.set()
            lease.release()
            held.release()

    def _reply_sync(self, conversation: Conversation, message: str, channel: str, persist: bool,
                    waited: float, abandon: Abandon | None = None, route: RouteDecision | None = None,
                    skill: Any = None) -> Reply:
        reply: Reply | None = None
        for event in self._events_sync(conversation, message, channel, persist, waited, abandon, route, skill):
            if isinstance(event, Reply):
                reply = event
        assert reply is not None
        return reply

    def _events_sync(self, conversation: Conversation, message: str, channel: str, persist: bool,
                     waited: float = 0.0, abandon: Abandon | None = None,
                     route: RouteDecision | None = None, skill: Any = None) -> Iterator[Delta | Reply]:
        """The turn, with the web's own stages timed too: queue (waiting for a slot), turn_wall (the
        pipeline including its audit write) and save (the conversation). The conversation is reloaded
        first (a turn that waited its turn sees the one before it) and saved with a version check."""
        self.metrics.turns_active.inc()
        started = time.perf_counter()
        try:
            version = self._refresh(conversation) if persist else None
            before = len(conversation.messages)
            assistant = self.assistant if route is None else _routed(self.assistant, route, skill)
            events = assistant.stream(conversation, message)
            for event in events:
                if isinstance(event, Reply):
                    trace_id_var.set(event.trace_id)
                    event.meta["form"] = form_hint(event, self.form_fields, self.clarify_labels)
                    event.timings_ms.update(queue=waited, turn_wall=_ms(started))
                    if persist:
                        saving = time.perf_counter()
                        self._save(conversation, version, before, event)
                        event.timings_ms["save"] = _ms(saving)
                    self._observe(event, conversation, channel)
                elif abandon is not None and abandon.is_set():
                    events.close()  # stops the model at this piece: nobody is reading
                    raise ClientGone()
                yield event
        finally:
            self.metrics.turns_active.dec()

    def _refresh(self, conversation: Conversation) -> int | None:
        """Bring the conversation up to date with the store; its version (0: not stored yet)."""
        load = getattr(self.store, "load_versioned", None)
        if load is None:
            return None
        try:
            with store_errors():
                found = load(conversation.id, conversation.customer_id)
        except StoreUnavailable:  # went down since the caller loaded it: go on from the caller's copy
            return None
        if found is None:
            return 0
        fresh, version = found
        conversation.messages, conversation.state = fresh.messages, fresh.state
        return version

    def _save(self, conversation: Conversation, version: int | None, before: int, reply: Reply) -> None:
        """Save with the version check; when another worker saved in between, put this turn's messages
        after theirs and try again (so no turn is lost). Store down: the reply still goes out when it
        carries a reference the customer can quote (a spooled ticket), else StoreUnavailable."""
        from assistant.store.conversations import ConversationConflict

        try:
            for _ in range(SAVE_ATTEMPTS):
                try:
                    with store_errors():
                        self.store.save(conversation, expected_version=version)
                    return
                except ConversationConflict:
                    ours = conversation.messages[before:]
                    version = self._refresh(conversation)
                    before = len(conversation.messages)
                    conversation.messages = conversation.messages + ours
            raise StoreUnavailable("the conversation is busy: too many writes at once", retry_after_s=1)
        except StoreUnavailable as exc:
            reference = exc.reference or (reply.ticket or {}).get("id")
            log.error("conversation not saved", extra={"trace_id": reply.trace_id, "reference": reference})
            if not reference:
                raise
            reply.flags = sorted({*reply.flags, "conversation_not_saved"})

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
        from assistant.store.conversations import ConversationConflict

        for _ in range(SAVE_ATTEMPTS):
            conversation = self.conversation(customer_id, conversation_id)
            version = self._refresh(conversation)
            message = next((m for m in conversation.messages
                            if m.role == "assistant" and m.meta.get("trace_id") == trace_id), None)
            if message is None:
                break
            message.meta["feedback"] = {"rating": rating, "comment": comment, "at": utcnow().isoformat()}
            try:
                with store_errors():
                    self.store.save(conversation, expected_version=version)
            except ConversationConflict:  # a turn was saved in between: apply the rating to the new version
                continue
            self.metrics.feedback.labels(rating=rating).inc()
            log.info("feedback", extra={"trace_id": trace_id, "rating": rating})
            return
        raise NotFound("reply not found in this conversation")


SAVE_ATTEMPTS = 5


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """A database error on a conversation read or write becomes StoreUnavailable (-> 503, never a bare 500)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(f"the conversation store is unavailable ({type(exc).__name__})") from exc


def _routed(assistant: Assistant, route: RouteDecision, skill: Any = None) -> Assistant:
    """The same assistant (guard, skills, output guard, audit) with the route decided by the caller
    (and the skill for it, when the assistant was built without one)."""
    routed = copy.copy(assistant)
    routed.router = FixedRouter(route, assistant.router)
    if skill is not None and route.intent not in assistant.skills:
        routed.skills = {**assistant.skills, route.intent: skill}
    return routed


@dataclass
class FixedRouter:
    """Answers every route() with the caller's decision; anything else the pipeline asks of a router
    (its rules) comes from the real one."""

    decision: RouteDecision
    real: Any = None

    def route(self, conversation: Conversation, text: str, **_: Any) -> RouteDecision:
        return self.decision.model_copy()

    def __getattr__(self, name: str) -> Any:
        if name in ("decision", "real") or self.real is None:
            raise AttributeError(name)
        return getattr(self.real, name)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
