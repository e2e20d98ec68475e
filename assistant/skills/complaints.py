"""The complaint skill: classify the complaint (product x issue -> team), weigh its severity and
escalation triggers, open a durable ticket with the regulatory deadlines, and acknowledge it
with the ticket id and the deadlines. A complaint too short to act on ("I want to complain")
first gets a question for details; the form's state lives in conversation.state["complaint"],
with the tickets opened (or asked about) in this conversation ("tickets"). A follow-up question
about one of them ("how long will it take?", "what's my reference?", routed with reason
"followup:...") is answered from the ticket itself (looked up in the store: its status and
deadlines) and opens no new ticket.

A returning customer's question about a complaint made in another conversation ("what's the status
of my complaint?", "any update on CMP-261129-7KQ3MZ?") is answered from the store too, only for a
customer the conversation knows (a signed customer token) and only with their own tickets: a
reference that is someone else's reads exactly like one that does not exist. An anonymous customer
is told how to check (a reference alone is no proof of who they are); no ticket is opened."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from assistant.complaints.classifier import Classification, load_taxonomy, taxonomy_file
from assistant.routing.router import is_followup
from assistant.skills.ticketing import TicketSkill
from assistant.store.tickets import CLOSED_STATUSES, Receipt, Ticket, TicketDraft, TicketError, conversation_excerpt
from assistant.types import Reply, ToolCall, Turn

log = logging.getLogger(__name__)

STATE_KEY = "complaint"
REPLIES = "complaint_replies.yaml"
_CANCEL = re.compile(r"^\W*(cancel|stop|never ?mind|forget it|no thanks|don'?t bother)\b", re.I)
_TICKET_ID = re.compile(r"\bCMP-[A-Z0-9-]+\b", re.I)
# A complaint reference as the ticket service writes it (CMP-yymmdd-XXXXXX), also typed in lower
# case or with spaces for the dashes.
_REFERENCE = re.compile(r"\bCMP[-\s]?(\d{6})[-\s]?([A-Z0-9]{6})\b", re.I)
LOOKUP_TOOL = "ticket_status"
# Customer ids that say nothing about who is writing: no token ("anonymous"), every caller of the
# OpenAI-compatible API without a customer token ("api"). Their complaints are never looked up.
ANONYMOUS = frozenset({"", "anonymous", "api"})


class ComplaintSkill(TicketSkill):
    name = "complaint"
    replies_file = REPLIES

    def respond(self, turn: Turn) -> Reply:
        text = turn.route.message or turn.message
        state = turn.conversation.state.get(STATE_KEY) or {}
        opened = list(state.get("tickets") or [])  # this conversation's tickets, oldest first
        if is_followup(turn.route) and not state.get("active"):
            return self.status(turn, text, opened)
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

    def status(self, turn: Turn, text: str, opened: list[dict[str, Any]]) -> Reply:
        """A question about a complaint made earlier: one of this conversation's tickets (the one
        whose reference it quotes, else the latest), else the customer's own tickets in the store.
        Never a new ticket, never someone else's ticket."""
        quoted = _references(text)
        here = [t for t in reversed(opened) if t.get("id", "").upper() in quoted] if quoted else opened[-1:]
        if here:
            return self.followup(turn, here[0])
        customer = turn.conversation.customer_id
        if customer.strip() in ANONYMOUS:
            return self._status_reply(turn, "status_anonymous", None, stage="status_anonymous")
        arguments: dict[str, Any] = {"ticket_id": quoted[0]} if quoted else {"open_only": True}
        try:
            if quoted:
                found = self.tickets.of_customer(customer, ticket_id=quoted[0], limit=1)
            else:  # the open ones; else the latest (an answered complaint)
                found = self.tickets.of_customer(customer, open_only=True) or self.tickets.of_customer(customer, limit=1)
        except (SQLAlchemyError, OSError):
            log.warning("could not look up the complaints of a customer for a status question")
            call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, error="store unavailable")
            return self._status_reply(turn, "status_unavailable", call, stage="status_unavailable")
        if not found:  # unknown, or not theirs: the same words, no data
            call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, result={"found": 0})
            key = "status_not_found" if quoted else "status_none"
            return self._status_reply(turn, key, call, stage=key)
        if len(found) == 1:
            ticket = found[0]
            copy = {**ticket.summary(), "stored": True, "team_name": self.team_name(ticket.team)}
            # kept with the conversation's tickets, so that "when will I hear back?" next is about it
            turn.conversation.state[STATE_KEY] = {**(turn.conversation.state.get(STATE_KEY) or {}), "active": False,
                                                  "tickets": [*opened, copy]}
            return self.followup(turn, copy, ticket=ticket, arguments=arguments)
        day = self.replies.get("status_day_format", "%Y-%m-%d")
        listed = [{"id": t.id, "status": t.status, "team": t.team,
                   "created_at": f"{t.created_at.astimezone(self.rules.tz):{day}}"} for t in found]
        items = [self.say("status_item", ticket_id=t["id"], team_name=self.team_name(t["team"]),
                          created_at=t["created_at"]) for t in listed]
        call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, result={"found": len(found), "tickets": listed})
        reply = self._status_reply(turn, "status_which", call, stage="status_which", count=len(found),
                                   references=self.replies.get("status_item_separator", "; ").join(items))
        reply.meta["complaint"]["ticket_ids"] = [t.id for t in found]
        return reply

    def _status_reply(self, turn: Turn, key: str, call: ToolCall | None, stage: str, **values: Any) -> Reply:
        lender = self.terms.lender
        slots = {"hotline": lender.hotline, "hotline_hours": getattr(lender, "hotline_hours", ""),
                 "complaints_email": getattr(lender, "complaints_email", ""),
                 "app_name": getattr(lender, "app_name", ""), **values}
        return Reply(text=self.say(key, **slots), path="ticket", trace_id=turn.trace_id,
                     tool_calls=[call] if call else [], meta={"complaint": {"stage": stage}})

    def team_name(self, team: str) -> str:
        return load_taxonomy(taxonomy_file(self.settings)).teams.get(team, team.replace("_", " "))

    def followup(self, turn: Turn, opened: dict[str, Any], ticket: Ticket | None = None,
                 arguments: dict[str, Any] | None = None) -> Reply:
        """A question about a ticket opened earlier in this conversation (or `ticket`, the customer's
        own, just read from the store): its reference, status and deadlines, read from the store
        (staff may have acknowledged, extended or answered it since); the copy kept in the
        conversation when the store cannot be read (or the ticket still waits in the spool). No new
        ticket."""
        ticket = ticket or self._lookup(opened["id"])
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
        values = {**found, "ticket_id": opened["id"],
                  "team_name": opened.get("team_name") or self.team_name(opened.get("team") or ""),
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
        call = ToolCall(name=LOOKUP_TOOL, arguments=arguments or {"ticket_id": opened["id"]}, result=found)
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
        if not window or customer.strip() in ANONYMOUS:
            return False
        try:
            return bool(self.tickets.recent_complaints(customer, window))
        except (SQLAlchemyError, OSError):  # the store is down: the ticket still goes to the spool
            log.warning("could not check earlier complaints of %s", customer)
            return False


def _references(text: str) -> list[str]:
    """The complaint references a message quotes, as the ticket service writes them, in order."""
    found = [f"CMP-{m.group(1)}-{m.group(2)}".upper() for m in _REFERENCE.finditer(text)]
    found += [m.group(0).upper() for m in _TICKET_ID.finditer(text)]  # other shapes: matched as typed
    return list(dict.fromkeys(found))
