"""The eligibility form without an LLM: read the fields the scoring tool needs from what the
customer types ("I earn 6k a month", "6,000 yuan", "3 years", "renting"), one turn at a time.

A message may give several fields at once ("30000 yuan over 24 months for furniture, I earn 12k a
month, I'm 41"): it is split into clauses, each clause's cue words say which field its number is
("earn" -> income, "savings" -> savings, "I'm 41" -> age, "over 24 months" -> term), and only the
clauses no cue claimed are read as a bare answer to the question just asked. A number no cue
explains and that could be two things is not guessed: the field is asked again.

Every function is pure: the form's state is an `EligibilityForm`, dumped to a dict in
conversation.state["eligibility"] (the conversation store keeps JSON)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from assistant.scoring.applicant import FieldInfo, ScorecardInfo
from assistant.knowledge.terms import ProductTerms, Terms

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
_CANCEL = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|oh|hmm+|actually|no|please|just|you know what|on second thought)\W+)*"
    r"(?:cancel|stop|quit|exit|never\s*mind|nevermind|forget (?:it|about it)|abort)\b|"
    r"\b(?:do\s*n[o']?t|dont|no longer) (?:really )?(?:want|need) (?:a |the |any |to |this )?"
    r"(?:loan|borrow|apply|credit|check|money)\w*(?!\s+(?:that|so|this|too|as)\s+(?:big|much|large|long|high|many))|"
    r"\bchanged my mind\b|\bnot interested\b|取消|算了", re.I)
_YES = re.compile(r"^\s*(?:y|yes|yeah|yep|sure|ok|okay|i agree|agree|i consent|i do|go ahead|please do|fine|"
                  r"correct|confirm(?:ed)?)\b|同意|好的|可以|是的", re.I)
_NO = re.compile(r"^\s*(?:n|no|nope|don'?t|do not|i don'?t|i do not|not now|disagree|refuse)\b|不同意|不要|不用", re.I)

# Clause cues for fields the customer volunteers without being asked, checked in this order; a
# cue whose field's value cannot be read from the clause gives way to the next one.
_PAYMENT = r"\b(?:pay|paying|repay\w*|instal+ments?|afford|rent|mortgage|spend|cost|bills?|owe|loan|borrow|save)\b"
_PER_PERIOD = (r"(?<!for )(?<!over )(?<!in )(?<!within )\b(?:a|per|each|every)\s+(?:month|year)\b|\bmonthly\b|"
               r"/\s*(?:month|mo|year|yr)\b|每月|每个月|一个月")  # "a month", not "for a month" (a term)
CUES = {
    "monthly_income": re.compile(r"\b(?:earn|earning|earns|income|salary|make|paid|wages?|take home|net pay|allowance|"
                                 r"pension|benefits?|stipend)\b|收入|工资|月薪|生活费", re.I),
    "savings": re.compile(r"\b(?:savings?|saved|in the bank|deposits?)\b|存款|积蓄", re.I),
    "employment": re.compile(r"\b(?:job|work(?:ed|ing)?|employ(?:ed|er|ment)?|company|unemployed|not working)\b|工作", re.I),
    "age": re.compile(r"\b(?:years? old|yrs? old|i'?m\s+\d{2}\b|i am\s+\d{2}\b|aged?\b)|\d\s*y/?o\b|岁", re.I),
    "monthly_debts": re.compile(r"\b(?:other|existing|current|another|my)\s+(?:loans?|debts?|credit cards?|repayments)|"
                                r"\bdebts?\b|\bowe\b|\bcredit cards?\b|\bcar loan\b|\bno (?:other )?loans\b", re.I),
    "monthly_revenue": re.compile(r"\b(?:revenue|turnover|takings|sales)\b|"
                                  r"\b(?:shop|store|business|stall|restaurant|cafe)\s+(?:makes|brings in|earns|does|"
                                  r"takes|turns over)|\bfrom (?:my|the|our) (?:shop|store|business|stall)\b|营业额", re.I),
    "months_trading": re.compile(r"\b(?:trading|been open|opened|in business|been running|running (?:it|the|my))\b", re.I),
    "amount": re.compile(r"\b(?:borrow|loan|need|want|apply|looking for)\b|借|贷", re.I),
}
# Money per month or per year, with no word of paying it out: what someone gets ("1,000 a month
# from my parents"), so income, never the amount of the loan.
_INCOME_BY_PERIOD = re.compile(_PER_PERIOD, re.I)
_PAYMENT_WORD = re.compile(_PAYMENT, re.I)
# Not working: read as the lowest employment band (no months in a job).
_NOT_WORKING = re.compile(
    r"unemployed|not (?:currently |really )?working|\bno (?:job|work)\b|jobless|between jobs|out of work|"
    r"(?:don'?t|do not|doesn'?t|does not|haven'?t|have not|didn'?t) (?:have |got |currently have )?"
    r"(?:a |any )?(?:job|work)\b|"
    r"looking for (?:a |any )?(?:job|work)|lost my job|失业|没工作|没有工作|无业", re.I)
_NO_JOB_STATUS = re.compile(r"\bstudent\b|\bstudying\b|\bat (?:school|college|uni|university)\b|\bretired\b|"
                            r"\bhome-?maker\b|\bhousewife\b|stay[- ]at[- ]home|学生|退休", re.I)
# Words that say a clause is about the loan's purpose or the customer's home.
_PURPOSE_CUE = re.compile(r"\bfor\b|\bbuy|\bpurchas|\bpay(?:ing)? for\b|\bfinanc|\bfund|\btowards\b|\bspend|"
                          r"\bget (?:a|an|some|my|new)\b|用于|买|用来", re.I)
_HOUSING_CUE = re.compile(r"\b(?:home|house|flat|apartment|place|live|living|rent\w*|tenant|lease|mortgage|landlord|"
                          r"dorm\w*|homeowner|parents'?)\b|住|房|宿舍", re.I)
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


STATE_KEY = "eligibility"


class EligibilityForm(BaseModel):
    """The form's state in one conversation. `active` is what the router and the dialogue
    manager read; `stopped` says why a form ended early (cancelled, age_rule, trading_rule,
    unreadable); `last` keeps the last decision once a check has run."""

    model_config = ConfigDict(extra="ignore")  # old dict states carry keys this model dropped

    active: bool = False
    product: str | None = None
    stage: Literal["collect", "consent", "done", "closed"] = "collect"
    asking: str | None = None
    answers: dict[str, Any] = Field(default_factory=dict)
    retries: int = 0
    mode: Literal["form", "llm"] = "form"
    last_filled: list[str] = Field(default_factory=list)  # what the last message gave: "sorry I meant 25" corrects it
    stopped: str | None = None
    last: dict[str, Any] | None = None


def load_form(conversation: Any) -> EligibilityForm:
    """The form of this conversation (an empty, inactive one when none, or when the stored dict
    cannot be read: a broken state must not break the conversation)."""
    raw = conversation.state.get(STATE_KEY) or {}
    try:
        return EligibilityForm.model_validate(raw)
    except ValueError:
        return EligibilityForm()


def save_form(conversation: Any, form: EligibilityForm) -> None:
    conversation.state[STATE_KEY] = form.model_dump(mode="json", exclude_none=True)


# --- reading one value -------------------------------------------------------------------------

def money_candidates(text: str) -> list[tuple[int, float]] | None:
    """Each money-like number in the text with how sure it is money: 2 with a currency or a
    multiplier ('6k', '6,000 yuan', '¥6000', '2万'), 1 bare. None if one is negative."""
    out: list[tuple[int, float]] = []
    for m in _MONEY.finditer(text):
        if m.group("sign"):
            return None  # a negative amount is not an answer: ask again
        value = float(m.group("num").replace(",", "")) * _MULT.get((m.group("mult") or "").lower(), 1)
        marked = m.group("mult") or m.group("cur") or re.match(r"(?:¥|￥|rmb|cny|yuan)", m.group(0), re.I)
        out.append((2 if marked else 1, value))
    return out


def parse_money(text: str, plain: bool = True) -> float | None:
    """The most money-like number in the text ('6k', '6,000 yuan', '¥6000', '2万')."""
    best: tuple[int, float] | None = None
    for strength, value in money_candidates(text) or []:
        strength = strength if strength == 2 or plain else 0
        if strength and (best is None or strength > best[0]):
            best = (strength, value)
    return None if best is None else best[1]


def ambiguous_money(text: str) -> bool:
    """Two different figures, equally money-like ('20000 or 30000'): which one is meant is a guess."""
    found = money_candidates(text) or []
    top = max((strength for strength, _ in found), default=0)
    return len({value for strength, value in found if strength == top}) > 1


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


def not_working(text: str) -> bool:
    """'unemployed', 'not working', 'I don't have a job', 'I'm a student', 'retired'."""
    return bool(_NOT_WORKING.search(text) or _NO_JOB_STATUS.search(text))


def parse_employment(text: str, plain: bool = True) -> str | None:
    low = text.lower()
    if _NOT_WORKING.search(low):
        return "unemployed"
    if re.search(r"just started|new job|this month|last month|few weeks|刚工作", low):
        return "under_1_year"
    durations = _duration_months(text)
    if durations:
        return employment_band(durations[-1][0] / 12)
    m = re.search(r"since\s+(19\d\d|20\d\d)", low)
    if m:
        return employment_band(date.today().year - int(m.group(1)))
    if _NO_JOB_STATUS.search(low):  # a student or retired, with no time in a job given
        return "unemployed"
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
    m = re.search(r"(\d{1,3})\s*(?:years? old|yrs? old|y/?o\b|岁)|(?:i'?m|i am|aged?|age\s*(?:is|:|to|should be))\s+(\d{1,3})\b"
                  r"(?!\s*(?:months?|mos?)\b)", text, re.I)
    if m:
        return int(m.group(1) or m.group(2))
    if plain:  # the asked question: "35", "35 years"
        m = re.fullmatch(r"\s*(\d{1,3})\s*(?:years?|yrs?)?\s*\.?\s*", text, re.I)
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


def product_in(text: str, terms: Terms, strict: bool = False) -> str | None:
    """The product a message names (its name, id or one of terms.yaml's aliases). `strict` (a
    message inside a form) leaves out the bare key: "5000 cash in savings" is no switch."""
    low = text.lower()
    for key, p in terms.products.items():
        words = [p.id.lower(), p.name.lower(), *(a.lower() for a in p.aliases), *([] if strict else [key])]
        if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words):
            return key
    return None


def product_key(value: Any, terms: Terms) -> str | None:
    """A product key from a key or an id ('business' or 'meadow-business'), else None."""
    for key, p in terms.products.items():
        if value in (key, p.id):
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
    "monthly_debts": lambda t, plain: 0.0 if _NO_DEBTS.search(t) else parse_money(_NUM_DURATION.sub(" ", t), plain),
    "monthly_revenue": parse_income,
    "months_trading": lambda t, plain: parse_months(t),
}
_NO_DEBTS = re.compile(r"\b(?:no|none|zero|nothing|don'?t have any)\b.{0,20}\b(?:loans?|debts?)\b|"
                       r"\bno (?:other )?(?:loans?|debts?)\b|^\s*(?:none|nothing|no|0)\s*$", re.I)


def parse_months(text: str) -> int | None:
    """A time in months: '2 years' -> 24, '8 months' -> 8. A bare number (months or years?) is not read."""
    found = _duration_months(text)
    return sum(months for months, _ in found) if found else None


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


KNOCK_OUT_FIRST = ("amount", "age")  # the amount opens the form; the age rule ends it at once, if it must


def asked_fields(info: ScorecardInfo) -> list[FieldInfo]:
    """What the form asks for, in order: the amount, then the age (a knock-out rule: nobody under
    18 should answer six questions to hear it), then the other chat and policy fields; consent
    last."""
    fields = [f for f in info.asked if f.name != "consent"]
    first = [f for name in KNOCK_OUT_FIRST for f in fields if f.name == name]
    return first + [f for f in fields if f not in first]


@dataclass
class Reading:
    """What one message gave: the usable values, and the first value that could not be used."""

    asking: str | None = None  # the field the form had asked for
    found: dict[str, Any] = dc_field(default_factory=dict)
    problem: str | None = None  # the field whose answer was unreadable or out of range
    hint: str | None = None  # the reply key that says what a usable answer looks like
    unreadable: bool = False  # True: nothing usable at all; False: a value that cannot be used
    corrected: list[str] = dc_field(default_factory=list)  # fields a correction changed ("sorry, I meant 25")

    @property
    def others(self) -> list[str]:
        """Fields the message gave besides the one asked."""
        return [name for name in self.found if name != self.asking]


def read_answers(text: str, fields: list[FieldInfo], asking: str | None, product: ProductTerms,
                 answers: dict[str, Any] | None = None, previous: list[str] | None = None) -> Reading:
    """Every field one message gives, whichever was asked. A field's own cue words claim a clause
    ("I earn 12k a month", "50,000 yuan savings", "I'm 41", "over 24 months"); the clauses no
    cue claimed are read as a bare answer to the question asked ("12", "6,000 yuan"). A clause
    that corrects ("sorry its 6000 not 9000", "I meant 25") replaces a value given before: the
    one it names, else the one given last (`previous`: the fields the last message gave)."""
    by_name = {f.name: f for f in fields}
    reading = Reading(asking=asking)
    bad: dict[str, str] = {}  # field -> hint, for values given but out of range
    rest: list[str] = []  # clauses no other field claimed: where a bare answer is read from
    for clause in _joined(_clauses(text)):
        fix = _correction(clause, by_name, asking, {**(answers or {}), **reading.found},
                          [*(previous or []), *reading.found], product, list(reading.found))
        if fix is not None:
            name, value, had = fix
            hint = check_value(by_name[name], value, product)
            if hint is None:
                reading.found[name] = value
                if had:
                    reading.corrected.append(name)
            else:
                bad[name] = hint
            continue
        values, left = read_clause(clause, by_name, asking)
        if asking in values and len(values) == 1 and not _cued(clause, asking):
            left = clause  # the asked field in passing: read it as the bare answer below
            values = {}
        if left.strip():
            rest.append(left)
        for name, value in values.items():
            hint = check_value(by_name[name], value, product)
            if hint is None:
                reading.found.setdefault(name, value)
            else:
                bad.setdefault(name, hint)
    if asking in by_name and asking not in reading.found:
        f = by_name[asking]
        bare = " ".join(rest)
        if f.kind == "number" and f.name != "monthly_income":
            bare = _NUM_DURATION.sub(" ", bare)  # "24 months" is no amount of money
        value = None if not bare.strip() or (f.kind == "number" and ambiguous_money(bare)) \
            else parser_for(f)(bare, True)
        if value is not None:
            hint = check_value(f, value, product)
            if hint is None:
                reading.found[f.name] = value
            else:
                bad.setdefault(f.name, hint)
        elif f.name not in bad and (not reading.found or re.search(r"\d", bare)):
            # nothing usable, or a figure no field could take: ask again with an example (the
            # other fields the message gave are kept)
            reading.problem, reading.hint, reading.unreadable = f.name, f"hint_{f.name}", True
    unusable = [name for name in bad if name not in reading.found]
    if reading.problem is None and unusable:
        name = asking if asking in unusable else unusable[0]
        reading.problem, reading.hint = name, bad[name]
    return reading


def _clauses(text: str) -> list[str]:
    # commas and points inside numbers (6,000 / 6.5k) do not end a clause
    parts = re.split(r"(?<!\d)[,.]|[,.](?!\d)|[;!?，。；！？\n]|\band\b|\bbut\b|\balso\b|\bplus\b", text)
    out: list[str] = []
    lead = ""  # "sorry," or "actually," on its own belongs to the clause after it
    for part in (c for c in parts if c.strip()):
        if _FILLER_ONLY.fullmatch(part):
            lead += part + " "
            continue
        out.append(lead + part)
        lead = ""
    return out + ([lead] if lead.strip() else [])


_CARRIED = ("monthly_debts", "monthly_revenue", "monthly_income", "savings")


def _joined(clauses: list[str]) -> list[str]:
    """'I have a car loan, 2000 a month': a clause whose cue has no figure takes the next clause's
    figure when that one has no cue of its own."""
    out: list[str] = []
    for clause in clauses:
        if out and re.search(r"\d", clause) and not re.search(r"\d", out[-1]) \
                and any(CUES[n].search(out[-1]) for n in _CARRIED) and not any(CUES[n].search(clause) for n in CUES):
            out[-1] = out[-1] + ", " + clause
        else:
            out.append(clause)
    return out


_CORRECTION = re.compile(r"\b(?:sorry|actually|i meant|i mean|meant to say|correction|oops|my (?:mistake|bad)|typo|"
                         r"wait|scratch that|change|update|correct)\b|\b(?:not|instead of|rather than)\s+[¥￥]?\d", re.I)
_FILLER = (r"wait|sorry|actually|oops|correction|my mistake|my bad|typo|scratch that|i meant|i mean|meant to say|"
           r"meant|no|nope|it'?s|it is|its|make (?:it|that)|should be|that|is|was|i said|to say|ah|oh|um+|uh+")
_FILLER_ONLY = re.compile(rf"\s*(?:(?:{_FILLER})\W*)+", re.I)
_FILLER_WORDS = re.compile(rf"\b(?:{_FILLER})\b|[,:!]", re.I)
_NOT_FIGURE = re.compile(rf"\b(?:not|instead of|rather than)\s+(?:[¥￥]\s*)?(?:{_NUM})\s*(?:k\b|thousand\b)?", re.I)
_MONTHS_UNIT = re.compile(rf"(?:{_NUM})\s*[- ]?\s*(?:months?|mos?\b|个月|期)", re.I)


def _correction(clause: str, fields: dict[str, FieldInfo], asking: str | None, known: dict[str, Any],
                recent: list[str], product: ProductTerms, fresh: list[str] = ()) -> tuple[str, Any, bool] | None:
    """(field, new value, whether it had a value) for a clause that corrects a figure, else None."""
    if not _CORRECTION.search(clause) or not re.search(r"\d", clause):
        return None
    wrong = _NOT_FIGURE.search(clause)
    text = _NOT_FIGURE.sub(" ", clause)
    cued = _cued_number(text, fields, skip=set())
    if cued:
        name, value = next(iter(cued.items()))
        return name, value, name in known
    bare = _FILLER_WORDS.sub(" ", text).strip()
    if "term_months" in fields and _MONTHS_UNIT.search(bare) and asking != "employment":
        months = parse_term(bare, False)  # "actually 12 months": a term, never an age
        return ("term_months", months, "term_months" in known) if months else None
    target = None
    if wrong is not None:  # "6000 not 9000": the field that holds 9000
        old = parse_money(wrong.group(0))
        target = next((n for n, v in known.items() if isinstance(v, (int, float)) and v == old and n in fields), None)
    last = next((n for n in reversed(recent) if n in fields), None)
    # "I meant 25" changes the last answer; "sorry, 35" may just answer the question asked
    strong = _STRONG_CORRECTION.search(clause) or (recent and recent[-1] in fresh)  # "I earn 6000, sorry 6500"
    order = [target] if target else [last, asking] if strong else [asking, last]
    for name in (n for n in order if n in fields):
        value = parser_for(fields[name])(bare, True)
        if value is not None and check_value(fields[name], value, product) is None:
            return name, value, name in known
    return None


_STRONG_CORRECTION = re.compile(r"\b(?:meant|i mean|actually|correction|oops|my (?:mistake|bad)|typo|scratch that|"
                                r"change|update|correct)\b", re.I)


def _cued(clause: str, name: str) -> bool:
    if name == "monthly_income" and _income_by_period(clause):
        return True
    if name == "employment" and not_working(clause):
        return True
    rx = CUES.get(name)
    return bool(rx and rx.search(clause)) or (name == "term_months" and bool(_TERM_CUE.search(clause)))


_TERM_CUE = re.compile(rf"\b(?:over|for|in|across|within|repay(?:ing)? over|term of)\s+(?:{_DURATION.pattern})", re.I)
_BARE_DURATION = re.compile(rf"\s*(?:(?:about|around|maybe|for|over)\s+)?(?:{_DURATION.pattern})\s*", re.I)
_NUM_DURATION = re.compile(rf"(?:{_NUM})\s*[- ]?\s*(?:years?|yrs?\b|months?|mos?\b|年|个月|月|期)", re.I)
_JUST_WORDS = re.compile(r"\s*(?:[^\W\d]+\s*){1,3}")  # "furniture", "a used car": a purpose said on its own
DURATION_FIELDS = ("term_months", "employment", "age", "months_trading")  # asked fields a bare "2 years" may answer


def _income_by_period(clause: str) -> bool:
    """'1,000 yuan a month from my parents', '72k a year': money someone gets, not a payment."""
    return bool(_INCOME_BY_PERIOD.search(clause)) and not _PAYMENT_WORD.search(clause) \
        and parse_money(clause, True) is not None


def read_clause(clause: str, fields: dict[str, FieldInfo], asking: str | None = None) -> tuple[dict[str, Any], str]:
    """Fields one clause states with a cue ('I earn 6k a month', 'borrow 20,000 over 12 months',
    '30000 yuan for furniture', 'I own my home'), and what is left of it for a bare answer."""
    found: dict[str, Any] = {}
    about_home = bool(_HOUSING_CUE.search(clause))
    if "housing" in fields and about_home:
        value = parse_choice(clause, HOUSING)
        if value is not None:
            found["housing"] = value
    if "employment" in fields and not_working(clause):
        found["employment"] = "unemployed"
    number = _cued_number(clause, fields, skip=set(found))
    if number is not None:  # the clause's number belongs to its cue: nothing left to read
        return {**found, **number}, ""
    # what a bare answer is read from; a clause about the home answers no other question
    left = clause if not found and (not about_home or asking == "housing") else ""
    term = None if about_home else _TERM_CUE.search(clause)
    if "term_months" in fields and term:
        months = parse_term(term.group(0), False)
        if months:
            found["term_months"] = months
            left = clause[:term.start()] + " " + clause[term.end():]
    elif "term_months" in fields and _BARE_DURATION.fullmatch(clause) and (
            asking not in DURATION_FIELDS or asking == "age" and _MONTHS_UNIT.search(clause)):
        # "24 months" on its own while asking something else; "12 month" is a term, never an age
        months = parse_term(clause, False)
        if months:
            return {**found, "term_months": months}, ""
    purpose = parse_choice(clause, PURPOSES) if "purpose" in fields and "employment" not in found and (
        _PURPOSE_CUE.search(clause) or _JUST_WORDS.fullmatch(clause)) else None
    if purpose is not None:
        found["purpose"] = purpose
    if "amount" in fields and (CUES["amount"].search(clause) or "term_months" in found or purpose):
        # "borrow 20,000", or money said with the loan's term or purpose: "30000 yuan over 24 months"
        value = parse_money(_DURATION.sub(" ", left or clause), plain=True)
        if value is not None and value >= 100:
            found["amount"] = value
            left = ""
    return found, left


def _cued_number(clause: str, fields: dict[str, FieldInfo], skip: set[str]) -> dict[str, Any] | None:
    """The one field a clause's cue words give a number for ('I earn 12k a month', '50,000 yuan
    savings', 'employed 8 years', "I'm 41"), checked in that order; a cue whose value cannot be
    read gives way to the next."""
    for name in ("monthly_debts", "monthly_revenue"):  # before income: a shop's takings are not the owner's pay
        if name in fields and name not in skip and CUES[name].search(clause):
            value = parser_for(fields[name])(clause, True)
            if value is not None:
                return {name: value}
    if "months_trading" in fields and CUES["months_trading"].search(clause) and parse_months(clause) is not None:
        return {"months_trading": parse_months(clause)}
    if "monthly_income" in fields and (CUES["monthly_income"].search(clause) or _income_by_period(clause)):
        value = parse_income(clause, True)
        if value is not None:
            return {"monthly_income": value}
    for name in ("savings", "employment", "age"):
        if name in fields and name not in skip and CUES[name].search(clause):
            value = parser_for(fields[name])(clause, name != "employment")
            if value is not None:
                return {name: value}
    return None


def outside_age_rule(answers: dict[str, Any], product: ProductTerms) -> bool:
    """The product's age rule (terms.yaml: min_age to max_age) fails for the age given."""
    age = answers.get("age")
    return age is not None and not product.min_age <= age <= product.max_age


def labels(fields: list[FieldInfo], names: list[str]) -> str:
    """'your age', 'your age and your savings', 'a, b and c', in the form's order."""
    shown = [f.label for f in fields if f.name in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1] if shown else ""


def next_missing(fields: list[FieldInfo], answers: dict[str, Any]) -> FieldInfo | None:
    return next((f for f in fields if f.required and f.name not in answers), None)


def display(f: FieldInfo, value: Any, currency: str) -> str:
    if f.kind == "number" and f.unit == currency:
        return f"{currency} {value:,.0f}"
    if f.kind == "choice":
        return str(value).replace("_", " ")
    return f"{value:g} {f.unit}".strip() if isinstance(value, (int, float)) else str(value)


# --- fields the scorecard does not read (prompts/eligibility_fields.yaml) ------------------------

class ExtraField(BaseModel):
    kind: Literal["number", "integer"]
    label: str
    unit: str = ""
    products: list[str] | Literal["all"] = "all"
    asked: bool = False
    min_from: str | None = None  # a product term the value must reach: a knock-out rule


class FormSpec(BaseModel):
    """Per-product fields, presets and what survives a product switch."""

    fields: dict[str, ExtraField] = Field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    keep_on_switch: list[str] = Field(default_factory=list)
    derive: dict[str, dict[str, str]] = Field(default_factory=dict)  # product -> {field: from field}

    def extra_fields(self, product: str, currency: str) -> list[FieldInfo]:
        """Every extra field (another product's too: a shop's revenue said in a Cash form is
        kept for a switch), required only when the product asks for it."""
        out = []
        for name, f in self.fields.items():
            mine = f.products == "all" or product in f.products
            out.append(FieldInfo(name=name, source="chat", kind=f.kind, label=f.label, min=0,
                                 unit=currency if f.unit == "currency" else f.unit, required=f.asked and mine))
        return out

    def shown(self, product: str) -> list[str]:
        return [n for n, f in self.fields.items() if f.products == "all" or product in f.products]


def load_form_spec(path: Path) -> FormSpec:
    return FormSpec.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})


def below_rule(answers: dict[str, Any], spec: FormSpec, product: ProductTerms) -> str | None:
    """The first extra field whose knock-out rule fails (e.g. months trading under the product's
    min_months_trading from terms.yaml), else None."""
    for name, f in spec.fields.items():
        floor = getattr(product, f.min_from, None) if f.min_from else None
        if floor is not None and answers.get(name) is not None and answers[name] < floor:
            return name
    return None


def form_fields(scorecard: list[FieldInfo], extras: list[FieldInfo]) -> list[FieldInfo]:
    """The form's order: amount, age, the product's own knock-out and extra fields, then the rest."""
    first = [f for f in scorecard if f.name in KNOCK_OUT_FIRST]
    return first + [f for f in extras if f.required] + [f for f in scorecard if f not in first] + \
        [f for f in extras if not f.required]
