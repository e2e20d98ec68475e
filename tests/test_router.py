"""The intent router with its shipped model and the real embedding model: typical and tricky
messages, explicit rules, urgency, two failures, active forms, low confidence and the clarifying
question, and the `assistant router` CLI on a small labelled file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.config import PROJECT_ROOT, Settings
from assistant.knowledge.embeddings import load_embedder
from assistant.guard.vulnerability import load_vulnerability_rules, vulnerability_rules_file
from assistant.routing.router import Router, load_routing_rules, routing_rules_file
from assistant.cli.router import app
from assistant.routing.train import evaluate_routes, handwritten
from assistant.skills.smalltalk import ClarifySkill
from assistant.skills.base import final_reply
from assistant.types import Conversation, Message, RouteDecision, Turn


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("router"), _env_file=None)


@pytest.fixture(scope="module")
def router(settings) -> Router:
    return Router(settings, load_embedder(settings))


def route(router: Router, message: str, conversation: Conversation | None = None) -> RouteDecision:
    return router.route(conversation or Conversation(), message)


@pytest.mark.parametrize("message, intent", [
    ("What is the APR on Meadow Flex?", "answer"),
    ("how much is the late fee for meadow cash", "answer"),
    ("Can I borrow 30000 yuan? I earn 9000 a month", "eligibility"),
    ("Would I qualify for a business loan? My shop opened last year", "eligibility"),
    ("You charged me a late fee even though I paid on time, I want this fixed", "complaint"),
    ("Your collector keeps calling me at work after I asked him to stop", "complaint"),
    ("hello!", "smalltalk"),
    ("thanks, that's all", "smalltalk"),
    ("What's the weather in Beijing tomorrow?", "out_of_scope"),
    ("Write me a poem about the sea", "out_of_scope"),
    ("I'd like to talk to a person, please.", "handoff"),
])
def test_typical_messages(router, message, intent):
    assert route(router, message).intent == intent


def test_tricky_complaint_versus_question(router):
    complaint = route(router, "I want to complain about how fast you approved me")
    assert complaint.intent == "complaint"
    question = route(router, "how do I complain?")
    assert question.intent == "answer" and question.reason == "rule:complaint_howto"
    assert route(router, "Where can I complain if I'm not happy with your answer?").intent == "answer"


@pytest.mark.parametrize("message", [
    "how much can my shop borrow with a meadow business loan?",
    "I run a small shop, what's the APR of the meadow business loan?",
    "how much can I borrow with Meadow Cash?",
    "Who can apply for a Meadow Business loan?",
    "Meadow Flex: what's the highest limit you offer?",
])
def test_a_question_about_what_a_product_offers_is_answered_not_a_form(router, message):
    decision = route(router, message)
    assert (decision.intent, decision.reason) == ("answer", "rule:product_question")


@pytest.mark.parametrize("message", [
    "can I borrow 20000?",
    "check my eligibility",
    "am I eligible for meadow cash",
    "I want to apply for a loan",
    "I'd like to apply for Meadow Cash",
    "I earn 8000 a month, how much can I borrow with Meadow Cash?",
    "what APR would I get on a business loan?",
    "How much could I borrow?",
])
def test_asking_to_be_checked_or_to_apply_starts_the_eligibility_form(router, message):
    assert route(router, message).intent == "eligibility"


def test_applying_elsewhere_is_not_our_form(router):
    assert route(router, "I want to apply for a credit card at ICBC").reason != "rule:apply_request"


def _with_ticket(*later: tuple[str, str]) -> Conversation:
    """A conversation whose complaint was just acknowledged with a ticket, then `later` (message, intent) turns."""
    conversation = Conversation(state={"complaint": {"active": False, "tickets": [{"id": "CMP-260701-ABC123"}]}})
    for text, intent in [("Your collector called my mother at midnight, I want to complain", "complaint"), *later]:
        conversation.messages += [Message(role="user", content=text),
                                  Message(role="assistant", content="...", meta={"intent": intent})]
    return conversation


@pytest.mark.parametrize("message", [
    "how long will it take you to resolve my complaint?",
    "what's the status of my complaint?",
    "how long will it take?",
    "when will I hear back?",
    "what happens next?",
    "what's my reference number?",
    "ok thanks, any update on CMP-260701-ABC123?",
])
def test_a_question_about_the_complaint_just_made_is_a_follow_up(router, message):
    decision = route(router, message, _with_ticket())
    assert decision.intent == "complaint" and decision.reason.startswith("followup:complaint_status")


def test_a_bare_question_is_about_the_complaint_only_right_after_it(router):
    later = _with_ticket(("What is the APR on Meadow Flex?", "answer"))
    assert not route(router, "how long will it take?", later).reason.startswith("followup:")
    assert route(router, "what's the status of my complaint?", later).reason == "followup:complaint_status"
    filling_in = _with_ticket()
    filling_in.state["eligibility"] = {"active": True, "asking": "monthly_income"}
    assert route(router, "what happens next?", filling_in).intent == "eligibility"


@pytest.mark.parametrize("message", [
    "still waiting, second time writing",
    "this is the 3rd time I'm writing",
    "when will you answer?",
    "nobody has replied to me",
    "the deadline passed and nothing",
])
def test_chasing_the_complaint_of_this_conversation_is_about_it_at_any_later_turn(router, message):
    later = _with_ticket(("What is the APR on Meadow Flex?", "answer"))
    decision = route(router, message, later)
    assert (decision.intent, decision.reason) == ("complaint", "followup:complaint_chase")
    assert not route(router, message).reason.startswith("followup:complaint_chase")  # no ticket here


def test_without_a_ticket_a_question_about_complaints_is_a_general_question(router):
    decision = route(router, "how long will it take you to resolve my complaint?")
    assert (decision.intent, decision.reason) == ("answer", "rule:complaint_howto")
    assert not route(router, "what happens next?").reason.startswith("followup:")


@pytest.mark.parametrize("message", [
    "I have another complaint: the app charged me twice for my repayment this month",
    "I also want to complain that your agent was rude to me on the phone yesterday",
])
def test_a_new_problem_after_a_ticket_is_a_new_complaint(router, message):
    decision = route(router, message, _with_ticket())
    assert decision.intent == "complaint" and not decision.reason.startswith("followup:")


@pytest.mark.parametrize("message", [
    "what's the status of my complaint?",
    "any update on CMP-261129-ABC123?",
    "cmp 261129 7kq3mz",
    "Hi, any news on my complaint?",
    "when will I hear back about my complaint?",
    "has my complaint been resolved yet?",
    "have you looked at my complaint?",
    "I'm following up on my complaint from last week",
    "what's my complaint reference?",
    "ticket 20250311-0042, the deadline passed",
    "ref no. 88412-7: any news?",
])
def test_a_question_about_an_earlier_complaint_is_a_status_question_in_a_new_conversation(router, message):
    decision = route(router, message)
    assert (decision.intent, decision.reason) == ("complaint", "followup:complaint_lookup")


@pytest.mark.parametrize("message, intent, reason", [
    ("I want to complain about the status of my application", "complaint", "rule:complaint_request"),
    ("I have another complaint about CMP-261129-ABC123: nobody called me back", "complaint", None),
    ("how long does a complaint take?", "answer", "rule:complaint_howto"),
    ("How do I check the status of my complaint ticket?", "answer", None),
    ("what is the status of my loan application?", None, None),
])
def test_a_complaint_or_a_general_question_is_not_a_status_question(router, message, intent, reason):
    decision = route(router, message)
    assert not decision.reason.startswith("followup:")
    assert intent is None or decision.intent == intent
    assert reason is None or decision.reason == reason


@pytest.mark.parametrize("message, intent", [
    ("Your collector called my family, is that even allowed?", "complaint"),
    ("your agent told my boss about my loan", "complaint"),
    ("they called my parents about my debt, the collector was rude", "complaint"),
    ("what if a collector calls my family?", "answer"),
    ("will Meadow call my family about my debt?", "answer"),
])
def test_what_a_collector_did_is_a_complaint_even_as_a_question(router, message, intent):
    decision = route(router, message)
    assert decision.intent == intent, decision
    assert (decision.reason == "rule:reported_conduct") == (intent == "complaint")


def test_a_status_question_during_a_form_gets_the_status_not_a_ticket(router):
    # issue 13: a status question interrupts the form (answered, then the form resumes)
    filling_in = Conversation(state={"eligibility": {"active": True, "asking": "monthly_income"}})
    decision = route(router, "any update on CMP-261129-ABC123?", filling_in)
    assert (decision.intent, decision.reason) == ("complaint", "followup:complaint_lookup")


def test_asking_for_a_human_is_a_rule(router):
    decision = route(router, "can I speak to a real person")
    assert (decision.intent, decision.reason, decision.confidence) == ("handoff", "rule:human_request", 1.0)
    assert set(decision.scores) >= {"answer", "eligibility", "complaint", "handoff", "smalltalk", "out_of_scope"}
    assert route(router, "What are the hotline hours to talk to an agent?").reason != "rule:human_request"


@pytest.mark.parametrize("message, flag", [
    ("Someone took out a loan in my name, I never applied for it", "identity_theft"),
    ("I gave my verification code to a man who said he was from Meadow", "fraud"),
    ("Your collector threatened to come to my house and hurt me", "collector_threat"),
    ("I can't pay and I don't want to live anymore", "self_harm"),
    ("My husband passed away last month and he had a loan with you", "bereavement"),
    ("I lost my job and can't pay my installment next month", "hardship"),
])
def test_urgency_hands_off(router, message, flag):
    decision = route(router, message)
    # issue 13: a vulnerable customer goes to the support skill first (it hands off urgently)
    if decision.intent == "support":
        assert decision.reason.startswith("vulnerable:")
        assert flag in decision.urgency  # the flag comes from vulnerability.yaml, the one file of those lists
    else:
        assert decision.intent == "handoff" and flag in decision.urgency and decision.reason.startswith("urgent:")


@pytest.mark.parametrize("message", [
    "What happens if I can't pay my loan?",  # a hypothetical question
    "How do I protect myself from scams?",
    "What happens to my loan if I die?",
    "My phone died while I was paying, did the payment go through?",
    "Do you offer hardship plans?",
])
def test_questions_about_urgent_topics_are_not_urgent(router, message):
    assert route(router, message).urgency == []


def _failed(n: int) -> Conversation:
    conversation = Conversation()
    for i in range(n):
        conversation.messages += [Message(role="user", content=f"question {i}"),
                                  Message(role="assistant", content="I don't know", meta={"path": "no_answer"})]
    return conversation


def test_two_failed_answers_in_a_row_hand_off(router):
    message = "what is the fee for moving my repayment date"
    assert route(router, message, _failed(1)).intent != "handoff"
    decision = route(router, message, _failed(2))
    assert (decision.intent, decision.reason) == ("handoff", "two_failures")
    assert route(router, "thanks, bye", _failed(2)).intent == "smalltalk"  # a goodbye needs no person
    recovered = _failed(2)
    recovered.messages.append(Message(role="assistant", content="answer", meta={"path": "generated"}))
    assert route(router, message, recovered).reason != "two_failures"


def test_an_active_form_keeps_its_answers(router):
    conversation = Conversation(state={"eligibility": {"active": True, "asking": "monthly_income"}})
    assert route(router, "about 8000 a month", conversation).intent == "eligibility"
    assert route(router, "actually, let me speak to a human", conversation).intent == "handoff"
    conversation = Conversation(state={"complaint": {"active": True}})
    assert route(router, "it was on the 3rd of May", conversation).intent == "complaint"


def test_low_confidence_asks_a_clarifying_question_and_reads_the_answer(settings):
    unsure = Router(settings.model_copy(update={"router_threshold": 0.99}), load_embedder(settings))
    conversation = Conversation()
    first = "my payment thing from last week"
    decision = unsure.route(conversation, first)
    assert decision.reason == "low_confidence" and decision.confidence < 0.99
    reply = final_reply(ClarifySkill(settings).stream(Turn(conversation=conversation, message=first, route=decision)))
    assert reply.path == "clarify" and "(1)" in reply.text and "(2)" in reply.text
    options = conversation.state["router"]["clarify_options"]
    conversation.messages += [Message(role="user", content=first),
                              Message(role="assistant", content=reply.text, meta={"path": "clarify"})]
    picked = unsure.route(conversation, "2")
    assert (picked.intent, picked.reason, picked.message) == (options[1], "clarified", first)
    by_word = unsure.route(conversation, "a complaint")
    assert by_word.intent == "complaint" and by_word.message == first


def test_held_out_examples_route_well(router):
    """The quarter of intents.jsonl that `router train` never sees."""
    report = evaluate_routes(router, handwritten(split="test"))
    assert report["n"] >= 100
    assert report["accuracy"] >= 0.85 and report["macro_f1"] >= 0.85, report["errors"]


def test_routing_rules_file_is_valid():
    rules = load_routing_rules(routing_rules_file(Settings(_env_file=None)))
    assert {r.name for r in rules.rules} >= {"human_request", "complaint_howto", "product_question"}
    assert {r.name for r in rules.followups} >= {"complaint_status", "complaint_status_next", "complaint_lookup"}
    assert {r.name for r in rules.rules} >= {"complaint_request"}
    # every hand-off flag is detected somewhere: here (collector threats) or in the vulnerability rules
    vulnerability = load_vulnerability_rules(vulnerability_rules_file(Settings(_env_file=None)))
    assert set(rules.handoff_on) <= set(rules.urgency.flags) | set(vulnerability.flag_kinds)


def test_intent_dataset_covers_every_intent():
    rows = [json.loads(line) for line in (PROJECT_ROOT / "evals/datasets/intents.jsonl").read_text().splitlines()]
    counts = {i: sum(r["intent"] == i for r in rows) for i in
              ("answer", "eligibility", "complaint", "handoff", "smalltalk", "out_of_scope")}
    assert len(rows) >= 500 and min(counts.values()) >= 50, counts
    assert len({r["text"].lower() for r in rows}) == len(rows)


# --- the CLI on any labelled CSV ------------------------------------------------------------------------

def _small_csv(path: Path) -> Path:
    rows = [r for r in handwritten(split="all") if r["intent"] in ("complaint", "smalltalk", "out_of_scope")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["utterance", "tag"])
        writer.writerows([r["text"], r["intent"]] for r in rows)
    return path


def test_cli_trains_and_evaluates_on_any_labelled_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    data, model = _small_csv(tmp_path / "small.csv"), tmp_path / "small.npz"
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--data", str(data), "--text-col", "utterance", "--label-col", "tag",
                                  "--out", str(model), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["n_labels"] == 3 and model.stat().st_size < 100_000
    scored = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(data), "--text-col", "utterance",
                                 "--label-col", "tag", "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["accuracy"] > 0.9 and 0 < report["macro_f1"] <= 1 and report["n"] > 100


def test_cli_rejects_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    missing = runner.invoke(app, ["evaluate", "--data", str(tmp_path / "nope.csv"), "--json"])
    assert missing.exit_code == 2 and "not found" in json.loads(missing.stdout)["error"]
    data = _small_csv(tmp_path / "small.csv")
    wrong = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m.npz"), "--json"])
    assert wrong.exit_code == 2 and "--text-col" in json.loads(wrong.stdout)["error"]
    not_a_model = runner.invoke(app, ["evaluate", "--model", str(data), "--data", str(data), "--json"])
    assert not_a_model.exit_code == 2 and "error" in json.loads(not_a_model.stdout)
    empty = runner.invoke(app, ["route", "  ", "--json"])
    assert empty.exit_code == 2
