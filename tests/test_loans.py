"""The loan calculator against hand-checked schedules and known APR/IRR examples, its product
figures from terms.yaml, the loan-question path of the answer skill, and its CLI."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal as D

import pytest
import yaml
from typer.testing import CliRunner

from assistant.config import PROJECT_ROOT, Settings
from assistant.loans import (
    LoanError, add_months, answer_loan_question, apr_pct, early_repayment_quote, late_fee, make_loan_answerer,
    monthly_irr, parse_loan_question, product_quotes, product_schedule, repayment_schedule,
)
from assistant.cli.loans import app as loan_app
from assistant.knowledge.terms import load_terms


@pytest.fixture(scope="module")
def terms():
    return load_terms(Settings(_env_file=None).terms_file)


# --- schedules checked by hand ----------------------------------------------------------------------

def test_equal_installment_schedule_by_hand():
    # 1,000 at 12% (1% a month) over 3 months: payment = 1000 * 0.01 / (1 - 1.01^-3) = 340.0221...
    s = repayment_schedule(1000, 3, 12, start_date=date(2025, 1, 15))
    rows = [(r.due_date, r.payment, r.principal, r.interest, r.balance) for r in s.installments]
    assert rows == [
        (date(2025, 2, 15), D("340.02"), D("330.02"), D("10.00"), D("669.98")),
        (date(2025, 3, 15), D("340.02"), D("333.32"), D("6.70"), D("336.66")),
        (date(2025, 4, 15), D("340.03"), D("336.66"), D("3.37"), D("0.00")),  # last takes the rounding
    ]
    assert s.total_interest == D("20.07") and s.total_repaid == D("1020.07") and s.apr_pct == D("12.00")


def test_equal_installment_10000_at_12_percent_over_a_year():
    s = repayment_schedule(10000, 12, 12, start_date=date(2025, 1, 10))
    assert s.first_payment == D("888.49") and s.last_payment == D("888.47")
    assert s.total_interest == D("661.86") and s.apr_pct == D("12.00")
    assert sum(r.principal for r in s.installments) == D("10000.00")


def test_equal_principal_schedule_by_hand():
    # principal 833.33 a month (last 833.37); interest = 1% of the balance: 100, 91.67, ..., 8.33
    s = repayment_schedule(10000, 12, 12, "equal_principal", start_date=date(2025, 1, 10))
    assert s.installments[0].payment == D("933.33") and s.installments[0].interest == D("100.00")
    assert s.installments[1].interest == D("91.67")
    assert s.last_payment == D("841.70") and s.installments[-1].principal == D("833.37")
    assert s.total_interest == D("650.00")  # 100 * (12 + 11 + ... + 1) / 12
    assert s.total_interest < repayment_schedule(10000, 12, 12).total_interest  # as the documents say


def test_due_dates_keep_the_payout_day_or_the_month_end():
    assert [add_months(date(2025, 1, 31), k) for k in (1, 2, 3)] == [date(2025, 2, 28), date(2025, 3, 31),
                                                                    date(2025, 4, 30)]
    assert add_months(date(2024, 12, 15), 2) == date(2025, 2, 15)


def test_zero_rate_splits_the_principal_exactly():
    s = repayment_schedule(1000, 3, 0, start_date=date(2025, 1, 1))
    assert [r.payment for r in s.installments] == [D("333.33"), D("333.33"), D("333.34")]
    assert s.apr_pct == D("0.00")


# --- APR as the annualised internal rate of return --------------------------------------------------------

def test_known_irr_examples():
    # 1,000 repaid by 12 x 100: monthly IRR 2.9229% (annuity tables), APR 35.07%
    assert round(float(monthly_irr(D(1000), [D(100)] * 12)), 6) == 0.029229
    assert apr_pct(D(1000), [D(100)] * 12) == D("35.07")
    # 5,000 repaid by 36 x 166.07 is the 12% loan of the amortisation tables
    assert apr_pct(D(5000), [D("166.07")] * 36) == D("12.00")


def test_mall_12_month_fee_offer_has_the_apr_terms_yaml_states(terms):
    mall = terms.product("mall")
    s = product_schedule(mall, 1200, 12)
    assert s.first_payment == D("106.00")  # 100 principal + 0.5% of 1,200
    assert s.total_interest == D("0.00") and s.total_fees == D("72.00")
    assert s.apr_pct == D(str(mall.promotions.zero_interest_with_fee_apr_pct))  # 10.9
    assert product_schedule(mall, 1200, 6).apr_pct == D("0.00")  # merchant-funded: no cost


def test_origination_fee_is_in_the_apr_and_never_above_the_product_maximum(terms):
    cash = terms.product("cash")
    s = product_schedule(cash, 5000, 12, cash.apr_max_pct)
    assert s.upfront_fee == D("50.00")
    assert s.annual_rate_pct < D(str(cash.apr_max_pct))  # the fee takes part of the APR
    assert D(str(cash.apr_max_pct)) - D("0.02") <= s.apr_pct <= D(str(cash.apr_max_pct))
    for key, product in terms.products.items():
        for months in product.term_months:
            for amount in (product.limit_min, product.limit_max):
                quotes = product_quotes(product, amount, months)
                for q in quotes:
                    assert q.apr_pct <= D(str(product.apr_max_pct)), key
                    if len(quotes) == 2:  # a promotion (one quote) may be cheaper than the usual range
                        assert q.apr_pct >= D(str(product.apr_min_pct)) - D("0.02"), key


def test_the_calculator_reads_terms_yaml(tmp_path):
    """Change a figure in terms.yaml and the quote changes with it: they cannot disagree."""
    src = PROJECT_ROOT / "knowledge_base" / "products" / "terms.yaml"
    raw = yaml.safe_load(src.read_text())
    raw["products"]["cash"]["apr_min_pct"] = 11.5
    path = tmp_path / "terms.yaml"
    path.write_text(yaml.safe_dump(raw))
    changed = load_terms(path)
    assert product_quotes(changed.product("cash"), 5000, 12)[0].apr_pct == D("11.50")


def test_offers_the_product_does_not_make_are_refused(terms):
    cash = terms.product("cash")
    with pytest.raises(LoanError, match="repaid over 6, 12, 24 or 36 months"):
        product_schedule(cash, 5000, 18)
    with pytest.raises(LoanError, match="lends"):
        product_schedule(cash, 60000, 12)
    with pytest.raises(LoanError, match="APR between"):
        product_schedule(cash, 5000, 12, 30)
    with pytest.raises(LoanError, match="equal installment"):
        product_schedule(cash, 5000, 12, None, "equal_principal")
    assert product_schedule(terms.product("business"), 10000, 12, None, "equal_principal").method == "equal_principal"


# --- early repayment and late fees ------------------------------------------------------------------------

def test_early_repayment_quote_by_hand(terms):
    s = repayment_schedule(1000, 3, 12, start_date=date(2025, 1, 15))
    q = early_repayment_quote(s, terms.product("cash"), date(2025, 3, 1))
    # installment 1 (15 Feb) paid; 669.98 outstanding; 14 days at 12%/365: 3.0838 -> 3.08; no fee on Cash
    assert (q.installments_paid, q.principal_outstanding, q.accrued_interest, q.early_repayment_fee, q.total_due) == \
        (1, D("669.98"), D("3.08"), D("0.00"), D("673.06"))
    assert q.interest_and_fees_saved == D("6.70") + D("3.37") - D("3.08")


def test_business_early_repayment_fee_only_in_the_first_months(terms):
    business = terms.product("business")
    s = product_schedule(business, 20000, 12, 12, start_date=date(2025, 1, 10))
    early = early_repayment_quote(s, business, date(2025, 4, 20))
    later = early_repayment_quote(s, business, date(2025, 9, 20))
    pct = D(str(business.early_repayment_fee_pct)) / 100
    assert early.early_repayment_fee == (early.principal_outstanding * pct).quantize(D("0.01"))
    assert early.fee_free_from == date(2025, 7, 10) and later.early_repayment_fee == D("0.00")
    with pytest.raises(LoanError):
        early_repayment_quote(s, business, date(2026, 2, 1))


def test_late_fee_from_the_product_terms(terms):
    cash = terms.product("cash")
    assert late_fee(cash, "444.24", cash.grace_period_days).fee == D("0.00")  # within the grace period
    after = late_fee(cash, "444.24", cash.grace_period_days + 1)
    assert after.fee == D("22.21") and after.reported_to_credit_bureau  # 5% of 444.24
    assert late_fee(cash, "100", 10).fee == D(str(cash.late_fee_min)).quantize(D("0.01"))
    assert late_fee(cash, "5000", 10).fee == D(str(cash.late_fee_max)).quantize(D("0.01"))
    business = terms.product("business")
    assert late_fee(business, "100", 10).fee == D("20.00")


# --- "how much would I pay a month for 5,000 over 12 months?" ----------------------------------------------

@pytest.mark.parametrize("text, amount, months, product", [
    ("how much would I pay a month for 5,000 over 12 months", "5000", 12, "cash"),
    ("How much is the monthly installment if I borrow 8k for a year?", "8000", 12, "cash"),
    ("what would it cost me to borrow 15000 yuan over 24 months with Meadow Flex", "15000", 24, "flex"),
    ("借5000元12个月每月还多少", "5000", 12, "cash"),
    ("monthly payment for 20k over 2 years on a business loan, equal principal", "20000", 24, "business"),
])
def test_loan_questions_are_read(terms, text, amount, months, product):
    q = parse_loan_question(text, terms)
    assert (q.amount, q.months, q.product) == (D(amount), months, product)


@pytest.mark.parametrize("text", ["what's the APR of Meadow Cash?", "I earn 6000 a month",
                                  "how do I repay early?", "can I borrow 5000?"])
def test_other_questions_are_left_to_retrieval(terms, text):
    assert parse_loan_question(text, terms) is None


def test_the_reply_shows_only_figures_from_the_tool(terms):
    answer = make_loan_answerer(terms)
    text, call = answer("how much would I pay a month for 5,000 over 12 months")
    assert call.name == "repayment_schedule" and call.error is None
    quoted = set()
    for q in call.result["quotes"]:
        quoted |= {f"{D(v):,.2f}" for k, v in q.items() if isinstance(v, str) and re.fullmatch(r"[\d.]+", v)}
        quoted |= {q["apr_pct"].rstrip("0").rstrip(".")}
    numbers = set(re.findall(r"\d[\d,]*\.?\d*", text)) - {"12", "5,000.00", "9.9", "23.9"}
    assert numbers <= quoted, numbers - quoted
    assert "434.97" in text and "467.84" in text  # at APR 9.9% and 23.9%, the 1% fee included


def test_a_loan_the_product_does_not_offer_is_explained(terms):
    text, call = answer_loan_question(parse_loan_question("monthly payment on 5000 over 18 months", terms), terms)
    assert call.error and "6, 12, 24 or 36 months" in text


# --- CLI -------------------------------------------------------------------------------------------------------

def test_loan_cli_schedule_and_early_repayment():
    runner = CliRunner()
    out = runner.invoke(loan_app, ["schedule", "--amount", "10000", "--months", "12", "--product", "business",
                                   "--apr", "12", "--start", "2025-01-31", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["apr_pct"] == "12.00" and len(data["installments"]) == 12
    assert data["installments"][0]["due_date"] == "2025-02-28"
    out = runner.invoke(loan_app, ["early-repayment", "--amount", "20000", "--months", "12", "--product", "business",
                                   "--apr", "12", "--start", "2025-01-10", "--on", "2025-04-20", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["early_repayment_fee"] == "151.69"
    bad = runner.invoke(loan_app, ["schedule", "--amount", "10000", "--months", "7"])
    assert bad.exit_code == 2 and "6, 12, 24 or 36" in bad.output
