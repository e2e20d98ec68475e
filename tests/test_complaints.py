"""Complaints: the taxonomy and rule files, deadlines with the holiday calendar, severity and
escalation, the shipped classifier, the complaint skill end to end on a real store, and
`assistant complaints evaluate` on a small CFPB-format file."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assistant.complaints.rules import complaint_rules_file, load_complaint_rules
from assistant.complaints.classifier import SHARED_DATA, ComplaintClassifier, load_taxonomy, read_cfpb, taxonomy_file
from assistant.cli.complaints import app
from assistant.config import Settings
from assistant.knowledge.embeddings import load_embedder
from assistant.routing.router import Router
from assistant.skills.complaints import ComplaintSkill
from assistant.knowledge.terms import load_terms
from assistant.store.tickets import TicketDraft, TicketService
from assistant.timefmt import lender_time
from assistant.types import Conversation, Message, RouteDecision, Turn

TEAMS = {"collections_conduct", "fees_billing", "fraud_security", "credit_reporting", "account_servicing",
         "marketing_conduct", "data_privacy"}
SHANGHAI = timezone(timedelta(hours=8))
TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("complaints"), _env_file=None)


@pytest.fixture(scope="module")
def rules(settings):
    return load_complaint_rules(complaint_rules_file(settings))


@pytest.fixture(scope="module")
def classifier(settings) -> ComplaintClassifier:
    return ComplaintClassifier(settings, load_embedder(settings))


# --- rule files ------------------------------------------------------------------------------------------

def test_taxonomy_asks_name_what_the_customer_asked_and_bad_patterns_fail_at_load(settings, tmp_path):
    taxonomy = load_taxonomy(taxonomy_file(settings))
    assert taxonomy.issue_asked_in("my repayment was taken twice this month, I want it refunded") == "billing_dispute"
    assert taxonomy.issue_asked_in("your collector called my mother about my loan") == "collection_conduct"
    assert taxonomy.issue_asked_in("please remove the late fee") == "fees_interest"
    broken = tmp_path / "taxonomy.yaml"
    broken.write_text(taxonomy_file(settings).read_text(encoding="utf-8").replace(
        "    asks:\n", "    asks:\n      - '(unclosed'\n", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="bad pattern"):
        load_taxonomy(broken)


def test_taxonomy_has_the_products_issues_and_teams(settings):
    taxonomy = load_taxonomy(taxonomy_file(settings))
    assert len(taxonomy.products) >= 6 and len(taxonomy.issues) >= 15
    assert {i.team for i in taxonomy.issues.values()} == TEAMS


@pytest.mark.skipif(not (SHARED_DATA / "cfpb_complaints_train.csv").is_file(), reason="no shared CFPB data")
def test_every_cfpb_label_in_the_shared_data_is_mapped(settings):
    taxonomy = load_taxonomy(taxonomy_file(settings))
    with (SHARED_DATA / "cfpb_complaints_train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["Product"] for r in rows if taxonomy.product_for_cfpb(r["Product"]) is None} == set()
    unmapped = {r["Issue"] for r in rows} - {c for i in taxonomy.issues.values() for c in i.cfpb}
    assert unmapped == set()


def test_deadlines_agree_with_the_terms_file(settings, rules):
    figures = load_terms(settings.terms_file).complaints
    assert rules.deadlines["acknowledge"].unit == "hours"
    assert rules.deadlines["acknowledge"].amount == figures["acknowledge_within_hours"]
    assert rules.deadlines["resolve"].amount == figures["resolve_within_days"]
    assert rules.deadlines["extended_resolve"].amount == figures["extended_resolve_within_days"]
    assert rules.deadlines["resolve"].unit == rules.deadlines["extended_resolve"].unit == "calendar_days"


def test_calendar_days_working_days_and_holidays(rules):
    created = datetime(2026, 9, 20, 23, 30, tzinfo=SHANGHAI)  # a Sunday, but a make-up working day
    due = rules.deadlines_for(created)
    assert due.ack_due == created + timedelta(hours=24)
    assert due.resolve_due == datetime(2026, 10, 5, 23, 59, 59, tzinfo=SHANGHAI)  # calendar days: mid-holiday
    assert due.extended_resolve_due == datetime(2026, 10, 20, 23, 59, 59, tzinfo=SHANGHAI)
    # the extension notice is due 2 working days before 5 October: 1-7 October is the National Day
    # holiday, 28-30 September are working days, so the notice is due on 29 September
    assert due.extension_notice_due == datetime(2026, 9, 29, 23, 59, 59, tzinfo=SHANGHAI)
    assert rules.is_working_day(date(2026, 9, 20)) and not rules.is_working_day(date(2026, 10, 7))
    assert rules.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)  # Saturday make-up day
    assert rules.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)  # Spring Festival


def test_handoff_answer_time_counts_service_hours(rules):
    late = datetime(2026, 11, 28, 20, 30, tzinfo=SHANGHAI)  # 30 minutes before the hotline closes
    assert rules.handoff_due(late, "normal") == datetime(2026, 11, 29, 11, 30, tzinfo=SHANGHAI)
    assert rules.handoff_due(late, "urgent") == datetime(2026, 11, 29, 8, 30, tzinfo=SHANGHAI)
    night = datetime(2026, 11, 29, 3, 0, tzinfo=SHANGHAI)
    assert rules.handoff_due(night, "high") == datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("text, issue, urgency, severity, fired", [
    ("The late fee was wrong, please refund it", "fees_interest", [], "normal", []),
    ("Refund the fee or I will report you to the regulator", "fees_interest", [], "high", ["regulator_threat"]),
    ("I'll tell the newspapers how you treat people", "account_management", [], "high", ["press_threat"]),
    ("The interest rate you charged is higher than my contract says", "fees_interest", [], "high", ["rate_dispute"]),
    ("Your agent called my employer about my loan", "collection_conduct", [], "high", ["collection_harassment"]),
    ("This is the third time I'm writing about this", "payment_problem", [], "high", ["repeated_complaint"]),
    ("Someone took a loan in my name", "fraud_identity_theft", ["identity_theft"], "urgent", []),
])
def test_severity_and_escalation_triggers(rules, text, issue, urgency, severity, fired):
    got_severity, got_fired = rules.assess(text, issue, urgency)
    assert got_severity == severity and set(fired) <= set(got_fired)
    if not fired:
        assert got_fired == []


def test_a_repeat_complaint_is_escalated(rules):
    assert rules.assess("The fee is wrong", "fees_interest", [], repeated=True) == ("high", ["repeated_complaint"])


# --- classifier ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, team", [
    ("The debt collector keeps calling my mother and told my boss about my debt", "collections_conduct"),
    ("My credit report shows a late payment that is wrong and you refuse to correct it", "credit_reporting"),
    ("You charged me a late fee and interest I never agreed to", "fees_billing"),
    ("You sold my personal data and ran a credit check without my permission", "data_privacy"),
    ("Your advert promised 0% interest but that was misleading", "marketing_conduct"),
])
def test_classifier_routes_to_the_owning_team(classifier, text, team):
    assert classifier.classify(text).team == team


def test_a_named_product_wins(classifier):
    c = classifier.classify("The Meadow Mall installments for my phone were charged twice")
    assert c.product == "mall" and c.product_source == "named" and c.product_confidence == 1.0


@pytest.mark.parametrize("text", [
    "I want to complain and I want you to remove the late fee, my repayment was late only because your app was down",
    "please waive the penalty, the collector never told me the due date had changed",
])
def test_what_the_customer_asks_for_decides_the_issue(classifier, text):
    c = classifier.classify(text)  # the model alone put the first in credit reporting
    assert (c.issue, c.team, c.issue_source) == ("fees_interest", "fees_billing", "asked")
    assert classifier.classify_many([text])[0].issue_source == "model"  # the measured model is unchanged


# --- the skill on a real store -----------------------------------------------------------------------------

def _turn(conversation: Conversation, message: str, **route) -> Turn:
    return Turn(conversation=conversation, message=message, route=RouteDecision(intent="complaint", **route))


def test_complaint_skill_asks_for_details_then_opens_a_ticket(settings, classifier, tmp_path):
    tickets = TicketService(settings.model_copy(update={"data_dir": tmp_path / "data"}),
                            redact=lambda t: t.replace("13812345678", "[PHONE]"))
    skill = ComplaintSkill(tickets.settings, tickets, classifier=classifier)
    conversation = Conversation(customer_id="cust-7")
    ask = skill.respond(_turn(conversation, "I want to make a complaint"))
    assert ask.path == "form" and conversation.state["complaint"]["active"]
    conversation.messages += [Message(role="user", content="I want to make a complaint"),
                              Message(role="assistant", content=ask.text, meta={"path": "form"})]
    reply = skill.respond(_turn(conversation, "Your collector called my mother at 11pm, call me on 13812345678"))
    assert reply.path == "ticket" and not conversation.state["complaint"]["active"]
    ticket = tickets.get(reply.ticket["id"])
    assert ticket.team == "collections_conduct" and ticket.severity == "high"
    assert "13812345678" not in ticket.text and "[PHONE]" in ticket.text
    assert "I want to make a complaint" in ticket.text  # the opening message is kept with the details
    for shown in (ticket.id, lender_time(ticket.ack_due, TZ),
                  lender_time(ticket.resolve_due, TZ), "12378"):
        assert shown in reply.text
    again = skill.respond(_turn(conversation, "You still haven't fixed the collector calls and they call my family"))
    assert tickets.get(again.ticket["id"]).escalations.count("repeated_complaint") == 1


def test_a_question_about_the_open_complaint_is_answered_from_its_ticket(settings, classifier, tmp_path):
    tickets = TicketService(settings.model_copy(update={"data_dir": tmp_path / "data"}))
    skill = ComplaintSkill(tickets.settings, tickets, classifier=classifier)
    router = Router(tickets.settings, classifier.embedder)
    conversation = Conversation(customer_id="cust-8")
    first = skill.respond(_turn(conversation, "I want to complain, my auto-debit failed because of your app "
                                              "and I was charged a late fee"))
    ticket = tickets.get(first.ticket["id"])
    assert [t["id"] for t in conversation.state["complaint"]["tickets"]] == [ticket.id]

    question = "how long will it take you to resolve my complaint?"
    route = router.route(conversation, question)
    assert (route.intent, route.reason) == ("complaint", "followup:complaint_status")
    answer = skill.respond(Turn(conversation=conversation, message=question, route=route))
    assert answer.ticket is None and answer.path == "ticket"
    assert len(tickets.list()) == 1  # no second ticket
    for shown in (ticket.id, "15 calendar days", lender_time(ticket.ack_due, TZ),
                  lender_time(ticket.resolve_due, TZ)):
        assert shown in answer.text
    assert answer.tool_calls[0].name == "ticket_status" and answer.tool_calls[0].result["id"] == ticket.id

    # staff acknowledge it: the answer follows the ticket, not the copy in the conversation
    tickets.update(ticket.id, status="acknowledged", note="called the customer")
    later = skill.respond(_turn(conversation, "what's the status of my complaint?", reason="followup:complaint_status"))
    assert "acknowledged it on" in later.text and ticket.id in later.text and len(tickets.list()) == 1


def test_a_different_problem_in_the_same_conversation_is_a_new_ticket(settings, classifier, tmp_path):
    tickets = TicketService(settings.model_copy(update={"data_dir": tmp_path / "data"}))
    skill = ComplaintSkill(tickets.settings, tickets, classifier=classifier)
    conversation = Conversation(customer_id="cust-9")
    first = skill.respond(_turn(conversation, "You charged me a late fee even though my repayment was on time"))
    second_text = "Also your collector called my mother at midnight about the loan, that is harassment"
    second = skill.respond(_turn(conversation, second_text, reason="classifier"))
    assert second.ticket and second.ticket["id"] != first.ticket["id"] and len(tickets.list()) == 2
    opened = [t["id"] for t in conversation.state["complaint"]["tickets"]]
    assert opened == [first.ticket["id"], second.ticket["id"]]
    # a follow-up answers about the latest ticket, or the one whose reference it quotes
    latest = skill.respond(_turn(conversation, "what happens next?", reason="followup:complaint_status"))
    assert second.ticket["id"] in latest.text and first.ticket["id"] not in latest.text
    quoted = skill.respond(_turn(conversation, f"any update on {first.ticket['id']}?", reason="followup:complaint_status"))
    assert first.ticket["id"] in quoted.text and len(tickets.list()) == 2


def test_a_follow_up_on_a_ticket_still_in_the_spool_uses_the_conversations_copy(settings, tmp_path):
    tickets = TicketService(settings.model_copy(update={"data_dir": tmp_path / "data"}))
    skill = ComplaintSkill(tickets.settings, tickets, classifier=object())  # no complaint to classify
    created = datetime(2026, 7, 1, 10, 0, tzinfo=SHANGHAI)
    due = tickets.rules.deadlines_for(created)
    copy = {"id": "CMP-260701-SPOOL1", "team": "fees_billing", "ack_due": due.ack_due.isoformat(),
            "resolve_due": due.resolve_due.isoformat(), "stored": False}
    conversation = Conversation(state={"complaint": {"active": False, "tickets": [copy]}})
    reply = skill.respond(_turn(conversation, "when will I hear back?", reason="followup:complaint_status_next"))
    assert "CMP-260701-SPOOL1" in reply.text and "Thu 16 Jul 2026, 23:59 (China Standard Time, UTC+8)" in reply.text and not reply.ticket
    assert reply.tool_calls[0].result["source"] == "conversation" and tickets.list() == []


# --- a returning customer asks about a complaint made in another conversation ------------------------------

def _store_with_complaints(settings, tmp_path, complaints: list[tuple[str, str, int, str]]):
    """A ticket store with (customer, team, days ago, status) complaints; the skill has no classifier,
    so a complaint it tried to register would fail the test."""
    data = settings.model_copy(update={"data_dir": tmp_path / "data"})
    ids = []
    for customer, team, days, status in complaints:
        filed = TicketService(data, clock=lambda days=days: datetime.now(timezone.utc) - timedelta(days=days))
        ticket = filed.create(TicketDraft(kind="complaint", customer_ref=customer, text="a complaint", team=team,
                                          issue="fees_interest")).ticket
        if status != "open":
            filed.update(ticket.id, status=status, note="answered")
        ids.append(ticket.id)
    tickets = TicketService(data)
    return tickets, ComplaintSkill(data, tickets, classifier=object()), ids


def _lookup(conversation: Conversation, text: str) -> Turn:
    return _turn(conversation, text, reason="followup:complaint_lookup")


def _shown(tickets: TicketService, ticket_id: str) -> list[str]:
    """What a reply about this ticket would show: its reference and its deadlines."""
    ticket = tickets.get(ticket_id)
    return [ticket.id] + [lender_time(d, TZ) for d in (ticket.ack_due, ticket.resolve_due)]


def test_a_returning_customer_with_one_open_complaint_gets_its_status(settings, classifier, tmp_path):
    tickets, skill, (answered, mine, other) = _store_with_complaints(settings, tmp_path, [
        ("cust-r", "fees_billing", 40, "resolved"), ("cust-r", "collections_conduct", 2, "open"),
        ("cust-x", "fees_billing", 1, "open")])
    router = Router(tickets.settings, classifier.embedder)
    conversation = Conversation(customer_id="cust-r")  # a new conversation: nothing in its state
    question = "what's the status of my complaint?"
    route = router.route(conversation, question)
    assert (route.intent, route.reason) == ("complaint", "followup:complaint_lookup")
    reply = skill.respond(Turn(conversation=conversation, message=question, route=route))
    assert reply.path == "ticket" and reply.ticket is None and len(tickets.list()) == 3
    assert all(shown in reply.text for shown in _shown(tickets, mine)) and "our Collections team" in reply.text
    assert answered not in reply.text and other not in reply.text
    call = reply.tool_calls[0]
    assert call.name == "ticket_status" and call.result["id"] == mine and call.result["source"] == "store"

    # the ticket is now this conversation's: a bare question right after is about it
    conversation.messages += [Message(role="user", content=question),
                              Message(role="assistant", content=reply.text, meta={"intent": "complaint"})]
    route = router.route(conversation, "when will I hear back?")
    assert route.reason == "followup:complaint_status_next"
    again = skill.respond(Turn(conversation=conversation, message="when will I hear back?", route=route))
    assert mine in again.text and not again.ticket and len(tickets.list()) == 3


def test_a_returning_customer_with_several_open_complaints_is_asked_which(settings, tmp_path):
    tickets, skill, (older, newer, answered, other) = _store_with_complaints(settings, tmp_path, [
        ("cust-r", "fees_billing", 6, "open"), ("cust-r", "collections_conduct", 2, "acknowledged"),
        ("cust-r", "data_privacy", 30, "closed"), ("cust-x", "fees_billing", 1, "open")])
    conversation = Conversation(customer_id="cust-r")
    which = skill.respond(_lookup(conversation, "any update on my complaint?"))
    assert which.text.index(newer) < which.text.index(older)  # newest first
    assert answered not in which.text and other not in which.text and "Which one" in which.text
    assert which.meta["complaint"] == {"stage": "status_which", "ticket_ids": [newer, older]}
    assert not which.ticket and which.tool_calls[0].result["found"] == 2

    # their own reference, typed as they read it out: that ticket's status and deadlines only
    typed = older.lower().replace("-", " ")
    quoted = skill.respond(_lookup(conversation, f"ok, it's {typed}"))
    assert all(shown in quoted.text for shown in _shown(tickets, older)) and newer not in quoted.text
    assert quoted.tool_calls[0].arguments == {"ticket_id": older} and quoted.tool_calls[0].result["id"] == older
    assert len(tickets.list()) == 4


def test_someone_elses_reference_reads_like_an_unknown_one(settings, tmp_path):
    tickets, skill, (mine, other) = _store_with_complaints(settings, tmp_path, [
        ("cust-r", "fees_billing", 3, "open"), ("cust-x", "collections_conduct", 1, "open")])
    theirs = skill.respond(_lookup(Conversation(customer_id="cust-r"), f"any update on {other}?"))
    unknown = skill.respond(_lookup(Conversation(customer_id="cust-r"), "any update on CMP-000000-NOPE22?"))
    assert theirs.text == unknown.text and "can't find a complaint with that reference" in theirs.text
    for leaked in [*_shown(tickets, other)[1:], "Collections team", mine]:
        assert leaked not in theirs.text
    assert theirs.tool_calls[0].result == {"found": 0} and theirs.meta == unknown.meta
    assert not theirs.ticket and not unknown.ticket and len(tickets.list()) == 2
    # a customer with no complaint at all, asking without a reference
    none = skill.respond(_lookup(Conversation(customer_id="cust-new"), "what's the status of my complaint?"))
    assert "can't find a complaint from you" in none.text and not none.ticket and len(tickets.list()) == 2


@pytest.mark.parametrize("customer", ["anonymous", "api"])
def test_an_anonymous_customer_gets_no_details_by_reference(settings, tmp_path, customer):
    tickets, skill, (other,) = _store_with_complaints(settings, tmp_path, [("cust-x", "fees_billing", 1, "open")])
    reply = skill.respond(_lookup(Conversation(customer_id=customer), f"what's the status of {other}?"))
    assert reply.meta["complaint"]["stage"] == "status_anonymous" and reply.tool_calls == []
    for leaked in [*_shown(tickets, other)[1:], "Billing team", "open"]:
        assert leaked not in reply.text
    assert "sign in to the Meadow app" in reply.text and "400-820-6600" in reply.text
    assert not reply.ticket and len(tickets.list()) == 1


def test_a_status_question_when_the_store_is_down_says_so(settings, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    tickets, skill, _ = _store_with_complaints(settings, tmp_path, [])

    def down(*args, **kwargs):
        raise OperationalError("select", {}, Exception("database is locked"))

    monkeypatch.setattr(tickets, "of_customer", down)
    reply = skill.respond(_lookup(Conversation(customer_id="cust-r"), "has my complaint been resolved?"))
    assert reply.meta["complaint"]["stage"] == "status_unavailable" and "400-820-6600" in reply.text
    assert reply.tool_calls[0].error and not reply.ticket


# --- the evaluate command ----------------------------------------------------------------------------------

def _cfpb_sample(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["Product", "Issue", "Consumer complaint narrative", "Complaint ID"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cfpb_complaints_train.csv").is_file(), reason="no shared CFPB data")
def test_evaluate_prints_both_models_on_any_cfpb_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    with (SHARED_DATA / "cfpb_complaints_train.csv").open(newline="") as f:
        rows = [{k: r[k] for k in ("Product", "Issue", "Consumer complaint narrative", "Complaint ID")}
                for r in csv.DictReader(f) if r["Consumer complaint narrative"].strip()][:360]
    train = _cfpb_sample(tmp_path / "train.csv", rows[:300])
    test = _cfpb_sample(tmp_path / "test.csv", rows[300:])
    result = CliRunner().invoke(app, ["evaluate", "--data", str(test), "--train", str(train), "--json"])
    assert result.exit_code in (0, 1), result.output  # 1: did not beat the baseline on this tiny sample
    report = json.loads(result.stdout)
    assert report["n_test"] == 60 and report["n_train"] == 300
    for task in ("product", "issue"):
        for model in ("model", "baseline"):
            assert 0 <= report[task][model]["accuracy"] <= 1 and 0 <= report[task][model]["macro_f1"] <= 1
    assert result.exit_code == (0 if report["beats_baseline"] else 1)


def test_evaluate_rejects_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    not_cfpb = tmp_path / "x.csv"
    not_cfpb.write_text("text,label\nhello,answer\n")
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--data", str(not_cfpb), "--json"])
    assert result.exit_code == 2 and "CFPB format" in json.loads(result.stdout)["error"]
    result = runner.invoke(app, ["evaluate", "--json"])
    assert result.exit_code == 2 and "--shared-split" in json.loads(result.stdout)["error"]
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path / "missing.csv"), "--json"])
    assert result.exit_code == 2 and "not found" in json.loads(result.stdout)["error"]


def test_read_cfpb_maps_labels(settings, tmp_path):
    taxonomy = load_taxonomy(taxonomy_file(settings))
    path = _cfpb_sample(tmp_path / "s.csv", [
        {"Product": "Debt collection", "Issue": "Communication tactics", "Complaint ID": "1",
         "Consumer complaint narrative": "XXXX called me {$25.00} times"},
        {"Product": "Mortgage", "Issue": "Some new CFPB issue", "Complaint ID": "2",
         "Consumer complaint narrative": "escrow problem"},
        {"Product": "Debt collection", "Issue": "x", "Complaint ID": "3", "Consumer complaint narrative": ""}])
    rows = read_cfpb(path, taxonomy)
    assert [(r.product, r.issue, r.text) for r in rows] == [
        ("collections", "collection_conduct", "called me times"),
        ("secured_loan", taxonomy.fallback_issue, "escrow problem")]


def test_rule_files_parse():
    for name in ("complaints.yaml", "complaint_taxonomy.yaml", "routing.yaml"):
        assert yaml.safe_load((Settings(_env_file=None).knowledge_dir / "rules" / name).read_text())
