from assistant.knowledge.verify import Figure, figures, verify_answer

CONTEXT = ["Meadow Cash APR: 9.9% to 23.9% a year, including the 1% origination fee. "
           "The grace period is 3 days. You can repay by auto-debit from your linked bank card."]


def test_figures_are_typed_by_kind():
    assert figures("APR 23.9% and 50,000 CNY over three months") == {
        Figure("23.9", True), Figure("50000", False), Figure("3", False)}


def test_invented_apr_is_dropped():
    answer = "The APR of Meadow Cash is 19.9%. The grace period is 3 days."
    checked = verify_answer(answer, CONTEXT)
    assert checked.text == "The grace period is 3 days."
    assert checked.dropped == [("The APR of Meadow Cash is 19.9%.", ["19.9%"])]


def test_percent_is_not_backed_by_a_plain_number():
    assert not verify_answer("The late fee is 3% of the installment.", CONTEXT).supported


def test_unsupported_wording_and_loops_are_dropped():
    answer = ("The customer asked about the passage and wondered about refunds. "
              "You can repay by auto-debit from your linked bank card. "
              "You can repay by auto-debit from your linked bank card.")
    checked = verify_answer(answer, CONTEXT)
    assert checked.kept == ["You can repay by auto-debit from your linked bank card."]


def test_nothing_supported():
    assert not verify_answer("Rates are 30% for everyone", CONTEXT).supported


GRACE = ("Is there a grace period?\nYes. Meadow gives a grace period of 3 days after each due date: "
         "no late fee is charged if you pay within it.")


def test_a_flipped_yes_is_dropped_but_a_backed_no_is_kept():
    flipped = verify_answer("No, there isn't a grace period if you pay a few days late.", [GRACE])
    assert not flipped.supported and "negation" in flipped.dropped[0][1][0]
    backed = verify_answer("No late fee is charged if you pay within the grace period.", [GRACE])
    assert backed.supported


def test_an_echoed_question_is_not_an_answer():
    checked = verify_answer("What is the grace period?", [GRACE])
    assert not checked.supported and checked.dropped[0][1] == ["a question, not an answer"]
