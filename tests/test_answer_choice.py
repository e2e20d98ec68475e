"""Issue 13: the FAQ fast path and the no-answer cut-off are chosen on the most similar passage,
not on the first after rank fusion; the extractive fallback quotes the sentences that answer the
question and never opens with another question's bare Yes/No."""

from __future__ import annotations

import pytest

from assistant.knowledge.extract import extract_answer, strip_bare_answer
from assistant.knowledge.index import KnowledgeBase
from assistant.skills.answer import AnswerSkill, faq_answer, most_similar
from assistant.knowledge.terms import load_terms
from assistant.skills.base import final_reply
from assistant.types import Chunk, Conversation, RouteDecision, Turn
from tests.conftest import make_settings


def chunk(id_: str, text: str, score: float, type_: str = "product") -> Chunk:
    return Chunk(id=id_, text=text, doc_id=id_.split("#")[0], title="t", section=id_, type=type_, score=score)


def test_most_similar_is_not_the_fused_first():
    fused = [chunk("cash#fees", "x", 0.55), chunk("faq#cooling-off", "y", 0.97, "faq"), chunk("z#z", "z", 0.60)]
    assert most_similar(fused).id == "faq#cooling-off"
    assert most_similar([]) is None


GRACE = chunk("faq-overdue#grace", "Is there a grace period?\nYes. Meadow gives a grace period of 3 days after "
              "each due date: no late fee is charged if you pay within it. Interest still runs on the unpaid amount.",
              0.7, "faq")


def test_extract_never_opens_with_another_questions_yes():
    text = extract_answer("how many days after the due date before a late fee", GRACE)
    assert not text.lower().startswith(("yes", "no.")) and "3 days" in text


def test_bare_answers_are_stripped_but_a_leading_no_as_a_word_is_kept():
    assert strip_bare_answer("Yes.") == ""
    assert strip_bare_answer("Yes, you can repay early at any time.") == "You can repay early at any time."
    assert strip_bare_answer("No late fee is charged within 3 days.") == "No late fee is charged within 3 days."


def test_extract_prefers_the_sentence_with_the_figure_asked_for():
    hours = chunk("faq-account#hours", "What are the hotline's opening hours?\nOutside those hours you can use the "
                  "app. The hotline 400-820-6600 is open 8:00-21:00 every day. It is free to call.", 0.8, "faq")
    assert "8:00-21:00" in extract_answer("what time does the hotline open", hours, max_sentences=1)


@pytest.fixture(scope="module")
def kb(tmp_path_factory, model_cache):
    settings = make_settings(tmp_path_factory.mktemp("choice") / "data", model_cache)
    kb = KnowledgeBase(settings)
    kb.ingest()
    return kb


def ask(kb: KnowledgeBase, question: str):
    # No chat model: these questions must be settled before generation (FAQ or no-answer).
    skill = AnswerSkill(kb.settings, kb, chat_model=None, terms=load_terms(kb.settings.terms_file))
    turn = Turn(conversation=Conversation(), message=question, route=RouteDecision(intent="answer"))
    return final_reply(skill.stream(turn))


@pytest.mark.slow
def test_the_faq_fast_path_takes_the_most_similar_entry_on_the_real_kb(kb):
    question = "what's the cooling off period"
    chunks = kb.retrieve(question)
    best = most_similar(chunks)
    assert chunks[0].id != best.id and best.type == "faq"  # BM25 put another entry first
    reply = ask(kb, question)
    assert reply.path == "faq" and reply.citations[0].chunk_id == best.id


@pytest.mark.slow
def test_an_answerable_question_is_not_cut_off_by_a_weak_fused_first(kb):
    question = "how do i get the money after i get approved"
    chunks = kb.retrieve(question)
    assert chunks[0].score < kb.settings.answer_min_score <= most_similar(chunks).score
    reply = ask(kb, question)
    assert reply.path != "no_answer" and reply.citations


def test_a_faq_answers_yes_or_no_only_to_a_yes_no_question():
    entry = chunk("faq-fees#apr-cap", "Is the APR capped?\nYes. Meadow caps the APR of every product at 24%.",
                  0.9, "faq")
    assert faq_answer(entry, "is the APR capped?") == "Yes. Meadow caps the APR of every product at 24%."
    assert faq_answer(entry, "so can it go above 24%?").startswith("Yes.")
    assert faq_answer(entry, "what's the maximum APR meadow can charge me?") == "Meadow caps the APR of every product at 24%."
    assert faq_answer(entry, "how high can the APR go") == "Meadow caps the APR of every product at 24%."
    assert faq_answer(entry) == "Yes. Meadow caps the APR of every product at 24%."
