"""Assistant: guard -> dialogue -> route -> skill -> guard -> audit, for one customer message.

The dialogue step (assistant/dialogue/) comes before routing: a follow-up ("what about flex",
"and 6?") is rewritten against the conversation's topic, and the router checks a turn during an
active form for interruptions. After an interruption is answered, the form's next question is
asked again; a cancel ends the form through its skill."""

from __future__ import annotations

import logging
import time
from typing import Iterator, Protocol

from assistant.config import Settings
from assistant.dialogue.followup import mentioned, rewrite, update_topic
from assistant.dialogue.state import DialogueEvent, DialogueState, load_state, save_state
from assistant.guard.core import Guard, InputError
from assistant.knowledge.terms import Terms, cached_terms
from assistant.routing.router import CANCEL_REASON, INTERRUPT_REASON, FOLLOWUP_REASON, VULNERABLE_REASON, Router
from assistant.llm.prompts import load_replies
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
        self.terms: Terms = cached_terms(str(settings.terms_file))
        self.dialogue_replies = load_replies(settings.prompts_dir, "dialogue_replies.yaml")

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
        state = load_state(conversation)
        form_was = self._active_form(conversation)
        text = self._resolve_followup(conversation, state, verdict.text, form_was)
        route = self._route(conversation, text, form_was)
        timings["route"] = _ms(t)
        skill = self._skill_for(route)
        # After a clarifying question the router may hand back the message it was about.
        message = getattr(route, "message", None) or text
        turn = Turn(conversation=conversation, message=message, route=route, trace_id=trace_id)
        t = time.perf_counter()
        if route.reason == CANCEL_REASON and form_was is not None:
            reply = self._cancel(conversation, form_was, trace_id)
        else:
            reply = yield from self._stream_skill(skill, turn, conversation)
        timings["skill"] = _ms(t)
        reply.route = reply.route or route
        self._after_interruption(conversation, route, form_was, reply)
        self._track(conversation, route, text, reply)
        t = time.perf_counter()
        reply = self.guard.check_output(conversation, reply)
        timings["guard_out"] = _ms(t)
        return reply

    def _stream_skill(self, skill: Skill, turn: Turn, conversation: Conversation) -> Iterator[Delta | Reply]:
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
        return reply

    # --- dialogue ------------------------------------------------------------------------------------
    def _active_form(self, conversation: Conversation) -> str | None:
        """The intent whose form is open (the eligibility form asks through its skill when it can)."""
        eligibility = self.skills.get("eligibility")
        if eligibility is not None and hasattr(eligibility, "form_active"):
            if eligibility.form_active(conversation):
                return "eligibility"
        elif (conversation.state.get("eligibility") or {}).get("active"):
            return "eligibility"
        if (conversation.state.get("complaint") or {}).get("active"):
            return "complaint"
        return None

    def _route(self, conversation: Conversation, text: str, form: str | None) -> RouteDecision:
        """Vulnerability first (router, then the support skill's own check); a choice the open form
        offered, tapped or typed as it stands, is that form's answer."""
        form_skill = self.skills.get(form or "")
        if hasattr(form_skill, "is_offered_choice") and form_skill.is_offered_choice(conversation, text):
            return RouteDecision(intent=form, confidence=1.0, reason=f"form:{form}")  # a tapped choice
        route = self.router.route(conversation, text)
        support = self.skills.get("support")
        if support is not None and hasattr(support, "reroute"):  # vulnerability first; no credit while it is open
            route = support.reroute(conversation, text, route)
        return route

    def _resolve_followup(self, conversation: Conversation, state: DialogueState, text: str,
                          form: str | None) -> str:
        """The message the router and skill see: a follow-up rewritten against the topic (not while a
        form is asking: "and 6?" may be the form's answer). The topic keeps what this turn names."""
        rewritten = None if form else rewrite(text, state.topic, self.terms, self.router.rules.followup_rewrite)
        resolved = rewritten or text
        state.topic = update_topic(state.topic, mentioned(resolved, self.terms))
        if rewritten:
            state.events.append(DialogueEvent(kind="followup_rewritten", data={"from": text, "to": rewritten}))
        save_state(conversation, state)
        return resolved

    def _cancel(self, conversation: Conversation, form: str, trace_id: str) -> Reply:
        skill = self.skills.get(form)
        if skill is not None and hasattr(skill, "cancel"):
            text = skill.cancel(conversation)
        else:  # a skill without a cancel of its own: close its form and say so
            conversation.state[form] = {"active": False, "stopped": "cancelled"}
            text = self.dialogue_replies["form_cancelled"]
        return Reply(text=text, path="form", trace_id=trace_id, meta={form: {"stage": "cancelled"}})

    def _after_interruption(self, conversation: Conversation, route: RouteDecision, form: str | None,
                            reply: Reply) -> None:
        """A question or a status request answered during a form: ask the form's question again."""
        if form is None or route.intent in (form, "handoff", "support") or route.reason == CANCEL_REASON:
            return
        if self._active_form(conversation) != form:
            return
        question = self._resume_prompt(conversation, form)
        if question:
            template = self.dialogue_replies["resume"]
            lead = template.split("{question}")[0].strip(" :").lower()
            again = question if question.lower().startswith(lead) else template.format(question=question)
            reply.text = reply.text.rstrip() + "\n\n" + again
            reply.meta["resumed"] = form

    def _resume_prompt(self, conversation: Conversation, form: str) -> str | None:
        skill = self.skills.get(form)
        if skill is not None and hasattr(skill, "resume_prompt"):
            return skill.resume_prompt(conversation)
        last = next((m for m in reversed(conversation.messages)
                     if m.role == "assistant" and m.meta.get("intent") == form), None)
        return last.content if last is not None else None

    def _track(self, conversation: Conversation, route: RouteDecision, text: str, reply: Reply) -> None:
        """Events for what this turn changed; the topic's question when this turn was one answered."""
        state = load_state(conversation)
        if route.reason == CANCEL_REASON:
            state.events.append(DialogueEvent(kind="form_cancelled", skill=route.intent))
        elif route.reason.startswith(INTERRUPT_REASON) or (reply.meta.get("resumed") and
                                                           route.reason.startswith(FOLLOWUP_REASON)):
            state.events.append(DialogueEvent(kind="interrupted", skill=route.intent,
                                              data={"reason": route.reason, "form": reply.meta.get("resumed")}))
        if route.reason.startswith(VULNERABLE_REASON):
            kind = route.reason.removeprefix(VULNERABLE_REASON)
            state.vulnerability = kind
            state.events.append(DialogueEvent(kind="vulnerability", skill=route.intent, data={"kind": kind}))
        reference = (reply.ticket or {}).get("id")
        if reference and reference not in state.tickets:
            state.tickets.append(str(reference))
            state.events.append(DialogueEvent(kind="ticket_opened", skill=route.intent, data={"ticket": reference}))
        if route.intent == "answer" and reply.path in ("faq", "generated", "extractive", "tool"):
            state.topic.question = text
        save_state(conversation, state)

    def _skill_for(self, route: RouteDecision) -> Skill:
        if route.reason == "low_confidence" and "clarify" in self.skills:
            return self.skills["clarify"]
        if route.intent == "support" and "support" not in self.skills:  # care from a person, not an answer
            return self.skills.get("handoff") or self.skills["answer"]
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
