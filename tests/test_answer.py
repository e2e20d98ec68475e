"""The answer skill end to end: real Chroma, real embeddings, the real small LLM."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from assistant.components import build_assistant
from assistant.knowledge.index import KnowledgeBase
from assistant.skills.answer import resolve_query
from assistant.knowledge.terms import load_terms
from assistant.skills.base import final_reply
from assistant.types import Conversation, Delta, Message, Reply, RouteDecision, Turn
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory, model_cache):
    return make_settings(tmp_path_factory.mktemp("answer") / "data", model_cache)


@pytest.fixture(scope="module")
def kb(settings):
    kb = KnowledgeBase(settings)
    kb.ingest()
    return kb


@pytest.fixture(scope="module")
def assistant(settings, kb):
    return build_assistant(settings, kb=kb)


def scripted(answer: str) -> GenericFakeChatModel:
    # A scripted model stands in for the LLM only where a test needs a known bad answer:
    # the real 135M model's mistakes are not reproducible on demand.
    return GenericFakeChatModel(messages=iter([AIMessage(content=answer)] * 5))


def test_faq_fast_path_answers_with_the_curated_text(assistant):
    reply = assistant.reply(Conversation(), "How much is the late fee?")
    assert reply.path == "faq"
    assert "5%" in reply.text
    assert reply.citations and reply.citations[0].doc_id.startswith("faq-")
    assert reply.timings_ms["retrieve"] > 0


def test_unanswerable_question_gets_no_answer_and_an_agent(assistant):
    # Straight to the answer skill: the router would send this one to the out-of-scope reply.
    turn = Turn(conversation=Conversation(), message="Which crypto coin should I buy this week?",
                route=RouteDecision(intent="answer"))
    reply = final_reply(assistant.skills["answer"].stream(turn))
    assert reply.path == "no_answer"
    assert "agent" in reply.text and not reply.citations


def test_out_of_scope_question_is_declined_politely(assistant):
    reply = assistant.reply(Conversation(), "Which crypto coin should I buy this week?")
    assert reply.path in {"refused", "no_answer"} and not reply.citations


@pytest.mark.slow
def test_generated_answer_streams_and_every_figure_is_backed(assistant, settings):
    settings_question = "Can I repay Meadow Business early, and does it cost anything?"
    events = list(assistant.stream(Conversation(), settings_question))
    reply = events[-1]
    assert isinstance(reply, Reply) and reply.path in {"generated", "extractive", "faq"}
    if reply.path == "generated":
        assert any(isinstance(e, Delta) for e in events)
    cited = " ".join(c.text for c in reply.chunks if c.id in {x.chunk_id for x in reply.citations})
    from assistant.knowledge.verify import figures
    assert figures(reply.text) <= figures(cited)


def test_verify_drops_an_invented_apr(settings, kb):
    fake = build_assistant(settings, kb=kb, chat_model=scripted(
        "The APR of Meadow Cash is 19.9% for everyone. You can repay Meadow Cash early."))
    settings_q = "Tell me about Meadow Cash pricing and whether I can repay early"
    reply = fake.reply(Conversation(), settings_q)
    assert "19.9%" not in reply.text
    assert reply.path in {"generated", "extractive"}
    assert any("19.9%" in s for s in reply.meta.get("dropped", []))


def test_all_invented_falls_back_to_an_extract(settings, kb):
    fake = build_assistant(settings, kb=kb, chat_model=scripted("Everyone pays 99% and 1,000,000 CNY."))
    reply = fake.reply(Conversation(), "Tell me about Meadow Cash pricing and whether I can repay early")
    assert reply.path == "extractive" and "99%" not in reply.text and reply.citations


def test_follow_up_is_resolved_against_the_conversation():
    terms = load_terms(make_settings(__import__("pathlib").Path("/tmp")).terms_file)
    conversation = Conversation(messages=[Message(role="user", content="What is the APR of Meadow Cash?"),
                                          Message(role="assistant", content="9.9% to 23.9%.")])
    query, products = resolve_query(conversation, "and what about early repayment?", terms)
    assert products == ["cash"] and "Meadow Cash" in query
    assert resolve_query(conversation, "How do I reset my password in the app?", terms)[1] == []


def test_follow_up_retrieves_the_right_product(assistant):
    conversation = Conversation()
    assistant.reply(conversation, "What is the APR of the Meadow Business loan?")
    reply = assistant.reply(conversation, "and what about early repayment?")
    assert any(c.product in (None, "business") for c in reply.chunks)
    assert all(c.product in (None, "business") for c in reply.chunks)
    assert len(conversation.messages) == 4


def test_empty_and_oversized_messages_are_refused_clearly(assistant, settings):
    empty = assistant.reply(Conversation(), "   \x00 ")
    assert empty.path == "blocked" and "type a message" in empty.text
    long = assistant.reply(Conversation(), "x" * (settings.max_message_chars + 1))
    assert long.path == "blocked" and "limit" in long.text
