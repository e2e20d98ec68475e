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
    EligibilityForm, FormSpec, asked_fields, below_rule, check_value, display, employment_band, form_fields,
    is_cancel,
    labels, load_form, load_form_spec, next_missing, outside_age_rule, product_in, product_key, read_answers,
    save_form, yes_no,
)
from assistant.knowledge.terms import Terms
from assistant.tools import build_tools, run_tool_call, validate_args
from assistant.types import Delta, Reply, ToolCall, Turn

log = logging.getLogger(__name__)

REPLIES = "eligibility_replies.yaml"
FORM_SPEC = "eligibility_fields.yaml"
SYSTEM_PROMPT = "eligibility_system.md"
INTERNAL = ("probability_of_default", "score")  # never in a customer's reply, nor in its tool result
HISTORY = 10  # earlier messages the model sees
MAX_TRIES = 3  # turns in a row with nothing usable before the form stops instead of asking again


class EligibilitySkill:
    name = "eligibility"

    def __init__(self, settings: Settings, scoring_client: ScoringClient, terms: Terms, chat_model: Any = None):
        self.settings, self.client, self.terms = settings, scoring_client, terms
        self.replies = load_replies(settings.prompts_dir, REPLIES)
        self.spec: FormSpec = load_form_spec(settings.prompts_dir / FORM_SPEC)
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
        """The scorecard's fields (what the scoring tool takes), in the form's order."""
        return asked_fields(self.client.info())

    def fields_for(self, product: str | None) -> list[FieldInfo]:
        """The scorecard's fields and the form's own (prompts/eligibility_fields.yaml) for a product."""
        key = product or self.settings.eligibility_product
        return form_fields(self.fields, self.spec.extra_fields(key, self.terms.lender.currency))

    # --- what the dialogue manager calls --------------------------------------------------------------
    def form_active(self, conversation: Any) -> bool:
        return load_form(conversation).active

    def resume_prompt(self, conversation: Any) -> str | None:
        """The form's next question, to re-ask after an interruption (None when no form is open)."""
        form = load_form(conversation)
        if not form.active:
            return None
        if form.stage == "consent":
            return self.say("consent_resume", form, summary=self._summary(form))
        fields = self.fields_for(form.product)
        f = next((f for f in fields if f.name == form.asking), None) or next_missing(fields, form.answers)
        return None if f is None else self._question(f, form)

    def is_offered_choice(self, conversation: Any, text: str) -> bool:
        """True when the message is, as it stands, one of the choices the open form is asking for
        ("unemployed" at the job question): the form's answer, not a signal about the customer."""
        form = load_form(conversation)
        if not form.active or form.stage != "collect" or not form.asking:
            return False
        f = next((f for f in self.fields_for(form.product) if f.name == form.asking), None)
        said = " ".join(text.lower().replace("_", " ").split())
        return f is not None and f.kind == "choice" and any(said == c.replace("_", " ") for c in f.choices or [])

    def cancel(self, conversation: Any) -> str:
        """End the form (its answers discarded, nothing submitted) and say so."""
        form = load_form(conversation)
        save_form(conversation, EligibilityForm(product=form.product, stage="closed", stopped="cancelled"))
        return self.say("cancelled")

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
        form = load_form(turn.conversation)
        if is_cancel(turn.message):
            text = self.cancel(turn.conversation)
            return self._reply(turn, text, {"stage": "cancelled", "stopped": "cancelled"})
        opening = not form.active
        parts: list[str] = []
        if opening:
            form = self._open(turn)
        else:
            switched = self._switch(form, turn.message)
            if switched:
                parts.append(switched)
        if form.stage == "consent":
            return self._consent(turn, form)
        if form.mode == "llm":
            reply = self._model_collect(turn, form)
            if reply is not None:
                return reply
            parts.append(self.say("form_fallback"))
            opening = False
        return self._form_collect(turn, form, ([self.say("intro", form)] if opening else []) + parts)

    def _open(self, turn: Turn) -> EligibilityForm:
        """A new form on the product the customer named, else the conversation's topic, else the default."""
        topic = ((turn.conversation.state.get("dialogue") or {}).get("topic") or {}).get("product")
        product = product_in(turn.message, self.terms) or product_key(topic, self.terms) \
            or self.settings.eligibility_product
        return EligibilityForm(active=True, product=product, answers=dict(self.spec.presets.get(product, {})),
                               mode="llm" if self.chat_model is not None else "form")

    def _switch(self, form: EligibilityForm, text: str) -> str | None:
        """'actually I need a business loan': restart on that product with the answers that still
        apply; the text that says so, or None when the message names no other product."""
        new = product_in(text, self.terms, strict=True)
        if new is None or new == form.product:
            return None
        product = self.terms.product(new)
        fields = {f.name: f for f in self.fields_for(new)}
        kept = {k: v for k, v in form.answers.items() if k in self.spec.keep_on_switch and k in fields
                and check_value(fields[k], v, product) is None}
        form.product, form.stage, form.asking, form.retries, form.last_filled = new, "collect", None, 0, []
        form.answers = {**kept, **self.spec.presets.get(new, {})}
        shown = labels(list(fields.values()), list(kept))
        return self.say("switched_kept" if shown else "switched", form, labels=shown)

    # --- the form ---------------------------------------------------------------------------------
    def _form_collect(self, turn: Turn, form: EligibilityForm, parts: list[str]) -> Reply:
        product = self.terms.product(form.product)
        fields = self.fields_for(form.product)
        reading = read_answers(turn.message, fields, form.asking, product, form.answers, form.last_filled)
        before = dict(form.answers)
        new = [name for name, value in reading.found.items() if before.get(name) != value]
        updated = [name for name in new if name in before or name in reading.corrected]
        form.answers.update(reading.found)
        form.last_filled = list(reading.found)
        self._derive(form)
        if outside_age_rule(form.answers, product):
            return self._age_stop(turn, form)
        failed = below_rule(form.answers, self.spec, product)
        if failed is not None:
            return self._stop(turn, form, "trading_rule", failed)
        missing = next_missing(fields, form.answers)
        # turns in a row that gave nothing new and could not be used: bounded, never a loop
        form.retries = 0 if new or reading.problem is None else form.retries + 1
        if form.retries >= MAX_TRIES:
            return self._finish(turn, self.say("too_many_tries", form, label=self._label(reading.problem, fields)),
                                form, "unreadable")
        currency = self.terms.lender.currency
        by_name = {f.name: f for f in fields}
        for name in updated:  # a correction is confirmed in words: the customer sees what was kept
            parts.append(self.say("updated", label=by_name[name].label,
                                  value=display(by_name[name], form.answers[name], currency)))
        noted = [name for name in new if name != reading.asking and name not in updated]
        if noted and missing is not None:
            parts.append(self.say("noted", labels=labels(fields, noted)))
        if reading.problem is not None:
            again = form.retries > 1  # the same question failed before: say so, and offer a way out
            lead = ("reask_again" if again else "reask") if reading.unreadable else "unusable"
            hint = reading.hint if reading.hint in self.replies else "hint_other"
            parts += [self.say(lead, form, label=self._label(reading.problem, fields)), self.say(hint, form)]
            if again:
                parts.append(self.say("reask_options"))
        if missing is None:
            form.stage, form.asking = "consent", None
            parts.append(self.say("consent", form, summary=self._summary(form)))
        else:
            if reading.problem != missing.name:  # the re-ask with its example is already the question
                parts.append(self._question(missing, form))
            form.asking = missing.name
        return self._keep(turn, form, " ".join(p for p in parts if p))

    def _derive(self, form: EligibilityForm) -> None:
        """Answers one of the form's own fields gives (a business owner's time in their job is
        the time their business has been trading), unless the customer said otherwise."""
        for target, source in self.spec.derive.get(form.product or "", {}).items():
            months = form.answers.get(source)
            if target == "employment" and target not in form.answers and months is not None:
                form.answers[target] = employment_band(months / 12)

    def _label(self, name: str | None, fields: list[FieldInfo] | None = None) -> str:
        return next((f.label for f in fields or self.fields if f.name == name), name or "")

    def _age_stop(self, turn: Turn, form: EligibilityForm) -> Reply:
        """The product's age rule fails: say so plainly and stop; nothing is sent to scoring."""
        text = self.say("age_rule", form, age=form.answers["age"])
        return self._finish(turn, text, form, "age_rule", stage="done")

    def _stop(self, turn: Turn, form: EligibilityForm, key: str, field: str) -> Reply:
        """Another knock-out rule of the product (e.g. time trading): the same plain stop."""
        product = self.terms.product(form.product)
        rule = self.spec.fields[field].min_from or ""
        text = self.say(key, form, value=form.answers[field], minimum=getattr(product, rule, ""))
        return self._finish(turn, text, form, key, stage="done")

    def _question(self, f: FieldInfo, form: EligibilityForm) -> str:
        key = f"ask_{f.name}"
        return self.say(key if key in self.replies else "ask_other", form, label=f.label)

    def _summary(self, form: EligibilityForm) -> str:
        currency = self.terms.lender.currency
        own = set(self.spec.shown(form.product or ""))
        sent = {f.name for f in self.fields}

        def shown(names: set[str]) -> list[str]:
            return [f"{f.label}: {display(f, form.answers[f.name], currency)}" for f in self.fields_for(form.product)
                    if f.name in form.answers and f.name in names]
        text = "; ".join([f"product: {self.terms.product(form.product).name}", *shown(sent)])
        noted = shown(own - sent)  # the form's own fields: noted for an application, never scored
        return text + (" " + self.say("summary_noted", items="; ".join(noted)) if noted else "")

    def _consent(self, turn: Turn, form: EligibilityForm) -> Reply:
        answer = yes_no(turn.message)
        reading = read_answers(turn.message, self.fields_for(form.product), None,
                               self.terms.product(form.product), form.answers, form.last_filled)
        if answer is not False and any(form.answers.get(k) != v for k, v in reading.found.items()):
            # a correction at the consent question ("yes but my income is 7000"): update, ask again
            form.stage = "collect"
            return self._form_collect(turn, form, [])
        if answer is None:
            return self._keep(turn, form, self.say("consent_reask", form))
        if answer is False:
            return self._finish(turn, self.say("no_consent"), form, "no_consent")
        if outside_age_rule(form.answers, self.terms.product(form.product)):
            return self._age_stop(turn, form)
        call = self._check(turn, form)
        if call.error and call.error.startswith("unavailable"):
            return self._keep(turn, form, self.say("unavailable", form), path="error", tool_calls=[call])
        if call.error:
            return self._invalid(turn, form, call)
        decision = EligibilityDecision.model_validate(call.result)
        call.result = {k: v for k, v in (call.result or {}).items() if k not in INTERNAL}
        text = self.explain(decision)
        save_form(turn.conversation, EligibilityForm(product=form.product, stage="done", last={
            "decision": decision.decision, "product": decision.product, "model_version": decision.model_version}))
        return Reply(text=text, path="tool", tool_calls=[call], trace_id=turn.trace_id,
                     meta={"eligibility": {"stage": "done", "decision": decision.decision,
                                           "model_version": decision.model_version}})

    def _check(self, turn: Turn, form: EligibilityForm) -> ToolCall:
        info_fields = {f.name: f for f in self.client.info().fields}
        profile = {k: v for k, v in (turn.conversation.state.get("profile") or {}).items()
                   if k in info_fields and info_fields[k].source == "profile"}
        answers = {k: v for k, v in form.answers.items() if k in info_fields}  # the form's own fields stay here
        args = {**profile, **answers, "product": form.product, "consent": True}
        return run_tool_call(self.tool, args, trace_id=turn.trace_id)

    def _invalid(self, turn: Turn, form: EligibilityForm, call: ToolCall) -> Reply:
        """The tool refused an answer (e.g. a product limit changed): forget those and ask again."""
        bad = [name for name in form.answers if f"{name}:" in (call.error or "")]
        for name in bad or list(form.answers):
            form.answers.pop(name, None)
        form.stage, form.asking = "collect", None
        missing = next_missing(self.fields_for(form.product), form.answers)
        text = self.say("invalid", form, errors=call.error or "")
        if missing is not None:
            form.asking = missing.name
            text += " " + self._question(missing, form)
        return self._keep(turn, form, text, tool_calls=[call])

    # --- the model proposes the tool call ------------------------------------------------------------
    def _model_collect(self, turn: Turn, form: EligibilityForm) -> Reply | None:
        """A reply from the model's own question, the consent question after a valid tool call, or
        None to fall back to the form (after a second malformed call, or when the model fails)."""
        try:
            bound = self.chat_model.bind_tools([self.tool])  # type: ignore[union-attr]
            messages = self._model_messages(turn, form)
            for attempt in range(2):
                ai = bound.invoke(messages)
                calls = [c for c in getattr(ai, "tool_calls", None) or [] if c.get("name") == self.tool.name]
                if not calls:
                    if ai.content:
                        return self._keep(turn, form, str(ai.content), meta_extra={"model": True})
                    break
                raw = {k: v for k, v in (calls[0].get("args") or {}).items() if k != "consent"}
                args, error = validate_args(self.tool, {**raw, "product": form.product, "consent": True})
                if args is not None:
                    sent = {f.name: args[f.name] for f in self.fields if args.get(f.name) is not None}
                    form.answers = {**form.answers, **sent}  # the form's own fields and presets stay
                    if outside_age_rule(form.answers, self.terms.product(form.product)):
                        return self._age_stop(turn, form)
                    form.stage, form.asking = "consent", None
                    return self._keep(turn, form, self.say("consent", form, summary=self._summary(form)))
                self._salvage(form, raw)
                log.info("malformed check_eligibility call (attempt %d): %s", attempt + 1, error)
                messages = [*messages, ai, ToolMessage(content=f"Invalid arguments: {error}",
                                                       tool_call_id=calls[0].get("id") or "call")]
        except Exception as exc:  # a model server that fails must not end the conversation
            log.warning("eligibility: chat model failed, using the form: %s", exc)
        form.mode = "form"
        return None

    def _model_messages(self, turn: Turn, form: EligibilityForm) -> list:
        prompt = load_prompt(self.settings.prompts_dir, SYSTEM_PROMPT)
        product = self.terms.product(form.product)
        fields = "\n".join(f"- {f.name}: {f.label}" + (f" ({f.unit})" if f.unit else "") for f in self.fields)
        history = []
        for m in turn.conversation.messages[-HISTORY:]:
            history.append(HumanMessage(m.content) if m.role == "user" else AIMessage(m.content))
        return [SystemMessage(prompt.render(lender=self.terms.lender.name, product=product.name, fields=fields,
                                            currency=self.terms.lender.currency)),
                *history, HumanMessage(turn.message)]

    def _salvage(self, form: EligibilityForm, raw: dict[str, Any]) -> None:
        """Keep each argument that is valid on its own, so the form does not ask it again."""
        product = self.terms.product(form.product)
        for f in self.fields:
            value = _coerce(f, raw.get(f.name))
            if value is not None and check_value(f, value, product) is None:
                form.answers[f.name] = value

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

    def say(self, key: str, form: EligibilityForm | None = None, **values: Any) -> str:
        text = self.replies[key]
        if form is not None:
            p = self.terms.product(form.product or self.settings.eligibility_product)
            values = {"product": p.name, "currency": self.terms.lender.currency,
                      "limit_min": f"{p.limit_min:,.0f}", "limit_max": f"{p.limit_max:,.0f}",
                      "terms": ", ".join(str(t) for t in p.term_months), "hotline": self.terms.lender.hotline,
                      "min_age": p.min_age, "max_age": p.max_age,
                      "hours": getattr(self.terms.lender, "hotline_hours", ""), **values}
        return text.format(**values) if values else text

    # --- state ---------------------------------------------------------------------------------------
    def _keep(self, turn: Turn, form: EligibilityForm, text: str, path: str = "form",
              tool_calls: list[ToolCall] | None = None, meta_extra: dict[str, Any] | None = None) -> Reply:
        form.active = True
        save_form(turn.conversation, form)
        meta = {"stage": form.stage, "asking": form.asking, "mode": form.mode, "product": form.product,
                **(meta_extra or {})}
        return self._reply(turn, text, meta, path=path, tool_calls=tool_calls)

    def _finish(self, turn: Turn, text: str, form: EligibilityForm, stopped: str, stage: str = "closed") -> Reply:
        """End the form and discard its answers; `stopped` says why (the state keeps it: the next
        message is answered as any other)."""
        save_form(turn.conversation, EligibilityForm(product=form.product, stage=stage, stopped=stopped))
        shown = "done" if stage == "done" else "no_consent" if stopped == "no_consent" else "cancelled"
        meta = {"stage": shown, **({} if stopped == "no_consent" else {"stopped": stopped})}
        return self._reply(turn, text, meta)

    @staticmethod
    def _reply(turn: Turn, text: str, meta: dict[str, Any], path: str = "form",
               tool_calls: list[ToolCall] | None = None) -> Reply:
        return Reply(text=text, path=path, tool_calls=tool_calls or [], trace_id=turn.trace_id,  # type: ignore[arg-type]
                     meta={"eligibility": meta})


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
