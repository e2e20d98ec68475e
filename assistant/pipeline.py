"""Assistant: guard -> route -> skill -> guard -> audit, for one customer message."""

from __future__ import annotations

import logging
import time
from typing import Iterator, Protocol

from assistant.config import Settings
from assistant.guard.core import Guard, InputError
from assistant.routing.router import Router
from assistant.skills.base import Skill, final_reply
from assistant.types import Conversation, Delta, GuardVerdict, Message, Reply, RouteDecision, Turn, new_id

log = logging.getLogger(__name__)


class TurnRecorder(Protocol):
    """Where every turn is recorded (the append-only audit log)."""

    def record_turn(self, conversation: Conversation, verdict: GuardVerdict, reply: Reply) -> None: ...


class Assistant:
    def __init__(self, settings: Settings, guard: Guard, router: Router, skills: dict[str, Skill],
                 audit: TurnRecorder | None = None):
        if "answer" not in skills:
            raise ValueError("the answer skill is required: it is the fallback for every intent")
        self.settings = settings
        self.guard = guard
        self.router = router
        self.skills = skills
        self.audit = audit

    def reply(self, conversation: Conversation, message: str) -> Reply:
        return final_reply(self.stream(conversation, message))

    def stream(self, conversation: Conversation, message: str) -> Iterator[Delta | Reply]:
        """Yield deltas while the skill produces text, then the final (verified) Reply.
        The conversation is updated in place with the redacted user message and the reply."""
        trace_id = new_id("tr_")
        started = time.perf_counter()
        timings: dict[str, float] = {}
        try:
            verdict = self.guard.check_input(conversation, message)
        except InputError as exc:
            verdict = GuardVerdict(allowed=False, text="", redacted="", flags=sorted({"invalid_input", exc.reason}), reply=str(exc))
        timings["guard_in"] = _ms(started)

        if not verdict.allowed:
            reply = Reply(text=verdict.reply or "I can't help with that.", path="blocked", flags=verdict.flags)
        else:
            reply = yield from self._run_skill(conversation, verdict, trace_id, timings)
        reply.trace_id = trace_id
        reply.conversation_id = conversation.id
        reply.flags = sorted(set(reply.flags) | set(verdict.flags))
        if verdict.notices:
            reply.text = " ".join(verdict.notices) + "\n\n" + reply.text
        reply.timings_ms = {**timings, **reply.timings_ms, "total": _ms(started)}
        self._remember(conversation, verdict, reply)
        yield reply

    def _run_skill(self, conversation: Conversation, verdict: GuardVerdict, trace_id: str,
                   timings: dict[str, float]) -> Iterator[Delta | Reply]:
        t = time.perf_counter()
        route = self.router.route(conversation, verdict.text)
        timings["route"] = _ms(t)
        skill = self._skill_for(route)
        # After a clarifying question the router may hand back the message it was about.
        message = getattr(route, "message", None) or verdict.text
        turn = Turn(conversation=conversation, message=message, route=route, trace_id=trace_id)
        t = time.perf_counter()
        reply: Reply | None = None
        streaming = True
        for event in skill.stream(turn):
            if isinstance(event, Reply):
                reply = event
            elif streaming:
                streaming = self._passes_output_guard(conversation, event.text)
                if streaming:
                    yield event
        if reply is None:
            raise RuntimeError(f"skill {skill.name} ended without a reply")
        timings["skill"] = _ms(t)
        reply.route = reply.route or route
        t = time.perf_counter()
        reply = self.guard.check_output(conversation, reply)
        timings["guard_out"] = _ms(t)
        return reply

    def _skill_for(self, route: RouteDecision) -> Skill:
        if route.reason == "low_confidence" and "clarify" in self.skills:
            return self.skills["clarify"]
        return self.skills.get(route.intent) or self.skills["answer"]

    def _passes_output_guard(self, conversation: Conversation, piece: str) -> bool:
        """A streamed piece goes out only if the output guard would send it unchanged; after the
        first piece it would change, streaming stops and the final (guarded) reply says the rest."""
        text = piece.strip()
        if not text:
            return True
        checked = self.guard.check_output(conversation, Reply(text=text, path="generated"))
        return checked.text.strip() == text

    def _remember(self, conversation: Conversation, verdict: GuardVerdict, reply: Reply) -> None:
        user_text = verdict.redacted or verdict.text
        if user_text:
            conversation.messages.append(Message(role="user", content=user_text))
        conversation.messages.append(Message(role="assistant", content=reply.text, meta={
            "path": reply.path, "trace_id": reply.trace_id,
            "intent": reply.route.intent if reply.route else None,
            "citations": [c.doc_id for c in reply.citations],
        }))
        if self.audit is not None:
            try:
                self.audit.record_turn(conversation, verdict, reply)
            except Exception:  # the customer still gets the reply; the failure is logged loudly
                log.exception("audit record failed for trace %s", reply.trace_id)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
