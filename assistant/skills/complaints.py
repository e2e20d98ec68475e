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
is told how to check (a reference alone is no proof of who they are); no ticket is opened.

A repeat complaint ("3rd time contacting you", "I already complained") or a message quoting an
earlier complaint (a reference in any shape the customer types: "CMP-251203-AB12CD",
"cmp 251203ab12cd", "ticket 20250311-0042"; or its day: "my complaint from monday") is linked to
that complaint (this conversation's, else a signed-in customer's own) and never opens a silent
duplicate: the new message is added to the ticket as a note. When the complaint is past a deadline
it is escalated (complaints.yaml `overdue_escalation`: severity raised, an "escalated" event) and
the customer is told so and to whom. Where nothing is found the customer is told so and offered a
new complaint."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from assistant.complaints.classifier import Classification, load_taxonomy, taxonomy_file
from assistant.routing.router import is_followup
from assistant.skills.ticketing import TicketSkill
from assistant.store.tickets import (
    CLOSED_STATUSES, Receipt, Ticket, TicketDraft, TicketError, conversation_excerpt, escalate_ticket,
)
from assistant.timefmt import with_local
from assistant.types import Reply, ToolCall, Turn

log = logging.getLogger(__name__)

STATE_KEY = "complaint"
REPLIES = "complaint_replies.yaml"
_CANCEL = re.compile(r"^\W*(cancel|stop|never ?mind|forget it|no thanks|don'?t bother)\b", re.I)
_TICKET_ID = re.compile(r"\bCMP-[A-Z0-9-]+\b", re.I)
# A complaint reference as the ticket service writes it (CMP-yymmdd-XXXXXX), also typed in lower
# case or with spaces for the dashes.
_REFERENCE = re.compile(r"\bCMP[-\s]?(\d{6})[-\s]?([A-Z0-9]{6})\b", re.I)
# A reference in another shape, introduced by its name: "ticket 20250311-0042", "ref no. 88412-7"
# (an older system's, or mistyped). Looked up as typed: it matches no ticket, and the customer is told.
_OTHER_REFERENCE = re.compile(
    r"\b(?:ticket|ref(?:erence)?|case|complaint)\s*(?:no\.?|number|num|#|id)?\s*[:#]?\s*([A-Z]{0,4}-?\d[\dA-Z]*(?:-[\dA-Z]+)*)",
    re.I)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DAY = re.compile(r"\b(?:from|on|made|sent|filed|raised|since|last)\s+(?:last\s+|this\s+)?(today|yesterday|"
                  r"mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|rsday|urday)?\b", re.I)
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
            return self.status(turn, text, opened, repeat=self.rules.is_repeat_contact(text))
        repeat = not state.get("active") and self.rules.is_repeat_contact(text)
        if not state.get("active") and self._about_earlier(turn, text, opened):
            return self.status(turn, text, opened, repeat=True)
        if repeat and self.rules.detail_words(text) < self.rules.min_detail_words:
            # "3rd time contacting you!" with no earlier complaint to link: how to find it, or details
            key = "repeat_anonymous" if turn.conversation.customer_id.strip() in ANONYMOUS else "repeat_not_found"
            turn.conversation.state[STATE_KEY] = {"active": True, "opening": self.tickets.redact(text), "tickets": opened}
            return self._status_reply(turn, key, None, stage="details")
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
        repeat = repeat or bool(state.get("active") and self.rules.is_repeat_contact(text))
        classification = self.classifier.classify(text)
        receipt = self.open_ticket(turn, text, classification, repeated=repeat)
        team_name = self.customer_team(classification.team)
        opened.append({**receipt.ticket.summary(), "stored": receipt.stored, "team_name": team_name})
        turn.conversation.state[STATE_KEY] = {"active": False, "tickets": opened}
        _record(turn, "ticket_opened", ticket_id=receipt.ticket.id, team=receipt.ticket.team)
        said = self.acknowledgement(receipt, classification)
        if repeat:  # said they contacted us before, but there was nothing to link: say so, never silently
            anonymous = turn.conversation.customer_id.strip() in ANONYMOUS
            said = f"{self.say('repeat_new_anonymous' if anonymous else 'repeat_new_not_found')} {said}"
        return Reply(text=said, path="ticket", trace_id=turn.trace_id,
                     ticket=with_local({**receipt.ticket.summary(), "stored": receipt.stored}, self.rules.tz),
                     meta={"complaint": {"stage": "ticket", "severity": receipt.ticket.severity,
                                         "escalations": receipt.ticket.escalations}})

    def open_ticket(self, turn: Turn, text: str, classification: Classification, repeated: bool = False) -> Receipt:
        customer = turn.conversation.customer_id
        severity, escalations = self.rules.assess(text, classification.issue, turn.route.urgency,
                                                  repeated=repeated or self._repeated(customer))
        return self.tickets.create(TicketDraft(
            kind="complaint", customer_ref=customer, conversation_id=turn.conversation.id, text=text,
            excerpt=conversation_excerpt(turn.conversation), product=classification.product,
            issue=classification.issue, team=classification.team, severity=severity, reason=turn.route.reason,
            urgency=turn.route.urgency, escalations=escalations, classification=classification.model_dump()))

    def acknowledgement(self, receipt: Receipt, classification: Classification) -> str:
        ticket = receipt.ticket
        product = load_taxonomy(taxonomy_file(self.settings)).customer_product(classification.product)
        values = self.values(receipt) | {"team_name": self.customer_team(classification.team),
                                         "issue_name": classification.issue_name.lower(),
                                         "product_part": f", {product}" if product else "", "severity": ticket.severity}
        if not receipt.stored:
            return self.say("spooled", **values)
        parts = [self.say("ticket", **values)]
        if ticket.severity != "normal":
            parts.append(self.say("escalated", **values))
        return " ".join(parts)

    def _about_earlier(self, turn: Turn, text: str, opened: list[dict[str, Any]]) -> bool:
        """Whether a complaint message is about an earlier complaint rather than a new one: it says
        it is a repeat contact, or quotes a reference or the day of an earlier complaint."""
        if self.rules.is_repeat_contact(text):
            return bool(self._conversation_tickets(turn, opened)) or self._known(turn) or bool(_references(text))
        return bool(_references(text) or _named_day(text, self.tickets.clock(), self.rules.tz))

    def _known(self, turn: Turn) -> bool:
        """A signed-in customer with an open complaint (the store down: not known, a new ticket)."""
        customer = turn.conversation.customer_id
        if customer.strip() in ANONYMOUS:
            return False
        try:
            return bool(self.tickets.of_customer(customer, open_only=True, limit=1))
        except (SQLAlchemyError, OSError):
            return False

    def _conversation_tickets(self, turn: Turn, opened: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This conversation's complaints, oldest first: the skill's own copies, then any other
        reference the dialogue state lists as opened or linked here (D1's conversation.state["dialogue"])."""
        dialogue = turn.conversation.state.get("dialogue") or {}
        known = {str(t.get("id", "")).upper() for t in opened}
        extra = [{"id": str(r).upper()} for r in dialogue.get("tickets") or []
                 if str(r).upper().startswith("CMP-") and str(r).upper() not in known]
        return [*opened, *extra]

    def status(self, turn: Turn, text: str, opened: list[dict[str, Any]], repeat: bool = False) -> Reply:
        """A question about a complaint made earlier, or a repeat complaint: one of this
        conversation's tickets (the one whose reference or day it quotes, else the latest), else the
        customer's own tickets in the store. Never a new ticket, never someone else's ticket."""
        quoted = _references(text)
        day = _named_day(text, self.tickets.clock(), self.rules.tz)
        here = self._conversation_tickets(turn, opened)
        if quoted:
            here = [t for t in reversed(here) if t.get("id", "").upper() in quoted]
        elif day:
            here = [t for t in reversed(here) if t.get("created_at") and self._local_day(t["created_at"]) == day]
        else:
            here = here[-1:]
        if here and (here[0].get("ack_due") or self._lookup(here[0]["id"]) is not None):
            return self.followup(turn, here[0], repeat=repeat, text=text)
        customer = turn.conversation.customer_id
        if customer.strip() in ANONYMOUS:
            key = "repeat_anonymous" if repeat and not quoted else "status_anonymous"
            return self._status_reply(turn, key, None, stage="status_anonymous")
        arguments: dict[str, Any] = {"ticket_id": quoted[0]} if quoted else {"open_only": True}
        if day and not quoted:
            arguments = {"created_on": day.isoformat()}
        try:
            if quoted:
                found = self.tickets.of_customer(customer, ticket_id=quoted[0], limit=1)
            elif day:
                found = [t for t in self.tickets.of_customer(customer, limit=50) if self._local_day(t.created_at) == day]
            else:  # the open ones; else the latest (an answered complaint)
                found = self.tickets.of_customer(customer, open_only=True) or self.tickets.of_customer(customer, limit=1)
        except (SQLAlchemyError, OSError):
            log.warning("could not look up the complaints of a customer for a status question")
            call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, error="store unavailable")
            return self._status_reply(turn, "status_unavailable", call, stage="status_unavailable")
        if not found:  # unknown, or not theirs: the same words, no data
            call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, result={"found": 0})
            key = "status_not_found" if quoted else "status_day_not_found" if day else "status_none"
            return self._status_reply(turn, key, call, stage=key, day=f"{day:%A} {day.day} {day:%b}" if day else "")
        if len(found) == 1:
            ticket = found[0]
            copy = {**ticket.summary(), "stored": True, "team_name": self.customer_team(ticket.team)}
            # kept with the conversation's tickets, so that "when will I hear back?" next is about it
            turn.conversation.state[STATE_KEY] = {**(turn.conversation.state.get(STATE_KEY) or {}), "active": False,
                                                  "tickets": [*opened, copy]}
            return self.followup(turn, copy, ticket=ticket, arguments=arguments, repeat=repeat, text=text)
        day_format = self.replies.get("status_day_format", "%Y-%m-%d")
        listed = [{"id": t.id, "status": t.status, "team": t.team,
                   "created_at": f"{t.created_at.astimezone(self.rules.tz):{day_format}}"} for t in found]
        items = [self.say("status_item", ticket_id=t["id"], team_name=self.customer_team(t["team"]),
                          created_at=t["created_at"]) for t in listed]
        call = ToolCall(name=LOOKUP_TOOL, arguments=arguments, result={"found": len(found), "tickets": listed})
        reply = self._status_reply(turn, "status_which", call, stage="status_which", count=len(found),
                                   references=self.replies.get("status_item_separator", "; ").join(items))
        reply.meta["complaint"]["ticket_ids"] = [t.id for t in found]
        return reply

    def _local_day(self, value: Any) -> date:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.astimezone(self.rules.tz).date()

    def _status_reply(self, turn: Turn, key: str, call: ToolCall | None, stage: str, **values: Any) -> Reply:
        lender = self.terms.lender
        slots = {"hotline": lender.hotline, "hotline_hours": getattr(lender, "hotline_hours", ""),
                 "complaints_email": getattr(lender, "complaints_email", ""),
                 "app_name": getattr(lender, "app_name", ""), **values}
        return Reply(text=self.say(key, **slots), path="ticket", trace_id=turn.trace_id,
                     tool_calls=[call] if call else [], meta={"complaint": {"stage": stage}})

    def followup(self, turn: Turn, opened: dict[str, Any], ticket: Ticket | None = None,
                 arguments: dict[str, Any] | None = None, repeat: bool = False, text: str = "") -> Reply:
        """A question about a ticket opened earlier in this conversation (or `ticket`, the customer's
        own, just read from the store): its reference, status and deadlines, read from the store
        (staff may have acknowledged, extended or answered it since); the copy kept in the
        conversation when the store cannot be read (or the ticket still waits in the spool). No new
        ticket: a repeat complaint is added to it as a note, and a complaint past a deadline is
        escalated."""
        ticket = ticket or self._lookup(opened["id"])
        escalation = self._escalate(turn, ticket, repeat, text) if ticket is not None else None
        if escalation is not None:
            ticket = escalation["ticket"]
        if ticket is not None:
            status, extended = ticket.status, ticket.extended
            ack_due, resolve_due = ticket.ack_due, ticket.resolve_due
            acknowledged, resolved = ticket.acknowledged_at, ticket.resolved_at
        else:
            status, extended, acknowledged, resolved = "open", False, None, None
            ack_due, resolve_due = (datetime.fromisoformat(opened[k]) for k in ("ack_due", "resolve_due"))
        lender = self.terms.lender
        found = {"id": opened["id"], "status": status, "team": opened.get("team"), "extended": extended,
                 "ack_due": self.rules.display(ack_due), "resolve_due": self.rules.display(resolve_due),
                 "acknowledged_at": self.rules.display(acknowledged) if acknowledged else None,
                 "resolved_at": self.rules.display(resolved) if resolved else None,
                 "resolve_days": self.rules.deadlines["resolve"].amount,
                 "extended_days": self.rules.deadlines["extended_resolve"].amount}
        found["source"] = "store" if ticket is not None else "conversation"
        values = {**found, "ticket_id": opened["id"],
                  "team_name": self.customer_team(ticket.team if ticket else opened.get("team") or ""),
                  "regulator_hotline": getattr(lender, "regulator_hotline", ""), "hotline": lender.hotline,
                  "hotline_hours": getattr(lender, "hotline_hours", ""),
                  "complaints_email": getattr(lender, "complaints_email", "")}
        if escalation is not None:
            key = "followup_overdue" if escalation["fresh"] else "followup_overdue_again"
            values |= {k: v for k, v in escalation.items() if k not in ("ticket", "fresh", "deadline")}
        elif ticket is None and not opened.get("stored", True):
            key = "spooled"  # still waiting in the spool: the same words as when it was saved
        elif status in CLOSED_STATUSES:
            key = "followup_answered"
        elif extended:
            key = "followup_extended"
        elif acknowledged:
            key = "followup_acknowledged"
        else:
            key = "followup_open"
        parts = [self.say(key, **values)]
        if escalation is not None and escalation["deadline"] == "acknowledge":
            parts.append(self.say("overdue_still_due", **values))
        if repeat and escalation is None and key != "spooled":
            parts.insert(0, self.say("repeat_linked", **values))
            self._note(ticket, text)
        _record(turn, "ticket_linked", ticket_id=opened["id"], repeat=repeat)
        meta: dict[str, Any] = {"stage": "followup", "ticket_id": opened["id"], "status": status, "repeat": repeat}
        if escalation is not None:
            found |= {"escalated": True, "severity": ticket.severity, "escalated_to": escalation["escalated_to"]}
            meta |= {"stage": "escalated", "severity": ticket.severity, "escalated_to": escalation["escalated_to"]}
        call = ToolCall(name=LOOKUP_TOOL, arguments=arguments or {"ticket_id": opened["id"]}, result=found)
        return Reply(text=" ".join(p for p in parts if p), path="ticket", trace_id=turn.trace_id, tool_calls=[call],
                     meta={"complaint": meta})

    def _escalate(self, turn: Turn, ticket: Ticket, repeat: bool, text: str) -> dict[str, Any] | None:
        """A complaint past a deadline is escalated when the customer comes back about it (the
        rule's severity, an "escalated" event on the ticket, a dialogue event); once only: a later
        visit adds a note. None when no deadline has passed (or the store cannot be written)."""
        missed = self.rules.overdue(ticket, self.tickets.clock()) if ticket.kind == "complaint" else None
        if missed is None:
            return None
        rule, (deadline, due) = self.rules.overdue_escalation, missed
        note = (f"customer contacted us again after the {deadline} deadline ({due:%Y-%m-%d %H:%M} UTC) passed"
                + (f": {text}" if repeat and text else ""))
        try:
            escalated, fresh = escalate_ticket(self.tickets, ticket.id, rule.severity, rule.escalation, note)
        except (TicketError, SQLAlchemyError, OSError):
            log.warning("could not escalate overdue ticket %s", ticket.id)
            return None
        escalated_to = self.customer_team(rule.escalate_to)
        if fresh:
            _record(turn, "ticket_escalated", ticket_id=ticket.id, deadline=deadline, severity=escalated.severity,
                    escalated_to=rule.escalate_to)
        return {"ticket": escalated, "fresh": fresh, "escalated_to": escalated_to, "deadline": deadline,
                "missed": self.replies.get(f"missed_{deadline}", deadline), "missed_due": self.rules.display(due)}

    def _note(self, ticket: Ticket | None, text: str) -> None:
        """A repeat complaint's words, added to the ticket it is linked to (never lost, never a duplicate)."""
        if ticket is None or not text.strip():
            return
        try:
            self.tickets.update(ticket.id, note=f"customer contacted us again: {text}", actor="assistant")
        except (TicketError, SQLAlchemyError, OSError):
            log.warning("could not add the repeat contact to ticket %s", ticket.id)

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
        return {"ticket_id": ticket.id, "ack_due": self.rules.display(ticket.ack_due),
                "resolve_due": self.rules.display(ticket.resolve_due),
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
    """The complaint references a message quotes, as the ticket service writes them, in order;
    then any other shape typed after "ticket"/"reference" ("ticket 20250311-0042"), as typed."""
    found = [f"CMP-{m.group(1)}-{m.group(2)}".upper() for m in _REFERENCE.finditer(text)]
    rest = _REFERENCE.sub(" ", text)
    found += [m.group(0).upper() for m in _TICKET_ID.finditer(rest)]  # other CMP shapes: matched as typed
    if not found:
        found = [m.group(1).upper() for m in _OTHER_REFERENCE.finditer(text) if any(c.isdigit() for c in m.group(1))
                 and len(re.sub(r"\W", "", m.group(1))) >= 6]
    return list(dict.fromkeys(found))


def _named_day(text: str, now: datetime, tz: Any) -> date | None:
    """The day of an earlier complaint the customer names: "from monday", "on tuesday",
    "yesterday", "today": the latest such day before today (today for "today")."""
    match = _DAY.search(text)
    if not match:
        return None
    today = now.astimezone(tz).date()
    word = match.group(1).lower()
    if word in ("today", "yesterday"):
        return today - timedelta(days=0 if word == "today" else 1)
    weekday = next(i for i, name in enumerate(_WEEKDAYS) if name.startswith(word[:3]))
    back = (today.weekday() - weekday) % 7 or 7
    return today - timedelta(days=back)


def _record(turn: Turn, kind: str, **data: Any) -> None:
    """A dialogue event (assistant.dialogue, when the dialogue manager is installed)."""
    try:
        from assistant.dialogue.state import record_event
    except ImportError:  # the dialogue state is newer than this skill: nothing to record into
        return
    try:
        record_event(turn.conversation, kind, skill="complaint", **data)
    except (TypeError, ValueError):
        log.warning("could not record the dialogue event %s", kind)
