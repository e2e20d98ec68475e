"""The hand-off skill: a durable ticket in the human queue with the conversation attached, and a
reply that says what happens next and by when.

The router sends a conversation here when the customer asks for a person, after two failed
answers in a row, or when it flags urgency (fraud, self-harm, threats by collectors, ...). An
urgent message that is also a complaint becomes a complaint ticket, so the regulatory clock runs
too; the team is the one the rules name for the urgency flag, else the complaint's team."""

from __future__ import annotations

from typing import Any

from assistant.complaints.classifier import ComplaintClassifier, load_taxonomy, taxonomy_file
from assistant.config import Settings
from assistant.knowledge.terms import Terms
from assistant.skills.ticketing import TicketSkill
from assistant.store.tickets import Receipt, TicketDraft, TicketService, conversation_excerpt
from assistant.timefmt import with_local
from assistant.types import Reply, RouteDecision, Turn

REPLIES = "handoff_replies.yaml"


class HandoffSkill(TicketSkill):
    name = "handoff"
    replies_file = REPLIES

    def __init__(self, settings: Settings, tickets: TicketService, classifier: ComplaintClassifier | None = None,
                 terms: Terms | None = None):
        super().__init__(settings, tickets, classifier, terms)
        self.taxonomy = classifier.taxonomy if classifier else load_taxonomy(taxonomy_file(settings))

    def load_classifier(self) -> ComplaintClassifier:
        return ComplaintClassifier(self.settings, taxonomy=self.taxonomy)

    def respond(self, turn: Turn) -> Reply:
        receipt = self.open_ticket(turn)
        ticket = receipt.ticket
        return Reply(text=self.text(turn.route, receipt), path="handoff", trace_id=turn.trace_id,
                     ticket=with_local({**ticket.summary(), "stored": receipt.stored,
                                        "respond_by": ticket.ack_due.isoformat()}, self.rules.tz),
                     meta={"handoff": {"reason": turn.route.reason, "urgency": turn.route.urgency,
                                       "team": ticket.team, "severity": ticket.severity}})

    def open_ticket(self, turn: Turn) -> Receipt:
        route, conversation = turn.route, turn.conversation
        text = route.message or turn.message
        urgency = list(route.urgency)
        severity = self.severity(urgency)
        draft: dict[str, Any] = {"kind": "handoff", "team": self.rules.handoff.team_for(urgency)}
        if urgency and is_complaint(route):
            c = self.classifier.classify(text)
            severity, escalations = self.rules.assess(text, c.issue, urgency)
            severity = max(severity, self.severity(urgency), key=_rank)
            draft = {"kind": "complaint", "product": c.product, "issue": c.issue, "escalations": escalations,
                     "team": self.rules.handoff.team_by_flag.get(urgency[0], c.team), "classification": c.model_dump()}
        return self.tickets.create(TicketDraft(
            customer_ref=conversation.customer_id, conversation_id=conversation.id, text=text,
            excerpt=conversation_excerpt(conversation), severity=severity, reason=route.reason or "handoff",
            urgency=urgency, respond_by=self.rules.handoff_due(self.tickets.clock(), severity), **draft))

    def severity(self, urgency: list[str]) -> str:
        if set(urgency) & set(self.rules.urgent_flags):
            return "urgent"
        return "high" if urgency else "normal"

    def text(self, route: RouteDecision, receipt: Receipt) -> str:
        ticket = receipt.ticket
        values = self.values(receipt)
        reason = route.reason.split(":", 1)
        intro_key = {"rule": "intro_human_request", "two_failures": "intro_two_failures",
                     "urgent": "intro_urgent"}.get(reason[0], "intro_default")
        if reason[0] == "rule" and reason[-1] != "human_request":
            intro_key = "intro_default"
        parts = [self.say(intro_key, **values)] if not route.urgency else []
        # Flags come by priority (routing.yaml): lead with the first one's guidance, not a list of them.
        guidance = [f"urgent_{flag}" for flag in route.urgency if f"urgent_{flag}" in self.replies]
        parts += [self.say(guidance[0], **values)] if guidance else []
        if not receipt.stored:
            parts.append(self.say("spooled", **values))
        else:
            parts.append(self.say("queued", **values))
            if ticket.kind == "complaint":
                parts.append(self.say("also_complaint", **values))
        return " ".join(p for p in parts if p)

    def values(self, receipt: Receipt) -> dict[str, Any]:
        ticket, lender = receipt.ticket, self.terms.lender
        hours = self.rules.handoff.service_hours
        complaint_deadlines = self.rules.deadlines_for(ticket.created_at)
        return {"ticket_id": ticket.id, "team_name": self.taxonomy.customer_team(ticket.team),
                "respond_by": self.rules.display(ticket.ack_due),
                "service_hours": f"{hours['open']}-{hours['close']} every day",
                "ack_due": self.rules.display(min(ticket.ack_due, complaint_deadlines.ack_due)),
                "resolve_due": self.rules.display(ticket.resolve_due), "hotline": lender.hotline,
                "hotline_hours": getattr(lender, "hotline_hours", "")}

    def say(self, key: str, **values: Any) -> str:
        return " ".join(self.replies.get(key, "").format(**values).split())


def is_complaint(route: RouteDecision) -> bool:
    """Whether the classifier, leaving the hand-off aside, reads the message as a complaint."""
    others = {k: v for k, v in route.scores.items() if k != "handoff"}
    return bool(others) and max(others, key=others.get) == "complaint"


def _rank(severity: str) -> int:
    return {"normal": 0, "high": 1, "urgent": 2}[severity]
