"""The loan calculator, exact with `decimal`: repayment schedules (equal installment, equal
principal), total cost, APR as the annualised internal rate of return, early-repayment quotes
and late fees. Every product figure comes from knowledge_base/products/terms.yaml, the file the
documents quote, so the calculator and the documents cannot disagree. No LLM here.

Conventions (the same as the product documents):
- installments are due monthly on the day of payout (the month's last day when it is shorter);
- interest each month = outstanding principal x annual rate / 12, rounded to the cent (half up);
  the last installment takes any rounding remainder so the principal is repaid exactly;
- the origination fee is charged once at payout, so the customer has principal - fee to use;
- APR = 12 x the monthly internal rate of return of the money received against every payment
  (interest and fees), in percent: the actuarial method of US Regulation Z, which is also how
  terms.yaml states the 10.9% APR of the 12-month "0 interest" Mall offer;
- early repayment: installments due on or before the date are paid; interest accrues daily
  (actual/365) from the last due date; the early-repayment fee is a share of the principal repaid.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from pathlib import Path
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Literal

from pydantic import BaseModel

from assistant.config import PROJECT_ROOT
from assistant.llm.prompts import load_replies
from assistant.knowledge.terms import ProductTerms, Terms
from assistant.types import ToolCall

REPLIES_FILE = "eligibility_replies.yaml"  # customer-facing templates of the calculator and the form
CENT = Decimal("0.01")
RATE_STEP = Decimal("0.0001")  # nominal rates are solved to 0.0001 percentage points
Method = Literal["equal_installment", "equal_principal"]


class LoanError(ValueError):
    """A loan the product does not offer (amount, term, method, rate), in words a customer reads."""


def money(value: Decimal | float | int | str) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def add_months(start: date, months: int) -> date:
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


class Installment(BaseModel):
    number: int
    due_date: date
    payment: Decimal  # principal + interest + fee
    principal: Decimal
    interest: Decimal
    fee: Decimal
    balance: Decimal  # principal still owed after this payment


class Schedule(BaseModel):
    principal: Decimal
    months: int
    annual_rate_pct: Decimal  # nominal interest rate
    method: Method
    start_date: date
    upfront_fee: Decimal = Decimal("0.00")
    installments: list[Installment]
    total_interest: Decimal
    total_fees: Decimal
    total_repaid: Decimal  # every payment, plus the upfront fee
    total_cost: Decimal  # interest + fees
    apr_pct: Decimal
    product: str | None = None

    @property
    def first_payment(self) -> Decimal:
        return self.installments[0].payment

    @property
    def last_payment(self) -> Decimal:
        return self.installments[-1].payment

    def summary(self) -> dict[str, Any]:
        """The figures a reply may quote (strings, so JSON keeps every cent)."""
        return {
            "product": self.product, "principal": str(self.principal), "months": self.months,
            "method": self.method, "annual_interest_rate_pct": str(self.annual_rate_pct),
            "apr_pct": str(self.apr_pct), "first_payment": str(self.first_payment),
            "last_payment": str(self.last_payment), "upfront_fee": str(self.upfront_fee),
            "total_interest": str(self.total_interest), "total_fees": str(self.total_fees),
            "total_cost": str(self.total_cost), "total_repaid": str(self.total_repaid),
            "start_date": self.start_date.isoformat(), "first_due_date": self.installments[0].due_date.isoformat(),
        }


def repayment_schedule(principal: Decimal | float | str, months: int, annual_rate_pct: Decimal | float | str,
                       method: Method = "equal_installment", start_date: date | None = None,
                       upfront_fee_pct: Decimal | float | str = 0, monthly_fee_pct: Decimal | float | str = 0,
                       annual_fee: Decimal | float | str = 0) -> Schedule:
    """The full schedule of a loan; fees are percentages of the principal (annual fee in money)."""
    p, rate = money(principal), Decimal(str(annual_rate_pct))
    if p <= 0 or months < 1 or rate < 0:
        raise LoanError("the amount and the term must be positive and the rate not negative")
    start = start_date or date.today()
    monthly_rate = rate / Decimal(1200)
    monthly_fee = money(p * Decimal(str(monthly_fee_pct)) / 100)
    fee_once = money(p * Decimal(str(upfront_fee_pct)) / 100)
    level = _level_payment(p, monthly_rate, months)
    rows, balance = [], p
    for k in range(1, months + 1):
        interest = money(balance * monthly_rate)
        if k == months:
            part = balance
        elif method == "equal_installment":
            part = level - interest
        else:
            part = money(p / months)
        balance -= part
        fee = monthly_fee + (money(annual_fee) if (k - 1) % 12 == 0 else Decimal("0.00"))
        rows.append(Installment(number=k, due_date=add_months(start, k), payment=part + interest + fee,
                                principal=part, interest=interest, fee=fee, balance=balance))
    total_interest = sum((r.interest for r in rows), Decimal("0.00"))
    total_fees = sum((r.fee for r in rows), Decimal("0.00")) + fee_once
    payments = [r.payment for r in rows]
    return Schedule(
        principal=p, months=months, annual_rate_pct=rate, method=method, start_date=start, upfront_fee=fee_once,
        installments=rows, total_interest=total_interest, total_fees=total_fees,
        total_repaid=sum(payments, Decimal("0.00")) + fee_once, total_cost=total_interest + total_fees,
        apr_pct=apr_pct(p - fee_once, payments),
    )


def _level_payment(p: Decimal, monthly_rate: Decimal, months: int) -> Decimal:
    if monthly_rate == 0:
        return money(p / months)
    with localcontext() as ctx:
        ctx.prec = 40
        return money(p * monthly_rate / (1 - (1 + monthly_rate) ** -months))


def monthly_irr(received: Decimal, payments: list[Decimal]) -> Decimal:
    """The monthly rate i with received = sum(payment_k / (1 + i)^k), by Newton's method."""
    if sum(payments) <= received:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 40
        i = Decimal("0.01")
        for _ in range(100):
            value, slope, factor = -received, Decimal(0), Decimal(1)
            for k, pay in enumerate(payments, start=1):
                factor /= 1 + i
                value += pay * factor
                slope -= k * pay * factor / (1 + i)
            step = value / slope
            i -= step
            if abs(step) < Decimal("1e-20"):
                break
        return +i


def apr_pct(received: Decimal, payments: list[Decimal]) -> Decimal:
    """Annualised IRR (12 x monthly) in percent, to 2 decimals."""
    return (monthly_irr(received, payments) * 1200).quantize(CENT, rounding=ROUND_HALF_UP)


# --- products ------------------------------------------------------------------------------------

def product_schedule(product: ProductTerms, amount: Decimal | float | str, months: int,
                     apr: Decimal | float | str | None = None, method: Method | None = None,
                     start_date: date | None = None) -> Schedule:
    """The schedule of a product at a given APR (default: its lowest), with its fees and promotions.
    The nominal rate is solved so that the APR, fees included, is at most the one asked for."""
    amount = money(amount)
    method = method or product.repayment_method  # type: ignore[assignment]
    check_offer(product, amount, months, method)
    promo = _promotion(product, months)
    if promo is not None:
        return promo(amount, start_date, method)
    target = Decimal(str(apr)) if apr is not None else Decimal(str(product.apr_min_pct))
    if not Decimal(str(product.apr_min_pct)) <= target <= Decimal(str(product.apr_max_pct)):
        raise LoanError(f"{product.name} has an APR between {product.apr_min_pct}% and {product.apr_max_pct}%")
    rate = rate_for_apr(target, amount, months, method, product.origination_fee_pct, product.annual_fee)
    schedule = repayment_schedule(amount, months, rate, method, start_date, product.origination_fee_pct,
                                  annual_fee=product.annual_fee)
    return schedule.model_copy(update={"product": product.key})


def check_offer(product: ProductTerms, amount: Decimal, months: int, method: str) -> None:
    if not Decimal(str(product.limit_min)) <= amount <= Decimal(str(product.limit_max)):
        raise LoanError(f"{product.name} lends {product.limit_min:,.0f} to {product.limit_max:,.0f}")
    if months not in product.term_months:
        raise LoanError(f"{product.name} is repaid over {_join(product.term_months)} months")
    if method not in product.repayment_methods_allowed:
        raise LoanError(f"{product.name} is repaid by {_join(product.repayment_methods_allowed)}")


def _join(items: list) -> str:
    items = [str(i).replace("_", " ") for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _promotion(product: ProductTerms, months: int):
    promos = product.promotions
    if promos is None:
        return None
    if months in promos.zero_interest_terms:
        return lambda amount, start, method: repayment_schedule(amount, months, 0, method, start).model_copy(
            update={"product": product.key})
    if months in promos.zero_interest_with_fee_terms:
        return lambda amount, start, method: repayment_schedule(
            amount, months, 0, method, start, monthly_fee_pct=promos.zero_interest_monthly_fee_pct,
        ).model_copy(update={"product": product.key})
    return None


def rate_for_apr(apr: Decimal, amount: Decimal, months: int, method: Method,
                 upfront_fee_pct: float = 0, annual_fee: float = 0) -> Decimal:
    """The highest nominal rate (to 0.0001 points) whose APR, fees included, is at most `apr`."""
    def apr_at(rate: Decimal) -> Decimal:
        return repayment_schedule(amount, months, rate, method, date(2000, 1, 1), upfront_fee_pct,
                                  annual_fee=annual_fee).apr_pct

    if apr_at(apr) <= apr:
        return apr  # no fees: the nominal rate is the APR
    low, high = 0, int(apr / RATE_STEP)
    while low < high:
        mid = (low + high + 1) // 2
        if apr_at(mid * RATE_STEP) <= apr:
            low = mid
        else:
            high = mid - 1
    return low * RATE_STEP


def product_quotes(product: ProductTerms, amount: Decimal | float | str, months: int,
                   method: Method | None = None, start_date: date | None = None) -> list[Schedule]:
    """Schedules at the product's lowest and highest APR (one schedule on a promotion)."""
    if _promotion(product, months) is not None:
        return [product_schedule(product, amount, months, None, method, start_date)]
    return [product_schedule(product, amount, months, apr, method, start_date)
            for apr in (product.apr_min_pct, product.apr_max_pct)]


# --- early repayment and late fees -------------------------------------------------------------------

class EarlyRepaymentQuote(BaseModel):
    repay_on: date
    installments_paid: int
    principal_outstanding: Decimal
    accrued_interest: Decimal
    early_repayment_fee: Decimal
    total_due: Decimal
    interest_and_fees_saved: Decimal
    fee_free_from: date | None = None


def early_repayment_quote(schedule: Schedule, product: ProductTerms, repay_on: date) -> EarlyRepaymentQuote:
    if repay_on <= schedule.start_date:
        raise LoanError("the repayment date must be after the payout date")
    paid = [r for r in schedule.installments if r.due_date <= repay_on]
    if len(paid) == len(schedule.installments):
        raise LoanError("the loan is fully repaid by that date")
    outstanding = paid[-1].balance if paid else schedule.principal
    since = paid[-1].due_date if paid else schedule.start_date
    accrued = money(outstanding * schedule.annual_rate_pct / 100 * (repay_on - since).days / 365)
    free_from = add_months(schedule.start_date, product.early_repayment_free_after_months) \
        if product.early_repayment_free_after_months else None
    charged = product.early_repayment_fee_pct > 0 and (free_from is None or repay_on < free_from)
    fee = money(outstanding * Decimal(str(product.early_repayment_fee_pct)) / 100) if charged else Decimal("0.00")
    remaining = schedule.installments[len(paid):]
    saved = sum((r.interest + r.fee for r in remaining), Decimal("0.00")) - accrued - fee
    return EarlyRepaymentQuote(
        repay_on=repay_on, installments_paid=len(paid), principal_outstanding=outstanding,
        accrued_interest=accrued, early_repayment_fee=fee, total_due=outstanding + accrued + fee,
        interest_and_fees_saved=saved, fee_free_from=free_from if product.early_repayment_fee_pct > 0 else None,
    )


class LateFee(BaseModel):
    overdue_installment: Decimal
    days_late: int
    fee: Decimal
    within_grace: bool
    reported_to_credit_bureau: bool


def late_fee(product: ProductTerms, overdue_installment: Decimal | float | str, days_late: int) -> LateFee:
    """Charged once per missed installment, only after the grace period: a share of the installment,
    between the product's minimum and maximum."""
    amount = money(overdue_installment)
    within = days_late <= product.grace_period_days
    fee = Decimal("0.00")
    if not within and amount > 0:
        fee = money(amount * Decimal(str(product.late_fee_pct)) / 100)
        fee = min(max(fee, money(product.late_fee_min)), money(product.late_fee_max))
    return LateFee(overdue_installment=amount, days_late=days_late, fee=fee, within_grace=within,
                   reported_to_credit_bureau=days_late > product.credit_bureau_report_after_days)


# --- "how much would I pay a month for 5,000 over 12 months?" ------------------------------------------

class LoanQuery(BaseModel):
    amount: Decimal
    months: int
    product: str  # product key
    product_named: bool = False  # the customer named it (else the default product)
    method: Method | None = None


_CUE = re.compile(r"\b(?:per month|a month|each month|every month|monthly|month(?:ly)? (?:payment|installment|repayment)s?|"
                  r"installments?|instalments?|repay(?:ment)?s?|pay back|how much (?:would|will|do|does|is)|"
                  r"what would (?:i|it) (?:pay|cost)|total cost|cost me)\b|每月|月供|还多少", re.I)
_AMOUNT = re.compile(
    r"(?:(?:¥|￥|rmb|cny|yuan)\s*)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*"
    r"(?P<mult>k\b|thousand\b|万|w\b)?\s*(?P<cur>yuan|rmb|cny|元|块)?", re.I)
_TERM = re.compile(r"(?P<n>\d{1,3}|a|one|two|three|half a)\s*[- ]?\s*(?P<unit>months?|mos?\b|years?|yrs?\b|个月|期|年)", re.I)
_WORD_NUM = {"a": 1, "one": 1, "two": 2, "three": 3}
_METHOD = {"equal principal": "equal_principal", "equal installment": "equal_installment",
           "equal instalment": "equal_installment"}


def parse_loan_question(text: str, terms: Terms, default_product: str = "cash") -> LoanQuery | None:
    """An amount, a term and a repayment question in one message, or None (then retrieval answers)."""
    if not _CUE.search(text):
        return None
    # "a month" / "per month" is the question, not the term: skip one-month matches spelt as words
    terms_found = [m for m in _TERM.finditer(text) if not (m.group("n").lower() in ("a", "one")
                                                            and m.group("unit").lower().startswith(("m", "个")))]
    if not terms_found:
        return None
    term = terms_found[-1]
    months = _months(term)
    amount = _amount(text[:term.start()] + " " * (term.end() - term.start()) + text[term.end():])
    if amount is None or months is None:
        return None
    key, named = _product_in(text, terms, default_product)
    method = next((m for phrase, m in _METHOD.items() if phrase in text.lower()), None)
    return LoanQuery(amount=amount, months=months, product=key, product_named=named, method=method)  # type: ignore[arg-type]


def _months(m: re.Match) -> int | None:
    raw, unit = m.group("n").lower(), m.group("unit").lower()
    if raw == "half a":
        return 6 if unit.startswith(("y", "年")) else None
    n = _WORD_NUM.get(raw) or int(raw)
    return n * 12 if unit.startswith(("y", "年")) else n


def _amount(text: str) -> Decimal | None:
    best = None
    for m in _AMOUNT.finditer(text):
        value = Decimal(m.group("num").replace(",", ""))
        mult = (m.group("mult") or "").lower()
        value *= {"k": 1000, "thousand": 1000, "万": 10000, "w": 10000}.get(mult, 1)
        has_currency = bool(m.group("cur")) or bool(re.match(r"(?:¥|￥|rmb|cny|yuan)", m.group(0), re.I))
        if value >= 100 and (best is None or has_currency or mult):
            best = value
    return money(best) if best is not None else None


def _product_in(text: str, terms: Terms, default: str) -> tuple[str, bool]:
    low = text.lower()
    for key, product in terms.products.items():
        words = {key, product.id.lower(), product.name.lower()}
        if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words):
            return key, True
    return terms.product(default).key, False


def load_loan_replies(prompts_dir: Path = PROJECT_ROOT / "prompts") -> dict[str, str]:
    return load_replies(Path(prompts_dir), REPLIES_FILE)


def answer_loan_question(query: LoanQuery, terms: Terms,
                         replies: dict[str, str] | None = None) -> tuple[str, ToolCall]:
    """The reply and the tool call behind it: every figure in the text comes from the calculator.
    `replies` are the templates in prompts/eligibility_replies.yaml (loaded when not given)."""
    replies = replies if replies is not None else load_loan_replies()
    product = terms.product(query.product)
    currency = terms.lender.currency
    args = {"amount": str(query.amount), "months": query.months, "product": product.key,
            **({"method": query.method} if query.method else {})}
    try:
        quotes = product_quotes(product, query.amount, query.months, query.method)
    except LoanError as exc:
        text = replies["loan_not_offered"].format(reason=str(exc), product=product.name, currency=currency)
        return text, ToolCall(name="repayment_schedule", arguments=args, error=str(exc))
    values = {"currency": currency, "amount": _fmt(query.amount), "months": query.months, "product": product.name,
              "method": quotes[0].method.replace("_", " ")}
    if len(quotes) == 1:
        q = quotes[0]
        template = "loan_quote_promotion"
        values |= {"payment": _fmt(q.first_payment), "apr": _pct(q.apr_pct), "total": _fmt(q.total_repaid),
                   "cost": _fmt(q.total_cost)}
    else:
        low, high = quotes
        template = "loan_quote_range" if low.method == "equal_installment" else "loan_quote_range_falling"
        values |= {"pay_low": _fmt(low.first_payment), "pay_high": _fmt(high.first_payment),
                   "last_low": _fmt(low.last_payment), "last_high": _fmt(high.last_payment),
                   "apr_low": _pct(low.apr_pct), "apr_high": _pct(high.apr_pct),
                   "total_low": _fmt(low.total_repaid), "total_high": _fmt(high.total_repaid),
                   "cost_low": _fmt(low.total_cost), "cost_high": _fmt(high.total_cost),
                   "fee": _fmt(low.upfront_fee)}
    text = replies[template].format(**values)
    if quotes[0].upfront_fee > 0 and len(quotes) > 1:
        text += " " + replies["loan_quote_fee"].format(**values)
    if not query.product_named:
        text += " " + replies["loan_quote_default_product"].format(**values)
    result = {"quotes": [q.summary() for q in quotes]}
    return text.strip(), ToolCall(name="repayment_schedule", arguments=args, result=result)


def _fmt(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:.2f}".rstrip("0").rstrip(".")


def make_loan_answerer(terms: Terms, replies: dict[str, str] | None = None, default_product: str = "cash"):
    """The callable the answer skill tries before retrieval: text -> (reply, tool call) or None."""
    replies = replies if replies is not None else load_loan_replies()

    def answer(text: str) -> tuple[str, ToolCall] | None:
        query = parse_loan_question(text, terms, default_product)
        return None if query is None else answer_loan_question(query, terms, replies)

    return answer

