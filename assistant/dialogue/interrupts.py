"""What a turn does to an active form, wherever in the message it says it: cancel, a question,
a complaint-status request, a hand-off request, distress, a correction. The words are rules
(knowledge_base/rules/routing.yaml, `interrupts:`), matched on normalised text."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Literal

from pydantic import BaseModel, Field

InterruptKind = Literal["distress", "cancel", "handoff", "complaint_status", "complaint", "question", "correction"]
# The first kind found wins: a customer in distress first, then the way out, then the rest.
PRIORITY: tuple[str, ...] = ("distress", "cancel", "handoff", "complaint_status", "complaint", "question", "correction")

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u201c": '"', "\u201d": '"'})
# Contractions typed without the apostrophe ("dont", "whats"): rules are written with it.
_CONTRACTIONS = {
    "dont": "don't", "doesnt": "doesn't", "didnt": "didn't", "cant": "can't", "wont": "won't", "isnt": "isn't",
    "arent": "aren't", "wasnt": "wasn't", "im": "i'm", "ive": "i've", "id": "i'd", "whats": "what's",
    "thats": "that's", "theres": "there's", "hows": "how's", "wheres": "where's", "couldnt": "couldn't",
    "shouldnt": "shouldn't", "wouldnt": "wouldn't", "havent": "haven't", "hasnt": "hasn't",
}
_WORD = re.compile(r"[a-z']+")


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe, contractions with their apostrophe, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    text = _WORD.sub(lambda m: _CONTRACTIONS.get(m.group(0), m.group(0)), text)
    return re.sub(r"\s+", " ", text).strip()


class PatternSet(BaseModel):
    patterns: list[str] = Field(default_factory=list)
    unless: list[str] = Field(default_factory=list)

    def matches(self, text: str) -> bool:
        return _any(self.patterns, text) and not _any(self.unless, text)


class Interrupt(BaseModel):
    kind: InterruptKind
    detail: str | None = None  # the vulnerability kind, for distress


class InterruptRules(BaseModel):
    """Pattern sets per kind (distress comes from the vulnerability detector, not from here)."""

    kinds: dict[str, PatternSet] = Field(default_factory=dict)

    def with_kind(self, kind: str, extra: PatternSet) -> "InterruptRules":
        """Another rule set's patterns (the hand-off rule, the complaint-status follow-ups) joined in."""
        mine = self.kinds.get(kind, PatternSet())
        joined = PatternSet(patterns=[*mine.patterns, *extra.patterns], unless=[*mine.unless, *extra.unless])
        return InterruptRules(kinds={**self.kinds, kind: joined})

    def all_patterns(self) -> list[str]:
        return [p for s in self.kinds.values() for p in s.patterns + s.unless]


def classify_interrupt(text: str, rules: InterruptRules, vulnerability: str | None = None) -> Interrupt | None:
    """The interruption a message makes, or None (an answer to the form's question)."""
    if vulnerability:
        return Interrupt(kind="distress", detail=vulnerability)
    norm = normalise(text)
    for kind in PRIORITY[1:]:
        rule = rules.kinds.get(kind)
        if rule is not None and rule.matches(norm):
            return Interrupt(kind=kind)  # type: ignore[arg-type]
    return None


def kinds_found(text: str, rules: InterruptRules) -> list[str]:
    """Every kind whose patterns match (for tests and traces)."""
    norm = normalise(text)
    return [k for k in PRIORITY[1:] if k in rules.kinds and rules.kinds[k].matches(norm)]


def _any(patterns: Iterable[str], text: str) -> bool:
    return any(_compiled(p).search(text) for p in patterns)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)
