"""Verify a generated answer: every figure must appear in the cited passages.

A figure is a number with its kind (percentage or plain), so "5%" is not backed by "5 days".
Sentences with an unbacked figure are dropped; so are repeated sentences (small models loop),
questions (a small model echoes the question instead of answering it) and negations the passages
do not make ("there is no grace period" when the passage gives one)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.knowledge.terms import normalise_number

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
    passage_sentences = [s for p in passages for s in sentences(p)]
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
        elif _is_question(sentence):
            result.dropped.append((sentence, ["a question, not an answer"]))
        elif _NEGATION.search(sentence) and not _negation_backed(sentence, passage_sentences):
            result.dropped.append((sentence, ["a negation the passages do not make"]))
        elif _is_complete(sentence):
            result.kept.append(sentence)
    result.text = " ".join(result.kept)
    return result


_NEGATION = re.compile(r"\b(no|not|never|none|nothing|neither|nor|without|cannot)\b|n[\'’]t\b|无|不|没", re.I)
_NEGATION_CUES = frozenset("no not never none nothing neither nor without cannot".split())
_TOKEN = re.compile(r"[a-z]+(?:['’]t)?", re.I)
NEGATION_SCOPE = 4  # words after "no"/"not" that it is taken to deny
_NOT_NEGATED = _FILLER | {"there", "is", "isn't", "a", "an", "be", "it", "of", "to", "any"}


def _is_question(sentence: str) -> bool:
    return sentence.rstrip("\"')").endswith(("?", "？"))


def _negation_backed(sentence: str, passage_sentences: list[str]) -> bool:
    """Does some passage deny the same thing? A small model often flips a yes into a no while
    keeping every word of the passage ("there isn't a grace period")."""
    denied = _denied(sentence)
    if not denied:  # a Chinese negation, or one that denies nothing we can name
        return any(_NEGATION.search(p) for p in passage_sentences)
    return any(denied & _denied(p) for p in passage_sentences)


def _denied(text: str) -> set[str]:
    tokens = [w.lower() for w in _TOKEN.findall(text)]
    out: set[str] = set()
    for i, token in enumerate(tokens):
        if token in _NEGATION_CUES or token.endswith(("n't", "n’t")):
            scope = tokens[i + 1:i + 1 + NEGATION_SCOPE]
            out |= {_stem(w) for w in scope if len(w) >= 3 and w not in _NOT_NEGATED
                    and w not in _NEGATION_CUES and not w.endswith(("n't", "n’t"))}
    return out


def _is_complete(sentence: str) -> bool:
    # A cut-off last sentence (max tokens reached) is dropped rather than shown half-said.
    return len(sentence.split()) >= 3 and sentence[-1] in ".!?。！？)\"'"
