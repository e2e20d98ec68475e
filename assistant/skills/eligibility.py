"""The eligibility skill: collect what the scoring tool needs, turn by turn, ask for explicit
consent, call `check_eligibility`, and explain the result with its reasons and next steps.

Two ways to collect: the form (default; no LLM, fully deterministic) or, when a chat model with
tool calling is configured (llm_backend "openai", e.g. vLLM with a tool-call parser), the model
gathers the answers and proposes a tool call. Its arguments are validated against the tool's
schema; a malformed call is re-asked once, then the form takes over. Consent is always asked by
the skill itself, and the reply is always written from templates with the tool's figures: the
model never states a decision, a limit or a rate."""

from __future__ import annotations

import logging
from typing import Any, Iterator

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from assistant.config import Settings
from assistant.llm.prompts import load_prompt, load_replies
from assistant.scoring.applicant import FieldInfo
from assistant.scoring.client import ScoringClient, ScoringUnavailable
from assistant.scoring.decision import EligibilityDecision
from assistant.skills.eligibility_form import (
    asked_fields, check_value, display, is_cancel, labels, next_missing, outside_age_rule, product_in, read_answers,
    yes_no,
)
from assistant.knowledge.terms import Terms
from assistant.tools import build_tools, run_tool_call, validate_args
from assistant.types import Delta, Reply, ToolCall, Turn

log = logging.getLogger(__name__)

STATE_KEY = "eligibility"
REPLIES = "eligibility_replies.yaml"
SYSTEM_PROMPT = "eligibility_system.md"
INTERNAL = ("probability_of_default", "score")  # never in a customer's reply, nor in its tool result
HISTORY = 10  # earlier messages the model sees
MAX_TRIES = 3  # turns in a row with nothing usable before the form stops instead of asking again


class EligibilitySkill:
    name = "eligibility"

    def __init__(self, settings: Settings, scoring_client: ScoringClient, terms: Terms, chat_model: Any = None):
        self.settings, self.client, self.terms = settings, scoring_client, terms
        self.replies = load_replies(settings.prompts_dir, REPLIES)
        uses_tools = settings.llm_backend == "openai" and hasattr(chat_model, "bind_tools")
        self.chat_model = chat_model if uses_tools else None
        self._tool = None  # built on first use: an HTTP client fetches the schema from the service

    @property
    def tool(self):
        if self._tool is None:
            self._tool = build_tools(self.client, self.terms, self.settings.prompts_dir)["check_eligibility"]
        return self._tool

    @property
    def fields(self) -> list[FieldInfo]:
        return asked_fields(self.client.info())

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        try:
            yield self.respond(turn)
        except ScoringUnavailable as exc:  # the HTTP service is down: say so, keep the answers
            log.warning("eligibility: scoring service unavailable: %s", exc)
            values = {"hotline": self.terms.lender.hotline, "hours": getattr(self.terms.lender, "hotline_hours", "")}
            yield Reply(text=self.replies["unavailable"].format(**values), path="error", trace_id=turn.trace_id,
                        meta={"eligibility": {"stage": "unavailable"}})

    # --- one turn ---------------------------------------------------------------------------------
    def respond(self, turn: Turn) -> Reply:
        state = dict(turn.conversation.state.get(STATE_KEY) or {})
        if is_cancel(turn.message):
            return self._finish(turn, self.say("cancelled"), "form", "cancelled")
        opening = not state.get("active")
        if opening:
            state = {"active": True, "stage": "collect", "asking": None, "answers": {}, "retries": 0,
                     "product": product_in(turn.message, self.terms) or self.settings.eligibility_product,
                     "mode": "llm" if self.chat_model is not None else "form"}
        if state["stage"] == "consent":
            return self._consent(turn, state)
        prefix: list[str] = []
        if state["mode"] == "llm":
            reply = self._model_collect(turn, state)
            if reply is not None:
                return reply
            prefix.append(self.say("form_fallback"))
            opening = False
        return self._form_collect(turn, state, ([self.say("intro", state)] if opening else []) + prefix)

    # --- the form ---------------------------------------------------------------------------------
    def _form_collect(self, turn: Turn, state: dict[str, Any], parts: list[str]) -> Reply:
        product = self.terms.product(state["product"])
        fields = self.fields
        reading = read_answers(turn.message, fields, state["asking"], product)
        new = [name for name, value in reading.found.items() if state["answers"].get(name) != value]
        state["answers"].update(reading.found)
        if outside_age_rule(state["answers"], product):
            return self._age_stop(turn, state)
        missing = next_missing(fields, state["answers"])
        # turns in a row that gave nothing new and could not be used: bounded, never a loop
        state["retries"] = 0 if new or reading.problem is None else state.get("retries", 0) + 1
        if state["retries"] >= MAX_TRIES:
            return self._finish(turn, self.say("too_many_tries", state, label=self._label(reading.problem)),
                                "form", "cancelled", stopped="unreadable")
        noted = [name for name in new if name != reading.asking]
        if noted and missing is not None:
            parts.append(self.say("noted", labels=labels(fields, noted)))
        if reading.problem is not None:
            again = state["retries"] > 1  # the same question failed before: say so, and offer a way out
            lead = ("reask_again" if again else "reask") if reading.unreadable else "unusable"
            hint = reading.hint if reading.hint in self.replies else "hint_other"
            parts += [self.say(lead, state, label=self._label(reading.problem)), self.say(hint, state)]
            if again:
                parts.append(self.say("reask_options"))
        if missing is None:
            state.update(stage="consent", asking=None)
            parts.append(self.say("consent", state, summary=self._summary(state)))
        else:
            if reading.problem != missing.name:  # the re-ask with its example is already the question
                parts.append(self._question(missing, state))
            state["asking"] = missing.name
        return self._keep(turn, state, " ".join(p for p in parts if p))

    def _label(self, name: str) -> str:
        return next((f.label for f in self.fields if f.name == name), name)

    def _age_stop(self, turn: Turn, state: dict[str, Any]) -> Reply:
        """The product's age rule fails: say so plainly and stop; nothing is sent to scoring."""
        text = self.say("age_rule", state, age=state["answers"]["age"])
        return self._finish(turn, text, "form", "done", stopped="age_rule")

    def _question(self, f: FieldInfo, state: dict[str, Any]) -> str:
        key = f"ask_{f.name}"
        return self.say(key if key in self.replies else "ask_other", state, label=f.label)

    def _summary(self, state: dict[str, Any]) -> str:
        currency = self.terms.lender.currency
        shown = [f"{f.label}: {display(f, state['answers'][f.name], currency)}"
                 for f in self.fields if f.name in state["answers"]]
        return "; ".join([f"product: {self.terms.product(state['product']).name}", *shown])

    def _consent(self, turn: Turn, state: dict[str, Any]) -> Reply:
        answer = yes_no(turn.message)
        if answer is None:
            return self._keep(turn, state, self.say("consent_reask", state))
        if answer is False:
            return self._finish(turn, self.say("no_consent"), "form", "no_consent")
        if outside_age_rule(state["answers"], self.terms.product(state["product"])):
            return self._age_stop(turn, state)
        call = self._check(turn, state)
        if call.error and call.error.startswith("unavailable"):
            return self._keep(turn, state, self.say("unavailable", state), path="error", tool_calls=[call])
        if call.error:
            return self._invalid(turn, state, call)
        decision = EligibilityDecision.model_validate(call.result)
        call.result = {k: v for k, v in (call.result or {}).items() if k not in INTERNAL}
        text = self.explain(decision)
        turn.conversation.state[STATE_KEY] = {"active": False, "last": {
            "decision": decision.decision, "product": decision.product, "model_version": decision.model_version}}
        return Reply(text=text, path="tool", tool_calls=[call], trace_id=turn.trace_id,
                     meta={"eligibility": {"stage": "done", "decision": decision.decision,
                                           "model_version": decision.model_version}})

    def _check(self, turn: Turn, state: dict[str, Any]) -> ToolCall:
        info_fields = {f.name: f for f in self.client.info().fields}
        profile = {k: v for k, v in (turn.conversation.state.get("profile") or {}).items()
                   if k in info_fields and info_fields[k].source == "profile"}
        args = {**profile, **state["answers"], "product": state["product"], "consent": True}
        return run_tool_call(self.tool, args, trace_id=turn.trace_id)

    def _invalid(self, turn: Turn, state: dict[str, Any], call: ToolCall) -> Reply:
        """The tool refused an answer (e.g. a product limit changed): forget those and ask again."""
        bad = [name for name in state["answers"] if f"{name}:" in (call.error or "")]
        for name in bad or list(state["answers"]):
            state["answers"].pop(name, None)
        state.update(stage="collect", asking=None)
        missing = next_missing(self.fields, state["answers"])
        text = self.say("invalid", state, errors=call.error or "")
        if missing is not None:
            state["asking"] = missing.name
            text += " " + self._question(missing, state)
        return self._keep(turn, state, text, tool_calls=[call])

    # --- the model proposes the tool call ------------------------------------------------------------
    def _model_collect(self, turn: Turn, state: dict[str, Any]) -> Reply | None:
        """A reply from the model's own question, the consent question after a valid tool call, or
        None to fall back to the form (after a second malformed call, or when the model fails)."""
        try:
            bound = self.chat_model.bind_tools([self.tool])  # type: ignore[union-attr]
            messages = self._model_messages(turn, state)
            for attempt in range(2):
                ai = bound.invoke(messages)
                calls = [c for c in getattr(ai, "tool_calls", None) or [] if c.get("name") == self.tool.name]
                if not calls:
                    if ai.content:
                        return self._keep(turn, state, str(ai.content), meta_extra={"model": True})
                    break
                raw = {k: v for k, v in (calls[0].get("args") or {}).items() if k != "consent"}
                args, error = validate_args(self.tool, {**raw, "product": state["product"], "consent": True})
                if args is not None:
                    state["answers"] = {f.name: args[f.name] for f in self.fields if args.get(f.name) is not None}
                    if outside_age_rule(state["answers"], self.terms.product(state["product"])):
                        return self._age_stop(turn, state)
                    state.update(stage="consent", asking=None)
                    return self._keep(turn, state, self.say("consent", state, summary=self._summary(state)))
                self._salvage(state, raw)
                log.info("malformed check_eligibility call (attempt %d): %s", attempt + 1, error)
                messages = [*messages, ai, ToolMessage(content=f"Invalid arguments: {error}",
                                                       tool_call_id=calls[0].get("id") or "call")]
        except Exception as exc:  # a model server that fails must not end the conversation
            log.warning("eligibility: chat model failed, using the form: %s", exc)
        state["mode"] = "form"
        return None

    def _model_messages(self, turn: Turn, state: dict[str, Any]) -> list:
        prompt = load_prompt(self.settings.prompts_dir, SYSTEM_PROMPT)
        product = self.terms.product(state["product"])
        fields = "\n".join(f"- {f.name}: {f.label}" + (f" ({f.unit})" if f.unit else "") for f in self.fields)
        history = []
        for m in turn.conversation.messages[-HISTORY:]:
            history.append(HumanMessage(m.content) if m.role == "user" else AIMessage(m.content))
        return [SystemMessage(prompt.render(lender=self.terms.lender.name, product=product.name, fields=fields,
                                            currency=self.terms.lender.currency)),
                *history, HumanMessage(turn.message)]

    def _salvage(self, state: dict[str, Any], raw: dict[str, Any]) -> None:
        """Keep each argument that is valid on its own, so the form does not ask it again."""
        product = self.terms.product(state["product"])
        for f in self.fields:
            value = _coerce(f, raw.get(f.name))
            if value is not None and check_value(f, value, product) is None:
                state["answers"][f.name] = value

    # --- the reply -----------------------------------------------------------------------------------
    def explain(self, d: EligibilityDecision) -> str:
        """The decision in words: reasons, what could change it, and what to do next. No raw
        probability, no score, no promise: figures are the tool's, rounded for reading."""
        values = {"product": d.product_name, "currency": d.currency,
                  "limit": f"{d.indicative_limit:,.0f}" if d.indicative_limit else "",
                  "apr_min": f"{d.apr_min_pct:g}" if d.apr_min_pct is not None else "",
                  "apr_max": f"{d.apr_max_pct:g}" if d.apr_max_pct is not None else "",
                  "requested": f"{d.requested_amount:,.0f}" if d.requested_amount else ""}
        reasons = "\n".join(f"- {r.text}" for r in d.reasons)
        if d.policy_declined:
            return "\n\n".join([self.say("result_policy", **values) + "\n" + reasons,
                                self.say("next_policy", **values)])
        if d.decision == "approve":
            parts = [self.say("result_approve", **values)]
            if d.requested_amount and d.indicative_limit and d.requested_amount > d.indicative_limit:
                parts.append(self.say("above_limit", **values))
            return "\n\n".join([" ".join(parts), self.say("next_approve", **values)])
        parts = [self.say(f"result_{d.decision}", **values)]
        if reasons:
            parts.append(self.say("reasons_intro") + "\n" + reasons)
        if d.counterfactual is not None:
            outcome = self.say(f"outcome_{d.counterfactual.decision}")
            parts.append(self.say("counterfactual", change=d.counterfactual.text, outcome=outcome))
        parts.append(self.say(f"next_{d.decision}", **values))
        return "\n\n".join(parts)

    def say(self, key: str, state: dict[str, Any] | None = None, **values: Any) -> str:
        text = self.replies[key]
        if state is not None:
            p = self.terms.product(state["product"])
            values = {"product": p.name, "currency": self.terms.lender.currency,
                      "limit_min": f"{p.limit_min:,.0f}", "limit_max": f"{p.limit_max:,.0f}",
                      "terms": ", ".join(str(t) for t in p.term_months), "hotline": self.terms.lender.hotline,
                      "min_age": p.min_age, "max_age": p.max_age,
                      "hours": getattr(self.terms.lender, "hotline_hours", ""), **values}
        return text.format(**values) if values else text

    # --- state ---------------------------------------------------------------------------------------
    def _keep(self, turn: Turn, state: dict[str, Any], text: str, path: str = "form",
              tool_calls: list[ToolCall] | None = None, meta_extra: dict[str, Any] | None = None) -> Reply:
        turn.conversation.state[STATE_KEY] = state
        meta = {"eligibility": {"stage": state["stage"], "asking": state.get("asking"),
                                "mode": state["mode"], **(meta_extra or {})}}
        return Reply(text=text, path=path, tool_calls=tool_calls or [], trace_id=turn.trace_id, meta=meta)  # type: ignore[arg-type]

    def _finish(self, turn: Turn, text: str, path: str, stage: str, stopped: str | None = None) -> Reply:
        """End the form and discard its answers; `stopped` says why a form ended early."""
        turn.conversation.state[STATE_KEY] = {"active": False, **({"stopped": stopped} if stopped else {})}
        meta = {"stage": stage, **({"stopped": stopped} if stopped else {})}
        return Reply(text=text, path=path, trace_id=turn.trace_id, meta={"eligibility": meta})  # type: ignore[arg-type]


def _coerce(f: FieldInfo, value: Any) -> Any:
    if value is None:
        return None
    try:
        if f.kind == "number":
            return float(value)
        if f.kind == "integer":
            number = float(value)
            return int(number) if number.is_integer() else None
    except (TypeError, ValueError):
        return None
    return value if f.kind != "choice" or value in (f.choices or []) else None
