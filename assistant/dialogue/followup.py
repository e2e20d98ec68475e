"""Follow-ups resolved before routing: "what about flex", "the mall one", "and 6?", "and for 12
months?" are rewritten against the topic (the last stand-alone question, its product, term and
amount), so the router and the skill see a question that stands alone. A product, term or
amount named in any turn updates the topic."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from assistant.dialogue.interrupts import _any, normalise
from assistant.dialogue.state import Topic
from assistant.knowledge.terms import Terms

_TERM = re.compile(r"\b(\d{1,3})\s*-?\s*(months?|mths?|mos?|m)\b|\b(\d{1,2})\s*-?\s*(years?|yrs?|y)\b")
_AMOUNT = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d{3,})(?:\.\d+)?(?!\s*(?:months?|mths?|%|yrs?|years?))\b|\b(\d+(?:\.\d+)?)\s*k\b")
_BARE_NUMBER = re.compile(r"^\W*(?:and|what about|how about|or|ok|so)?\W*(?:for|over|with)?\W*(\d+(?:[.,]\d+)*)\s*(k)?\W*$")


class FollowupRules(BaseModel):
    cues: list[str] = Field(default_factory=list)  # a message that leans on the topic ("what about", "the X one")
    max_words: int = 8  # longer messages stand alone
    max_term_months: int = 60  # a bare number up to this is a term, above it an amount


class Mention(BaseModel):
    product: str | None = None
    term_months: int | None = None
    amount: float | None = None


def mentioned(text: str, terms: Terms) -> Mention:
    """The product, term and amount a message names (a bare "and 6?" names neither: see rewrite)."""
    norm = normalise(text)
    products = terms.products_mentioned(norm)
    term = None
    m = _TERM.search(norm)
    if m:
        term = int(m.group(1)) if m.group(1) else int(m.group(3)) * 12
    amount = None
    without_terms = _TERM.sub(" ", norm)
    a = _AMOUNT.search(without_terms)
    if a:
        amount = float(a.group(1).replace(",", "")) if a.group(1) else float(a.group(2)) * 1000
    return Mention(product=products[0] if products else None, term_months=term, amount=amount)


def update_topic(topic: Topic, mention: Mention) -> Topic:
    changes = {k: v for k, v in mention.model_dump().items() if v is not None}
    return topic.model_copy(update=changes)


def is_followup(text: str, rules: FollowupRules) -> bool:
    norm = normalise(text)
    if len(norm.split()) > rules.max_words:
        return False
    return bool(_BARE_NUMBER.match(norm)) or _any(rules.cues, norm)


def rewrite(text: str, topic: Topic, terms: Terms, rules: FollowupRules) -> str | None:
    """The follow-up as a stand-alone question, or None when it is not one (or nothing to lean on)."""
    if not topic.question or not is_followup(text, rules):
        return None
    norm = normalise(text)
    said = mentioned(text, terms)
    bare = _BARE_NUMBER.match(norm)
    if bare and said.term_months is None and said.amount is None:
        value = float(bare.group(1).replace(",", "")) * (1000 if bare.group(2) else 1)
        if value <= rules.max_term_months:
            said.term_months = int(value)
        else:
            said.amount = value
    question = topic.question
    changed = False
    if said.product and said.product != topic.product:
        question, changed = _swap_product(question, topic.product, said.product, terms), True
    if said.term_months is not None and said.term_months != topic.term_months:
        question, changed = _swap_term(question, said.term_months), True
    if said.amount is not None and said.amount != topic.amount:
        question, changed = _swap_amount(question, said.amount), True
    return question if changed else None


def _swap_product(question: str, old: str | None, new: str, terms: Terms) -> str:
    name = terms.products[new].name
    if old and old in terms.products:
        product = terms.products[old]
        for alias in sorted([product.name, *product.aliases], key=len, reverse=True):
            pattern = re.compile(rf"\b{re.escape(alias)}\b", re.I)
            if pattern.search(question):
                return pattern.sub(name, question, count=1)
    return f"{question.rstrip(' ?')} for {name}?"


def _swap_term(question: str, months: int) -> str:
    if _TERM.search(question):
        return _TERM.sub(f"{months} months", question, count=1)
    return f"{question.rstrip(' ?')} over {months} months?"


def _swap_amount(question: str, amount: float) -> str:
    shown = f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"
    masked = _TERM.sub(lambda m: "\0" * len(m.group(0)), question)
    found = _AMOUNT.search(masked)
    if found:
        return question[: found.start()] + shown + question[found.end():]
    return f"{question.rstrip(' ?')} for {shown}?"
