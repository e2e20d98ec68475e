"""Repeat complaints and questions about an earlier complaint (issue 13, part 5), and the customer-facing
text of tickets (part 7): references in any shape, "my complaint from monday", a repeat contact linked
and never a silent duplicate, an overdue complaint escalated, an anonymous caller told nothing, team
names a customer understands, one time format.

The skill gets no classifier (`object()`): a test in which it tried to open a new ticket would fail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from assistant.complaints.classifier import load_taxonomy, taxonomy_file
from assistant.config import Settings
from assistant.skills.complaints import ComplaintSkill, _named_day, _references
from assistant.store.tickets import TicketDraft, TicketService
from assistant.timefmt import lender_time, with_local
from assistant.types import Conversation, RouteDecision, Turn

TZ = "Asia/Shanghai"
NOW = datetime(2026, 12, 5, 4, 0, tzinfo=timezone.utc)  # Saturday 5 Dec 2026, 12:00 in Shanghai


@pytest.fixture
def data(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)


def _file(data: Settings, customer: str, days_ago: float, team: str = "fees_billing", status: str = "open") -> str:
    filed = TicketService(data, clock=lambda: NOW - timedelta(days=days_ago))
    ticket = filed.create(TicketDraft(kind="complaint", customer_ref=customer, text="late fee charged twice",
                                      team=team, issue="fees_interest")).ticket
    if status != "open":
        filed.update(ticket.id, status=status, note="staff")
    return ticket.id


def _skill(data: Settings, now: datetime = NOW) -> tuple[TicketService, ComplaintSkill]:
    tickets = TicketService(data, clock=lambda: now)
    return tickets, ComplaintSkill(data, tickets, classifier=object())


def _say(skill: ComplaintSkill, conversation: Conversation, text: str, reason: str = "classifier"):
    return skill.respond(Turn(conversation=conversation, message=text,
                              route=RouteDecision(intent="complaint", reason=reason)))


# --- references and days, as typed ---------------------------------------------------------------

@pytest.mark.parametrize("typed, found", [
    ("any news on CMP-251203-AB12CD?", ["CMP-251203-AB12CD"]),
    ("cmp 251203ab12cd", ["CMP-251203-AB12CD"]),
    ("my ref is cmp-251203 ab12cd", ["CMP-251203-AB12CD"]),
    ("CMP251203AB12CD please", ["CMP-251203-AB12CD"]),
    ("ticket 20250311-0042, the deadline passed", ["20250311-0042"]),
    ("reference no. 88412-7781", ["88412-7781"]),
    ("what about my complaint from monday", []),
    ("case 12", []),  # too short to be a reference
])
def test_references_in_the_shapes_customers_type(typed, found):
    assert _references(typed) == found


@pytest.mark.parametrize("typed, day", [
    ("my complaint from monday", "2026-11-30"), ("the one I made on Tuesday", "2026-12-01"),
    ("the complaint from saturday", "2026-11-28"),  # today is Saturday: a week ago
    ("the complaint I sent yesterday", "2026-12-04"), ("the complaint from today", "2026-12-05"),
    ("my complaint about the fee", None),
])
def test_the_day_of_an_earlier_complaint(typed, day):
    from zoneinfo import ZoneInfo
    found = _named_day(typed, NOW, ZoneInfo(TZ))
    assert (found.isoformat() if found else None) == day


# --- linked, never a duplicate ----------------------------------------------------------------------

def test_a_signed_in_customers_repeat_complaint_links_to_their_open_one(data):
    mine = _file(data, "cust-r", 3, status="acknowledged")  # within its deadlines
    _file(data, "cust-x", 1)
    tickets, skill = _skill(data)
    conversation = Conversation(customer_id="cust-r")
    reply = _say(skill, conversation, "This is the 3rd time contacting you about the double late fee, nobody answers!")
    assert reply.ticket is None and len(tickets.list()) == 2  # no new ticket
    assert mine in reply.text and "added your message" in reply.text and "different problem" in reply.text
    assert reply.meta["complaint"]["repeat"] and reply.meta["complaint"]["ticket_id"] == mine
    notes = [e.note for e in tickets.get(mine).events if e.action == "note"]
    assert any("3rd time contacting you" in n for n in notes)  # the message is on the ticket, not lost
    assert [t["id"] for t in conversation.state["complaint"]["tickets"]] == [mine]


def test_a_repeat_in_the_same_conversation_links_to_its_own_ticket(data):
    theirs = _file(data, "cust-r", 1)
    tickets, skill = _skill(data)
    first = tickets.get(theirs)
    conversation = Conversation(customer_id="anonymous", state={"complaint": {"active": False, "tickets": [
        {**first.summary(), "stored": True}]}})
    reply = _say(skill, conversation, "I already complained about this and still no answer")
    assert theirs in reply.text and reply.ticket is None and len(tickets.list()) == 1


def test_a_reference_typed_in_any_shape_finds_the_customers_ticket(data):
    mine = _file(data, "cust-r", 2)
    tickets, skill = _skill(data)
    typed = f"cmp {mine[4:10]}{mine[11:].lower()}"  # "cmp 261203ab12cd"
    reply = _say(skill, Conversation(customer_id="cust-r"), f"what's happening with {typed}", reason="followup:complaint_lookup")
    assert mine in reply.text and reply.tool_calls[0].arguments == {"ticket_id": mine} and not reply.ticket
    # the same quoted in a complaint message (not routed as a status question): linked, not a new ticket
    again = _say(skill, Conversation(customer_id="cust-r"), f"{mine} you charged me again and nobody replied")
    assert mine in again.text and not again.ticket and len(tickets.list()) == 1


def test_my_complaint_from_monday(data):
    monday = _file(data, "cust-r", 5)  # Mon 30 Nov
    _file(data, "cust-r", 2)  # Thu 3 Dec
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "any news on my complaint from monday?",
                 reason="followup:complaint_lookup")
    assert monday in reply.text and reply.tool_calls[0].arguments == {"created_on": "2026-11-30"}
    none = _say(skill, Conversation(customer_id="cust-r"), "any news on my complaint from wednesday?",
                reason="followup:complaint_lookup")
    assert "made on Wednesday 2 Dec" in none.text and "register a new complaint" in none.text and not none.ticket


def test_an_unknown_reference_says_so_and_offers_a_new_complaint(data):
    _file(data, "cust-r", 2)
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "ticket 20250311-0042, the deadline passed")
    assert "can't find a complaint with that reference" in reply.text and "register a complaint" in reply.text
    assert reply.tool_calls[0].result == {"found": 0} and not reply.ticket and len(tickets.list()) == 1


@pytest.mark.parametrize("text", ["any update on {ref}?", "this is my third time writing about {ref}",
                                  "3rd time contacting you, nobody replied"])
def test_an_anonymous_caller_gets_no_details_but_is_told_how_to_get_help(data, text):
    theirs = _file(data, "cust-x", 20)  # overdue, someone's: nothing may leak, nothing escalated
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="anonymous"), text.format(ref=theirs))
    assert reply.meta["complaint"]["stage"] in ("status_anonymous", "details")  # details: of a new complaint
    assert reply.tool_calls == [] and not reply.ticket
    ticket = tickets.get(theirs)
    for leaked in ("Billing team", lender_time(ticket.resolve_due, TZ), "escalated"):
        assert leaked not in reply.text
    assert "400-820-6600" in reply.text and "sign" in reply.text.lower()
    assert ticket.severity == "normal" and len(tickets.list()) == 1


def test_a_repeat_with_nothing_to_link_is_registered_and_says_so(data, monkeypatch):
    from assistant.complaints.classifier import Classification

    tickets, skill = _skill(data)
    fees = Classification(product="cash", product_name="Meadow Cash loan", issue="fees_interest",
                          issue_name="Unexpected fees, interest or rate charged", team="fees_billing",
                          team_name="Fees and billing", product_confidence=0.9, issue_confidence=0.9)
    skill._classifier = type("Fixed", (), {"classify": lambda self, text: fees})()  # no model needed here
    reply = _say(skill, Conversation(customer_id="cust-new"),
                 "This is the third time I'm writing: you charged me the late fee twice on my Meadow Cash loan")
    assert reply.ticket and "can't find an open complaint from you" in reply.text
    assert "our Billing team" in reply.text and "Fees and billing" not in reply.text
    assert "repeated_complaint" in tickets.get(reply.ticket["id"]).escalations
    assert reply.ticket["resolve_due_local"].endswith("(China Standard Time, UTC+8)")


@pytest.mark.parametrize("customer", ["cust-new", "anonymous"])
def test_a_repeat_with_no_details_and_nothing_to_link_asks_for_them(data, customer):
    tickets, skill = _skill(data)
    conversation = Conversation(customer_id=customer)
    reply = _say(skill, conversation, "this is the 3rd time contacting you and nobody answers")
    assert not reply.ticket and reply.meta["complaint"]["stage"] == "details" and tickets.list() == []
    assert "contact us again" in reply.text and conversation.state["complaint"]["active"]


# --- past the deadline: escalated ---------------------------------------------------------------------

def test_an_overdue_complaint_is_escalated_once_and_the_customer_told_to_whom(data):
    late = _file(data, "cust-r", 20)  # answer due after 15 calendar days
    tickets, skill = _skill(data)
    conversation = Conversation(customer_id="cust-r")
    reply = _say(skill, conversation, "3rd time contacting you, the deadline passed and still no answer")
    ticket = tickets.get(late)
    assert ticket.severity == "urgent" and "deadline_missed" in ticket.escalations
    assert [e.action for e in ticket.events].count("escalated") == 1
    assert "escalated it now" in reply.text and "our Complaints Manager" in reply.text
    assert lender_time(ticket.resolve_due, TZ) in reply.text and "12378" in reply.text
    assert reply.meta["complaint"]["stage"] == "escalated" and reply.tool_calls[0].result["escalated"]
    assert not reply.ticket and len(tickets.list()) == 1
    # back again: no second escalation, a note, and the customer is told it is already escalated
    again = _say(skill, conversation, "still waiting!! what is the status of my complaint",
                 reason="followup:complaint_status")
    ticket = tickets.get(late)
    assert [e.action for e in ticket.events].count("escalated") == 1 and "already escalated" in again.text


def test_an_unacknowledged_complaint_past_24_hours_is_escalated_on_a_status_question(data):
    late = _file(data, "cust-r", 2)
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "what's the status of my complaint?",
                 reason="followup:complaint_lookup")
    assert "should have been acknowledged by" in reply.text and tickets.get(late).severity == "urgent"


def test_a_complaint_within_its_deadlines_is_not_escalated(data):
    fresh = _file(data, "cust-r", 0.5)
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "what's the status of my complaint?",
                 reason="followup:complaint_lookup")
    assert "escalated" not in reply.text and tickets.get(fresh).severity == "normal"


def test_an_answered_complaint_is_not_escalated(data):
    done = _file(data, "cust-r", 30, status="resolved")
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "what's the status of my complaint?",
                 reason="followup:complaint_lookup")
    assert "We have sent our answer" in reply.text and tickets.get(done).escalations == []


# --- customer-facing text -------------------------------------------------------------------------------

def test_lender_time_is_local_with_its_zone():
    assert lender_time("2025-12-09T09:00:00Z", TZ) == "Tue 9 Dec 2025, 17:00 (China Standard Time, UTC+8)"
    assert lender_time(datetime(2025, 12, 9, 9, tzinfo=timezone.utc), "Asia/Kolkata").endswith("(IST, UTC+5:30)")
    assert lender_time("not a time", TZ) == ""
    local = with_local({"ack_due": "2025-12-09T09:00:00+00:00", "team": "x"}, TZ)
    assert local["ack_due_local"] == "Tue 9 Dec 2025, 17:00 (China Standard Time, UTC+8)" and local["team"] == "x"


def test_every_team_has_a_customer_name_and_internal_products_are_never_named(data):
    taxonomy = load_taxonomy(taxonomy_file(data))
    assert set(taxonomy.teams) <= set(taxonomy.customer_teams)
    assert all(name.endswith(("team", "Manager")) for name in taxonomy.customer_teams.values())
    assert taxonomy.customer_product("secured_loan") == "" and taxonomy.customer_product("collections") == ""
    assert taxonomy.customer_product("flex") == "Meadow Flex credit line"


def test_the_status_reply_shows_the_customer_team_and_local_times(data):
    mine = _file(data, "cust-r", 0.5, team="collections_conduct")
    tickets, skill = _skill(data)
    reply = _say(skill, Conversation(customer_id="cust-r"), "what's the status of my complaint?",
                 reason="followup:complaint_lookup")
    ticket = tickets.get(mine)
    assert "our Collections team" in reply.text and "Collections conduct" not in reply.text
    assert lender_time(ticket.resolve_due, TZ) in reply.text and "(China Standard Time, UTC+8)" in reply.text
