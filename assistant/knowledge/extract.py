"""The extractive fallback: when no generated sentence survives verification, answer with the
sentences of the best-ranked passage that answer the question, quoted as they are (so every
figure is backed) and in the passage's order.

A sentence scores by its meaning (cosine with the question, when an embedder is given), by the
question's words it shares (rarer words weigh more), by the figures the question asks for, and a
little by its position (an answer usually leads its passage). A bare "Yes." or "No." answers the
passage's own question, not the customer's: it is never quoted.

Measured on qa.jsonl's 218 answerable questions (the retrieved passages, no model): the first
three sentences held every key fact for 169 and began with a bare Yes/No for 62; these picks
hold them for 170 and begin with Yes/No for none. Picking among all five passages instead of the
first did worse (145 to 168): the fused ranking's first passage is the better one to quote."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from assistant.knowledge.index import tokenize
from assistant.knowledge.verify import figures, sentences
from assistant.types import Chunk

Embed = Callable[[list[str]], Any]  # texts -> unit-length vectors, one row per text

MAX_SENTENCES = 3
WEIGHT_MEANING, WEIGHT_WORDS, WEIGHT_FIGURE, WEIGHT_POSITION = 0.5, 0.4, 0.15, 0.1

_BARE_ANSWER = re.compile(r"^(yes|no)\s*[.,!:;—–-]+\s*", re.I)
_ASKS_FIGURE = re.compile(
    r"\b(how (much|many|long|soon|often|old|big)|apr|rate|rates|interest|fee|fees|cost|costs|charge|charged|"
    r"limit|limits|minimum|maximum|max|min|days?|months?|years?|percent|amount|term|terms|age|deadline|"
    r"hours?|when|time|phone|number|hotline|call)\b|%",
    re.I)


@dataclass(frozen=True)
class Candidate:
    chunk: Chunk
    position: int  # order within the passage
    text: str
    score: float = 0.0


def extract_answer(question: str, passage: Chunk, embed: Embed | None = None,
                   max_sentences: int = MAX_SENTENCES) -> str:
    """The sentences of `passage` that best answer `question`, in the passage's order."""
    candidates = _candidates(passage)
    if not candidates:
        return answer_body(passage)
    scored = score_sentences(question, candidates, embed)
    chosen = sorted(scored, key=lambda c: -c.score)[:max_sentences]
    return " ".join(c.text for c in sorted(chosen, key=lambda c: c.position))


def answer_body(chunk: Chunk) -> str:
    # The first line is the FAQ question, or "Title - heading" for other documents.
    return chunk.text.partition("\n")[2].strip() or chunk.text


def strip_bare_answer(sentence: str) -> str:
    """"Yes, you can repay early." -> "You can repay early."; "No." -> ""."""
    rest = _BARE_ANSWER.sub("", sentence, count=1).strip()
    if rest == sentence.strip():
        return rest
    return rest[:1].upper() + rest[1:] if len(rest.split()) >= 3 else ""


def score_sentences(question: str, candidates: list[Candidate], embed: Embed | None) -> list[Candidate]:
    words = _weights(question, [c.text for c in candidates])
    wanted = figures(question, words=False)
    asks_figure = bool(_ASKS_FIGURE.search(question)) or bool(wanted)
    meaning = _meaning(question, [c.text for c in candidates], embed)
    out = []
    for candidate, cosine in zip(candidates, meaning):
        found = figures(candidate.text, words=False)
        figure = 1.0 if (wanted & found) or (asks_figure and found and not wanted) else 0.0
        score = (WEIGHT_MEANING * cosine + WEIGHT_WORDS * _overlap(words, candidate.text)
                 + WEIGHT_FIGURE * figure + WEIGHT_POSITION / (1 + candidate.position))
        out.append(Candidate(candidate.chunk, candidate.position, candidate.text, score))
    return out


def _candidates(chunk: Chunk) -> list[Candidate]:
    out = []
    for sentence in sentences(answer_body(chunk)):
        text = strip_bare_answer(sentence.lstrip("-*• ").strip())
        if len(text.split()) >= 3 and not text.endswith(("?", "？")):
            out.append(Candidate(chunk, len(out), text))
    return out


def _weights(question: str, texts: list[str]) -> dict[str, float]:
    """The question's content words, each weighted by how rare it is among the candidate
    sentences: "meadow" in every sentence says little, "cooling" says a lot."""
    terms = {_stem(t) for t in tokenize(question)}
    if not terms:
        return {}
    bags = [{_stem(t) for t in tokenize(text)} for text in texts]
    n = len(bags)
    return {t: math.log(1 + n / (1 + sum(t in bag for bag in bags))) for t in terms}


def _overlap(weights: dict[str, float], text: str) -> float:
    if not weights:
        return 0.0
    bag = {_stem(t) for t in tokenize(text)}
    return sum(w for t, w in weights.items() if t in bag) / sum(weights.values())


def _meaning(question: str, texts: list[str], embed: Embed | None) -> list[float]:
    if embed is None:
        return [0.0] * len(texts)
    vectors = np.asarray(embed([question, *texts]), dtype=np.float32)
    return [max(0.0, float(s)) for s in vectors[1:] @ vectors[0]]


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word
