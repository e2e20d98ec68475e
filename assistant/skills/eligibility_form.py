"""The eligibility form without an LLM: read the fields the scoring tool needs from what the
customer types ("I earn 6k a month", "6,000 yuan", "3 years", "renting"), one turn at a time.

Every function is pure: the form's state is a dict the pipeline stores in the conversation."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

from assistant.scoring.applicant import FieldInfo, ScorecardInfo
from assistant.terms import ProductTerms, Terms

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MONEY = re.compile(
    rf"(?P<sign>-\s*)?(?:(?:¥|￥|rmb|cny|yuan)\s*)?(?P<num>{_NUM})\s*(?P<mult>k\b|thousand\b|万|w\b|m\b|million\b)?\s*"
    r"(?P<cur>yuan|rmb|cny|元|块)?", re.I)
_MULT = {"k": 1_000, "thousand": 1_000, "万": 10_000, "w": 10_000, "m": 1_000_000, "million": 1_000_000}
_WORDS = {"zero": 0, "none": 0, "no": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_DURATION = re.compile(rf"(?P<n>{_NUM}|{'|'.join(_WORDS)}|half a)\s*[- ]?\s*(?P<unit>years?|yrs?\b|months?|mos?\b|年|个月|月|期)",
                       re.I)
_YEARLY = re.compile(r"\b(?:a|per|each|every)\s+year\b|\bannual(?:ly)?\b|\byearly\b|\bp\.?a\.?\b|年薪|每年|一年", re.I)
_CANCEL = re.compile(r"^\s*(?:cancel|stop|quit|exit|never\s*mind|forget it|abort)\b|取消|算了", re.I)
_YES = re.compile(r"^\s*(?:y|yes|yeah|yep|sure|ok|okay|i agree|agree|i consent|i do|go ahead|please do|fine|"
                  r"correct|confirm(?:ed)?)\b|同意|好的|可以|是的", re.I)
_NO = re.compile(r"^\s*(?:n|no|nope|don'?t|do not|i don'?t|i do not|not now|disagree|refuse)\b|不同意|不要|不用", re.I)

# Clause cues for fields the customer volunteers without being asked.
CUES = {
    "monthly_income": re.compile(r"\b(?:earn|earning|income|salary|make|paid|wage|take home|net pay)\b|收入|工资|月薪", re.I),
    "savings": re.compile(r"\b(?:savings?|saved|in the bank|deposits?)\b|存款|积蓄", re.I),
    "employment": re.compile(r"\b(?:job|work(?:ed|ing)?|employ(?:ed|er|ment)?|company|unemployed|not working)\b|工作", re.I),
    "age": re.compile(r"\b(?:years? old|i'?m\s+\d{2}\b|i am\s+\d{2}\b|aged?\b)|岁", re.I),
    "amount": re.compile(r"\b(?:borrow|loan|need|want|apply|looking for)\b|借|贷", re.I),
}
PURPOSES = [  # (code, keywords) checked in order: the first match wins
    ("used_car", r"used car|second[- ]hand car|pre-?owned car|二手车"),
    ("new_car", r"new car|\bcar\b|vehicle|\bauto\b|买车|汽车"),
    ("furniture", r"furniture|sofa|\bbed\b|furnish|家具"),
    ("electronics", r"electronic|\btv\b|television|laptop|computer|phone|camera|radio|电脑|手机|电视"),
    ("appliances", r"appliance|fridge|refrigerator|washing machine|washer|dishwasher|oven|空调|冰箱|洗衣机|家电"),
    ("repairs", r"repair|renovat|refurbish|fix(?:ing)? (?:my|the) (?:house|home|flat)|装修|维修"),
    ("retraining", r"retrain|training|course|certificat|培训"),
    ("education", r"educat|tuition|school|college|universit|study|studies|学费|教育|上学"),
    ("business", r"business|\bshop\b|\bstore\b|inventory|stock for|生意|经营"),
    ("other", r"\bother\b|something else|wedding|travel|holiday|vacation|medical|hospital|debt|bills?|其他|其它|旅游|婚礼"),
]
HOUSING = [
    ("free", r"rent[- ]free|for free|with (?:my )?(?:parents|family|relatives)|parents'|company (?:flat|housing|dorm)|"
             r"dormitory|\bdorm\b|don'?t pay rent|no rent|住父母|宿舍"),
    ("rent", r"\brent(?:ing|ed|s)?\b|\btenant|\blease\b|租"),
    ("own", r"\bown\b|\bowner\b|my own|bought|mortgage|homeowner|自己的房|自有|买了房"),
]


# --- reading one value -------------------------------------------------------------------------

def parse_money(text: str, plain: bool = True) -> float | None:
    """The most money-like number in the text ('6k', '6,000 yuan', '¥6000', '2万')."""
    best: tuple[int, float] | None = None
    for m in _MONEY.finditer(text):
        if m.group("sign"):
            return None  # a negative amount is not an answer: ask again
        value = float(m.group("num").replace(",", "")) * _MULT.get((m.group("mult") or "").lower(), 1)
        strength = 2 if m.group("mult") or m.group("cur") or re.match(r"(?:¥|￥|rmb|cny|yuan)", m.group(0), re.I) \
            else 1 if plain else 0
        if strength and (best is None or strength > best[0]):
            best = (strength, value)
    return None if best is None else best[1]


def parse_income(text: str, plain: bool = True) -> float | None:
    value = parse_money(text, plain)
    if value is None:
        return None
    return round(value / 12, 2) if _YEARLY.search(text) else value


def _duration_months(text: str) -> list[tuple[int, re.Match]]:
    out = []
    for m in _DURATION.finditer(text):
        raw, unit = m.group("n").lower(), m.group("unit").lower()
        n = 0.5 if raw == "half a" else _WORDS.get(raw, None)
        n = float(raw.replace(",", "")) if n is None else n
        months = n * 12 if unit.startswith(("y", "年")) else n
        out.append((int(round(months)), m))
    return out


def parse_term(text: str, plain: bool = True) -> int | None:
    found = [months for months, m in _duration_months(text)
             if not (m.group("n").lower() in ("a", "one") and m.group("unit").lower().startswith("m"))]
    if found:
        return found[-1]
    if plain:
        m = re.fullmatch(r"\s*(\d{1,3})\s*\.?\s*", text)
        return int(m.group(1)) if m else None
    return None


def parse_employment(text: str, plain: bool = True) -> str | None:
    low = text.lower()
    if re.search(r"unemployed|not working|no job|jobless|between jobs|out of work|don'?t work|do not work|失业|没工作", low):
        return "unemployed"
    if re.search(r"just started|new job|this month|last month|few weeks|刚工作", low):
        return "under_1_year"
    durations = _duration_months(text)
    if durations:
        return employment_band(durations[-1][0] / 12)
    m = re.search(r"since\s+(19\d\d|20\d\d)", low)
    if m:
        return employment_band(date.today().year - int(m.group(1)))
    if plain:
        m = re.fullmatch(r"\s*(\d{1,2}(?:\.\d+)?)\s*", text)
        if m:
            return employment_band(float(m.group(1)))
    return None


def employment_band(years: float) -> str:
    if years < 1:
        return "under_1_year"
    if years < 4:
        return "1_to_4_years"
    return "4_to_7_years" if years < 7 else "7_years_plus"


def parse_choice(text: str, table: list[tuple[str, str]]) -> str | None:
    for code, pattern in table:
        if re.search(pattern, text, re.I):
            return code
    return None


def parse_age(text: str, plain: bool = True) -> int | None:
    m = re.search(r"born in\s+(19\d\d|20\d\d)", text, re.I)
    if m:
        return date.today().year - int(m.group(1))
    m = re.search(r"(\d{1,3})\s*(?:years? old|yrs? old|y/?o\b|岁)|(?:i'?m|i am|aged?)\s+(\d{1,3})\b", text, re.I)
    if m:
        return int(m.group(1) or m.group(2))
    if plain:
        m = re.fullmatch(r"\s*(\d{1,3})\s*", text)
        return int(m.group(1)) if m else None
    return None


def parse_integer(text: str, plain: bool = True) -> int | None:
    m = re.search(r"\b(\d{1,3})\b", text)
    if m and plain:
        return int(m.group(1))
    word = next((w for w in re.findall(r"[a-z]+", text.lower()) if w in _WORDS), None)
    return _WORDS[word] if word is not None and plain else None


def yes_no(text: str) -> bool | None:
    if _NO.search(text):
        return False
    return True if _YES.search(text) else None


def is_cancel(text: str) -> bool:
    return bool(_CANCEL.search(text))


def product_in(text: str, terms: Terms) -> str | None:
    low = text.lower()
    for key, p in terms.products.items():
        if any(re.search(rf"\b{re.escape(w)}\b", low) for w in (key, p.id.lower(), p.name.lower())):
            return key
    return None


# --- the form ----------------------------------------------------------------------------------

Parser = Callable[[str, bool], Any]
PARSERS: dict[str, Parser] = {
    "amount": parse_money,
    "savings": lambda t, plain: 0.0 if re.search(r"\b(?:none|nothing|no savings|zero|nil)\b|没有", t, re.I)
    else parse_money(t, plain),
    "monthly_income": parse_income,
    "term_months": parse_term,
    "employment": parse_employment,
    "purpose": lambda t, plain: parse_choice(t, PURPOSES),
    "housing": lambda t, plain: parse_choice(t, HOUSING),
    "age": parse_age,
}


def parser_for(f: FieldInfo) -> Parser:
    """A field's parser; fields of other scorecards get a generic one from their kind."""
    if f.name in PARSERS:
        return PARSERS[f.name]
    if f.kind == "number":
        return parse_money
    if f.kind == "integer":
        return parse_integer
    choices = [(c, rf"\b{re.escape(c.replace('_', ' '))}\b|\b{re.escape(c)}\b") for c in (f.choices or [])]
    return lambda t, plain: parse_choice(t, choices)


def check_value(f: FieldInfo, value: Any, product: ProductTerms) -> str | None:
    """None if the value can be used, else the hint key to re-ask with."""
    if f.kind in ("number", "integer"):
        if (f.min is not None and value < f.min) or (f.max is not None and value > f.max):
            return f"hint_{f.name}"
        if f.name == "amount" and not product.limit_min <= value <= product.limit_max:
            return "hint_amount_range"
        if f.name == "term_months" and value not in product.term_months:
            return "hint_term_months"
    if f.kind == "choice" and value not in (f.choices or []):
        return f"hint_{f.name}"
    return None


def asked_fields(info: ScorecardInfo) -> list[FieldInfo]:
    """What the form asks for, in order: the chat fields then the policy fields, consent last."""
    return [f for f in info.asked if f.name != "consent"]


def read_answers(text: str, fields: list[FieldInfo], asking: str | None,
                 product: ProductTerms) -> tuple[dict[str, Any], str | None]:
    """Values found in one message, and the hint key when the field being asked was unreadable.
    The asked field may be a bare value ("12"); others need a cue ("I earn 6k", "over 12 months")."""
    by_name = {f.name: f for f in fields}
    found: dict[str, Any] = {}
    rest: list[str] = []  # clauses no other field claimed: where a bare answer is read from
    for clause in _clauses(text):
        values = read_clause(clause, by_name)
        if not values or (asking in values and len(values) == 1 and not _cued(clause, asking)):
            rest.append(clause)
        for name, value in values.items():
            if check_value(by_name[name], value, product) is None:
                found.setdefault(name, value)
    for name, table in (("purpose", PURPOSES), ("housing", HOUSING)):
        if name in by_name and name not in found:
            value = parse_choice(text, table)
            if value is not None:
                found[name] = value
    hint = None
    if asking in by_name and asking not in found:
        f = by_name[asking]
        value = parser_for(f)(" ".join(rest), True) if rest else None
        hint = f"hint_{f.name}" if value is None else check_value(f, value, product)
        if hint is None:
            found[f.name] = value
    return found, hint


def _clauses(text: str) -> list[str]:
    # commas and points inside numbers (6,000 / 6.5k) do not end a clause
    return [c for c in re.split(r"(?<!\d)[,.]|[,.](?!\d)|[;!?，。；！？]|\band\b|\bbut\b", text) if c.strip()]


def _cued(clause: str, name: str) -> bool:
    rx = CUES.get(name)
    return bool(rx and rx.search(clause)) or (name == "term_months" and bool(_TERM_CUE.search(clause)))


_TERM_CUE = re.compile(rf"\b(?:over|for|in|across|within|repay(?:ing)? over|term of)\s+(?:{_DURATION.pattern})", re.I)


def read_clause(clause: str, fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """Fields one clause states with a cue: 'I earn 6k a month', 'borrow 20,000 over 12 months'."""
    cue = next((name for name, rx in CUES.items() if rx.search(clause) and name in fields), None)
    if cue is None and "employment" in fields and re.search(r"unemployed|not working|no job", clause, re.I):
        cue = "employment"
    if cue == "employment":
        value = parse_employment(clause, False)
        return {"employment": value} if value else {}
    if cue in ("monthly_income", "savings", "age"):
        value = parser_for(fields[cue])(clause, True)
        return {cue: value} if value is not None else {}
    found: dict[str, Any] = {}
    term = _TERM_CUE.search(clause)
    if "term_months" in fields and term:
        months = parse_term(term.group(0), False)
        if months:
            found["term_months"] = months
    if "amount" in fields and cue == "amount":
        value = parse_money(_DURATION.sub(" ", clause), plain=True)
        if value is not None and value >= 100:
            found["amount"] = value
    return found


def next_missing(fields: list[FieldInfo], answers: dict[str, Any]) -> FieldInfo | None:
    return next((f for f in fields if f.required and f.name not in answers), None)


def display(f: FieldInfo, value: Any, currency: str) -> str:
    if f.kind == "number" and f.unit == currency:
        return f"{currency} {value:,.0f}"
    if f.kind == "choice":
        return str(value).replace("_", " ")
    return f"{value:g} {f.unit}".strip() if isinstance(value, (int, float)) else str(value)
