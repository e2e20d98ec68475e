"""The complaint skill: classify the complaint (product x issue -> team), weigh its severity and
escalation triggers, open a durable ticket with the regulatory deadlines, and acknowledge it
with the ticket id and the deadlines. A complaint too short to act on ("I want to complain")
first gets a question for details; the form's state lives in conversation.state["complaint"],
with the tickets opened in this conversation ("tickets"). A follow-up question about one of them
("how long will it take?", "what's my reference?", routed with reason "followup:...") is answered
from the ticket itself (looked up in the store: its status and deadlines) and opens no new ticket."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy.exc import SQLAlchemyError

from assistant.complaints import Classification, ComplaintClassifier
from assistant.config import Settings
from assistant.prompts import load_replies
from assistant.router import is_followup
from assistant.terms import Terms, load_terms
from assistant.tickets import (
    CLOSED_STATUSES, Receipt, Ticket, TicketDraft, TicketError, TicketService, conversation_excerpt,
)
from assistant.types import Delta, Reply, ToolCall, Turn

log = logging.getLogger(__name__)

STATE_KEY = "complaint"
REPLIES = "complaint_replies.yaml"
_CANCEL = re.compile(r"^\W*(cancel|stop|never ?mind|forget it|no thanks|don'?t bother)\b", re.I)
_TICKET_ID = re.compile(r"\bCMP-[A-Z0-9-]+\b", re.I)
LOOKUP_TOOL = "ticket_status"


class ComplaintSkill:
    name = "complaint"

    def __init__(self, settings: Settings, tickets: TicketService, classifier: ComplaintClassifier | None = None,
                 terms: Terms | None = None):
        self.settings = settings
        self.tickets = tickets
        self.rules = tickets.rules
        self._classifier = classifier
        self.terms = terms or load_terms(settings.terms_file)
        self.replies = load_replies(settings.prompts_dir, REPLIES)

    @property
    def classifier(self) -> ComplaintClassifier:
        if self._classifier is None:
            self._classifier = ComplaintClassifier(self.settings)
        return self._classifier

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield self.respond(turn)

    def respond(self, turn: Turn) -> Reply:
        text = turn.route.message or turn.message
        state = turn.conversation.state.get(STATE_KEY) or {}
        opened = list(state.get("tickets") or [])  # this conversation's tickets, oldest first
        if opened and is_followup(turn.route) and not state.get("active"):
            return self.followup(turn, _which(opened, text))
        if state.get("active"):
            if _CANCEL.search(text):
                turn.conversation.state[STATE_KEY] = {"active": False, "tickets": opened}
                return Reply(text=self.say("cancelled"), path="form", trace_id=turn.trace_id,
                             meta={"complaint": {"stage": "cancelled"}})
            text = f"{state.get('opening', '')}\n{text}".strip()
        elif len(text.split()) < self.rules.min_detail_words:
            turn.conversation.state[STATE_KEY] = {"active": True, "opening": self.tickets.redact(text),
                                                  "tickets": opened}
            return Reply(text=self.say("ask_details"), path="form", trace_id=turn.trace_id,
                         meta={"complaint": {"stage": "details"}})
        classification = self.classifier.classify(text)
        receipt = self.open_ticket(turn, text, classification)
        opened.append({**receipt.ticket.summary(), "stored": receipt.stored, "team_name": classification.team_name})
        turn.conversation.state[STATE_KEY] = {"active": False, "tickets": opened}
        return Reply(text=self.acknowledgement(receipt, classification), path="ticket", trace_id=turn.trace_id,
                     ticket={**receipt.ticket.summary(), "stored": receipt.stored},
                     meta={"complaint": {"stage": "ticket", "severity": receipt.ticket.severity,
                                         "escalations": receipt.ticket.escalations}})

    def open_ticket(self, turn: Turn, text: str, classification: Classification) -> Receipt:
        customer = turn.conversation.customer_id
        severity, escalations = self.rules.assess(text, classification.issue, turn.route.urgency,
                                                  repeated=self._repeated(customer))
        return self.tickets.create(TicketDraft(
            kind="complaint", customer_ref=customer, conversation_id=turn.conversation.id, text=text,
            excerpt=conversation_excerpt(turn.conversation), product=classification.product,
            issue=classification.issue, team=classification.team, severity=severity, reason=turn.route.reason,
            urgency=turn.route.urgency, escalations=escalations, classification=classification.model_dump()))

    def acknowledgement(self, receipt: Receipt, classification: Classification) -> str:
        ticket = receipt.ticket
        values = self.values(receipt) | {"team_name": classification.team_name, "issue_name": classification.issue_name.lower(),
                                         "product_name": classification.product_name, "severity": ticket.severity}
        if not receipt.stored:
            return self.say("spooled", **values)
        parts = [self.say("ticket", **values)]
        if ticket.severity != "normal":
            parts.append(self.say("escalated", **values))
        return " ".join(parts)

    def followup(self, turn: Turn, opened: dict[str, Any]) -> Reply:
        """A question about a ticket opened earlier in this conversation: its reference, status and
        deadlines, read from the store (staff may have acknowledged, extended or answered it since);
        the copy kept in the conversation when the store cannot be read (or the ticket still waits
        in the spool). No new ticket."""
        ticket = self._lookup(opened["id"])
        fmt = self.replies.get("date_format", "%Y-%m-%d %H:%M")
        if ticket is not None:
            status, extended = ticket.status, ticket.extended
            ack_due, resolve_due = ticket.ack_due, ticket.resolve_due
            acknowledged, resolved = ticket.acknowledged_at, ticket.resolved_at
        else:
            status, extended, acknowledged, resolved = "open", False, None, None
            ack_due, resolve_due = (datetime.fromisoformat(opened[k]) for k in ("ack_due", "resolve_due"))
        lender = self.terms.lender
        found = {"id": opened["id"], "status": status, "team": opened.get("team"), "extended": extended,
                 "ack_due": self.rules.display(ack_due, fmt), "resolve_due": self.rules.display(resolve_due, fmt),
                 "acknowledged_at": self.rules.display(acknowledged, fmt) if acknowledged else None,
                 "resolved_at": self.rules.display(resolved, fmt) if resolved else None,
                 "resolve_days": self.rules.deadlines["resolve"].amount,
                 "extended_days": self.rules.deadlines["extended_resolve"].amount}
        found["source"] = "store" if ticket is not None else "conversation"
        values = {**found, "ticket_id": opened["id"], "team_name": opened.get("team_name") or opened.get("team", ""),
                  "regulator_hotline": getattr(lender, "regulator_hotline", ""), "hotline": lender.hotline,
                  "hotline_hours": getattr(lender, "hotline_hours", ""),
                  "complaints_email": getattr(lender, "complaints_email", "")}
        if ticket is None and not opened.get("stored", True):
            key = "spooled"  # still waiting in the spool: the same words as when it was saved
        elif status in CLOSED_STATUSES:
            key = "followup_answered"
        elif extended:
            key = "followup_extended"
        elif acknowledged:
            key = "followup_acknowledged"
        else:
            key = "followup_open"
        call = ToolCall(name=LOOKUP_TOOL, arguments={"ticket_id": opened["id"]}, result=found)
        return Reply(text=self.say(key, **values), path="ticket", trace_id=turn.trace_id, tool_calls=[call],
                     meta={"complaint": {"stage": "followup", "ticket_id": opened["id"], "status": status}})

    def _lookup(self, ticket_id: str) -> Ticket | None:
        try:
            return self.tickets.get(ticket_id)
        except TicketError:  # still in the spool: the store has not registered it yet
            return None
        except (SQLAlchemyError, OSError):
            log.warning("could not read ticket %s for a follow-up question", ticket_id)
            return None

    def values(self, receipt: Receipt) -> dict[str, Any]:
        ticket, lender = receipt.ticket, self.terms.lender
        fmt = self.replies.get("date_format", "%Y-%m-%d %H:%M")
        return {"ticket_id": ticket.id, "ack_due": self.rules.display(ticket.ack_due, fmt),
                "resolve_due": self.rules.display(ticket.resolve_due, fmt),
                "extended_days": self.rules.deadlines["extended_resolve"].amount,
                "regulator_hotline": getattr(lender, "regulator_hotline", ""), "hotline": lender.hotline,
                "hotline_hours": getattr(lender, "hotline_hours", ""),
                "complaints_email": getattr(lender, "complaints_email", "")}

    def say(self, key: str, **values: Any) -> str:
        return " ".join(self.replies.get(key, "").format(**values).split())

    def _repeated(self, customer: str) -> bool:
        window = self.rules.repeat_window_days()
        if not window or customer in ("", "anonymous"):
            return False
        try:
            return bool(self.tickets.recent_complaints(customer, window))
        except (SQLAlchemyError, OSError):  # the store is down: the ticket still goes to the spool
            log.warning("could not check earlier complaints of %s", customer)
            return False


def _which(opened: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The ticket a follow-up is about: the one whose reference it quotes, else the latest."""
    quoted = {m.group(0).upper() for m in _TICKET_ID.finditer(text)}
    return next((t for t in reversed(opened) if t.get("id", "").upper() in quoted), opened[-1])
