"""The dialogue manager's rules: typed state, interruptions, follow-ups rewritten before routing,
and routing during an active form. Routing tests give the router its classifier scores directly
(Router.decide), so the rules are tested without loading the embedding model."""

from __future__ import annotations

import pytest

from assistant.config import Settings
from assistant.dialogue.followup import FollowupRules, mentioned, rewrite, update_topic
from assistant.dialogue.interrupts import classify_interrupt, kinds_found, normalise
from assistant.dialogue.state import DialogueState, Topic, load_state, record_event, save_state
from assistant.knowledge.terms import load_terms
from assistant.routing.router import CANCEL_REASON, INTENTS, Router, load_routing_rules, routing_rules_file
from assistant.types import Conversation, Message


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def rules(settings):
    return load_routing_rules(routing_rules_file(settings))


@pytest.fixture(scope="module")
def terms(settings):
    return load_terms(settings.terms_file)


@pytest.fixture(scope="module")
def router(settings, rules):
    return Router(settings, embedder=object(), rules=rules)  # decide() never embeds


def scores(best: str) -> dict[str, float]:
    """Classifier scores that favour one intent (the rules must overrule them where they apply)."""
    return {i: (0.9 if i == best else 0.1 / (len(INTENTS) - 1)) for i in INTENTS}


def in_form(product: str = "cash") -> Conversation:
    conversation = Conversation(customer_id="c1")
    conversation.state["eligibility"] = {"active": True, "product": product, "stage": "collect", "asking": "amount",
                                         "answers": {}}
    conversation.messages += [Message(role="user", content="check if i qualify"),
                              Message(role="assistant", content="How much would you like to borrow?",
                                      meta={"intent": "eligibility", "path": "form"})]
    return conversation


# --- state ---------------------------------------------------------------------------------------

def test_state_round_trips_through_the_conversation_as_plain_json():
    conversation = Conversation()
    state = load_state(conversation)
    assert state == DialogueState()
    state.topic = Topic(product="flex", term_months=12, amount=20000)
    save_state(conversation, state)
    raw = conversation.state["dialogue"]
    assert raw["topic"] == {"product": "flex", "term_months": 12, "amount": 20000.0, "question": None}
    again = Conversation.model_validate_json(conversation.model_dump_json())
    assert load_state(again).topic.product == "flex"


def test_record_event_appends_and_keeps_ticket_and_vulnerability():
    conversation = Conversation()
    record_event(conversation, "ticket_opened", skill="complaint", ticket="CMP-261129-ABC123")
    record_event(conversation, "vulnerability", skill="support", kind="bereavement")
    state = load_state(conversation)
    assert [e.kind for e in state.events] == ["ticket_opened", "vulnerability"]
    assert state.tickets == ["CMP-261129-ABC123"] and state.vulnerability == "bereavement"
    assert state.events[0].skill == "complaint" and state.events[0].data["ticket"] == "CMP-261129-ABC123"


def test_a_broken_state_starts_afresh():
    conversation = Conversation(state={"dialogue": {"topic": "nonsense"}})
    assert load_state(conversation) == DialogueState()


# --- interruptions -------------------------------------------------------------------------------

def test_normalise_reads_apostrophes_case_and_missing_apostrophes():
    assert normalise("I DONT  want it\u2019s") == "i don't want it's"
    assert normalise("Whats the APR") == "what's the apr"


@pytest.mark.parametrize("message, kind", [
    ("actually forget it, i dont want to borrow anymore", "cancel"),
    ("never mind, cancel", "cancel"),
    ("hmm nvm, not interested anymore", "cancel"),
    ("I DON\u2019T WANT TO BORROW ANYMORE", "cancel"),
    ("what is the status of my complaint?", "complaint_status"),
    ("ok 5000. btw is there an early repayment fee?", "question"),
    ("wait whats the late fee on meadow cash?", "question"),
    ("this is confusing, can i talk to a real person", "handoff"),
    ("i want to complain, you charged me twice", "complaint"),
    ("income around 9000. wait sorry its 6000 not 9000", "correction"),
])
def test_interruptions_are_found_wherever_they_are(rules, message, kind):
    found = classify_interrupt(message, rules.interrupt_rules)
    assert found is not None and found.kind == kind, kinds_found(message, rules.interrupt_rules)


@pytest.mark.parametrize("message", ["20000", "20k", "12 month", "and 6?", "35", "is 20000 ok?", "what about 20000?",
                                     "rent", "yes"])
def test_answers_to_the_form_are_not_interruptions(rules, message):
    assert classify_interrupt(message, rules.interrupt_rules) is None


def test_cancelling_a_loan_is_a_question_not_the_end_of_the_form(rules):
    found = classify_interrupt("how do i cancel my loan?", rules.interrupt_rules)
    assert found is not None and found.kind == "question"


def test_distress_comes_first():
    from assistant.dialogue.interrupts import InterruptRules

    found = classify_interrupt("forget it", InterruptRules(), vulnerability="self_harm")
    assert found is not None and found.kind == "distress" and found.detail == "self_harm"


# --- follow-ups ----------------------------------------------------------------------------------

def topic_after(question: str, terms) -> Topic:
    return update_topic(Topic(question=question), mentioned(question, terms))


@pytest.mark.parametrize("question, followup, expected", [
    ("whats the apr on meadow cash?", "what about flex", "whats the apr on Meadow Flex?"),
    ("whats the apr on meadow cash?", "the mall one", "whats the apr on Meadow Mall installments?"),
    ("how much a month for 10,000 over 12 months with meadow cash?", "and 6?",
     "how much a month for 10,000 over 6 months with meadow cash?"),
    ("how much a month for 10,000 over 12 months with meadow cash?", "and for 24 months?",
     "how much a month for 10,000 over 24 months with meadow cash?"),
    ("how much a month for 10,000 over 12 months with meadow cash?", "what about 30k",
     "how much a month for 30,000 over 12 months with meadow cash?"),
    ("whats the late fee", "and for flex?", "whats the late fee for Meadow Flex?"),
])
def test_follow_ups_are_rewritten_against_the_topic(terms, rules, question, followup, expected):
    assert rewrite(followup, topic_after(question, terms), terms, rules.followup_rewrite) == expected


@pytest.mark.parametrize("message", ["and the late fee?", "thanks", "what is the apr of meadow business loans for a shop?"])
def test_messages_that_stand_alone_are_left_as_they_are(terms, rules, message):
    assert rewrite(message, topic_after("whats the apr on meadow cash?", terms), terms, rules.followup_rewrite) is None


def test_no_rewrite_without_an_earlier_question(terms):
    assert rewrite("what about flex", Topic(), terms, FollowupRules(cues=["^what about"])) is None


def test_a_product_named_in_the_turn_updates_the_topic(terms):
    topic = update_topic(Topic(product="cash", term_months=12), mentioned("is meadow flex better?", terms))
    assert topic.product == "flex" and topic.term_months == 12


# --- routing during an active form ---------------------------------------------------------------

def test_cancel_during_the_form_ends_it(router):
    route = router.decide(in_form(), "actually forget it, i dont want to borrow anymore", scores("eligibility"))
    assert route.intent == "eligibility" and route.reason == CANCEL_REASON


def test_a_question_during_the_form_goes_to_the_answer_skill(router):
    route = router.decide(in_form(), "wait whats the late fee on meadow cash?", scores("eligibility"))
    assert route.intent == "answer"


def test_a_status_question_during_the_form_is_a_follow_up_not_a_new_ticket(router):
    route = router.decide(in_form(), "what is the status of my complaint?", scores("complaint"))
    assert route.intent == "complaint" and route.reason.startswith("followup:")


def test_a_hand_off_request_during_the_form_goes_to_a_person(router):
    route = router.decide(in_form(), "can i talk to a real person", scores("eligibility"))
    assert route.intent == "handoff"


@pytest.mark.parametrize("message", ["20000", "im 35", "income around 9000. wait sorry its 6000 not 9000", "and 6?"])
def test_answers_and_corrections_stay_with_the_form(router, message):
    assert router.decide(in_form(), message, scores("eligibility")).intent == "eligibility"


@pytest.mark.parametrize("message", ["will 1 late payment ruin my credit report forever",
                                     "0% installment, really free or there's a fee",
                                     "what happens if I miss a payment"])
def test_questions_with_negative_words_are_answered(router, message):
    route = router.decide(Conversation(), message, scores("complaint"))
    assert route.intent == "answer", route.reason


@pytest.mark.parametrize("message", ["why did you charge me a late fee twice? I want a refund",
                                     "you charged me a fee I never agreed to, this is unfair"])
def test_grievances_are_still_complaints(router, message):
    assert router.decide(Conversation(), message, scores("complaint")).intent == "complaint"


def test_distress_goes_to_support_before_the_form(router):
    route = router.decide(in_form(), "i dont see the point of living anymore", scores("eligibility"))
    assert route.intent in ("support", "handoff") and route.reason.startswith("vulnerable:")
