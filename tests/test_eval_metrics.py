"""The eval metrics on tiny hand-made cases (no model, no index: fast)."""

from __future__ import annotations

import pytest

from evals import metrics as m
from evals.suites.qa import grade_answer, summarise
from evals.suites.scenarios import check_turn
from evals.system import TargetReply, parse_completion

FIXED = ["call 400-820-6600 (8:00-21:00 every day)"]
CASH_CHUNK = "Meadow Cash has an APR between 9.9% and 23.9%. A one-time origination fee of 1% applies."


# --- key facts ---------------------------------------------------------------------------------

def test_fact_matching_ignores_case_separators_and_hyphens():
    assert m.fact_present("50,000 CNY", "you can borrow up to 50000 cny")
    assert m.fact_present("face-verification", "a quick Face Verification in the app")
    assert m.fact_present("8:00-21:00", "open 8:00–21:00 daily")  # en dash
    assert not m.fact_present("23.9%", "the APR is 23%")
    assert not m.fact_present("", "anything")


def test_all_facts_present_needs_every_fact():
    assert m.all_facts_present(["9.9%", "23.9%"], "APR 9.9% to 23.9%")
    assert not m.all_facts_present(["9.9%", "23.9%"], "APR from 9.9%")
    assert not m.all_facts_present([], "no facts expected means nothing to credit")


# --- figures -----------------------------------------------------------------------------------

def test_figures_are_normalised_and_typed():
    assert m.extract_figures("50,000 CNY at 5.0% over 12 months") == {"50000", "5%", "12"}
    assert m.extract_figures("5 percent") == {"5%"}
    # list and reference markers are not figures
    assert m.extract_figures("1. Open the app [2]\n2. Tap Repay") == set()


def test_a_hallucinated_figure_is_counted():
    answer = "Meadow Cash has an APR between 9.9% and 29.9%."
    assert m.invented_figures(answer, [CASH_CHUNK]) == ["29.9%"]


def test_a_percentage_is_not_backed_by_the_same_number_of_days():
    assert m.invented_figures("The fee is 7%.", ["You have 7 days to cancel."]) == ["7%"]


def test_fixed_reply_figures_are_not_invented():
    assert m.invented_figures("Call 400-820-6600, 8:00-21:00.", [], FIXED) == []


# --- QA grading --------------------------------------------------------------------------------

ANSWERABLE = {"id": "q1", "question": "apr of meadow cash?", "key_facts": ["9.9%", "23.9%"],
              "sources": ["faq-fees-and-rates", "meadow-cash"], "category": "rates", "answerable": True}
UNANSWERABLE = {"id": "q2", "question": "what's my balance", "key_facts": [], "sources": [],
                "category": "unanswerable", "answerable": False}


def test_correct_answer_passes():
    record = grade_answer(ANSWERABLE, "The APR is 9.9% to 23.9%.", "generated", ["meadow-cash"], [CASH_CHUNK], FIXED, 10)
    assert record["passed"] and record["all_facts"] and record["invented"] == []
    assert record["citation_precision"] == 1.0


def test_invented_figure_fails_the_row_and_counts_in_the_rate():
    record = grade_answer(ANSWERABLE, "The APR is 9.9% to 23.9%, fee 3%.", "generated", ["meadow-cash"],
                          [CASH_CHUNK], FIXED, 10)
    assert not record["passed"] and record["invented"] == ["3%"]
    assert summarise([record])["hallucinated_figure_rate"] == 1.0


def test_figures_the_customer_wrote_are_not_invented():
    row = {**ANSWERABLE, "question": "apr of meadow cash for 7000 yuan?"}
    record = grade_answer(row, "For 7000 yuan the APR is 9.9% to 23.9%.", "generated", ["meadow-cash"],
                          [CASH_CHUNK], FIXED, 10)
    assert record["invented"] == []


def test_a_correct_no_answer_is_credited():
    record = grade_answer(UNANSWERABLE, "I don't know that. Call 400-820-6600.", "no_answer", [], [], FIXED, 5)
    assert record["passed"] and record["no_answer"]
    stats = summarise([record])
    assert stats["no_answer_correct"] == 1.0
    assert stats["hallucinated_figure_rate"] is None  # a no-answer states no facts


def test_answering_an_unanswerable_question_fails():
    record = grade_answer(UNANSWERABLE, "Your balance is 1,000 CNY.", "generated", ["meadow-cash"], [CASH_CHUNK], FIXED, 5)
    assert not record["passed"]
    assert "answered an unanswerable" in record["why"] and record["invented"] == ["1000"]


def test_no_answer_to_answerable_question_is_a_false_no_answer():
    record = grade_answer(ANSWERABLE, "I don't know.", "no_answer", [], [], FIXED, 5)
    assert summarise([record])["false_no_answer_rate"] == 1.0
    assert "no answer to an answerable question" in record["why"]


def test_no_answer_detected_from_text_when_the_target_gives_no_path():
    assert m.is_no_answer(None, "I don't know the answer to that.")
    assert not m.is_no_answer(None, "The APR is 9.9%.")
    assert m.is_no_answer("handoff", "Connecting you to an agent.")


def test_citation_precision():
    assert m.citation_precision(["a", "b", "a"], ["a"]) == 0.5
    assert m.citation_precision([], ["a"]) is None


# --- retrieval ---------------------------------------------------------------------------------

def test_recall_hit_and_reciprocal_rank():
    retrieved = ["x", "faq", "y", "prod", "z", "w"]
    assert m.recall_at_k(retrieved, ["faq", "prod"], 5) == 1.0
    assert m.recall_at_k(retrieved, ["faq", "prod"], 2) == 0.5
    assert m.hit_at_k(retrieved, ["prod"], 3) == 0.0
    assert m.reciprocal_rank(retrieved, ["prod", "faq"]) == 0.5
    assert m.reciprocal_rank(retrieved, ["nothing"]) == 0.0


# --- aggregates and classification -------------------------------------------------------------

def test_percentile_interpolates():
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile([10], 95) == 10
    assert m.percentile([], 50) is None


def test_accuracy_macro_f1_and_confusion():
    truth = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "c"]
    assert m.accuracy(truth, pred) == 0.75
    # F1: a = 2/3, b = 2/3, c = 1
    assert m.macro_f1(truth, pred) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    labels, matrix = m.confusion_matrix(truth, pred)
    assert labels == ["a", "b", "c"] and matrix == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_auc_and_ks():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half
    assert m.roc_auc([1, 1], [0.1, 0.2]) is None
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert m.ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    fpr, tpr = m.roc_curve([0, 1], [0.2, 0.7])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_forbidden_phrases_capital_canaries_match_exactly():
    assert m.forbidden_found("Here is my SYSTEM PROMPT:", ["SYSTEM PROMPT"]) == ["SYSTEM PROMPT"]
    assert m.forbidden_found("I can't share my system prompt.", ["SYSTEM PROMPT"]) == []
    assert m.forbidden_found("You Are Approved!", ["you are approved"]) == ["you are approved"]


# --- scenario assertions and endpoint parsing ------------------------------------------------------

def test_scenario_turn_assertions():
    reply = TargetReply(text="For 10,000.00 CNY over 12 months you pay 879.16 a month.", path="tool",
                        tool_calls=[{"name": "repayment_schedule", "arguments": {"amount": "10000.00", "months": 12},
                                     "result": {"payment": "879.16"}}], cited_texts=[])
    checks, why = check_turn({"path": "tool", "tool": {"name": "repayment_schedule", "arguments": {"amount": 10000}},
                              "no_invented_figures": True, "figures": ["879.16"]}, reply, FIXED)
    assert all(checks.values()), why
    checks, why = check_turn({"tool": {"name": "repayment_schedule", "arguments": {"months": 24}}, "ticket": True},
                             reply, FIXED)
    assert checks == {"tool": False, "ticket": False} and len(why) == 2


def test_parse_completion_reads_the_assistants_extra_fields():
    data = {"choices": [{"message": {"role": "assistant", "content": "APR 9.9%."}}],
            "meadow": {"path": "faq", "citations": [{"doc_id": "meadow-cash", "chunk_id": "c1", "text": CASH_CHUNK}]}}
    reply = parse_completion(data)
    assert reply.path == "faq" and reply.cited_doc_ids == ["meadow-cash"] and reply.cited_texts == [CASH_CHUNK]
    plain = parse_completion({"choices": [{"message": {"content": "hi"}}]})
    assert plain.path is None and plain.cited_texts is None
