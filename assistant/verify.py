"""Verify a generated answer: every figure must appear in the cited passages.

A figure is a number with its kind (percentage or plain), so "5%" is not backed by "5 days".
Sentences with an unbacked figure are dropped; so are repeated sentences (small models loop)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.terms import normalise_number

_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s*(%|percent\b|per cent\b)?", re.I)
_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
}
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


@dataclass(frozen=True)
class Figure:
    value: str  # normalised, e.g. "23.9", "50000"
    percent: bool

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else self.value


@dataclass
class Verification:
    text: str
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, list[str]]] = field(default_factory=list)  # sentence, unbacked figures

    @property
    def supported(self) -> bool:
        return bool(self.kept)


def figures(text: str, words: bool = True) -> set[Figure]:
    found: set[Figure] = set()
    for whole, frac, pct in _NUMBER.findall(text):
        number = whole + (f".{frac}" if frac else "")
        found.add(Figure(normalise_number(number), bool(pct)))
    if words:
        for word in _WORD_NUMBER.findall(text):
            found.add(Figure(str(_WORDS[word.lower()]), False))
    return found


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def unbacked(sentence: str, backed: set[Figure]) -> list[str]:
    return [str(f) for f in figures(sentence) if f not in backed]


def backed_figures(passages: list[str]) -> set[Figure]:
    found: set[Figure] = set()
    for passage in passages:
        found |= figures(passage)
    return found


MIN_WORD_SUPPORT = 0.75  # share of a sentence's content words that must occur in the passages
_WORD = re.compile(r"[a-z]{3,}")
_FILLER = frozenset("the and for you your are can with this that have has will not from our any all its "
                    "also may must more than only when what which who how per each".split())


def word_support(sentence: str, vocabulary: set[str]) -> float:
    words = [w for w in _WORD.findall(sentence.lower()) if w not in _FILLER]
    if not words:
        return 0.0
    return sum(_stem(w) in vocabulary for w in words) / len(words)


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def verify_answer(answer: str, passages: list[str]) -> Verification:
    """Keep the sentences whose figures all occur in the passages and whose words mostly do:
    a claim the passages do not make is dropped even when it quotes no number."""
    backed = backed_figures(passages)
    vocabulary = {_stem(w) for p in passages for w in _WORD.findall(p.lower())}
    result = Verification(text="")
    seen: set[str] = set()
    for sentence in sentences(answer):
        key = re.sub(r"\W+", " ", sentence.lower()).strip()
        if not key or key in seen:
            continue
        seen.add(key)
        bad = unbacked(sentence, backed)
        if bad:
            result.dropped.append((sentence, bad))
        elif word_support(sentence, vocabulary) < MIN_WORD_SUPPORT:
            result.dropped.append((sentence, ["unsupported wording"]))
        elif _is_complete(sentence):
            result.kept.append(sentence)
    result.text = " ".join(result.kept)
    return result


def _is_complete(sentence: str) -> bool:
    # A cut-off last sentence (max tokens reached) is dropped rather than shown half-said.
    return len(sentence.split()) >= 3 and sentence[-1] in ".!?。！？)\"'"
