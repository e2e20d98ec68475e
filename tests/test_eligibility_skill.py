"""The eligibility skill: a scripted chat collects the fields, asks consent and explains the
result; the form accepts everyday answers and re-asks on nonsense; state lives only in the
conversation; a chat model's tool call is validated, re-asked once, then the form takes over."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage, ToolMessage

from assistant.config import Settings
from assistant.scoring.client import HttpScoringClient, InProcessScoringClient, build_scorer
from assistant.scoring.service import create_app
from assistant.skills.base import final_reply
from assistant.skills.eligibility import EligibilitySkill
from assistant.skills.eligibility_form import asked_fields, read_answers
from assistant.knowledge.terms import load_terms
from assistant.tools import build_tools, run_tool_call
from assistant.types import Conversation, Message, RouteDecision, Turn

ROUTE = RouteDecision(intent="eligibility")


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def client(settings):
    return InProcessScoringClient(build_scorer(settings))


@pytest.fixture(scope="module")
def terms(settings):
    return load_terms(settings.terms_file)


def make_skill(settings, client, terms, chat_model=None, **overrides):
    s = settings.model_copy(update=overrides) if overrides else settings
    return EligibilitySkill(s, client, terms, chat_model)


def chat(skill_factory, conversation: Conversation, messages: list[str]):
    """Send messages one by one, each with a fresh skill (nothing may live in memory), storing the
    turns in the conversation as the pipeline does."""
    replies = []
    for text in messages:
        reply = final_reply(skill_factory().stream(Turn(conversation=conversation, message=text, route=ROUTE)))
        conversation.messages += [Message(role="user", content=text), Message(role="assistant", content=reply.text)]
        replies.append(reply)
    return replies


def no_internal_figures(reply) -> None:
    text = reply.text.lower()
    assert "probability" not in text and "score" not in text
    for call in reply.tool_calls:
        assert "probability_of_default" not in (call.result or {}) and "score" not in (call.result or {})
    assert not re.search(r"\byou (?:are|will be|have been) approved\b|guarantee", text)


# --- the scripted chat ----------------------------------------------------------------------------

def test_scripted_chat_collects_asks_consent_and_explains(settings, client, terms):
    conversation = Conversation()
    replies = chat(lambda: make_skill(settings, client, terms), conversation, [
        "Am I eligible? I'd like to borrow 20,000 over 24 months for a used car",
        "I'm 35",
        "banana",
        "2 years",
        "we rent",
        "about 1k",
        "I earn 6k a month",
        "yes",
    ])
    first = replies[0].text
    assert "consent" in first  # says consent will be asked
    assert "How old are you" in first  # amount, term, purpose were understood; the age rule comes next
    assert "borrow" not in first.lower().split("?")[-1]  # and not asked again
    assert "could not read that" in replies[2].text and replies[2].meta["eligibility"]["asking"] == "employment"
    consent = replies[6]
    assert consent.meta["eligibility"]["stage"] == "consent" and "yes or no" in consent.text
    for needed in ("CNY 20,000", "24 months", "used car", "CNY 6,000", "rent"):
        assert needed in consent.text
    result = replies[7]
    assert result.path == "tool" and [c.name for c in result.tool_calls] == ["check_eligibility"]
    call = result.tool_calls[0]
    assert call.arguments["consent"] is True and call.arguments["monthly_income"] == 6000
    assert result.meta["eligibility"]["decision"] == "refer"
    assert "main factors" in result.text and result.text.count("\n- ") >= 2
    assert "would give an indicative result" in result.text  # the counterfactual
    assert "not an approval" not in result.text or "indicative" in result.text
    no_internal_figures(result)
    assert conversation.state["eligibility"]["active"] is False


def test_an_approval_is_never_promised(settings, client, terms):
    replies = chat(lambda: make_skill(settings, client, terms), Conversation(), [
        "check my eligibility: borrow 10000 for 12 months for electronics",
        "40", "7 years", "I own my flat", "50000", "12000", "yes"])
    result = replies[-1]
    assert result.meta["eligibility"]["decision"] == "approve"
    assert "not an approval or an offer" in result.text and "indicative limit" in result.text
    no_internal_figures(result)


def test_policy_decline_names_the_rule(settings, client, terms):
    # (an age outside the rule never reaches the tool: see the under-18 tests below)
    replies = chat(lambda: make_skill(settings, client, terms), Conversation(), [
        "borrow 5000 over 12 months for furniture", "30", "1 year", "I live with my parents", "0", "0", "yes"])
    text = replies[-1].text
    assert replies[-1].path == "tool" and "no income" in text
    no_internal_figures(replies[-1])


# --- customers who answer their own way --------------------------------------------------------------

ALL_AT_ONCE = ("30000 yuan over 24 months for furniture, I earn 12k a month, I'm 41, employed 8 years, "
               "I own my home, 50,000 yuan savings")


def test_every_field_given_in_one_message_is_read_then_consent_is_asked(settings, client, terms):
    conversation = Conversation()
    replies = chat(lambda: make_skill(settings, client, terms), conversation,
                   ["check my eligibility for meadow cash please", ALL_AT_ONCE, "yes"])
    consent = replies[1]
    assert consent.meta["eligibility"]["stage"] == "consent" and "could not read" not in consent.text
    for needed in ("CNY 30,000", "24 months", "furniture", "CNY 12,000", "41 years", "7 years plus", "own",
                   "CNY 50,000"):
        assert needed in consent.text
    result = replies[2]
    assert result.path == "tool" and [c.name for c in result.tool_calls] == ["check_eligibility"]
    args = result.tool_calls[0].arguments
    assert {k: args[k] for k in ("amount", "term_months", "purpose", "employment", "housing", "savings", "age",
                                 "monthly_income")} == {
        "amount": 30000, "term_months": 24, "purpose": "furniture", "employment": "7_years_plus",
        "housing": "own", "savings": 50000, "age": 41, "monthly_income": 12000}


def test_an_ambiguous_figure_is_not_guessed(client, terms):
    fields, cash = asked_fields(client.info()), terms.product("cash")
    income = read_answers("12k a month", fields, "amount", cash)  # money a month is income, not the loan
    assert income.found == {"monthly_income": 12000} and "amount" not in income.found
    savings = read_answers("50,000 yuan savings", fields, "amount", cash)
    assert savings.found == {"savings": 50000}
    assert read_answers("I'm 41", fields, "amount", cash).found == {"age": 41}
    two = read_answers("20000 or 30000", fields, "amount", cash)
    assert two.found == {} and two.problem == "amount" and two.unreadable
    not_home = read_answers("I've lived in my flat for 8 years", fields, "employment", cash)
    assert "employment" not in not_home.found and "term_months" not in not_home.found


@pytest.mark.parametrize("text", ["I'm 16 years old and want to borrow 5000 yuan for 6 months for a phone",
                                  "I'm 16", "16"])
def test_under_18_is_told_the_age_rule_and_the_form_stops(settings, client, terms, text):
    conversation = Conversation()
    skill = lambda: make_skill(settings, client, terms)  # noqa: E731
    step_by_step = ["5000"]  # the age is asked right after the amount
    opening = ["check my eligibility please"] + (step_by_step if text == "16" else [])
    chat(skill, conversation, opening)
    reply = chat(skill, conversation, [text])[0]
    cash = terms.product("cash")
    assert f"aged {cash.min_age} to {cash.max_age}" in reply.text and "16" in reply.text
    assert reply.tool_calls == [] and reply.meta["eligibility"] == {"stage": "done", "stopped": "age_rule"}
    state = conversation.state["eligibility"]
    assert state["active"] is False and state["stopped"] == "age_rule" and state["answers"] == {}  # answers discarded
    assert "you are eligible" not in reply.text.lower() and "approved" not in reply.text.lower()


def test_the_age_rule_is_read_from_the_product_terms(settings, client, terms):
    strict = terms.model_copy(deep=True)
    strict.products["cash"].min_age, strict.products["cash"].max_age = 21, 60
    skill = lambda: make_skill(settings, client, strict)  # noqa: E731
    young = chat(skill, Conversation(), ["eligibility for meadow cash", "I'm 20 and want to borrow 5000"])[-1]
    assert "aged 21 to 60" in young.text and young.meta["eligibility"]["stopped"] == "age_rule"
    old = chat(skill, Conversation(), ["eligibility for meadow cash", "I'm 61"])[-1]
    assert old.meta["eligibility"]["stopped"] == "age_rule"
    fine = chat(skill, Conversation(), ["eligibility for meadow cash", "I'm 21"])[-1]
    assert fine.meta["eligibility"]["stage"] == "collect"


def test_an_under_18_tool_call_from_the_model_is_never_scored(settings, client, terms):
    model = ScriptedToolModel([tool_call(GOOD_ARGS | {"age": 16})])
    reply = chat(lambda: make_skill(settings, client, terms, model, llm_backend="openai"), Conversation(),
                 ["I'm 16, 8000 for a year for education please"])[0]
    assert reply.tool_calls == [] and reply.meta["eligibility"]["stopped"] == "age_rule"


@pytest.mark.parametrize("text", ["I'm a student, I don't have a job", "no job", "unemployed", "not working",
                                  "I don't work", "I'm retired", "student"])
def test_no_job_is_read_as_not_working(client, terms, text):
    fields, cash = asked_fields(client.info()), terms.product("cash")
    assert read_answers(text, fields, "employment", cash).found == {"employment": "unemployed"}
    volunteered = read_answers(text, fields, "housing", cash)  # said before it was asked
    assert volunteered.found == {"employment": "unemployed"} and volunteered.problem is None


@pytest.mark.parametrize("asking", ["monthly_income", "savings", "amount"])
def test_money_from_parents_is_income(client, terms, asking):
    reading = read_answers("I get 1,000 yuan a month from my parents", asked_fields(client.info()), asking,
                           terms.product("cash"))
    assert reading.found == {"monthly_income": 1000} and reading.problem is None


def test_a_field_given_out_of_order_is_kept_and_the_question_asked_again(settings, client, terms):
    conversation = Conversation()
    replies = chat(lambda: make_skill(settings, client, terms), conversation,
                   ["check my eligibility", "I earn 12k a month", "I own my home", "20000"])
    first = replies[1].text
    assert "could not read" not in first and "noted your monthly income after tax" in first
    assert "How much would you like to borrow" in first and replies[1].meta["eligibility"]["asking"] == "amount"
    assert "noted your housing" in replies[2].text and replies[2].meta["eligibility"]["asking"] == "amount"
    state = conversation.state["eligibility"]
    assert state["answers"] == {"monthly_income": 12000, "housing": "own", "amount": 20000}
    assert state["asking"] == "age"  # asked right after the amount: the age rule can end the form


def test_a_failed_answer_is_asked_again_and_the_other_fields_are_kept(settings, client, terms):
    conversation = Conversation()
    reply = chat(lambda: make_skill(settings, client, terms), conversation,
                 ["check my eligibility", "20000 or 30000, I'm 35"])[-1]
    assert "could not read that as the amount" in reply.text and "for example 20,000" in reply.text
    assert conversation.state["eligibility"]["answers"] == {"age": 35}


def test_the_same_error_cannot_repeat_forever(settings, client, terms):
    conversation = Conversation()
    replies = chat(lambda: make_skill(settings, client, terms), conversation,
                   ["check my eligibility", "yes", "yes", "yes"])
    assert "could not read that as the amount" in replies[1].text
    assert "still could not read" in replies[2].text and "cancel" in replies[2].text
    assert replies[2].text != replies[1].text
    assert replies[3].meta["eligibility"] == {"stage": "cancelled", "stopped": "unreadable"}
    assert "stopped the eligibility check" in replies[3].text and replies[3].tool_calls == []
    assert conversation.state["eligibility"]["active"] is False
    # an answer out of range, repeated, is bounded too
    again = chat(lambda: make_skill(settings, client, terms), Conversation(),
                 ["check my eligibility", "60000", "60000", "60000"])
    assert "CNY 1,000 to 50,000" in again[1].text and again[3].meta["eligibility"]["stopped"] == "unreadable"


def test_cancel_discards_the_answers(settings, client, terms):
    conversation = Conversation()
    replies = chat(lambda: make_skill(settings, client, terms), conversation,
                   ["I want a loan of 20000 over 12 months", "cancel"])
    assert "stopped" in replies[1].text and conversation.state["eligibility"]["active"] is False \
        and conversation.state["eligibility"]["answers"] == {}
    again = chat(lambda: make_skill(settings, client, terms), conversation, ["eligibility check please"])
    assert "How much would you like to borrow" in again[0].text  # a fresh form


def test_no_consent_means_no_check(settings, client, terms):
    replies = chat(lambda: make_skill(settings, client, terms), Conversation(), [
        "borrow 5000 over 12 months for furniture", "30", "1 year", "rent", "0", "5000", "no"])
    assert replies[-1].tool_calls == [] and "not run any check" in replies[-1].text


def test_out_of_range_answers_are_asked_again(settings, client, terms):
    replies = chat(lambda: make_skill(settings, client, terms), Conversation(),
                   ["eligibility", "60000", "20000", "18", "12"])
    assert "CNY 1,000 to 50,000" in replies[1].text  # Meadow Cash's limits, from terms.yaml
    assert "6, 12, 24, 36" in replies[3].text
    assert replies[4].meta["eligibility"]["asking"] == "purpose"


@pytest.mark.parametrize("text, field, value", [
    ("I earn 6k a month", "monthly_income", 6000),
    ("6,000 yuan", "monthly_income", 6000),
    ("72k a year", "monthly_income", 6000),
    ("2万", "amount", 20000),
    ("none", "savings", 0),
    ("I'm not working right now", "employment", "unemployed"),
    ("I live rent-free with my parents", "housing", "free"),
    ("two years", "term_months", 24),
])
def test_everyday_answers_are_understood(client, terms, text, field, value):
    reading = read_answers(text, asked_fields(client.info()), field, terms.product("cash"))
    assert reading.problem is None and reading.found[field] == value


@pytest.mark.parametrize("text, field", [("-5000", "monthly_income"), ("lots", "amount"), ("300", "age"),
                                         ("blue", "housing")])
def test_nonsense_is_asked_again(client, terms, text, field):
    reading = read_answers(text, asked_fields(client.info()), field, terms.product("cash"))
    assert field not in reading.found and reading.problem == field and reading.hint is not None


def test_the_same_chat_over_http_gives_the_same_reply(settings, client, terms):
    script = ["borrow 20000 over 24 months for a new car", "29", "3 years", "rent", "1000", "7000", "yes"]
    local = chat(lambda: make_skill(settings, client, terms), Conversation(), script)[-1]
    with TestClient(create_app(client.scorer)) as http:
        remote_client = HttpScoringClient("http://testserver", http=http)
        remote = chat(lambda: make_skill(settings, remote_client, terms), Conversation(), script)[-1]
    assert remote.text == local.text
    assert remote.tool_calls[0].result == local.tool_calls[0].result


# --- tools ------------------------------------------------------------------------------------------------

def test_a_malformed_call_never_reaches_the_tool(settings, client, terms):
    tool = build_tools(client, terms, settings.prompts_dir)["check_eligibility"]
    bad = run_tool_call(tool, {"amount": "lots", "age": 300})
    assert bad.error and bad.result is None and "age" in bad.error and "housing: is required" in bad.error
    assert run_tool_call(tool, "{not json").error == "arguments: not valid JSON"
    good = run_tool_call(tool, '{"amount": 5000, "term_months": 12, "purpose": "repairs", "employment": "1_to_4_years",'
                               ' "housing": "own", "savings": 100, "age": 40, "monthly_income": 8000, "consent": true}')
    assert good.error is None and good.result["decision"] in ("approve", "refer", "decline")


def test_calculator_tools_validate_then_compute(settings, client, terms):
    tools = build_tools(client, terms, settings.prompts_dir)
    call = run_tool_call(tools["repayment_schedule"], {"amount": 5000, "months": 12, "product": "cash"})
    assert [q["first_payment"] for q in call.result["quotes"]] == ["434.97", "467.84"]
    assert run_tool_call(tools["repayment_schedule"], {"amount": -5, "months": 12}).error
    assert "repaid over" in run_tool_call(tools["repayment_schedule"], {"amount": 5000, "months": 7}).error
    quote = run_tool_call(tools["early_repayment_quote"], {"amount": 20000, "months": 12, "product": "business",
                                                           "apr_pct": 12, "start_date": "2025-01-10",
                                                           "repay_on": "2025-04-20"})
    assert quote.result["early_repayment_fee"] == "151.69"


# --- the model proposes the call (vLLM with a tool-call parser) ----------------------------------------------

class ScriptedToolModel:
    """Stands in for a chat model served by vLLM with tool calling: no such server can run in the
    test environment, so the model's messages are scripted. Everything after them is real."""

    def __init__(self, replies: list[AIMessage]):
        self.replies, self.seen, self.bound = list(replies), [], None

    def bind_tools(self, tools):
        self.bound = tools
        return self

    def invoke(self, messages):
        self.seen.append(list(messages))
        return self.replies.pop(0)


GOOD_ARGS = {"amount": 8000, "term_months": 12, "purpose": "education", "employment": "4_to_7_years",
             "housing": "own", "savings": 3000, "age": 31, "monthly_income": 9000}


def tool_call(args, call_id="c1"):
    return AIMessage(content="", tool_calls=[{"name": "check_eligibility", "args": args, "id": call_id}])


def test_model_tool_call_is_validated_then_consent_is_asked(settings, client, terms):
    model = ScriptedToolModel([AIMessage(content="Sure - how much would you like to borrow, and for how long?"),
                               tool_call(GOOD_ARGS | {"consent": True})])
    factory = lambda: make_skill(settings, client, terms, model, llm_backend="openai")  # noqa: E731
    replies = chat(factory, Conversation(), ["Can I get a loan?", "8000 for a year, for my studies ...", "yes"])
    assert replies[0].text.startswith("Sure") and replies[0].path == "form"
    assert model.bound[0].name == "check_eligibility"
    assert replies[1].meta["eligibility"]["stage"] == "consent"  # the model's consent=True is not trusted
    assert replies[1].tool_calls == []
    assert replies[2].path == "tool" and replies[2].tool_calls[0].arguments["amount"] == 8000
    no_internal_figures(replies[2])


def test_malformed_model_call_is_reasked_once_then_the_form_takes_over(settings, client, terms):
    bad = GOOD_ARGS | {"age": 300, "housing": "castle"}
    model = ScriptedToolModel([tool_call(bad), tool_call(bad, "c2")])
    factory = lambda: make_skill(settings, client, terms, model, llm_backend="openai")  # noqa: E731
    conversation = Conversation()
    reply = chat(factory, conversation, ["I want 8000 for a year for education"])[0]
    retry = model.seen[1]
    assert isinstance(retry[-1], ToolMessage) and "age" in retry[-1].content  # re-asked once with the errors
    state = conversation.state["eligibility"]
    assert state["mode"] == "form" and reply.meta["eligibility"]["mode"] == "form"
    assert state["answers"]["amount"] == 8000 and "age" not in state["answers"]  # valid fields kept
    assert state["asking"] == "age" and "How old are you" in reply.text
    rest = chat(factory, conversation, ["33", "I own it", "yes"])  # the form finishes without the model
    assert rest[-1].path == "tool" and len(model.seen) == 2


def test_model_fixed_after_one_reask(settings, client, terms):
    model = ScriptedToolModel([tool_call(GOOD_ARGS | {"term_months": "soon"}), tool_call(GOOD_ARGS, "c2")])
    reply = chat(lambda: make_skill(settings, client, terms, model, llm_backend="openai"), Conversation(),
                 ["8000 for a year for education please"])[0]
    assert reply.meta["eligibility"]["stage"] == "consent"


def test_form_is_used_when_the_backend_has_no_tool_calling(settings, client, terms):
    model = ScriptedToolModel([])
    reply = chat(lambda: make_skill(settings, client, terms, model), Conversation(), ["loan eligibility"])[0]
    assert model.seen == [] and reply.meta["eligibility"]["mode"] == "form"


def test_a_scoring_service_that_is_down_gets_a_polite_reply(settings, terms):
    down = HttpScoringClient("http://127.0.0.1:9", timeout_s=0.5)  # nothing listens on port 9
    reply = chat(lambda: make_skill(settings, down, terms), Conversation(), ["am I eligible for a loan?"])[0]
    assert reply.path == "error" and "not available right now" in reply.text and terms.lender.hotline in reply.text
