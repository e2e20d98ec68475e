# ruff: noqa: F811  (pytest fixtures imported from test_eligibility_skill are parameters here)
"""The eligibility form inside a conversation (issue 13): typed state, the dialogue manager's
calls (form_active, resume_prompt, cancel), corrections, product switches, cancels, term vs age,
everyday ages, debts and amounts. Real scorecard, real terms; no mocks."""

from __future__ import annotations

import pytest

from assistant.skills.eligibility import EligibilitySkill
from assistant.skills.eligibility_form import EligibilityForm, is_cancel, load_form, product_in
from assistant.types import Conversation

# The same real scorecard, terms and turn loop as the skill's own tests.
from test_eligibility_skill import chat, client, settings, terms  # noqa: E402,F401  (fixtures)


@pytest.fixture
def skill(settings, client, terms):
    return lambda: EligibilitySkill(settings, client, terms)


def answers(conversation: Conversation) -> dict:
    return conversation.state["eligibility"]["answers"]


# --- typed state and the dialogue manager's calls ----------------------------------------------------

def test_state_is_an_eligibility_form_dumped_to_json(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", "20000"])
    raw = conversation.state["eligibility"]
    form = EligibilityForm.model_validate(raw)
    assert form.active and form.stage == "collect" and form.asking == "age" and form.answers == {"amount": 20000}
    assert raw["product"] == "cash" and isinstance(raw["answers"], dict)


def test_an_old_dict_state_goes_on(skill):
    conversation = Conversation(state={"eligibility": {
        "active": True, "stage": "collect", "asking": "age", "answers": {"amount": 20000}, "retries": 0,
        "product": "cash", "mode": "form", "unknown_old_key": 1}})
    reply = chat(skill, conversation, ["35"])[0]
    assert answers(conversation) == {"amount": 20000, "age": 35} and "repay" in reply.text


def test_a_broken_state_is_an_inactive_form():
    assert load_form(Conversation(state={"eligibility": {"answers": "not a dict"}})).active is False


def test_form_active_resume_prompt_and_cancel(skill):
    conversation = Conversation()
    s = skill()
    assert not s.form_active(conversation) and s.resume_prompt(conversation) is None
    chat(skill, conversation, ["check my eligibility", "20000"])
    assert s.form_active(conversation)
    assert s.resume_prompt(conversation) == "How old are you?"
    text = s.cancel(conversation)
    assert "Nothing was submitted" in text and not s.form_active(conversation)
    assert conversation.state["eligibility"]["stopped"] == "cancelled" and answers(conversation) == {}


def test_resume_prompt_at_consent_asks_consent_again(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility: borrow 10000 for 12 months for electronics",
                               "40", "7 years", "I own my flat", "50000", "12000"])
    prompt = skill().resume_prompt(conversation)
    assert "yes or no" in prompt and "CNY 10,000" in prompt


# --- corrections ------------------------------------------------------------------------------------

def test_income_corrected_in_the_same_message(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", "35",
                                       "income around 9000. wait sorry its 6000 not 9000"])[-1]
    assert answers(conversation)["monthly_income"] == 6000
    assert "updated your monthly income" in reply.text and "6,000" in reply.text and "9,000" not in reply.text


def test_sorry_i_meant_corrects_the_last_answer(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", "52", "sorry I meant 25"])[-1]
    assert answers(conversation)["age"] == 25 and "updated your age to 25" in reply.text
    assert conversation.state["eligibility"]["asking"] == "term_months"


def test_actually_12_months_corrects_the_term(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", "30", "24 months", "actually 12 months"])[-1]
    assert answers(conversation)["term_months"] == 12 and "updated the repayment term to 12 months" in reply.text


def test_any_filled_field_can_be_corrected_later(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "30000", "33", "12 months", "for a new car",
                                       "actually I want to borrow 15,000 not 30,000"])[-1]
    assert answers(conversation)["amount"] == 15000 and "15,000" in reply.text
    assert conversation.state["eligibility"]["asking"] == "employment"


def test_sorry_with_an_answer_is_not_a_correction(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", "20000", "sorry, 35"])
    assert answers(conversation) == {"amount": 20000, "age": 35}


def test_a_correction_at_consent_updates_and_asks_again(skill):
    conversation = Conversation()
    replies = chat(skill, conversation, ["check my eligibility: borrow 10000 for 12 months for electronics",
                                         "40", "7 years", "I own my flat", "50000", "6000",
                                         "wait, my income is 7000 not 6000", "yes"])
    assert "updated" in replies[-2].text and "yes or no" in replies[-2].text and not replies[-2].tool_calls
    assert replies[-1].tool_calls[0].arguments["monthly_income"] == 7000


# --- parsing --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["12 month", "12 months"])
def test_months_at_the_age_question_are_a_term(skill, text):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", text])[-1]
    assert answers(conversation) == {"amount": 20000, "term_months": 12}
    assert "How old are you" in reply.text and conversation.state["eligibility"]["active"]


def test_and_6_is_no_age_unless_the_age_is_asked(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000, I'm 35", "and 6?"])[-1]
    assert answers(conversation)["age"] == 35 and "you are 6" not in reply.text


@pytest.mark.parametrize("text", ["35yo", "35 y/o", "I'm 35 years old", "35 yrs", "35"])
def test_everyday_ages(skill, text):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", "20000", text])
    assert answers(conversation)["age"] == 35


def test_an_age_volunteered_with_the_amount(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", "I'm 35 years old and I'd like 12,500"])
    assert answers(conversation) == {"amount": 12500, "age": 35}


@pytest.mark.parametrize("text,value", [("5k", 5000), ("20 thousand", 20000), ("20,000", 20000), ("¥7,500", 7500)])
def test_amounts(skill, text, value):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", text])
    assert answers(conversation)["amount"] == value


@pytest.mark.parametrize("text", ["I pay 1,200 a month on other loans", "my other loans cost 1,200 a month",
                                  "1.2k a month on my credit card debts", "I have a car loan, 1200 a month"])
def test_debts_are_neither_amount_nor_income(skill, text):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", "30", text])[-1]
    assert answers(conversation)["monthly_debts"] == 1200 and answers(conversation)["amount"] == 20000
    assert "monthly_income" not in answers(conversation) and "noted" in reply.text


# --- products ---------------------------------------------------------------------------------------------

def test_the_form_starts_on_the_named_product(skill, terms):
    conversation = Conversation()
    reply = chat(skill, conversation, ["can you check if I'm eligible for meadow flex?"])[0]
    assert conversation.state["eligibility"]["product"] == "flex" and terms.product("flex").name in reply.text


@pytest.mark.parametrize("topic", ["meadow-business", "business"])
def test_the_form_starts_on_the_conversations_topic(skill, topic):
    conversation = Conversation(state={"dialogue": {"topic": {"product": topic}}})
    chat(skill, conversation, ["am I eligible?"])
    assert conversation.state["eligibility"]["product"] == "business"


def test_a_switch_to_business_keeps_what_applies_and_asks_business_fields(skill, terms):
    conversation = Conversation()
    replies = chat(skill, conversation, [
        "check my eligibility", "20,000, I'm 35, and I pay 1,000 a month on other loans",
        "actually I run a small shop, I need a business loan", "60000", "3 years", "my shop makes 40k a month"])
    switch = replies[2]
    assert terms.product("business").name in switch.text and "kept your age" in switch.text
    state = conversation.state["eligibility"]
    assert state["product"] == "business"
    assert replies[3].meta["eligibility"]["asking"] == "months_trading"
    assert replies[4].meta["eligibility"]["asking"] == "monthly_revenue"
    got = answers(conversation)
    assert got["age"] == 35 and got["monthly_debts"] == 1000 and got["purpose"] == "business"
    assert got["months_trading"] == 36 and got["monthly_revenue"] == 40000 and "monthly_income" not in got
    assert got["amount"] == 60000  # the old product's amount was asked again


def test_shop_revenue_in_a_cash_form_is_not_income(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility", "20000", "35", "my shop makes 30k a month"])
    assert "monthly_income" not in answers(conversation) and answers(conversation)["monthly_revenue"] == 30000


def test_cash_in_savings_is_no_product_switch(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility for a business loan", "50000", "40", "2 years", "40k",
                               "12 months", "I have 5000 cash in savings"])
    assert conversation.state["eligibility"]["product"] == "business"


def test_trading_rule_comes_from_the_terms(skill, terms):
    conversation = Conversation()
    minimum = terms.product("business").min_months_trading
    reply = chat(skill, conversation, ["check my eligibility for a business loan", "50000", "40",
                                       f"{minimum - 2} months"])[-1]
    assert f"at least {minimum} months" in reply.text and not reply.tool_calls
    state = conversation.state["eligibility"]
    assert state["active"] is False and state["stopped"] == "trading_rule" and state["answers"] == {}


def test_business_answers_never_reach_the_scoring_tool(skill):
    conversation = Conversation()
    replies = chat(skill, conversation, ["check my eligibility for a business loan", "50000", "40", "2 years",
                                         "40k", "12 months", "rent", "0", "I take home 8000 a month", "yes"])
    assert "scoring tool does not use them" in replies[-2].text
    args = replies[-1].tool_calls[0].arguments
    assert args["product"] == "business" and args["monthly_income"] == 8000
    assert not {"monthly_revenue", "months_trading", "monthly_debts"} & set(args)


# --- cancels and the age rule -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["forget it", "never mind i dont want a loan anymore", "cancel",
                                  "actually forget it, i dont want to borrow anymore", "I changed my mind",
                                  "ok stop"])
def test_cancel_phrases_end_the_form(skill, text):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", text])[-1]
    assert "Nothing was submitted" in reply.text and not reply.tool_calls
    assert conversation.state["eligibility"]["active"] is False


@pytest.mark.parametrize("text", ["I want to borrow 5000", "I don't want to pay too much each month, 12 months",
                                  "I don't want a long term, 6 months", "no savings",
                                  "I don't need a loan that big, 10000 instead", "I don't want to borrow so much"])
def test_answers_are_not_cancels(text):
    assert not is_cancel(text)


def test_after_the_age_rule_the_form_is_closed_and_says_why(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "5000", "16"])[-1]
    assert "aged 18" in reply.text
    s = skill()
    assert not s.form_active(conversation) and s.resume_prompt(conversation) is None
    assert conversation.state["eligibility"]["stopped"] == "age_rule"


def test_product_in_strict_ignores_the_bare_key(terms):
    assert product_in("5000 cash in savings", terms) == "cash"
    assert product_in("5000 cash in savings", terms, strict=True) is None
    assert product_in("I need a business loan", terms, strict=True) == "business"


@pytest.mark.parametrize("messages,field,value", [
    (["20000", "I'm 35, sorry 36"], "age", 36),
    (["20000", "35", "12 months", "car", "3 years", "rent", "I earn 6000, sorry 6500"], "monthly_income", 6500),
])
def test_a_figure_corrected_right_after_it_was_given(skill, messages, field, value):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", *messages])[-1]
    assert answers(conversation)[field] == value and "updated" in reply.text


def test_change_my_age_to(skill):
    conversation = Conversation()
    reply = chat(skill, conversation, ["check my eligibility", "20000", "35", "change my age to 30"])[-1]
    assert answers(conversation)["age"] == 30 and "updated your age to 30" in reply.text


def test_business_fields_in_everyday_words(skill):
    conversation = Conversation()
    chat(skill, conversation, ["check my eligibility for a business loan", "50k", "45",
                               "we have been open for 3 years", "monthly sales around 50k"])
    got = answers(conversation)
    assert got["months_trading"] == 36 and got["monthly_revenue"] == 50000 and "monthly_income" not in got


def test_yes_with_a_correction_updates_first(skill):
    conversation = Conversation()
    replies = chat(skill, conversation, ["check my eligibility: borrow 10000 for 12 months for electronics",
                                         "40", "7 years", "I own my flat", "50000", "6000",
                                         "yes but my income is actually 7000"])
    assert not replies[-1].tool_calls and "updated" in replies[-1].text and "yes or no" in replies[-1].text
    assert answers(conversation)["monthly_income"] == 7000
