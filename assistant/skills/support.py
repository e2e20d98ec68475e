"""The support skill: a customer in difficulty (hardship, distress, self-harm, bereavement, a scam,
an account taken over) comes first. They are never offered credit nor put through a form; they get
the knowledge base's own guidance (quoted and cited), and the conversation goes to a person as an
urgent hand-off ticket with its context: one ticket per conversation, later messages are added to it.

The signal lists are in knowledge_base/rules/vulnerability.yaml, the texts in
prompts/support_replies.yaml. The skill's state is conversation.state["support"] (and, where the
dialogue state exists, its `vulnerability` field and `tickets` list)."""

from __future__ import annotations

import logging
import re
from typing import Any, Iterator

from assistant.config import Settings
from assistant.guard.vulnerability import (
    VulnerabilityRules, VulnerabilitySignal, asks_for_credit, detect_vulnerability, load_vulnerability_rules,
    vulnerability_rules_file,
)
from assistant.knowledge.documents import Document, KnowledgeBaseError, document_paths, parse_document
from assistant.knowledge.terms import Terms, load_terms
from assistant.llm.prompts import load_replies
from assistant.store.tickets import Receipt, TicketDraft, TicketService, conversation_excerpt
from assistant.types import Citation, Conversation, Delta, Reply, RouteDecision, Turn, utcnow

log = logging.getLogger(__name__)

REPLIES = "support_replies.yaml"
STATE_KEY = "support"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“])")


class SupportSkill:
    name = "support"

    def __init__(self, settings: Settings, tickets: TicketService, terms: Terms | None = None,
                 rules: VulnerabilityRules | None = None):
        self.settings = settings
        self.tickets = tickets
        self.terms = terms or load_terms(settings.terms_file)
        self.rules = rules or load_vulnerability_rules(vulnerability_rules_file(settings))
        self.replies = load_replies(settings.prompts_dir, REPLIES)
        self.guidance = _load_guidance(settings, self.rules)

    # --- for the router and the other skills ---------------------------------------------------------
    def detect(self, text: str) -> VulnerabilitySignal | None:
        return detect_vulnerability(text, self.rules)

    @staticmethod
    def blocks_credit(conversation: Conversation) -> bool:
        """While a customer's difficulty is open in this conversation, no loan offer and no form."""
        return bool(support_state(conversation).get("active"))

    def reroute(self, conversation: Conversation, message: str, route: RouteDecision) -> RouteDecision:
        """The route for this message with vulnerability first: a signal goes to "support" (urgency
        carries its kinds); so does a request for credit while support is active."""
        signal = self.detect(message)
        if signal is not None:
            return route.model_copy(update={"intent": "support", "reason": f"vulnerability:{signal.kind}",
                                            "urgency": list(dict.fromkeys([*signal.kinds, *route.urgency])),
                                            "confidence": 1.0})
        if not self.blocks_credit(conversation):
            return route
        kind = support_state(conversation).get("kind") or "hardship"
        if route.intent == "eligibility" or asks_for_credit(message, self.rules):
            return route.model_copy(update={"intent": "support", "reason": "vulnerability_active",
                                            "urgency": list(dict.fromkeys([kind, *route.urgency]))})
        # an urgent hand-off or a complaint joins the open ticket: one case, with the specialist team
        if (route.intent == "handoff" and route.urgency) or route.intent == "complaint":
            return route.model_copy(update={"intent": "support", "reason": f"vulnerability:{kind}"})
        return route

    # --- the skill -------------------------------------------------------------------------------------
    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield self.respond(turn)

    def respond(self, turn: Turn) -> Reply:
        conversation, text = turn.conversation, turn.route.message or turn.message
        signal = self.detect(text)
        state = support_state(conversation)
        if signal is None and state.get("active") and turn.route.reason == "vulnerability_active":
            return self._credit_paused(turn, state)
        kinds = signal.kinds if signal else self._kinds_of(turn.route.urgency, state)
        _close_form(conversation)
        receipt, linked = self._ticket(turn, kinds, text, state)
        kind = kinds[0]
        quotes, citations = self._guidance(kinds)
        values = self._values(receipt, kind)
        parts = [self.say(f"lead_{kind}", **values), *quotes]
        if asks_for_credit(text, self.rules) or turn.route.intent == "eligibility":
            parts.append(self.say("no_credit", **values))
        parts.append(self.say("spooled" if not receipt.stored else "linked" if linked else "queued", **values))
        self._remember(conversation, kinds, receipt.ticket.id, signal)
        ticket = receipt.ticket
        return Reply(text=" ".join(p for p in parts if p), path="handoff", trace_id=turn.trace_id,
                     citations=citations, flags=["vulnerable", *kinds],
                     ticket={**ticket.summary(), "stored": receipt.stored, "linked": linked,
                             "respond_by": ticket.ack_due.isoformat(), "respond_by_local": values["respond_by"]},
                     meta={"support": {"kind": kind, "kinds": kinds, "linked": linked,
                                       "matched": signal.matched if signal else []}})

    def _kinds_of(self, urgency: list[str], state: dict[str, Any]) -> list[str]:
        """Kinds named by the route's urgency flags, else the open difficulty's, else distress."""
        kinds = [self.rules.flag_kinds.get(u, u) for u in urgency]
        kinds = [k for k in dict.fromkeys(kinds) if k in self.rules.kinds]
        return kinds or [state.get("kind") or "distress"]

    def _credit_paused(self, turn: Turn, state: dict[str, Any]) -> Reply:
        values = {**self._lender(), "ticket_id": state.get("ticket_id", "")}
        kind = state.get("kind") or "hardship"
        return Reply(text=self.say("credit_paused", **values), path="handoff", trace_id=turn.trace_id,
                     flags=["vulnerable", "credit_paused"], meta={"support": {"kind": kind, "credit_paused": True}})

    # --- ticket: one per conversation ----------------------------------------------------------------
    def _ticket(self, turn: Turn, kinds: list[str], text: str, state: dict[str, Any]) -> tuple[Receipt, bool]:
        existing = state.get("ticket_id")
        if existing:
            try:
                ticket = self.tickets.update(existing, note=f"further message ({', '.join(kinds)}): {text}",
                                             actor="assistant")
                return Receipt(ticket=ticket, stored=True), True
            except Exception:  # store down or ticket still in the spool: a new one is safer than none
                log.exception("could not add to support ticket %s; opening a new one", existing)
        conversation = turn.conversation
        now = self.tickets.clock()
        receipt = self.tickets.create(TicketDraft(
            kind="handoff", customer_ref=conversation.customer_id, conversation_id=conversation.id, text=text,
            excerpt=conversation_excerpt(conversation), team=self.rules.team_for(kinds[0]), severity="urgent",
            reason=f"vulnerability:{kinds[0]}", urgency=kinds,
            respond_by=self.tickets.rules.handoff_due(now, "urgent")))
        return receipt, False

    def _remember(self, conversation: Conversation, kinds: list[str], ticket_id: str,
                  signal: VulnerabilitySignal | None) -> None:
        state = support_state(conversation)
        state.update({"active": True, "kind": kinds[0], "kinds": sorted(set(state.get("kinds", [])) | set(kinds)),
                      "ticket_id": ticket_id, "signals": int(state.get("signals", 0)) + 1,
                      "since": state.get("since") or utcnow().isoformat()})
        conversation.state[STATE_KEY] = state
        _record_in_dialogue(conversation, kinds[0], ticket_id, signal)

    # --- text ------------------------------------------------------------------------------------------
    def _guidance(self, kinds: list[str]) -> tuple[list[str], list[Citation]]:
        """The leading kind's guidance, then the next kind's (a scam message that also says "I feel
        hopeless" gets the scam steps and the care), unless the leading kind's stands alone."""
        quotes: list[str] = []
        citations: list[Citation] = []
        shown = kinds[:1] if kinds[0] in self.rules.guidance_alone else kinds[:2]
        for kind in shown:
            for sentences, citation in self.guidance.get(kind, []):
                new = [s for s in sentences if s not in quotes]
                quotes += new
                if new and citation.chunk_id not in {c.chunk_id for c in citations}:
                    citations.append(citation)
        return quotes, citations

    def _lender(self) -> dict[str, Any]:
        lender = self.terms.lender
        return {"hotline": lender.hotline, "hotline_hours": getattr(lender, "hotline_hours", ""),
                "lender": lender.name, **self.rules.crisis}

    def _values(self, receipt: Receipt, kind: str) -> dict[str, Any]:
        ticket = receipt.ticket
        return {**self._lender(), "ticket_id": ticket.id,
                "respond_by": self.tickets.rules.display(ticket.ack_due),
                "team_name": self.replies.get(f"team_{kind}", "specialist support")}

    def say(self, key: str, **values: Any) -> str:
        return " ".join(self.replies.get(key, "").format(**values).split())


def support_state(conversation: Conversation) -> dict[str, Any]:
    state = conversation.state.get(STATE_KEY)
    return dict(state) if isinstance(state, dict) else {}


def _close_form(conversation: Conversation) -> None:
    """A form in progress stops: a customer in difficulty is not asked for their income."""
    form = conversation.state.get("eligibility")
    if isinstance(form, dict) and form.get("active"):
        form["active"] = False


def _record_in_dialogue(conversation: Conversation, kind: str, ticket_id: str,
                        signal: VulnerabilitySignal | None) -> None:
    """The dialogue state's `vulnerability` and `tickets`, where the dialogue manager exists."""
    try:
        from assistant.dialogue.state import load_state, record_event, save_state  # type: ignore[import-not-found]
    except ImportError:
        return
    try:
        state = load_state(conversation)
        state.vulnerability = kind
        save_state(conversation, state)
        # record_event keeps the ticket reference in `tickets` ("kind" is its own argument's name)
        record_event(conversation, "vulnerability", skill="support", signal=kind, ticket=ticket_id,
                     matched=signal.matched if signal else [])
    except Exception:  # the dialogue state is another module's: the support reply still goes out
        log.exception("could not record the vulnerability in the dialogue state")


def _load_guidance(settings: Settings, rules: VulnerabilityRules) -> dict[str, list[tuple[list[str], Citation]]]:
    """Per kind: the quoted sentences of each rule-document section, with its citation."""
    docs = _rule_documents(settings, {g.doc for gs in rules.guidance.values() for g in gs})
    out: dict[str, list[tuple[list[str], Citation]]] = {}
    for kind, items in rules.guidance.items():
        for g in items:
            doc = docs.get(g.doc)
            if doc is None:
                log.warning("support guidance: no document %s in %s", g.doc, settings.knowledge_dir)
                continue
            try:
                section = doc.section(g.section)
            except KeyError as exc:
                log.warning("support guidance: %s", exc)
                continue
            sentences = _SENTENCE.split(" ".join(section.text.split()))
            chosen = [s for s in sentences if any(q.lower() in s.lower() for q in g.quote)]
            citation = Citation(doc_id=doc.id, title=doc.title, section=section.heading,
                                chunk_id=f"{doc.id}#{section.anchor}", source=doc.source, version=doc.version,
                                effective_date=doc.effective_date.isoformat())
            out.setdefault(kind, []).append((chosen, citation))
    return out


def _rule_documents(settings: Settings, wanted: set[str]) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    for path in document_paths(settings.knowledge_dir):
        if len(docs) == len(wanted):
            break
        try:
            doc = parse_document(path, settings.knowledge_dir)
        except KnowledgeBaseError:
            continue
        if doc.id in wanted:
            docs[doc.id] = doc
    return docs
